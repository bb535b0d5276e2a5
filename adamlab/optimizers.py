"""The usual optimizers, each a short chain of primitives.

Positional and keyword arguments are Optax 0.2.8's, in Optax's order, with its defaults and meanings;
adamlab's own additions (`state_dtype`, `nu_dtype`, `saturate`, and `weight_decay`/`mask` on `adam`) are
keyword-only.

``saturate=True`` (Adam, AdamW, RMSProp) keeps the second moment finite when ``g**2`` overflows float32
(``|g| > 1.8e19``): see `scale_by_rms`.

Read any of them to see how to build a variant: drop `bias_correct` for Adam
without bias correction, put `scale_by_ema` after `scale_by_rms` for
RMSProp with EMA momentum, and so on.
"""

from __future__ import annotations

from adamlab import _checks
from adamlab.base import GradientTransformation, chain, identity
from adamlab.decay import Mask, add_coupled_weight_decay, add_decoupled_weight_decay
from adamlab.moments import bias_correct, scale_by_ema, scale_by_rms, trace
from adamlab.scaling import ScalarOrSchedule, Schedule, scale, scale_by_learning_rate


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: float | None = None,
    nesterov: bool = False,
    accumulator_dtype=None,
    *,
    state_dtype=None,
) -> GradientTransformation:
    """``p <- p - lr * g``; with `momentum`, heavy-ball ``t = g + momentum * t`` (or Nesterov) first."""
    if nesterov and momentum is None:
        raise ValueError("nesterov=True needs a momentum value")
    return chain(
        trace(momentum, nesterov, accumulator_dtype, state_dtype=state_dtype) if momentum is not None else identity(),
        scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
    *,
    state_dtype=None,
    saturate: bool = False,
) -> GradientTransformation:
    """RMSProp: ``p <- p - lr * g / sqrt(v + eps)`` with ``v`` the EMA of ``g**2``, started at `initial_scale`.

    ``eps_in_sqrt=True`` (Optax's default) puts eps under the root;
    ``False`` gives ``g / (sqrt(v) + eps)``. `momentum` adds heavy-ball
    momentum on the scaled step, after the learning rate, as Optax does.
    """
    return chain(
        scale_by_rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered=centered,
                     state_dtype=state_dtype, saturate=saturate),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov, state_dtype=state_dtype) if momentum is not None else identity(),
    )


def _adam_direction(b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov, saturate) -> tuple:
    """``m_hat / (sqrt(v_hat + eps_root) + eps)``: EMA of g, its bias correction, and division by the RMS of g."""
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    _checks.check_nonnegative("eps", eps)
    return (
        scale_by_ema(b1, state_dtype=mu_dtype),
        bias_correct(b1, nesterov=nesterov),
        scale_by_rms(b2, eps, bias_correction=True, eps_root=eps_root, state_dtype=nu_dtype, saturate=saturate),
    )


def _optional_decay(add_decay, weight_decay, mask) -> GradientTransformation:
    """`add_decay(weight_decay, mask)`, or no stage for a weight decay of None or a known 0 (decided in Python, so
    ``optax.inject_hyperparams``, whose arrays may hold anything, keeps the stage)."""
    if weight_decay is None or _checks.known_zero(weight_decay):
        return identity()
    return add_decay(weight_decay, mask)


def _moment_dtypes(mu_dtype, nu_dtype, state_dtype) -> tuple:
    """Optax's `mu_dtype` sets the first moment's dtype; `nu_dtype` the second's; `state_dtype` both."""
    return (state_dtype if mu_dtype is None else mu_dtype), (state_dtype if nu_dtype is None else nu_dtype)


def adam(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
    *,
    nesterov: bool = False,
    weight_decay: float | None = None,
    mask: Mask | None = None,
    nu_dtype=None,
    state_dtype=None,
    saturate: bool = False,
) -> GradientTransformation:
    """Adam: ``p <- p - lr * m_hat / (sqrt(v_hat + eps_root) + eps)``; NAdam with `nesterov`.

    `weight_decay` is the coupled (L2) form, ``g <- g + wd * p`` before the
    moments, as ``torch.optim.Adam(weight_decay=...)``. For decay that is
    not divided by ``sqrt(v_hat)`` use `adamw`. Its default is None, not 0,
    so that ``optax.inject_hyperparams(adam)``, which turns every number into
    an array, leaves no decay stage in the state.
    """
    mu, nu = _moment_dtypes(mu_dtype, nu_dtype, state_dtype)
    return chain(_optional_decay(add_coupled_weight_decay, weight_decay, mask),
                 *_adam_direction(b1, b2, eps, eps_root, mu, nu, nesterov, saturate),
                 scale_by_learning_rate(learning_rate))


def adamw(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
    weight_decay: float = 1e-4,
    mask: Mask | None = None,
    *,
    nesterov: bool = False,
    schedule: Schedule | None = None,
    nu_dtype=None,
    state_dtype=None,
    saturate: bool = False,
) -> GradientTransformation:
    """AdamW: ``p <- p - lr * (m_hat / (sqrt(v_hat + eps_root) + eps) + wd * p)``; NAdamW with `nesterov`.

    The decay is decoupled from the adaptive scaling: every (unmasked)
    weight shrinks by the same ``lr * wd`` per step (Optax's and PyTorch's
    form). With a `schedule` (a multiplier ``step -> eta_t``), the paper's
    Algorithm 2 (Loshchilov & Hutter, ICLR 2019): `learning_rate` is the base
    rate ``alpha`` and ``p <- p - eta_t * (alpha * adam + wd * p)``, so the
    decay per step, ``eta_t * wd``, does not move with ``alpha``.
    """
    mu, nu = _moment_dtypes(mu_dtype, nu_dtype, state_dtype)
    if schedule is None:
        rate = (add_decoupled_weight_decay(weight_decay, mask), scale_by_learning_rate(learning_rate))
    else:
        if not callable(schedule):
            raise TypeError(f"schedule must be a function step -> multiplier, got {type(schedule).__name__}")
        if callable(learning_rate):
            raise ValueError(
                "adamw(learning_rate=<a schedule>, schedule=...): with `schedule`, learning_rate is the base rate "
                "alpha, a number, and the schedule multiplies both alpha and the decay; give one schedule"
            )
        _checks.check_nonnegative("learning_rate", learning_rate)
        rate = (scale(learning_rate), add_decoupled_weight_decay(weight_decay, mask), scale_by_learning_rate(schedule))
    return chain(*_adam_direction(b1, b2, eps, eps_root, mu, nu, nesterov, saturate), *rate)
