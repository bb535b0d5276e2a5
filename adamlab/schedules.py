"""Learning-rate schedules: functions ``step -> value``, jit-friendly, with Optax's meanings.

Any callable ``step -> value`` works where adamlab takes a schedule,
Optax's schedules included.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from adamlab import _checks
from adamlab.scaling import Schedule


def _check_steps(name: str, steps: int, allow_zero: bool = False) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be an int >= {0 if allow_zero else 1}, got {steps!r}")


def _steps(step) -> jnp.ndarray:
    """The step as float32: Python ints beyond int32 (runs past 2**31 steps) included, which JAX cannot take."""
    return jnp.asarray(float(step) if isinstance(step, int) else step).astype(jnp.float32)


def constant(value: float) -> Schedule:
    """``value`` at every step."""
    _checks.check_nonnegative("value", value)
    return lambda step: jnp.full((), value, jnp.float32)


def linear_warmup(init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0) -> Schedule:
    """`init_value` until step `transition_begin`, linear to `end_value` over `transition_steps`, then constant.

    With `transition_steps` <= 0 there is no transition: `init_value` throughout, as in Optax.
    """
    _checks.check_nonnegative("init_value", init_value)
    _checks.check_nonnegative("end_value", end_value)
    if not isinstance(transition_steps, int) or isinstance(transition_steps, bool):
        raise ValueError(f"transition_steps must be an int, got {transition_steps!r}")
    _check_steps("transition_begin", transition_begin, allow_zero=True)
    if transition_steps <= 0:
        return constant(init_value)

    def schedule(step):
        frac = jnp.clip((_steps(step) - float(transition_begin)) / float(transition_steps), 0.0, 1.0)
        return init_value + frac * (end_value - init_value)

    return schedule


def cosine_decay(init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0) -> Schedule:
    """``init_value * ((1 - alpha) * (0.5 * (1 + cos(pi * t / decay_steps)))**exponent + alpha)``.

    t is the step, clipped to `decay_steps`.
    """
    _checks.check_nonnegative("init_value", init_value)
    _check_steps("decay_steps", decay_steps)

    def schedule(step):
        t = jnp.minimum(_steps(step), float(decay_steps))
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * t / float(decay_steps)))
        return init_value * ((1 - alpha) * cosine**exponent + alpha)

    return schedule


def warmup_cosine_decay(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    """Linear warmup from `init_value` to `peak_value` over `warmup_steps`, then cosine to `end_value`.

    As in Optax, `decay_steps` is the total length including warmup.
    """
    _checks.check_nonnegative("peak_value", peak_value)
    _check_steps("warmup_steps", warmup_steps, allow_zero=True)
    _check_steps("decay_steps", decay_steps)
    if decay_steps <= warmup_steps:
        raise ValueError(f"decay_steps ({decay_steps}) must exceed warmup_steps ({warmup_steps}): it counts the warmup")
    alpha = 0.0 if peak_value == 0 else end_value / peak_value
    warm = linear_warmup(init_value, peak_value, warmup_steps) if warmup_steps else constant(peak_value)
    cos = cosine_decay(peak_value, decay_steps - warmup_steps, alpha=alpha, exponent=exponent)

    def schedule(step):
        step = _steps(step)
        return jnp.where(step < float(warmup_steps), warm(step), cos(step - float(warmup_steps)))

    return schedule


def ademamix_alpha(alpha: float, warmup_steps: int, alpha_start: float = 0.0) -> Schedule:
    """AdEMAMix's `alpha` scheduler: linear from `alpha_start` to `alpha` over `warmup_steps`, then `alpha`
    (`alpha` throughout when `warmup_steps` is 0)."""
    _check_steps("warmup_steps", warmup_steps, allow_zero=True)
    return linear_warmup(alpha_start, alpha, warmup_steps) if warmup_steps else constant(alpha)


def ademamix_b3(b3: float, warmup_steps: int, b_start: float = 0.9) -> Schedule:
    """AdEMAMix's `b3` scheduler: from `b_start` to `b3` over `warmup_steps`, linear in the EMA's half-life.

    ``half_life(b) = log(0.5) / log(b)`` grows from ``half_life(b_start)`` (6.6 steps for 0.9) to
    ``half_life(b3)`` (6,931 steps for 0.9999) linearly, and ``b = 0.5 ** (1 / half_life)``: a linear ramp of
    ``b`` itself would keep the window short until the very end.
    """
    for name, value in (("b3", b3), ("b_start", b_start)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    _check_steps("warmup_steps", warmup_steps, allow_zero=True)
    h_start, h_end = math.log(0.5) / math.log(b_start), math.log(0.5) / math.log(b3)

    def schedule(step):
        frac = jnp.clip(_steps(step) / max(float(warmup_steps), 1.0), 0.0, 1.0) if warmup_steps else 1.0
        half_life = h_start + frac * (h_end - h_start)
        return jnp.asarray(0.5, jnp.float32) ** (1.0 / half_life)

    return schedule


__all__ = ["ademamix_alpha", "ademamix_b3", "constant", "cosine_decay", "linear_warmup", "warmup_cosine_decay"]
