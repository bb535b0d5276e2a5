"""Learning-rate schedules: functions ``step -> value``, jit-friendly, with Optax's meanings.

Any callable ``step -> value`` works where adamlab takes a schedule,
Optax's schedules included.

Each constructor checks its arguments in Python and returns a function of the step count (a Python
int, or an integer or float array, traced or not) that returns a float32 value (an array shaped like
the step), computed in float64 when ``jax_enable_x64`` is on: an optimizer rounds it to the precision
of each leaf it multiplies, so float64 params get a float64-exact rate. Pass one as ``learning_rate``
(:func:`adamlab.scale_by_learning_rate`, :func:`adamlab.adamw`, ...); the optimizer evaluates it at the
number of steps already taken, so the first step uses ``schedule(0)``. Unlike PyTorch's
``torch.optim.lr_scheduler`` classes, which mutate an optimizer's ``lr`` on each ``scheduler.step()``, a
schedule here is a pure function and the step count lives in the optimizer's state.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from adamlab import _checks
from adamlab.scaling import Schedule
from adamlab.tree import widest_float


def _check_steps(name: str, steps: int, allow_zero: bool = False) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be an int >= {0 if allow_zero else 1}, got {steps!r}")


def _steps(step) -> jnp.ndarray:
    """The step as a float in the widest precision enabled (float64 under x64, where every int32 step is exact;
    float32 otherwise): Python ints beyond int32 (runs past 2**31 steps) included, which JAX cannot take."""
    return jnp.asarray(float(step) if isinstance(step, int) else step).astype(widest_float())


def constant(value: float) -> Schedule:
    """A constant schedule: ``value`` at every step.

    ::

        f(t) = value

    Optax: :func:`optax.constant_schedule` (which returns `value` as it is, where this returns a
    float32 scalar, float64 under x64); PyTorch: a fixed ``lr``, without a scheduler.

    Args:
        value: The value, a number ``>= 0`` and finite in float32. Optax: ``value``.

    Returns:
        A schedule ``step -> float32 scalar`` (a 0-d `jax.Array`; float64 when ``jax_enable_x64`` is on) for any
        step.

    Raises:
        ValueError: If `value` is negative, NaN or not finite in float32.
        TypeError: If `value` is not a real number or scalar array.

    Example:
        >>> from adamlab import schedules
        >>> f = schedules.constant(3e-4)
        >>> print([round(float(f(t)), 6) for t in (0, 1000, 10**6)])
        [0.0003, 0.0003, 0.0003]
    """
    _checks.check_nonnegative("value", value)
    return lambda step: jnp.full((), value, widest_float())


def linear_warmup(init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0) -> Schedule:
    """`init_value` until step `transition_begin`, linear to `end_value` over `transition_steps`, then constant.

    With `transition_steps` <= 0 there is no transition: `init_value` throughout, as in Optax.

    ::

        f(t) = init_value                                             t < B
        f(t) = init_value + (t - B) / T * (end_value - init_value)    B <= t < B + T
        f(t) = end_value                                              t >= B + T
        (B = transition_begin, T = transition_steps)

    Despite the name it ramps down as well (``end_value < init_value``). Optax:
    :func:`optax.linear_schedule`, with the same argument names; PyTorch:
    ``torch.optim.lr_scheduler.LinearLR`` (whose ``start_factor``/``end_factor`` multiply the base
    ``lr``, and ``total_iters`` is ``transition_steps``).

    Args:
        init_value: The value before and at the start of the ramp, ``>= 0`` and finite (0.0 for a
            warmup from zero). Optax: ``init_value``.
        end_value: The value reached at step ``transition_begin + transition_steps`` and kept after,
            ``>= 0`` and finite. Optax: ``end_value``.
        transition_steps: The length of the ramp in steps, a Python int; ``<= 0`` disables it (the
            schedule is then ``constant(init_value)``). Optax: ``transition_steps``; PyTorch:
            ``total_iters``.
        transition_begin: The step at which the ramp starts, a Python int ``>= 0``; default 0. Optax:
            ``transition_begin``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `init_value` or `end_value` is negative or not finite, `transition_steps` is not
            an int, or `transition_begin` is not an int ``>= 0``.
        TypeError: If `init_value` or `end_value` is not a real number or scalar array.

    Example:
        >>> from adamlab import schedules
        >>> f = schedules.linear_warmup(0.0, 1e-3, transition_steps=100)
        >>> print([round(float(f(t)), 6) for t in (0, 50, 100, 200)])
        [0.0, 0.0005, 0.001, 0.001]
        >>> g = schedules.linear_warmup(1.0, 0.1, transition_steps=10, transition_begin=5)
        >>> print([round(float(g(t)), 4) for t in (0, 5, 10, 15)])
        [1.0, 1.0, 0.55, 0.1]
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
    """Cosine decay from `init_value` to ``alpha * init_value`` over `decay_steps` steps.

    ::

        f(t) = init_value * ((1 - alpha) * (0.5 * (1 + cos(pi * t / decay_steps)))**exponent + alpha)

    t is the step, clipped to `decay_steps`: the value stays at ``alpha * init_value`` afterwards.
    Optax: :func:`optax.cosine_decay_schedule`, with the same argument names; PyTorch:
    ``torch.optim.lr_scheduler.CosineAnnealingLR`` with ``T_max = decay_steps`` and ``eta_min = alpha
    * lr`` (which rises again along the cosine past ``T_max``, where this schedule stays at its floor).

    Args:
        init_value: The value at step 0, ``>= 0`` and finite. Optax: ``init_value``.
        decay_steps: The length of the decay in steps, a Python int ``>= 1``. Optax: ``decay_steps``;
            PyTorch: ``T_max``.
        alpha: The final value as a fraction of `init_value`, usually in ``[0, 1]``; default 0.0
            (decay to zero). Not checked. Optax: ``alpha``; PyTorch: ``eta_min / lr``.
        exponent: The power applied to the cosine factor, ``> 0`` usually; default 1.0 (the plain
            cosine); larger values decay faster early. Not checked. Optax: ``exponent``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `init_value` is negative or not finite, or `decay_steps` is not an int ``>= 1``.
        TypeError: If `init_value` is not a real number or scalar array.

    References:
        Loshchilov & Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*, ICLR 2017.

    Example:
        >>> from adamlab import schedules
        >>> f = schedules.cosine_decay(1.0, decay_steps=100, alpha=0.1)
        >>> print([round(float(f(t)), 4) for t in (0, 50, 100, 150)])
        [1.0, 0.55, 0.1, 0.1]
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

    ::

        f(t) = init_value + t / W * (peak_value - init_value)                         t < W
        f(t) = cosine_decay(peak_value, D - W, alpha=end_value / peak_value)(t - W)   t >= W
        (W = warmup_steps, D = decay_steps)

    The usual LLM schedule: the value reaches `peak_value` at step `warmup_steps` and `end_value` at
    step `decay_steps`, and stays there. Optax: :func:`optax.warmup_cosine_decay_schedule`, with the
    same argument names and values; PyTorch: ``LinearLR`` followed by ``CosineAnnealingLR`` in
    ``torch.optim.lr_scheduler.SequentialLR``.

    Args:
        init_value: The value at step 0, where the warmup starts, ``>= 0`` and finite (checked when
            ``warmup_steps > 0``; unused otherwise). Optax: ``init_value``.
        peak_value: The value at the end of the warmup, where the cosine starts, ``>= 0`` and finite.
            Optax: ``peak_value``.
        warmup_steps: The length of the linear warmup, a Python int ``>= 0`` (0: start at
            `peak_value`). Optax: ``warmup_steps``.
        decay_steps: The total length of warmup plus cosine, a Python int ``> warmup_steps``. Optax:
            ``decay_steps``.
        end_value: The final value, reached at step `decay_steps`; default 0.0; usually in
            ``[0, peak_value]`` (not checked). It enters the cosine as ``alpha = end_value /
            peak_value`` (0 when `peak_value` is 0). Optax: ``end_value``.
        exponent: The power applied to the cosine factor, usually ``> 0`` (not checked); default 1.0.
            Optax: ``exponent``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `peak_value` (or, with a warmup, `init_value`) is negative or not finite,
            `warmup_steps` is not an int ``>= 0``, `decay_steps` is not an int ``>= 1``, or
            ``decay_steps <= warmup_steps``.
        TypeError: If `peak_value` or `init_value` is not a real number or scalar array.

    Example:
        >>> from adamlab import schedules
        >>> f = schedules.warmup_cosine_decay(0.0, 1.0, warmup_steps=10, decay_steps=110, end_value=0.1)
        >>> print([round(float(f(t)), 4) for t in (0, 5, 10, 60, 110, 200)])
        [0.0, 0.5, 1.0, 0.55, 0.1, 0.1]
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
    """AdEMAMix's `alpha` scheduler: linear from `alpha_start` to `alpha` over `warmup_steps`, then `alpha`.

    ::

        f(t) = alpha_start + min(t / warmup_steps, 1) * (alpha - alpha_start)     (alpha when warmup_steps = 0)

    The paper ramps up the weight of AdEMAMix's slow EMA (and its decay ``b3``, see
    :func:`adamlab.schedules.ademamix_b3`) because large values from the first step make early
    training unstable. Pass it as ``alpha`` to :func:`adamlab.ademamix` (or
    ``optax.contrib.ademamix``), with the same `warmup_steps` as :func:`adamlab.schedules.ademamix_b3`
    (the paper's ``T_alpha = T_beta3``). Optax has no such schedule; it is
    ``optax.linear_schedule(alpha_start, alpha, warmup_steps)``.

    Args:
        alpha: The final weight of the slow EMA, ``>= 0`` and finite (Optax's default is 5.0). Optax:
            ``alpha`` of ``optax.contrib.ademamix``.
        warmup_steps: The length of the ramp, a Python int ``>= 0`` (0: `alpha` throughout). The
            paper's ``T_alpha``.
        alpha_start: The weight at step 0, ``>= 0`` and finite (checked when ``warmup_steps > 0``);
            default 0.0.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `warmup_steps` is not an int ``>= 0``, or `alpha` or `alpha_start` is negative
            or not finite.
        TypeError: If `alpha` or `alpha_start` is not a real number or scalar array.

    References:
        Pagliardini, Ablin & Grangier, *The AdEMAMix Optimizer: Better, Faster, Older*, ICLR 2025.

    Example:
        >>> from adamlab import schedules
        >>> f = schedules.ademamix_alpha(5.0, warmup_steps=100)
        >>> print([round(float(f(t)), 4) for t in (0, 50, 100, 1000)])
        [0.0, 2.5, 5.0, 5.0]
    """
    _check_steps("warmup_steps", warmup_steps, allow_zero=True)
    return linear_warmup(alpha_start, alpha, warmup_steps) if warmup_steps else constant(alpha)


def ademamix_b3(b3: float, warmup_steps: int, b_start: float = 0.9) -> Schedule:
    """AdEMAMix's `b3` scheduler: from `b_start` to `b3` over `warmup_steps`, linear in the EMA's half-life.

    ``half_life(b) = log(0.5) / log(b)`` grows from ``half_life(b_start)`` (6.6 steps for 0.9) to
    ``half_life(b3)`` (6,931 steps for 0.9999) linearly, and ``b = 0.5 ** (1 / half_life)``: a linear ramp of
    ``b`` itself would keep the window short until the very end.

    ::

        h(b) = log(0.5) / log(b)
        f(t) = 0.5 ** (1 / (h(b_start) + min(t / warmup_steps, 1) * (h(b3) - h(b_start))))   (b3 when warmup_steps = 0)

    Pass it as ``b3`` to :func:`adamlab.ademamix` (or ``optax.contrib.ademamix``), with the same
    `warmup_steps` as :func:`adamlab.schedules.ademamix_alpha`. Optax has no such schedule.

    Args:
        b3: The final decay of the slow EMA, in ``(0, 1)``; the paper uses 0.9999 (a half-life of
            6,931 steps). Optax: ``b3`` of ``optax.contrib.ademamix``.
        warmup_steps: The length of the ramp, a Python int ``>= 0`` (0: `b3` throughout). The paper's
            ``T_beta3``.
        b_start: The decay at step 0, in ``(0, 1)``; default 0.9 (the paper's ``beta_start``).

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `b3` or `b_start` is not in ``(0, 1)``, or `warmup_steps` is not an int ``>= 0``.

    References:
        Pagliardini, Ablin & Grangier, *The AdEMAMix Optimizer: Better, Faster, Older*, ICLR 2025.

    Example:
        >>> from adamlab import schedules
        >>> f = schedules.ademamix_b3(0.9999, warmup_steps=100)
        >>> print([round(float(f(t)), 4) for t in (0, 10, 50, 100, 1000)])
        [0.9, 0.999, 0.9998, 0.9999, 0.9999]
    """
    for name, value in (("b3", b3), ("b_start", b_start)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    _check_steps("warmup_steps", warmup_steps, allow_zero=True)
    h_start, h_end = math.log(0.5) / math.log(b_start), math.log(0.5) / math.log(b3)

    def schedule(step):
        frac = jnp.clip(_steps(step) / max(float(warmup_steps), 1.0), 0.0, 1.0) if warmup_steps else 1.0
        half_life = h_start + frac * (h_end - h_start)
        return jnp.asarray(0.5, widest_float()) ** (1.0 / half_life)

    return schedule


__all__ = ["ademamix_alpha", "ademamix_b3", "constant", "cosine_decay", "linear_warmup", "warmup_cosine_decay"]
