"""Adam's relatives: AdaMax, AdaBelief, RAdam, Yogi, Adan, ADOPT, simplified AdEMAMix and optimistic Adam.

Each optimizer is a short chain of primitives, under Optax's name with Optax's positional arguments, order and
defaults (adamlab's additions, such as ``state_dtype``, are keyword-only)::

    adamax              = chain(scale_by_adamax(b1, b2, eps), lr)
    scale_by_adamax     = chain(scale_by_ema(b1), bias_correct(b1), <infinity norm>)
    adamaxw             = chain(scale_by_adamax(b1, b2, eps), add_decoupled_weight_decay(wd), lr)
    adabelief           = chain(scale_by_belief(b1, b2, eps, eps_root), lr)
    scale_by_belief     = chain(scale_by_ema(b1), <EMA of (g - m)**2, bias corrections>)
    radam               = chain(scale_by_radam(b1, b2, eps, eps_root, threshold), lr)
    scale_by_radam      = chain(scale_by_ema(b1), bias_correct(b1), <rectified RMS>)
    yogi                = chain(scale_by_yogi(b1, b2, eps), lr)
    scale_by_yogi       = chain(<EMA of g from v0>, bias_correct(b1), <Yogi's additive second moment>)
    adan                = chain(scale_by_adan(b1, b2, b3, eps, eps_root), add_decoupled_weight_decay(wd), lr)
    scale_by_adan       = chain(scale_by_ema(b1), bias_correct(b1), <gradient-difference moments>)
    adopt               = chain(scale_by_adopt(b1, b2, eps), lr)
    simplified_ademamix = chain(trace(b1), <lerp second moment, alpha * g>, add_decoupled_weight_decay(wd), lr)
    optimistic_adam_v2  = chain(<adam's direction, nesterov>, scale_by_optimistic_gradient(alpha, beta), lr)

(``lr`` stands for ``scale_by_learning_rate(learning_rate)``; ``<...>`` is a moment stage of this module.) Every
moment is built with :func:`adamlab.moment_stage`: it is kept in float32 (or the param's wider dtype) unless
``state_dtype`` asks for ``jnp.bfloat16`` or 8-bit codes, integer leaves pass through, and per-step scalars follow
the precision of the leaves. With float32 params each optimizer computes what its Optax namesake does, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import GradientTransformation, chain
from adamlab.decay import Mask, add_coupled_weight_decay, add_decoupled_weight_decay
from adamlab.moments import (
    CountedEmaState,
    EmaState,
    bias_correct,
    bias_correction_term,
    scale_by_ema,
    scale_by_rms,
    trace,
)
from adamlab.optimizers import _ascent, _moment_dtypes, _optional_decay
from adamlab.scaling import ScalarOrSchedule, scale_by_learning_rate
from adamlab.stage_builder import countless_storage, moment_stage
from adamlab.tree import abs_sq, scalar, widest_float

# ---------------------------------------------------------------------------------------------------------- AdaMax


class AdamaxState(NamedTuple):
    """State of AdaMax's infinity-norm stage (in :func:`scale_by_adamax`): ``u``, the decayed maximum of ``|g|``.

    Args:
      count: int32 scalar, the number of updates taken (saturating at ``2**31 - 1``), the seed of stochastic
        rounding.
      infinity_norm: ``u_t = max(b2 * u_{t-1}, |g_t| + eps)``, a real tree like the params (``(0,)``
        placeholders for integer and bool leaves). Optax: the ``nu`` of ``ScaleByAdamState``.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_adamax
      >>> scale_by_adamax().init({"w": jnp.zeros(2)})[2]
      AdamaxState(count=Array(0, dtype=int32), infinity_norm={'w': Array([0., 0.], dtype=float32)})
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    infinity_norm: Any


def scale_by_adamax(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *, state_dtype=None
) -> GradientTransformation:
    """AdaMax's direction (Kingma & Ba 2015, section 7.1): the corrected first moment over the infinity norm.

    ::

        m_t    = b1 * m_{t-1} + (1 - b1) * g_t,      m_hat = m_t / (1 - b1**t)
        u_t    = max(b2 * u_{t-1}, |g_t| + eps)                 (no bias correction needed)
        output = m_hat / u_t

    Built as ``chain(scale_by_ema(b1), bias_correct(b1), <infinity norm>)``; the same as
    ``optax.scale_by_adamax``, which adds `eps` inside the maximum (the paper has no eps: its ``u`` is
    ``max(b2 * u, |g|)``).

    Args:
      b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``; PyTorch: ``betas[0]``.
      b2: Decay of the infinity norm, in ``[0, 1)``. Default 0.999. Optax: ``b2``; PyTorch: ``betas[1]``.
      eps: Added to ``|g|`` inside the maximum, ``>= 0``. Default 1e-8. Optax: ``eps``.
      state_dtype: Storage dtype of both moments (``jnp.bfloat16``, ``jnp.int8`` or a float dtype; the infinity
        norm is rounded stochastically when narrower than float32). Default None: float32. adamlab's.

    Returns:
      A `GradientTransformation` whose state is a tuple ``(EmaState, CountState, AdamaxState)``
      (``CountedEmaState`` for 8-bit ``m``).

    Raises:
      ValueError: If `b1` or `b2` is outside ``[0, 1)``, or `eps` is negative or not finite.
      TypeError: If a hyperparameter is not a real number or scalar array, or `state_dtype` is not a float dtype.

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015, section 7.1.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_adamax
      >>> tx = scale_by_adamax(eps=0.0)
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> for g in ([2.0, -1.0], [0.5, -1.0]):  # u stays near the largest |g|: 2 * 0.999, then 1
      ...     updates, state = tx.update({"w": jnp.array(g)}, state)
      >>> print(state[2].infinity_norm["w"], updates["w"].round(4))
      [1.998 1.   ] [ 0.6059 -1.    ]
    """
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    _checks.check_nonnegative("eps", eps)

    def infinity_norm(u, g, norm):
        norm = jnp.maximum(jnp.abs(g) + eps, b2 * norm)
        return u / norm, norm

    return chain(
        scale_by_ema(b1, state_dtype=state_dtype),
        bias_correct(b1),
        moment_stage(
            "scale_by_infinity_norm",
            AdamaxState,
            infinity_norm,
            reads_gradient=True,
            state_dtype=state_dtype,
            rounding="stochastic",
            real=("infinity_norm",),
        ),
    )


def adamax(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    state_dtype=None,
    weight_decay: ScalarOrSchedule | None = None,
    mask: Mask | None = None,
    maximize: bool = False,
) -> GradientTransformation:
    """AdaMax (Kingma & Ba 2015, section 7.1): Adam with the infinity norm in place of the RMS.

    ::

        maximize:     g_t <- -g_t                       (first of all; PyTorch's)
        weight_decay: g_t <- g_t + wd * p               (coupled L2, before the moments; PyTorch's)
        m_t = b1 * m_{t-1} + (1 - b1) * g_t,    u_t = max(b2 * u_{t-1}, |g_t| + eps)
        p  <- p - lr * m_t / ((1 - b1**t) * u_t)

    Built as ``chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))``: what
    ``optax.adamax`` computes; `weight_decay` puts ``add_coupled_weight_decay(weight_decay, mask)`` in front
    and `maximize` ``scale(-1.0)`` before that. ``torch.optim.Adamax(params, lr, betas=(b1, b2), eps=eps,
    weight_decay=wd, maximize=...)`` is ``adamax(lr, b1, b2, eps, weight_decay=wd, maximize=...)`` (torch's
    default lr is 2e-3); it takes ``max(b2 * u, |g| + eps)`` too, and divides by ``1 - b1**t`` in the step size
    rather than in ``m``: the same to rounding.

    Args:
      learning_rate: The step size: a number ``>= 0`` or a schedule ``step -> lr``. No default. Optax:
        ``learning_rate``; PyTorch: ``lr``.
      b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``; PyTorch: ``betas[0]``.
      b2: Decay of the infinity norm, in ``[0, 1)``. Default 0.999. Optax: ``b2``; PyTorch: ``betas[1]``.
      eps: Added to ``|g|`` inside the maximum, ``>= 0``. Default 1e-8. Optax and PyTorch: ``eps``.
      state_dtype: Storage dtype of both moments, as in :func:`scale_by_adamax`. Default None. adamlab's.
      weight_decay: Keyword-only. Coefficient ``wd >= 0`` of the coupled (L2) decay ``g + wd * p``, added before
        the moments (a number). Default None: no decay stage. PyTorch: ``weight_decay`` of
        ``torch.optim.Adamax``, which is L2: ``g + wd * p`` before ``m`` and ``u``. adamlab's.
      mask: Keyword-only. Where `weight_decay` applies (True decays): a bool tree like the params, a prefix of
        one, or a callable ``params -> such a tree``. Default None: every float leaf. adamlab's.
      maximize: Keyword-only. Ascend: the gradient is negated first, before the decay. Default False. PyTorch:
        ``maximize``, the same ``g <- -g`` in front.

    Returns:
      A `GradientTransformation` whose state is ``(EmaState, CountState, AdamaxState, <learning rate's state>)``;
      `weight_decay` adds an ``EmptyState()`` in front, `maximize` one before that.

    Raises:
      ValueError: If `b1` or `b2` is outside ``[0, 1)``, or `eps`, `learning_rate` or `weight_decay` is negative
        or not finite.
      TypeError: If a hyperparameter is not a real number, scalar array (or schedule), or `state_dtype` is not a
        float dtype.

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015, section 7.1.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import adamax
      >>> tx = adamax(0.1)
      >>> params = {"w": jnp.ones(2)}
      >>> updates, _ = tx.update({"w": jnp.array([3.0, -0.5])}, tx.init(params), params)
      >>> print(updates["w"].round(4))  # the first step is -lr * sign(g)
      [-0.1  0.1]
    """
    return chain(
        _ascent(maximize),
        _optional_decay(add_coupled_weight_decay, weight_decay, mask),
        scale_by_adamax(b1, b2, eps, state_dtype=state_dtype),
        scale_by_learning_rate(learning_rate),
        name="adamax",
    )


def adamaxw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask | None = None,
    *,
    state_dtype=None,
) -> GradientTransformation:
    """AdaMaxW: :func:`adamax` with decoupled weight decay (Loshchilov & Hutter's AdamW decay on AdaMax).

    ::

        p <- p - lr * (m_t / ((1 - b1**t) * u_t) + wd * p)        (wd where mask is True)

    Built as ``chain(scale_by_adamax(b1, b2, eps), add_decoupled_weight_decay(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``, the decay stage left out for a weight decay of 0: what
    ``optax.adamaxw`` computes.

    Args:
      learning_rate: The step size: a number ``>= 0`` or a schedule. No default. Optax: ``learning_rate``.
      b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``.
      b2: Decay of the infinity norm, in ``[0, 1)``. Default 0.999. Optax: ``b2``.
      eps: Added to ``|g|`` inside the maximum, ``>= 0``. Default 1e-8. Optax: ``eps``.
      weight_decay: The decoupled decay ``wd >= 0`` (a number). Default 1e-4. Optax: ``weight_decay``.
      mask: Where the decay applies: a tree of bools like the params, or a function of the params returning one.
        Default None: every float leaf. Optax: ``mask``.
      state_dtype: Storage dtype of both moments, as in :func:`scale_by_adamax`. Default None. adamlab's.

    Returns:
      A `GradientTransformation` whose state is ``(EmaState, CountState, AdamaxState, EmptyState(),
      <learning rate's state>)`` (no ``EmptyState`` without decay).

    Raises:
      ValueError: As :func:`adamax`, or if `weight_decay` is negative or not finite.
      TypeError: As :func:`adamax`.

    References:
      Kingma & Ba, ICLR 2015 (AdaMax); Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import adamaxw
      >>> tx = adamaxw(0.1, weight_decay=0.5)
      >>> params = {"w": jnp.ones(2)}
      >>> updates, _ = tx.update({"w": jnp.array([3.0, -0.5])}, tx.init(params), params)
      >>> print(updates["w"].round(3))  # -lr * (sign(g) + wd * p)
      [-0.15  0.05]
    """
    return chain(
        scale_by_adamax(b1, b2, eps, state_dtype=state_dtype),
        _optional_decay(add_decoupled_weight_decay, weight_decay, mask),
        scale_by_learning_rate(learning_rate),
        name="adamaxw",
    )


# ------------------------------------------------------------------------------------------------------- AdaBelief


class BeliefState(NamedTuple):
    """State of AdaBelief's second-moment stage (in :func:`scale_by_belief`).

    Args:
      count: int32 scalar, the number of updates taken (saturating): the ``t`` of the bias corrections.
      second_moment: ``s_t = b2 * s_{t-1} + (1 - b2) * (g_t - m_t)**2 + eps_root``, the EMA of the squared
        prediction error, a real tree like the params. Optax: the ``nu`` of ``ScaleByBeliefState``.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_belief
      >>> scale_by_belief().init({"w": jnp.zeros(1)})[1]
      BeliefState(count=Array(0, dtype=int32), second_moment={'w': Array([0.], dtype=float32)})
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    second_moment: Any


def scale_by_belief(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
    state_dtype=None,
) -> GradientTransformation:
    """AdaBelief's direction (Zhuang et al. 2020): the first moment over the RMS of the prediction error ``g - m``.

    ::

        m_t    = b1 * m_{t-1} + (1 - b1) * g_t,                m_hat = m_t / (1 - b1**t)
        s_t    = b2 * s_{t-1} + (1 - b2) * (g_t - m_t)**2 + eps_root,   s_hat = s_t / (1 - b2**t)
        nesterov: m_hat = b1 * m_t / (1 - b1**(t+1)) + (1 - b1) * g_t / (1 - b1**t)
        output = m_hat / (sqrt(s_hat) + eps)

    ``s`` needs ``m_t`` before its bias correction, so the corrections are made in the second stage:
    ``chain(scale_by_ema(b1), <s and both corrections>)``; the same as ``optax.scale_by_belief``, whose
    stored ``s`` includes `eps_root` as here.

    Args:
      b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``.
      b2: Decay of ``s``, in ``[0, 1)``. Default 0.999. Optax: ``b2``.
      eps: Added to ``sqrt(s_hat)``, ``>= 0``. Default 1e-16. Optax: ``eps``.
      eps_root: Added to ``s`` at every step, ``>= 0``. Default 1e-16. Optax: ``eps_root``.
      nesterov: NAdam's look-ahead in the corrected first moment. Default False. Optax: ``nesterov``.
      state_dtype: Storage dtype of both moments (``jnp.bfloat16``, ``jnp.int8`` or a float dtype with
        float32's exponent range; ``s`` rounded stochastically). Default None: float32. adamlab's.

    Returns:
      A `GradientTransformation` whose state is ``(EmaState, BeliefState)``. Its ``update`` needs the
      gradient, which :func:`adamlab.chain` hands over.

    Raises:
      ValueError: If `b1` or `b2` is outside ``[0, 1)``; if `eps` or `eps_root` is negative or not finite; if
        `state_dtype` lacks float32's exponent range.
      TypeError: If a hyperparameter is not a real number or scalar array, or `state_dtype` is not a float dtype.

    References:
      Zhuang et al., *AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients*, NeurIPS 2020.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_belief
      >>> tx = scale_by_belief()
      >>> g = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = tx.update(g, tx.init(g))  # (g - m)**2 = (0.9 g)**2
      >>> print(updates["w"].round(4))  # m_hat / sqrt(s_hat) = g / (0.9 |g|)
      [ 1.1111 -1.1111]
    """
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("eps_root", eps_root)

    def per_step(t):
        bc1, bc2 = bias_correction_term(b1, t), bias_correction_term(b2, t)
        ahead = bias_correction_term(b1, t + 1) if nesterov else None

        def belief(m, g, s):
            s = (1 - b2) * abs_sq(g - m) + b2 * s
            s = s + eps_root
            m_hat = b1 * (m / ahead) + (1 - b1) * (g / bc1) if nesterov else m / bc1
            return m_hat / (jnp.sqrt(s / bc2) + eps), s

        return belief

    return chain(
        scale_by_ema(b1, state_dtype=state_dtype),
        moment_stage(
            "scale_by_belief_rms",
            BeliefState,
            per_step=per_step,
            reads_gradient=True,
            state_dtype=state_dtype,
            holds_squares=True,
            rounding="stochastic",
            real=("second_moment",),
        ),
    )


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
    state_dtype=None,
) -> GradientTransformation:
    """AdaBelief (Zhuang et al. 2020): Adam dividing by the RMS of ``g - m`` instead of ``g``.

    ::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t,   s_t = b2 * s_{t-1} + (1 - b2) * (g_t - m_t)**2 + eps_root
        p  <- p - lr * (m_t / (1 - b1**t)) / (sqrt(s_t / (1 - b2**t)) + eps)

    Built as ``chain(scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov),
    scale_by_learning_rate(learning_rate))``: what ``optax.adabelief`` computes.

    Args:
      learning_rate: The step size: a number ``>= 0`` or a schedule. No default. Optax: ``learning_rate``.
      b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``.
      b2: Decay of ``s``, in ``[0, 1)``. Default 0.999. Optax: ``b2``.
      eps: Added to ``sqrt(s_hat)``, ``>= 0``. Default 1e-16. Optax: ``eps``.
      eps_root: Added to ``s`` at every step, ``>= 0``. Default 1e-16. Optax: ``eps_root``.
      nesterov: NAdam's look-ahead. Default False. Optax: ``nesterov``.
      state_dtype: Storage dtype of both moments, as in :func:`scale_by_belief`. Default None. adamlab's.

    Returns:
      A `GradientTransformation` whose state is ``(EmaState, BeliefState, <learning rate's state>)``.

    Raises:
      ValueError: As :func:`scale_by_belief`, or if `learning_rate` is negative or not finite.
      TypeError: As :func:`scale_by_belief`.

    References:
      Zhuang et al., *AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients*, NeurIPS 2020.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import adabelief
      >>> tx = adabelief(0.1)
      >>> params = {"w": jnp.ones(2)}
      >>> updates, _ = tx.update({"w": jnp.array([1.0, -2.0])}, tx.init(params), params)
      >>> print(updates["w"].round(4))
      [-0.1111  0.1111]
    """
    return chain(
        scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov, state_dtype=state_dtype),
        scale_by_learning_rate(learning_rate),
        name="adabelief",
    )


# ----------------------------------------------------------------------------------------------------------- RAdam


def _gregory_coefficients(n: int) -> list[Fraction]:
    """Gregory's ``G_0 .. G_n``: ``x / log(1 + x) = sum_k G_k x**k`` (``G_0 = 1``, ``G_1 = 1/2``, ``G_2 = -1/12``)."""
    g = [Fraction(1)]
    for k in range(1, n + 1):
        g.append(-sum((g[j] * Fraction((-1) ** (k - j), k - j + 1) for j in range(k)), Fraction(0)))
    return g


# 1/q + 1/log(1 - q) - 1/2 = sum_{k >= 2} |G_k| q**(k - 1): the series starts at q/12, Horner's order below.
_LOG_SERIES = tuple(float(abs(c)) for c in _gregory_coefficients(21)[2:])
# 1/expm1(x) - 1/x + 1/2 = sum_{k >= 1} B_2k x**(2k - 1) / (2k)! (Bernoulli numbers; converges for |x| < 2 pi).
_BERNOULLI = (
    (1, 6),
    (-1, 30),
    (1, 42),
    (-1, 30),
    (5, 66),
    (-691, 2730),
    (7, 6),
    (-3617, 510),
    (43867, 798),
    (-174611, 330),
)
_EXPM1_SERIES = tuple(float(Fraction(*b) / math.factorial(2 * k)) for k, b in enumerate(_BERNOULLI, 1))


def _horner(coefficients: tuple[float, ...], z):
    out = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        out = out * z + c
    return out


def _rectification_length(b2, t, dtype) -> jax.Array:
    """RAdam's ``rho_t = rho_inf - 2 t b2**t / (1 - b2**t)`` for a `b2` known only at run time, to the rounding of
    `dtype`.

    As written, the two terms are near ``2 / (1 - b2)`` each while ``rho_t`` is near ``t``: in float32 the
    difference loses ``2 / ((1 - b2) t)`` times the rounding of ``b2**t`` (7e-3 relative for 0.999, 0.66 for
    0.9999). With ``q = 1 - b2`` (exact for ``b2 >= 0.5``) and ``x = -t log(b2)`` (``b2**t = exp(-x)``)::

        rho_t = t (1 - 2 f(x)) + 2 h(q)       x < 1, with f(x) = 1/expm1(x) - 1/x + 1/2 ~ x/12,
                                                          h(q) = 1/q + 1/log(1 - q) - 1/2 ~ q/12
        rho_t = (2/q - 1) - 2 t / expm1(x)     x >= 1 (the second term at most 0.58 of the first)

    `f` and `h` by their series (Bernoulli's and Gregory's numbers), where the terms are small and positive;
    `h` directly from ``q >= 0.5`` in float32 (``rho_inf <= 3``: never rectified) or ``q >= 0.1`` in float64.
    """
    b2, t = jnp.asarray(b2, dtype), jnp.asarray(t, dtype)
    q = 1 - b2
    log_b2 = jnp.log1p(-q)
    x = -t * log_b2
    f = x * _horner(_EXPM1_SERIES, x * x)
    cut = 0.5 if jnp.finfo(dtype).bits <= 32 else 0.1
    h = jnp.where(q < cut, q * _horner(_LOG_SERIES, q), 1 / q + 1 / log_b2 - 0.5)
    near = t * (1 - 2 * f) + 2 * h
    far = (2 / q - 1) - 2 * t / jnp.expm1(x)
    return jnp.where(x < 1, near, far)


class RadamState(NamedTuple):
    """State of RAdam's rectified second-moment stage (in :func:`scale_by_radam`).

    Args:
      count: int32 scalar, the number of updates taken (saturating): the ``t`` of the corrections and of
        ``rho_t``.
      second_moment: ``v_t``, the EMA of ``|g|**2``, a real tree like the params. Optax: the ``nu`` of
        ``ScaleByAdamState``.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_radam
      >>> scale_by_radam().init({"w": jnp.zeros(1)})[2]
      RadamState(count=Array(0, dtype=int32), second_moment={'w': Array([0.], dtype=float32)})
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    second_moment: Any


def scale_by_radam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
    state_dtype=None,
    eps_before_bias_correction: bool = False,
) -> GradientTransformation:
    """RAdam's direction (Liu et al. 2020): Adam's, rectified by ``r_t``, and momentum SGD while ``rho_t`` is small.

    ::

        m_hat, v_hat as Adam's (m_hat with NAdam's look-ahead under nesterov)
        rho_inf = 2 / (1 - b2) - 1,     rho_t = rho_inf - 2 t b2**t / (1 - b2**t)
        r_t     = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
        output  = r_t * m_hat / (sqrt(v_hat + eps_root) + eps)   if rho_t >= threshold
                  m_hat                                            otherwise
        eps_before_bias_correction (PyTorch's):
                  r_t * m_hat / (sqrt(v_hat + eps_root) + eps / sqrt(1 - b2**t))
                  = r_t * m_hat * sqrt(1 - b2**t) / (sqrt(v_t) + eps)    for eps_root = 0

    Built as ``chain(scale_by_ema(b1), bias_correct(b1, nesterov=nesterov), <rectified RMS>)``; the same as
    ``optax.scale_by_radam``. The paper's threshold is 4 (``rho_t > 4``); Optax's default, 5, is kept.
    ``torch.optim.RAdam`` takes the adaptive step where ``rho_t > 5``: the same as ``rho_t >= 5`` unless
    ``rho_t`` is exactly 5, which the float values of ``rho_t`` do not hit for the usual ``b2``.

    ``rho_t`` and the precision of `b2`: with `b2` a number, ``rho_t`` is computed with Optax's arithmetic, bit
    for bit: ``rho_inf`` from the number itself and ``b2**t`` from its float32 rounding, which for ``b2`` near 1
    are two different rates. In float32 that puts ``rho_t`` 0.01 to 0.04 off the exact value for 0.999 and 1.3
    to 4.3 off for 0.9999 (whose float32 rounding makes ``1 - b2`` 1.7e-4 larger, relatively), and over 30 steps the
    params 1e-5 and 1e-2 (relative) away from exact RAdam. With `b2` an array (traced under `jax.vmap`, or from
    ``optax.inject_hyperparams``) the two formulas of ``rho_t`` cancel to about ``t`` and Optax's arithmetic
    would lose ``2 / ((1 - b2) t)`` times the rounding of ``b2**t`` (7e-3 relative for 0.999); ``rho_t`` is
    computed instead from series in ``1 - b2`` and ``t log(b2)`` without the cancellation, to a few roundings
    of the array's precision (float32: 3e-7), and the params stay within 1e-6 of the float64 reference. So a
    `jax.vmap` cell over `b2` and the run built with that number agree only as closely as the number's own
    ``rho_t`` allows (1e-5 for 0.999 over 30 steps, 1e-2 for 0.9999).

    Args:
      b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``; PyTorch: ``betas[0]``.
      b2: Decay of the second moment, in ``[0, 1)``. Default 0.999. Optax: ``b2``; PyTorch: ``betas[1]``.
      eps: Added to the root, ``>= 0``. Default 1e-8. Optax and PyTorch: ``eps``.
      eps_root: Added under the root, ``>= 0``. Default 0. Optax: ``eps_root``.
      threshold: The ``rho_t`` from which the adaptive step is taken, ``>= 0``. Default 5. Optax: ``threshold``.
      nesterov: NAdam's look-ahead in the first moment. Default False. Optax: ``nesterov``.
      state_dtype: Storage dtype of both moments (``v`` rounded stochastically; float16 refused). Default None.
        adamlab's.
      eps_before_bias_correction: Keyword-only. Default False: `eps` is added to the root of the corrected
        ``v_hat`` (Optax's). True: to the root of the raw ``v_t``, before its correction, so the eps of the
        corrected root is ``eps / sqrt(1 - b2**t)``: PyTorch's ``sqrt(1 - b2**t) / (sqrt(v_t) + eps)``.
        adamlab's.

    Returns:
      A `GradientTransformation` whose state is ``(EmaState, CountState, RadamState)``.

    Raises:
      ValueError: If `b1` or `b2` is outside ``[0, 1)``; if `eps`, `eps_root` or `threshold` is negative or not
        finite; if `state_dtype` lacks float32's exponent range.
      TypeError: If a hyperparameter is not a real number or scalar array, or `state_dtype` is not a float dtype.

    References:
      Liu et al., *On the Variance of the Adaptive Learning Rate and Beyond*, ICLR 2020.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_radam
      >>> tx = scale_by_radam()
      >>> state = tx.init({"w": jnp.zeros(1)})
      >>> for _ in range(6):  # rho_t < 5 for the first 5 steps: the output is m_hat itself
      ...     updates, state = tx.update({"w": jnp.array([2.0])}, state)
      ...     print(updates["w"].round(4))
      [2.]
      [2.]
      [2.]
      [2.]
      [2.]
      [0.0255]
    """
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("eps_root", eps_root)
    _checks.check_nonnegative("threshold", threshold)
    if not isinstance(eps_before_bias_correction, bool):
        raise TypeError(f"eps_before_bias_correction must be True or False, got {eps_before_bias_correction!r}")
    rho_inf = 2.0 / (1.0 - b2) - 1.0

    def per_step(t):
        bc2 = bias_correction_term(b2, t)
        if _checks.is_number(b2):  # Optax's arithmetic, bit for bit
            b2t = jnp.asarray(b2, widest_float()) ** t
            rho = rho_inf - 2 * t * b2t / (1 - b2t)
        else:
            rho = _rectification_length(b2, t, widest_float())
        r = jnp.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
        adaptive, r = rho >= threshold, scalar(r)
        # PyTorch adds eps to sqrt(v_t) and then corrects the sum: the corrected root's eps grows by 1/sqrt(bc2)
        eps_t = eps / jnp.sqrt(bc2) if eps_before_bias_correction else eps

        def rectified(m_hat, g, v):
            v = (1 - b2) * abs_sq(g) + b2 * v
            return jnp.where(adaptive, r * m_hat / (jnp.sqrt(v / bc2 + eps_root) + eps_t), m_hat), v

        return rectified

    return chain(
        scale_by_ema(b1, state_dtype=state_dtype),
        bias_correct(b1, nesterov=nesterov),
        moment_stage(
            "scale_by_rectified_rms",
            RadamState,
            per_step=per_step,
            reads_gradient=True,
            state_dtype=state_dtype,
            holds_squares=True,
            rounding="stochastic",
            real=("second_moment",),
        ),
    )


def radam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
    state_dtype=None,
    eps_before_bias_correction: bool = False,
    weight_decay: ScalarOrSchedule | None = None,
    decoupled_weight_decay: bool = False,
    mask: Mask | None = None,
    maximize: bool = False,
) -> GradientTransformation:
    """RAdam (Liu et al. 2020): Adam with its adaptive step rectified, momentum SGD for the first steps.

    ::

        maximize:     g_t <- -g_t                                      (first of all; PyTorch's)
        weight_decay: g_t <- g_t + wd * p                              (coupled L2, PyTorch's default)
        p <- p - lr * r_t * m_hat / (sqrt(v_hat + eps_root) + eps)    if rho_t >= threshold
        p <- p - lr * m_hat                                             otherwise
        decoupled_weight_decay: p <- p - lr * wd * p as well           (RAdamW; PyTorch's)

    Built as ``chain(scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
    scale_by_learning_rate(learning_rate))``: what ``optax.radam`` computes. `weight_decay` puts
    ``add_coupled_weight_decay(weight_decay, mask)`` in front, or with `decoupled_weight_decay`
    ``add_decoupled_weight_decay(weight_decay, mask)`` before the learning rate; `maximize` puts ``scale(-1.0)``
    first. ``torch.optim.RAdam(params, lr, betas=(b1, b2), eps=eps, weight_decay=wd,
    decoupled_weight_decay=d)`` is ``radam(lr, b1, b2, eps, eps_before_bias_correction=True, weight_decay=wd,
    decoupled_weight_decay=d)``; it uses the threshold 5 as well (``rho_t > 5``, see :func:`scale_by_radam`).

    Args:
      learning_rate: The step size: a number ``>= 0`` or a schedule. No default. Optax: ``learning_rate``;
        PyTorch: ``lr``.
      b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``; PyTorch: ``betas[0]``.
      b2: Decay of the second moment, in ``[0, 1)``. Default 0.999. Optax: ``b2``; PyTorch: ``betas[1]``. As a
        number, ``rho_t`` is Optax's (bit for bit, and off the exact value for ``b2`` near 1); as an array,
        within float rounding of the exact value: see :func:`scale_by_radam`.
      eps: Added to the root, ``>= 0``. Default 1e-8. Optax and PyTorch: ``eps``.
      eps_root: Added under the root, ``>= 0``. Default 0. Optax: ``eps_root``.
      threshold: The ``rho_t`` from which the adaptive step is taken. Default 5. Optax: ``threshold``.
      nesterov: NAdam's look-ahead. Default False. Optax: ``nesterov``.
      state_dtype: Storage dtype of both moments, as in :func:`scale_by_radam`. Default None. adamlab's.
      eps_before_bias_correction: Keyword-only. True adds `eps` to ``sqrt(v_t)`` before the bias correction,
        ``sqrt(1 - b2**t) / (sqrt(v_t) + eps)``: PyTorch's placement. Default False: ``sqrt(v_hat) + eps``
        (Optax's). See :func:`scale_by_radam`. adamlab's.
      weight_decay: Keyword-only. Coefficient ``wd >= 0`` of the weight decay (a number): coupled (L2),
        ``g + wd * p`` before the moments, or decoupled with `decoupled_weight_decay`. Default None: no decay
        stage. PyTorch: ``weight_decay`` of ``torch.optim.RAdam``.
      decoupled_weight_decay: Keyword-only. True decays the parameters by ``lr * wd * p`` beside the RAdam step
        (RAdamW) instead of adding L2 to the gradient. Default False. PyTorch: ``decoupled_weight_decay``, whose
        ``p *= 1 - lr * wd`` before the step is the same update.
      mask: Keyword-only. Where `weight_decay` applies (True decays): a bool tree like the params, a prefix of
        one, or a callable ``params -> such a tree``. Default None: every float leaf. adamlab's.
      maximize: Keyword-only. Ascend: the gradient is negated first, before an L2 decay. Default False.
        PyTorch: ``maximize``.

    Returns:
      A `GradientTransformation` whose state is ``(EmaState, CountState, RadamState, <learning rate's state>)``;
      `weight_decay` adds an ``EmptyState()`` (in front, or before the learning rate's state when decoupled),
      `maximize` one first.

    Raises:
      ValueError: As :func:`scale_by_radam`, or if `learning_rate` or `weight_decay` is negative or not finite.
      TypeError: As :func:`scale_by_radam`, or if `decoupled_weight_decay` is not a bool.

    References:
      Liu et al., *On the Variance of the Adaptive Learning Rate and Beyond*, ICLR 2020.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import radam
      >>> tx = radam(0.1)
      >>> params = {"w": jnp.ones(2)}
      >>> updates, _ = tx.update({"w": jnp.array([1.0, -2.0])}, tx.init(params), params)
      >>> print(updates["w"].round(4))  # the first step is -lr * g: not yet rectified
      [-0.1  0.2]
    """
    if not isinstance(decoupled_weight_decay, bool):
        raise TypeError(f"decoupled_weight_decay must be True or False, got {decoupled_weight_decay!r}")
    coupled = None if decoupled_weight_decay else weight_decay
    decoupled = weight_decay if decoupled_weight_decay else None
    return chain(
        _ascent(maximize),
        _optional_decay(add_coupled_weight_decay, coupled, mask),
        scale_by_radam(
            b1,
            b2,
            eps,
            eps_root,
            threshold,
            nesterov=nesterov,
            state_dtype=state_dtype,
            eps_before_bias_correction=eps_before_bias_correction,
        ),
        _optional_decay(add_decoupled_weight_decay, decoupled, mask),
        scale_by_learning_rate(learning_rate),
        name="radam",
    )


# ------------------------------------------------------------------------------------------------------------ Yogi


class YogiState(NamedTuple):
    """State of Yogi's second-moment stage (in :func:`scale_by_yogi`).

    Args:
      count: int32 scalar, the number of updates taken (saturating): the ``t`` of the bias corrections.
      second_moment: ``v_t = v_{t-1} - (1 - b2) * sign(v_{t-1} - |g_t|**2) * |g_t|**2``, started at
        ``initial_accumulator_value``, a real tree like the params. Optax: the ``nu`` of ``ScaleByAdamState``.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_yogi
      >>> scale_by_yogi(initial_accumulator_value=0.5).init({"w": jnp.zeros(1)})[2]
      YogiState(count=Array(0, dtype=int32), second_moment={'w': Array([0.5], dtype=float32)})
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    second_moment: Any


def scale_by_yogi(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-3,
    eps_root: float = 0.0,
    initial_accumulator_value: float = 1e-6,
    *,
    state_dtype=None,
) -> GradientTransformation:
    """Yogi's direction (Zaheer et al. 2018): Adam's, with an additive second moment that grows or shrinks by
    at most ``(1 - b2) * g**2`` a step.

    ::

        m_t    = b1 * m_{t-1} + (1 - b1) * g_t                   (m_0 = initial_accumulator_value)
        v_t    = v_{t-1} - (1 - b2) * sign(v_{t-1} - g_t**2) * g_t**2   (v_0 = initial_accumulator_value)
        output = (m_t / (1 - b1**t)) / (sqrt(v_t / (1 - b2**t) + eps_root) + eps)

    Built as ``chain(<EMA of g from initial_accumulator_value>, bias_correct(b1), <Yogi's v>)``; the same as
    ``optax.scale_by_yogi``, which starts both moments (not only ``v``) at `initial_accumulator_value` and
    bias-corrects both, as here. The paper starts ``m`` at 0 and corrects neither. One difference: once ``g**2``
    overflows (``|g| > 1.8e19`` in float32) ``v`` is Inf, and where the next ``g**2`` is Inf too Optax's ``v``
    becomes NaN (``Inf - Inf``); here ``v == g**2`` leaves ``v`` as it is (Inf: that weight's step is 0).

    Args:
      b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``.
      b2: The rate of ``v``'s additive change, in ``[0, 1)``. Default 0.999. Optax: ``b2``.
      eps: Added to the root, ``>= 0``. Default 1e-3 (the paper's). Optax: ``eps``.
      eps_root: Added under the root, ``>= 0``. Default 0. Optax: ``eps_root``.
      initial_accumulator_value: The start value of both moments, ``>= 0``. Default 1e-6. Optax:
        ``initial_accumulator_value``.
      state_dtype: Storage dtype of both moments (``v`` rounded stochastically; float16 refused). Default None.
        adamlab's.

    Returns:
      A `GradientTransformation` whose state is ``(EmaState, CountState, YogiState)`` (``CountedEmaState``
      for 8-bit ``m``).

    Raises:
      ValueError: If `b1` or `b2` is outside ``[0, 1)``; if `eps`, `eps_root` or `initial_accumulator_value` is
        negative or not finite; if `state_dtype` lacks float32's exponent range.
      TypeError: If a hyperparameter is not a real number or scalar array, or `state_dtype` is not a float dtype.

    References:
      Zaheer et al., *Adaptive Methods for Nonconvex Optimization*, NeurIPS 2018.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_yogi
      >>> tx = scale_by_yogi(b2=0.5, initial_accumulator_value=0.0)
      >>> state = tx.init({"w": jnp.zeros(1)})
      >>> for g in (2.0, 1.0):  # v grows by (1 - b2) g**2 = 2, then shrinks by 0.5
      ...     _, state = tx.update({"w": jnp.array([g])}, state)
      ...     print(state[2].second_moment["w"])
      [2.]
      [1.5]
    """
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("eps_root", eps_root)
    _checks.check_nonnegative("initial_accumulator_value", initial_accumulator_value)

    def ema(u, m):
        m = (1 - b1) * u + b1 * m
        return m, m

    def per_step(t):
        bc2 = bias_correction_term(b2, t)

        def yogi(m_hat, g, v):
            g2 = abs_sq(g)
            # v == g2 leaves v unchanged (sign 0), also where both are Inf (the formula's 0 * Inf would be NaN)
            v = jnp.where(v == g2, v, v - (1 - b2) * jnp.sign(v - g2) * g2)
            return m_hat / (jnp.sqrt(v / bc2 + eps_root) + eps), v

        return yogi

    rounding, first_state = countless_storage(state_dtype, None, EmaState, CountedEmaState)
    return chain(
        moment_stage(
            "scale_by_ema_from",
            first_state,
            ema,
            state_dtype=state_dtype,
            rounding=rounding,
            initial={"moment": initial_accumulator_value},
        ),
        bias_correct(b1),
        moment_stage(
            "scale_by_yogi_rms",
            YogiState,
            per_step=per_step,
            reads_gradient=True,
            state_dtype=state_dtype,
            holds_squares=True,
            rounding="stochastic",
            real=("second_moment",),
            initial={"second_moment": initial_accumulator_value},
        ),
    )


def yogi(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-3,
    *,
    eps_root: float = 0.0,
    initial_accumulator_value: float = 1e-6,
    state_dtype=None,
) -> GradientTransformation:
    """Yogi (Zaheer et al. 2018): Adam with an additive, sign-controlled second moment.

    ::

        v_t = v_{t-1} - (1 - b2) * sign(v_{t-1} - g_t**2) * g_t**2
        p  <- p - lr * m_hat / (sqrt(v_hat + eps_root) + eps)

    Built as ``chain(scale_by_yogi(b1, b2, eps, eps_root, initial_accumulator_value),
    scale_by_learning_rate(learning_rate))``: what ``optax.yogi`` computes (which fixes `eps_root` at 0 and
    `initial_accumulator_value` at 1e-6, the defaults here).

    Args:
      learning_rate: The step size: a number ``>= 0`` or a schedule. No default. Optax: ``learning_rate``.
      b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``.
      b2: The rate of ``v``'s additive change, in ``[0, 1)``. Default 0.999. Optax: ``b2``.
      eps: Added to the root, ``>= 0``. Default 1e-3. Optax: ``eps``.
      eps_root: Added under the root, ``>= 0``. Default 0. Optax: ``eps_root`` of ``optax.scale_by_yogi``.
      initial_accumulator_value: The start value of both moments. Default 1e-6. Optax:
        ``initial_accumulator_value`` of ``optax.scale_by_yogi``.
      state_dtype: Storage dtype of both moments, as in :func:`scale_by_yogi`. Default None. adamlab's.

    Returns:
      A `GradientTransformation` whose state is ``(EmaState, CountState, YogiState, <learning rate's state>)``.

    Raises:
      ValueError: As :func:`scale_by_yogi`, or if `learning_rate` is negative or not finite.
      TypeError: As :func:`scale_by_yogi`.

    References:
      Zaheer et al., *Adaptive Methods for Nonconvex Optimization*, NeurIPS 2018.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import yogi
      >>> tx = yogi(0.1, eps=0.0, initial_accumulator_value=0.0)
      >>> params = {"w": jnp.ones(2)}
      >>> updates, _ = tx.update({"w": jnp.array([1.0, -2.0])}, tx.init(params), params)
      >>> print(updates["w"].round(4))  # the first step is -lr * sign(g), as Adam's
      [-0.1  0.1]
    """
    return chain(
        scale_by_yogi(b1, b2, eps, eps_root, initial_accumulator_value, state_dtype=state_dtype),
        scale_by_learning_rate(learning_rate),
        name="yogi",
    )


# ------------------------------------------------------------------------------------------------------------ Adan


class AdanState(NamedTuple):
    """State of Adan's gradient-difference stage (in :func:`scale_by_adan`).

    Args:
      count: int32 scalar, the number of updates taken (saturating): the ``t`` of the bias corrections (the
        first step has no gradient difference).
      difference_moment: ``v_t``, the EMA of ``g_t - g_{t-1}`` (0 on the first step). Optax: ``v``.
      second_moment: ``n_t``, the EMA of ``(g_t + (1 - b2) (g_t - g_{t-1}))**2``. Optax: ``n``.
      previous_gradient: ``g_t``, kept for the next difference. Optax: ``g``.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_adan
      >>> scale_by_adan().init({"w": jnp.zeros(1)})[2]._fields
      ('count', 'difference_moment', 'second_moment', 'previous_gradient')
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    difference_moment: Any
    second_moment: Any
    previous_gradient: Any


def scale_by_adan(
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    state_dtype=None,
) -> GradientTransformation:
    """Adan's direction (Xie et al. 2022): Nesterov momentum estimated from the gradient difference.

    ::

        d_t    = g_t - g_{t-1}                   (0 on the first step)
        m_t    = b1 * m_{t-1} + (1 - b1) * g_t
        v_t    = b2 * v_{t-1} + (1 - b2) * d_t
        n_t    = b3 * n_{t-1} + (1 - b3) * (g_t + (1 - b2) * d_t)**2
        output = (m_hat + (1 - b2) * v_hat) / (sqrt(n_hat + eps_root) + eps)    (each moment bias-corrected)

    Built as ``chain(scale_by_ema(b1), bias_correct(b1), <v, n and the previous gradient>)``; the same as
    ``optax.scale_by_adan``. The decays are Optax's, the weights of the *new* term being ``1 - b``: the
    paper's ``beta_1 = 0.02`` is ``b1 = 0.98``.

    Args:
      b1: Decay of the gradient's EMA, in ``[0, 1)``. Default 0.98. Optax: ``b1``.
      b2: Decay of the difference's EMA, in ``[0, 1)``. Default 0.92. Optax: ``b2``.
      b3: Decay of ``n``, in ``[0, 1)``. Default 0.99. Optax: ``b3``.
      eps: Added to the root, ``>= 0``. Default 1e-8. Optax: ``eps``.
      eps_root: Added under the root, ``>= 0``. Default 0 (1e-8 in :func:`adan`). Optax: ``eps_root``.
      state_dtype: Storage dtype of all four trees (``n`` rounded stochastically; float16 refused). Default
        None: float32. adamlab's.

    Returns:
      A `GradientTransformation` whose state is ``(EmaState, CountState, AdanState)``.

    Raises:
      ValueError: If a decay is outside ``[0, 1)``; if `eps` or `eps_root` is negative or not finite; if
        `state_dtype` lacks float32's exponent range.
      TypeError: If a hyperparameter is not a real number or scalar array, or `state_dtype` is not a float dtype.

    References:
      Xie et al., *Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models*, 2022
      (arXiv:2208.06677), Algorithm 1.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_adan
      >>> tx = scale_by_adan(eps=0.0)
      >>> state = tx.init({"w": jnp.zeros(1)})
      >>> for g in (1.0, 3.0):  # no difference at first: m_hat / sqrt(n_hat) = 1
      ...     updates, state = tx.update({"w": jnp.array([g])}, state)
      ...     print(updates["w"].round(4), state[2].previous_gradient["w"])
      [1.] [1.]
      [0.8914] [3.]
    """
    for name, value in (("b1", b1), ("b2", b2), ("b3", b3)):
        _checks.check_decay(name, value)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("eps_root", eps_root)

    def per_step(t):
        bc2, bc3, first = bias_correction_term(b2, t), bias_correction_term(b3, t), t == 1

        def adan(m_hat, g, v, n, previous):
            d = jnp.where(first, jnp.zeros_like(g), g - previous)
            v = (1 - b2) * d + b2 * v
            n = (1 - b3) * abs_sq(g + (1 - b2) * d) + b3 * n
            return (m_hat + (1 - b2) * (v / bc2)) / (jnp.sqrt(n / bc3 + eps_root) + eps), v, n, g

        return adan

    return chain(
        scale_by_ema(b1, state_dtype=state_dtype),
        bias_correct(b1),
        moment_stage(
            "scale_by_adan_moments",
            AdanState,
            per_step=per_step,
            reads_gradient=True,
            state_dtype=state_dtype,
            holds_squares=True,
            rounding="stochastic",
            real=("second_moment",),
        ),
    )


def adan(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    eps_root: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Mask | None = None,
    *,
    state_dtype=None,
) -> GradientTransformation:
    """Adan (Xie et al. 2022): adaptive Nesterov momentum from gradient differences, with decoupled decay.

    ::

        p <- p - lr * ((m_hat + (1 - b2) * v_hat) / (sqrt(n_hat + eps_root) + eps) + wd * p)

    Built as ``chain(scale_by_adan(b1, b2, b3, eps, eps_root), add_decoupled_weight_decay(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``, the decay stage left out for 0: what ``optax.adan`` computes.
    Like Optax, the decay is added to the step (``p - lr * (u + wd * p)``), not the paper's proximal
    ``p / (1 + lr * wd)``.

    Args:
      learning_rate: The step size: a number ``>= 0`` or a schedule. No default. Optax: ``learning_rate``.
      b1: Decay of the gradient's EMA, in ``[0, 1)``. Default 0.98. Optax: ``b1``.
      b2: Decay of the difference's EMA, in ``[0, 1)``. Default 0.92. Optax: ``b2``.
      b3: Decay of ``n``, in ``[0, 1)``. Default 0.99. Optax: ``b3``.
      eps: Added to the root, ``>= 0``. Default 1e-8. Optax: ``eps``.
      eps_root: Added under the root, ``>= 0``. Default 1e-8. Optax: ``eps_root``.
      weight_decay: The decoupled decay ``wd >= 0`` (a number). Default 0. Optax: ``weight_decay``.
      mask: Where the decay applies (a tree of bools or a function of the params). Default None: everywhere.
        Optax: ``mask``.
      state_dtype: Storage dtype of the moments, as in :func:`scale_by_adan`. Default None. adamlab's.

    Returns:
      A `GradientTransformation` whose state is ``(EmaState, CountState, AdanState, [EmptyState(),]
      <learning rate's state>)``, the ``EmptyState`` only with decay.

    Raises:
      ValueError: As :func:`scale_by_adan`, or if `learning_rate` or `weight_decay` is negative or not finite.
      TypeError: As :func:`scale_by_adan`.

    References:
      Xie et al., *Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models*, 2022.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import adan
      >>> tx = adan(0.1, weight_decay=0.5)
      >>> params = {"w": jnp.ones(2)}
      >>> updates, _ = tx.update({"w": jnp.array([1.0, -2.0])}, tx.init(params), params)
      >>> print(updates["w"].round(3))  # -lr * (sign(g) + wd * p)
      [-0.15  0.05]
    """
    return chain(
        scale_by_adan(b1, b2, b3, eps, eps_root, state_dtype=state_dtype),
        _optional_decay(add_decoupled_weight_decay, weight_decay, mask),
        scale_by_learning_rate(learning_rate),
        name="adan",
    )


# ----------------------------------------------------------------------------------------------------------- ADOPT


class AdoptState(NamedTuple):
    """State of ADOPT's normalisation stage (in :func:`scale_by_adopt`): the second moment ``v``.

    Args:
      count: int32 scalar, the number of updates taken (saturating): the first step only sets ``v``.
      second_moment: ``v_t``, the EMA of ``|g|**2`` (``v_1 = g_1**2``), a real tree like the params. Optax:
        ``nu``.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_adopt
      >>> scale_by_adopt().init({"w": jnp.zeros(1)})[0]
      AdoptState(count=Array(0, dtype=int32), second_moment={'w': Array([0.], dtype=float32)})
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    second_moment: Any


class AdoptMomentState(NamedTuple):
    """State of ADOPT's momentum stage (in :func:`scale_by_adopt`): the first moment ``m``.

    Args:
      count: int32 scalar, the number of updates taken (saturating): on the first step ``m`` keeps its 0.
      first_moment: ``m_t``, the EMA of the clipped, normalised gradient. Optax: ``mu``.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_adopt
      >>> scale_by_adopt().init({"w": jnp.zeros(1)})[1]
      AdoptMomentState(count=Array(0, dtype=int32), first_moment={'w': Array([0.], dtype=float32)})
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    first_moment: Any


def _fourth_root(count):
    return count**0.25


def scale_by_adopt(
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype=None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], jax.Array] = _fourth_root,
    state_dtype=None,
) -> GradientTransformation:
    """ADOPT's direction (Taniguchi et al. 2024): the gradient normalised by the *previous* second moment, then
    averaged.

    ::

        first step (t = 1):  v_1 = g_1**2,  m_1 = 0,  output 0
        later:  x_t = clip(g_t / max(sqrt(v_{t-1}), eps), -c_t, c_t)     c_t = clip_value_fn(t - 1)
                m_t = b1 * m_{t-1} + (1 - b1) * x_t,    v_t = b2 * v_{t-1} + (1 - b2) * g_t**2
                output = m_t,  or  b1 * m_t + (1 - b1) * x_t  with nesterov

    Normalising by ``v_{t-1}``, which does not depend on ``g_t``, is what lets ADOPT converge for any ``b2``.
    Built as ``chain(<x_t and v>, <m, whose decay is 1 on the first step>)``: the momentum is not
    :func:`adamlab.scale_by_ema`, which would take ``x_1 = g_1 / eps`` in without clipping. The same as
    ``optax.contrib.scale_by_adopt``.

    Args:
      b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``.
      b2: Decay of the second moment, in ``[0, 1)``. Default 0.9999. Optax: ``b2``.
      eps: The floor of ``sqrt(v)``, ``>= 0``. Default 1e-6. Optax: ``eps``.
      mu_dtype: Storage dtype of ``m``; overrides `state_dtype` for it. Default None. Optax: ``mu_dtype``.
      nesterov: The look-ahead output. Default False. Optax: ``nesterov``.
      use_clipping: Clip the normalised gradient to ``[-c_t, c_t]``. Default True. Optax: ``use_clipping``.
      clip_value_fn: ``c_t`` as a function of the steps already taken. Default ``step**0.25``. Optax:
        ``clip_value_fn``.
      state_dtype: Storage dtype of both moments (``v`` rounded stochastically when narrower than float32;
        float16 refused for ``v``). Default None: float32. adamlab's.

    Returns:
      A `GradientTransformation` whose state is ``(AdoptState, AdoptMomentState)``. Its ``update`` needs the
      gradient, which :func:`adamlab.chain` hands over.

    Raises:
      ValueError: If `b1` or `b2` is outside ``[0, 1)``, `eps` is negative or not finite, or the second
        moment's dtype lacks float32's exponent range.
      TypeError: If a hyperparameter is not a real number or scalar array, `clip_value_fn` is not a function of
        one argument, or a dtype is not a float dtype.

    References:
      Taniguchi et al., *ADOPT: Modified Adam Can Converge with Any beta_2 with the Optimal Rate*, NeurIPS 2024.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_adopt
      >>> tx = scale_by_adopt()
      >>> state = tx.init({"w": jnp.zeros(1)})
      >>> for g in (2.0, 2.0):  # the first step only sets v = g**2; the second moves by (1 - b1) * g / |g|
      ...     updates, state = tx.update({"w": jnp.array([g])}, state)
      ...     print(updates["w"].round(4))
      [0.]
      [0.1]
    """
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    _checks.check_nonnegative("eps", eps)
    if not callable(clip_value_fn):
        raise TypeError(f"clip_value_fn must be a function of the step count, got {clip_value_fn!r}")
    _checks.check_schedule("clip_value_fn", clip_value_fn)
    mu, nu = _moment_dtypes(mu_dtype, None, state_dtype)

    def normalise_step(t):
        later = t > 1
        # Optax's decay is a 0-d array here, so ``1 - b2`` is rounded in the leaves' precision.
        d2 = scalar(jnp.where(later, b2, 0))
        clip = scalar(clip_value_fn(t - 1)) if use_clipping else None

        def normalise(u, g, v):
            x = u / jnp.maximum(jnp.sqrt(v), eps)
            x = x if clip is None else jnp.clip(x, -clip, clip)
            return x, (1 - d2) * abs_sq(g) + d2 * v

        return normalise

    def momentum_step(t):
        d1 = scalar(jnp.where(t > 1, b1, 1))

        def momentum(x, m):
            m = (1 - d1) * x + d1 * m
            return ((1 - d1) * x + d1 * m if nesterov else m), m

        return momentum

    return chain(
        moment_stage(
            "scale_by_adopt_rms",
            AdoptState,
            per_step=normalise_step,
            reads_gradient=True,
            state_dtype=nu,
            holds_squares=True,
            rounding="stochastic",
            real=("second_moment",),
        ),
        moment_stage("scale_by_adopt_momentum", AdoptMomentState, per_step=momentum_step, state_dtype=mu),
    )


def adopt(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype=None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], jax.Array] = _fourth_root,
    state_dtype=None,
) -> GradientTransformation:
    """ADOPT (Taniguchi et al. 2024): Adam with the normalisation before the momentum, by the previous ``v``.

    ::

        p <- p - lr * m_t,   m_t = b1 * m_{t-1} + (1 - b1) * clip(g_t / max(sqrt(v_{t-1}), eps), -c_t, c_t)

    Built as ``chain(scale_by_adopt(b1, b2, eps, mu_dtype, ...), scale_by_learning_rate(learning_rate))``:
    what ``optax.contrib.adopt`` computes. The first step does not move the params.

    Args:
      learning_rate: The step size: a number ``>= 0`` or a schedule. No default. Optax: ``learning_rate``.
      b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``.
      b2: Decay of the second moment, in ``[0, 1)``. Default 0.9999. Optax: ``b2``.
      eps: The floor of ``sqrt(v)``. Default 1e-6. Optax: ``eps``.
      mu_dtype: Storage dtype of ``m``. Default None. Optax: ``mu_dtype``.
      nesterov: The look-ahead output. Default False. Optax: ``nesterov``.
      use_clipping: Clip the normalised gradient. Default True. Optax: ``use_clipping``.
      clip_value_fn: The clip bound as a function of the steps already taken. Default ``step**0.25``. Optax:
        ``clip_value_fn``.
      state_dtype: Storage dtype of both moments, as in :func:`scale_by_adopt`. Default None. adamlab's.

    Returns:
      A `GradientTransformation` whose state is ``(AdoptState, AdoptMomentState, <learning rate's state>)``.

    Raises:
      ValueError: As :func:`scale_by_adopt`, or if `learning_rate` is negative or not finite.
      TypeError: As :func:`scale_by_adopt`.

    References:
      Taniguchi et al., *ADOPT: Modified Adam Can Converge with Any beta_2 with the Optimal Rate*, NeurIPS 2024.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import adopt
      >>> tx = adopt(1.0)
      >>> params = {"w": jnp.ones(1)}
      >>> state = tx.init(params)
      >>> for _ in range(2):
      ...     updates, state = tx.update({"w": jnp.array([-3.0])}, state, params)
      ...     print(updates["w"].round(4))
      [0.]
      [0.1]
    """
    return chain(
        scale_by_adopt(
            b1,
            b2,
            eps,
            mu_dtype,
            nesterov=nesterov,
            use_clipping=use_clipping,
            clip_value_fn=clip_value_fn,
            state_dtype=state_dtype,
        ),
        scale_by_learning_rate(learning_rate),
        name="adopt",
    )


# --------------------------------------------------------------------------------------------- simplified AdEMAMix


class SimplifiedAdemamixState(NamedTuple):
    """State of simplified AdEMAMix's second-moment stage (in :func:`simplified_ademamix`).

    Args:
      count: int32 scalar, the number of updates taken (saturating): the ``t`` of ``n``'s bias correction; a
        schedule of ``alpha`` is evaluated at its value before the update.
      second_moment: ``n_t = g_t**2 + b2 * (n_{t-1} - g_t**2)``, a real tree like the params. Optax: ``n``.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import simplified_ademamix
      >>> simplified_ademamix(1e-3).init({"w": jnp.zeros(1)})[1]
      SimplifiedAdemamixState(count=Array(0, dtype=int32), second_moment={'w': Array([0.], dtype=float32)})
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    second_moment: Any


def simplified_ademamix(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.99,
    b2: float = 0.95,
    alpha: ScalarOrSchedule = 0.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Mask | None = None,
    *,
    state_dtype=None,
) -> GradientTransformation:
    """Simplified AdEMAMix (Morwani et al. 2025): an undamped momentum sum plus ``alpha * g``, over Adam's RMS.

    ::

        m_t = g_t + b1 * m_{t-1}                             (heavy ball, no (1 - b1) factor)
        n_t = g_t**2 + b2 * (n_{t-1} - g_t**2),   n_hat = n_t / (1 - b2**t)
        p  <- p - lr * ((m_t + alpha * g_t) / (sqrt(n_hat + eps_root) + eps) + wd * p)

    Built as ``chain(trace(b1), <n and alpha * g>, add_decoupled_weight_decay(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``, the decay stage left out for 0: what
    ``optax.contrib.simplified_ademamix`` computes. ``n`` is written as Optax's ``lerp`` (``g**2 + b2 * (n -
    g**2)``), the same EMA as ``(1 - b2) * g**2 + b2 * n`` but rounded differently, so it is this module's stage
    and not :func:`adamlab.scale_by_rms`. Where ``g**2`` overflows (``|g| > 1.8e19`` in float32) Optax's
    ``n`` is ``Inf - Inf = NaN``; here it is Inf (that weight's step is 0), as the EMA's value is.

    Args:
      learning_rate: The step size: a number ``>= 0`` or a schedule. No default. Optax: ``learning_rate``.
      b1: The momentum's decay, in ``[0, 1)``. Default 0.99. Optax: ``b1``.
      b2: Decay of ``n``, in ``[0, 1)``. Default 0.95. Optax: ``b2``.
      alpha: The weight ``>= 0`` of the current gradient, a number or a schedule of the steps already taken.
        Default 0. Optax: ``alpha``.
      eps: Added to the root, ``>= 0``. Default 1e-8. Optax: ``eps``.
      eps_root: Added under the root, ``>= 0``. Default 0. Optax: ``eps_root``.
      weight_decay: The decoupled decay ``wd >= 0`` (a number). Default 0. Optax: ``weight_decay``.
      mask: Where the decay applies. Default None: everywhere. Optax: ``mask``.
      state_dtype: Storage dtype of ``m`` (rounded to nearest) and ``n`` (stochastically; float16 refused).
        Default None: float32. adamlab's.

    Returns:
      A `GradientTransformation` whose state is ``(TraceState, SimplifiedAdemamixState, [EmptyState(),]
      <learning rate's state>)`` (``CountedTraceState`` for 8-bit ``m``).

    Raises:
      ValueError: If `b1` or `b2` is outside ``[0, 1)``; if `alpha`, `eps`, `eps_root`, `weight_decay` or
        `learning_rate` is a negative or non-finite number; if `state_dtype` lacks float32's exponent range.
      TypeError: If a hyperparameter is not a real number, scalar array (or schedule), or `state_dtype` is not a
        float dtype.

    References:
      Morwani et al., *Connections between Schedule-Free Optimizers, AdEMAMix, and Accelerated SGD Variants*,
      2025 (arXiv:2502.02431). Pagliardini et al., *The AdEMAMix Optimizer*, ICLR 2025.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import simplified_ademamix
      >>> tx = simplified_ademamix(0.1, alpha=1.0)
      >>> params = {"w": jnp.ones(2)}
      >>> updates, _ = tx.update({"w": jnp.array([1.0, -2.0])}, tx.init(params), params)
      >>> print(updates["w"].round(4))  # (m + alpha * g) / |g| = 2 sign(g)
      [-0.2  0.2]
    """
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    _checks.check_rate("alpha", alpha)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("eps_root", eps_root)

    def per_step(t):
        a = scalar(alpha(t - 1)) if callable(alpha) else alpha
        bc2 = bias_correction_term(b2, t)

        def rms(m, g, n):
            g2 = abs_sq(g)
            # an overflowed g**2 is the EMA's value (b2 * (n - Inf) + Inf would be NaN)
            n = jnp.where(jnp.isinf(g2), g2, g2 + b2 * (n - g2))
            return (m + a * g) / (jnp.sqrt(n / bc2 + eps_root) + eps), n

        return rms

    return chain(
        trace(b1, state_dtype=state_dtype),
        moment_stage(
            "scale_by_simplified_ademamix_rms",
            SimplifiedAdemamixState,
            per_step=per_step,
            reads_gradient=True,
            state_dtype=state_dtype,
            holds_squares=True,
            rounding="stochastic",
            real=("second_moment",),
        ),
        _optional_decay(add_decoupled_weight_decay, weight_decay, mask),
        scale_by_learning_rate(learning_rate),
        name="simplified_ademamix",
    )


# ----------------------------------------------------------------------------------------------- optimistic Adam


class OptimisticGradientState(NamedTuple):
    """State of :func:`scale_by_optimistic_gradient`: the previous incoming update.

    Args:
      count: int32 scalar, the number of updates taken (saturating): 0 marks the first step, which has no
        previous update. Optax: ``is_initial_step``.
      previous_update: ``u_{t-1}``, a tree like the params. Optax: ``previous_gradient`` (which holds the
        incoming updates too).

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_optimistic_gradient
      >>> scale_by_optimistic_gradient().init({"w": jnp.zeros(1)})
      OptimisticGradientState(count=Array(0, dtype=int32), previous_update={'w': Array([0.], dtype=float32)})
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    previous_update: Any


def scale_by_optimistic_gradient(alpha: float = 1.0, beta: float = 1.0, *, state_dtype=None) -> GradientTransformation:
    """Generalised optimistic gradient: ``(alpha + beta) * u_t - beta * u_{t-1}``, ``u_0 = u_1``.

    ::

        output = (alpha + beta) * u_t - beta * u_{t-1}        (u_{t-1} = u_t on the first step)

    With ``alpha = beta = 1`` the optimistic step ``2 u_t - u_{t-1}`` of Daskalakis et al.; ``beta`` is the
    weight of the negative momentum. The same as ``optax.scale_by_optimistic_gradient``, which counts with a
    flag instead of a step count.

    Args:
      alpha: The weight of the current update. Default 1. Optax: ``alpha``.
      beta: The weight of the negative momentum. Default 1. Optax: ``beta``.
      state_dtype: Storage dtype of the previous update (rounded to nearest). Default None: float32.
        adamlab's.

    Returns:
      A `GradientTransformation` whose state is an :class:`OptimisticGradientState`.

    Raises:
      ValueError: If `alpha` or `beta` is negative or not finite.
      TypeError: If `alpha` or `beta` is not a real number or scalar array, or `state_dtype` is not a float dtype.

    References:
      Daskalakis et al., *Training GANs with Optimism*, ICLR 2018.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import scale_by_optimistic_gradient
      >>> tx = scale_by_optimistic_gradient()
      >>> state = tx.init({"w": jnp.zeros(1)})
      >>> for u in (1.0, 3.0):  # 2 * 1 - 1, then 2 * 3 - 1
      ...     out, state = tx.update({"w": jnp.array([u])}, state)
      ...     print(out["w"])
      [1.]
      [5.]
    """
    _checks.check_nonnegative("alpha", alpha)
    _checks.check_nonnegative("beta", beta)

    def per_step(t):
        first = t == 1

        def optimistic(u, previous):
            previous = jnp.where(first, u, previous)
            return (alpha + beta) * u - beta * previous, u

        return optimistic

    return moment_stage(
        "scale_by_optimistic_gradient", OptimisticGradientState, per_step=per_step, state_dtype=state_dtype
    )


def optimistic_adam_v2(
    learning_rate: ScalarOrSchedule,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
    nesterov: bool = True,
    state_dtype=None,
) -> GradientTransformation:
    """Optimistic Adam (Daskalakis et al. 2018): the optimistic step on Adam's (by default NAdam's) direction.

    ::

        d_t = m_hat / (sqrt(v_hat + eps_root) + eps)         (NAdam's m_hat with nesterov)
        p  <- p - lr * ((alpha + beta) * d_t - beta * d_{t-1})      (d_0 = d_1)

    Built as ``chain(scale_by_ema(b1), bias_correct(b1, nesterov=nesterov), scale_by_rms(b2, eps,
    bias_correction=True, eps_root=eps_root), scale_by_optimistic_gradient(alpha, beta),
    scale_by_learning_rate(learning_rate))``: what ``optax.optimistic_adam_v2`` computes (all of whose
    arguments but the first are keyword-only, as here).

    Args:
      learning_rate: The step size: a number ``>= 0`` or a schedule. No default. Optax: ``learning_rate``.
      alpha: The weight of the current direction. Default 1. Optax: ``alpha``.
      beta: The weight of the negative momentum. Default 1. Optax: ``beta``.
      b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``.
      b2: Decay of the second moment, in ``[0, 1)``. Default 0.999. Optax: ``b2``.
      eps: Added to the root, ``>= 0``. Default 1e-8. Optax: ``eps``.
      eps_root: Added under the root, ``>= 0``. Default 0. Optax: ``eps_root``.
      mu_dtype: Storage dtype of ``m``; overrides `state_dtype` for it. Default None. Optax: ``mu_dtype``.
      nesterov: NAdam's look-ahead. Default True (Optax's). Optax: ``nesterov``.
      state_dtype: Storage dtype of every moment (``v`` rounded stochastically; float16 refused for it). Default
        None: float32. adamlab's.

    Returns:
      A `GradientTransformation` whose state is ``(EmaState, CountState, RmsState, OptimisticGradientState,
      <learning rate's state>)``.

    Raises:
      ValueError: If `b1` or `b2` is outside ``[0, 1)``; if `alpha`, `beta`, `eps`, `eps_root` or
        `learning_rate` is a negative or non-finite number; if `v`'s dtype lacks float32's exponent range.
      TypeError: If a hyperparameter is not a real number, scalar array (or schedule), or a dtype is not a float
        dtype.

    References:
      Daskalakis, Ilyas, Syrgkanis & Zeng, *Training GANs with Optimism*, ICLR 2018.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.adaptive import optimistic_adam_v2
      >>> tx = optimistic_adam_v2(0.1, nesterov=False)
      >>> params = {"w": jnp.ones(2)}
      >>> updates, _ = tx.update({"w": jnp.array([1.0, -2.0])}, tx.init(params), params)
      >>> print(updates["w"].round(4))  # the first step is Adam's: -lr * sign(g)
      [-0.1  0.1]
    """
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    mu, nu = _moment_dtypes(mu_dtype, None, state_dtype)
    return chain(
        scale_by_ema(b1, state_dtype=mu),
        bias_correct(b1, nesterov=nesterov),
        scale_by_rms(b2, eps, bias_correction=True, eps_root=eps_root, state_dtype=nu),
        scale_by_optimistic_gradient(alpha, beta, state_dtype=state_dtype),
        scale_by_learning_rate(learning_rate),
        name="optimistic_adam_v2",
    )


__all__ = [
    "AdamaxState",
    "AdanState",
    "AdoptMomentState",
    "AdoptState",
    "BeliefState",
    "OptimisticGradientState",
    "RadamState",
    "SimplifiedAdemamixState",
    "YogiState",
    "adabelief",
    "adamax",
    "adamaxw",
    "adan",
    "adopt",
    "optimistic_adam_v2",
    "radam",
    "scale_by_adamax",
    "scale_by_adan",
    "scale_by_adopt",
    "scale_by_belief",
    "scale_by_optimistic_gradient",
    "scale_by_radam",
    "scale_by_yogi",
    "simplified_ademamix",
    "yogi",
]
