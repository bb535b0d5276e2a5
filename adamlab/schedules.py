"""Learning-rate schedules: functions ``step -> value``, jit-friendly, with Optax's meanings.

Any callable ``step -> value`` works where adamlab takes a schedule,
Optax's schedules included.
"""

from __future__ import annotations

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


__all__ = ["constant", "linear_warmup", "cosine_decay", "warmup_cosine_decay"]
