"""Moments: exponential moving averages of the gradient and of its square, and their bias correction.

Every formula of Adam lives here::

    m_t     = b1 * m_{t-1} + (1 - b1) * g_t            scale_by_ema(b1)
    m_hat_t = m_t / (1 - b1**t)                          bias_correct(b1)
    v_t     = b2 * v_{t-1} + (1 - b2) * g_t**2          scale_by_rms(b2, eps, bias_correction=True)
    update  = m_hat_t / (sqrt(v_t / (1 - b2**t)) + eps)

Each primitive is its formula for one leaf; `adamlab.moment_stage` does the
rest (tree checks, placeholders for integer leaves, float32 arithmetic,
storage dtypes, stochastic rounding). Moments are stored in float32 (or
wider) whatever the param dtype, unless ``state_dtype`` asks for less.

Range: every formula is exact for gradients whose square float32 holds
(``|g| < 1.8e19``). Beyond, as in Optax, ``v`` becomes Inf and its weight's
step is 0 from then on. The answers: `clip_by_global_norm` first (exact for
any finite gradient), `skip_nonfinite`, or ``saturate=True``, which keeps
``v`` at the float maximum so that the weight recovers as ``v`` decays (one
select per element; off by default because it costs 8% of the compile).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import GradientTransformation, stage
from adamlab.quantize import INT8
from adamlab.scaling import ScalarOrSchedule
from adamlab.stage_builder import countless_storage, moment_stage, require_gradient
from adamlab.tree import abs_sq, check_state_dtype, increment, leafwise, upcast


class EmaState(NamedTuple):
    moment: Any  # m, a tree like the params


class CountedEmaState(NamedTuple):
    count: jax.Array  # the step, which keys the stochastic rounding of an 8-bit moment
    moment: Any


class CountState(NamedTuple):
    count: jax.Array  # int32 steps taken, saturating at 2**31 - 1


class RmsState(NamedTuple):
    count: jax.Array
    second_moment: Any  # v
    gradient_mean: Any  # EMA of g when centered, else ()


class TraceState(NamedTuple):
    trace: Any


class CountedTraceState(NamedTuple):
    count: jax.Array
    trace: Any


@functools.partial(jax.jit, inline=True)
def _one_minus_power(decay, count):
    return 1 - decay**count


def bias_correction_term(decay, count: jax.Array) -> jax.Array:
    """``1 - decay**t`` in float32 (t = `count`, int32).

    float32 whatever the moments' dtype (in bfloat16 ``0.999`` rounds to 1
    and the term to 0), compiled even outside `jax.jit` so that eager and
    jitted runs agree, and with Optax's arithmetic, so that adamlab's Adam is
    bit-identical to ``optax.adam``. Exact at t = 1, exactly 1 once
    ``decay**t`` underflows; in between float32 ``pow`` carries a relative
    error of about ``1e-8 / (1 - decay**t)`` (6e-6 at t = 3 for 0.999).
    """
    return _one_minus_power(jnp.asarray(decay, jnp.float32), count).astype(jnp.float32)


def _saturated(v):
    # Only an Inf exceeds the maximum: a NaN stays NaN.
    big = jax.lax.full_like(v, jnp.finfo(v.dtype).max)
    return jax.lax.select(jax.lax.gt(v, big), big, v)


def scale_by_ema(decay: float, *, output_decay: float | None = None, state_dtype=None,
                 rounding: str | None = None) -> GradientTransformation:
    """First moment: ``m_t = decay * m_{t-1} + (1 - decay) * u_t``; outputs ``m_t``.

    Averages the incoming updates over an effective window of about
    ``1 / (1 - decay)`` steps (see `effective_window`). Starts at zero, so
    early outputs are biased toward 0: follow with `bias_correct(decay)`.
    With `output_decay` (Lion's ``b1``) it outputs ``output_decay * m_{t-1} +
    (1 - output_decay) * u_t`` instead, while ``m`` keeps `decay`. `rounding`
    of a narrow `state_dtype`: ``"nearest"`` (bfloat16's default) or
    ``"stochastic"`` (int8's: the state then keeps a step count as its seed).
    """
    _checks.check_decay("decay", decay)
    if output_decay is not None:
        _checks.check_decay("output_decay", output_decay)

    def ema(u, m):
        out = m if output_decay is None else (1 - output_decay) * u + output_decay * m
        m = (1 - decay) * u + decay * m
        return (m if output_decay is None else out), m

    rounding, state_type = countless_storage(state_dtype, rounding, EmaState, CountedEmaState)
    return moment_stage("scale_by_ema", state_type, ema, state_dtype=state_dtype, rounding=rounding)


class SlowMomentState(NamedTuple):
    count: jax.Array
    slow_moment: Any  # AdEMAMix's m2


def add_slow_moment(decay: ScalarOrSchedule = 0.9999, alpha: ScalarOrSchedule = 5.0, *,
                    state_dtype=None) -> GradientTransformation:
    """AdEMAMix's slow EMA of the gradient, added to the updates: ``u_t + alpha * m2_t`` with
    ``m2_t = decay * m2_{t-1} + (1 - decay) * g_t``, not bias-corrected (Pagliardini et al., ICLR 2025).

    `decay` and `alpha` are numbers or schedules of the steps already taken (see `schedules.ademamix_b3`,
    `schedules.ademamix_alpha`): a slow EMA started at zero with a large `alpha` would swamp early steps.
    """
    for name, value in (("decay", decay), ("alpha", alpha)):
        if not callable(value):
            (_checks.check_decay if name == "decay" else _checks.check_nonnegative)(name, value)

    def per_step(t):
        b3 = decay(t - 1) if callable(decay) else decay
        a = alpha(t - 1) if callable(alpha) else alpha

        def slow(u, g, m2):
            m2 = (1 - b3) * g + b3 * m2
            return u + a * m2, m2

        return slow

    return moment_stage("add_slow_moment", SlowMomentState, per_step=per_step, reads_gradient=True,
                        state_dtype=state_dtype)


def bias_correct(decay: float, *, nesterov: bool = False) -> GradientTransformation:
    """Bias correction: ``u_t / (1 - decay**t)``, t counting from 1.

    Undoes the pull toward zero of an EMA started at zero with the same
    `decay`. The step counter is int32 and saturates at 2**31 - 1. With
    `nesterov` (NAdam; Dozat, 2016) the corrected moment looks one step ahead:
    ``decay * u_t / (1 - decay**(t+1)) + (1 - decay) * g_t / (1 - decay**t)``.
    """
    _checks.check_decay("decay", decay)

    def init(params):
        del params
        return CountState(jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        del params, extra
        count = increment(state.count)
        bc = bias_correction_term(decay, count)
        if not nesterov:
            return leafwise(lambda u: upcast(u)[0] / bc, updates), CountState(count)
        require_gradient("bias_correct(nesterov=True)", updates, gradient,
                         "adamlab.chain(scale_by_ema(...), bias_correct(..., nesterov=True), ...)")
        ahead = bias_correction_term(decay, increment(count))
        out = leafwise(lambda u, g: decay * (upcast(u)[0] / ahead) + (1 - decay) * (upcast(g)[0] / bc), updates,
                       gradient)
        return out, CountState(count)

    return stage("bias_correct", init, update)


def scale_by_rms(decay: float = 0.9, eps: float = 1e-8, initial_scale: float = 0.0, eps_in_sqrt: bool = False,
                 bias_correction: bool = False, *, eps_root: float = 0.0, centered: bool = False, state_dtype=None,
                 rounding: str = "stochastic", saturate: bool = False) -> GradientTransformation:
    """Divides the updates by the root mean square of the *gradient*.

    ``v_t = decay * v_{t-1} + (1 - decay) * g_t**2``, ``v_hat = v_t / (1 - decay**t)`` with `bias_correction`,
    and the output ``u_t / (sqrt(v_hat + eps_root) + eps)``, or ``u_t / sqrt(v_hat + eps)`` with `eps_in_sqrt`.
    With `centered`, ``v_hat`` becomes the variance ``max(v_hat - mean(g)**2, 0)`` (centered RMSProp). ``v``
    starts at `initial_scale`.

    ``g`` is the gradient `adamlab.chain` hands over, not the previous stage's output (in Adam, the first
    moment). ``eps = 0`` and a zero gradient give 0, not 0/0. A bfloat16 `state_dtype` is rounded
    stochastically by default: rounded to nearest, ``v`` stops decaying once ``decay > 0.996``. `saturate`:
    ``v`` stops at the float maximum when ``g**2`` overflows (``|g| > 1.8e19``) instead of becoming Inf.
    """
    _checks.check_decay("decay", decay)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("eps_root", eps_root)
    _checks.check_nonnegative("initial_scale", initial_scale)
    zero_guard = not _checks.known_positive(eps)  # only eps = 0 (or a traced eps) can divide 0 by 0
    if centered and check_state_dtype(state_dtype) == INT8:
        raise ValueError(
            "scale_by_rms(centered=True) cannot keep its moments in 8 bits: the variance v - mean**2 is the "
            "difference of two moments that 8-bit codes hold to a few percent, and it cancels; use "
            "state_dtype=jnp.bfloat16 (or float32) for centered RMSProp")

    def per_step(t):
        bc = bias_correction_term(decay, t) if bias_correction else 1

        def rms(u, g, v, *mean):
            v = (1 - decay) * abs_sq(g) + decay * v
            v = _saturated(v) if saturate else v
            v_hat = v / bc if bias_correction else v
            if centered:
                mean = ((1 - decay) * g + decay * mean[0],)
                v_hat = jnp.maximum(v_hat - abs_sq(mean[0] / bc), 0)  # rounding can make it negative
            if not (eps_in_sqrt or _checks.known_zero(eps_root)):
                v_hat = v_hat + eps_root
            out = u * jax.lax.rsqrt(v_hat + eps) if eps_in_sqrt else u / (jnp.sqrt(v_hat) + eps)
            return (jnp.where(v_hat + eps == 0, 0, out) if zero_guard else out), v, *mean

        return rms

    return moment_stage("scale_by_rms", RmsState, per_step=per_step, reads_gradient=True, state_dtype=state_dtype,
                        holds_squares=True, rounding=rounding, absent=() if centered else ("gradient_mean",),
                        real=("second_moment",), initial={"second_moment": initial_scale})


class MaxRmsState(NamedTuple):
    count: jax.Array
    second_moment: Any  # v
    max_second_moment: Any  # the running maximum AMSGrad divides by


def scale_by_max_rms(decay: float = 0.999, eps: float = 1e-8, *, eps_root: float = 0.0,
                     bias_correction: bool = True, max_of: str = "bias_corrected", state_dtype=None,
                     rounding: str = "stochastic") -> GradientTransformation:
    """AMSGrad's denominator: divides by the root of the running maximum of the second moment.

    ``v_t = decay * v_{t-1} + (1 - decay) * g_t**2``, then the output ``u_t / (sqrt(v_max + eps_root) + eps)``:
    - ``max_of="bias_corrected"`` (Optax): ``v_max = max(v_max, v_t / (1 - decay**t))``;
    - ``max_of="raw"`` (PyTorch): ``v_max = max(v_max, v_t)``, divided by ``1 - decay**t`` of the current step.
    Without `bias_correction` (Reddi et al.'s paper) ``v_max = max(v_max, v_t)``, never corrected.
    """
    _checks.check_decay("decay", decay)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("eps_root", eps_root)
    if max_of not in ("bias_corrected", "raw"):
        raise ValueError(f"max_of must be 'bias_corrected' (Optax's AMSGrad) or 'raw' (PyTorch's), got {max_of!r}")
    raw = max_of == "raw" or not bias_correction

    def per_step(t):
        bc = bias_correction_term(decay, t) if bias_correction else 1

        def amsgrad(u, g, v, v_max):
            v = (1 - decay) * abs_sq(g) + decay * v
            v_max = jnp.maximum(v_max, v if raw else v / bc)
            v_hat = v_max / bc if raw and bias_correction else v_max
            return u / (jnp.sqrt(v_hat + eps_root) + eps), v, v_max

        return amsgrad

    return moment_stage("scale_by_max_rms", MaxRmsState, per_step=per_step, reads_gradient=True,
                        state_dtype=state_dtype, holds_squares=True, rounding=rounding,
                        real=("second_moment", "max_second_moment"))


def scale_by_atan2_rms(decay: float = 0.999, a: float = 1.27, b: float = 1.0, *, bias_correction: bool = True,
                       state_dtype=None, rounding: str = "stochastic") -> GradientTransformation:
    """Adam-atan2's direction (Everett et al., ICML 2024): ``a * atan2(u_t, b * sqrt(v_hat_t))`` in place of
    ``u_t / (sqrt(v_hat_t) + eps)``: bounded by ``a * pi / 2``, no eps, and 0 (not 0/0) for a zero gradient.

    ``v`` as in `scale_by_rms`: the EMA of the gradient's ``|g|**2``, bias-corrected with `bias_correction`.
    """
    _checks.check_decay("decay", decay)
    _checks.check_nonnegative("a", a)
    _checks.check_nonnegative("b", b)

    def per_step(t):
        bc = bias_correction_term(decay, t) if bias_correction else 1

        def atan2(u, g, v):
            v = (1 - decay) * abs_sq(g) + decay * v
            return a * jnp.arctan2(u, b * jnp.sqrt(v / bc)), v

        return atan2

    return moment_stage("scale_by_atan2_rms", RmsState, per_step=per_step, reads_gradient=True,
                        state_dtype=state_dtype, holds_squares=True, rounding=rounding, absent=("gradient_mean",),
                        real=("second_moment",))


def trace(decay: float, nesterov: bool = False, accumulator_dtype=None, *, state_dtype=None,
          rounding: str | None = None) -> GradientTransformation:
    """Heavy-ball momentum: ``t_k = u_k + decay * t_{k-1}``; outputs ``t_k``, or ``u_k + decay * t_k`` with
    `nesterov` (look-ahead).

    Unlike `scale_by_ema` the input is not scaled by ``1 - decay``: on a constant gradient the step grows to
    ``u / (1 - decay)``; ``decay=1`` is the running sum of the updates. `accumulator_dtype` is Optax's name for
    `state_dtype`.
    """
    _checks.check_decay("decay", decay, one_allowed=True)
    state_dtype = _one_dtype(accumulator_dtype, state_dtype, "accumulator_dtype")

    def momentum(u, t):
        t = u + decay * t
        return (u + decay * t if nesterov else t), t

    rounding, state_type = countless_storage(state_dtype, rounding, TraceState, CountedTraceState)
    return moment_stage("trace", state_type, momentum, state_dtype=state_dtype, rounding=rounding)


def _one_dtype(optax_name_value, state_dtype, optax_name: str):
    if optax_name_value is not None and state_dtype is not None and jnp.dtype(optax_name_value) != jnp.dtype(
            state_dtype):
        raise ValueError(f"{optax_name}={optax_name_value} and state_dtype={state_dtype} disagree: give one of them")
    return state_dtype if optax_name_value is None else optax_name_value


def effective_window(beta: float) -> float:
    """``1 / (1 - beta)``: roughly how many recent steps an EMA with decay `beta` averages."""
    _checks.check_decay("beta", beta)
    return 1.0 / (1.0 - beta)


def half_life(beta: float) -> float:
    """``log(0.5) / log(beta)``: steps after which a gradient's weight in the EMA has halved."""
    _checks.check_decay("beta", beta)
    if beta == 0.0:
        return 0.0
    return math.log(0.5) / math.log(beta)


__all__ = [
    "CountState",
    "CountedEmaState",
    "CountedTraceState",
    "EmaState",
    "MaxRmsState",
    "RmsState",
    "SlowMomentState",
    "TraceState",
    "add_slow_moment",
    "bias_correct",
    "bias_correction_term",
    "effective_window",
    "half_life",
    "scale_by_atan2_rms",
    "scale_by_ema",
    "scale_by_max_rms",
    "scale_by_rms",
    "trace",
]
