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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

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


# Optax's schedules under Optax's names (optax/schedules/_schedule.py and _join.py), in Optax's order of operations
# so that they give Optax's float32 values bit for bit under jit; the differences are in the docstrings.


def _check_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {value!r}")


def _check_finite(name: str, value: Any) -> None:
    v = _checks._value(name, value)
    if v is not None and not abs(v) <= float(jnp.finfo(jnp.float32).max):
        raise ValueError(f"{name} must be finite (in float32), got {value!r}")


def _check_fraction(name: str, value: Any, low: float = 0.0) -> None:
    if not _checks.is_number(value) or not low <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [{low}, 1], got {value!r}")


def _check_factor(name: str, value: Any) -> None:
    if not _checks.is_number(value) or not 0.0 < float(value) < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _boundaries_and_scales(name: str, mapping: Mapping[int, float] | None) -> list[tuple[int, float]]:
    """The ``{step: scale}`` items sorted by step, checked: int steps >= 0, finite scales >= 0."""
    if mapping is None:
        return []
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{name} must be a dict {{step: scale}}, got {type(mapping).__name__}")
    for boundary, scale in mapping.items():
        if not isinstance(boundary, int) or isinstance(boundary, bool) or boundary < 0:
            raise ValueError(f"{name}: every step must be an int >= 0, got {boundary!r}")
        if not _checks.is_number(scale) or not 0.0 <= float(scale) < math.inf:
            raise ValueError(f"{name}: every scale must be a finite number >= 0, got {scale!r} at step {boundary}")
    return sorted(mapping.items())


def constant_schedule(value: float) -> Schedule:
    """Optax's name for :func:`adamlab.schedules.constant`: `value` at every step.

    ::

        f(t) = value

    Optax: :func:`optax.constant_schedule`, which returns `value` as it is, where this returns it as a 0-d
    float32 array (float64 under x64); PyTorch: a fixed ``lr``, without a scheduler.

    Args:
        value: The value, a number ``>= 0`` and finite in float32. Optax: ``value``.

    Returns:
        A schedule ``step -> float32 scalar`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `value` is negative, NaN or not finite in float32.
        TypeError: If `value` is not a real number or scalar array.

    Example:
        >>> from adamlab.schedules import constant_schedule
        >>> f = constant_schedule(3e-4)
        >>> print([round(float(f(t)), 6) for t in (0, 1000)])
        [0.0003, 0.0003]
    """
    return constant(value)


def polynomial_schedule(
    init_value: float, end_value: float, power: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """`init_value` until `transition_begin`, then a polynomial of degree `power` to `end_value` in `transition_steps`.

    ::

        c(t) = clip(t - B, 0, T)
        frac(t) = 1 - c(t) / T            (0 once c(t) = T)
        f(t) = (init_value - end_value) * frac(t)**power + end_value
        (B = transition_begin, T = transition_steps)

    The value is `init_value` up to step ``B`` and `end_value` from step ``B + T`` on. With ``transition_steps
    <= 0`` there is no transition: `init_value` throughout, as in Optax.

    Optax: :func:`optax.polynomial_schedule`, with the same arguments, and the same float32 values bit for bit
    under jit, except at and past the end of the transition: there Optax's ``1 - c / T`` need not be 0 (XLA
    computes ``c / T`` as ``c * (1 / T)``, and for ``T`` not a power of two ``1 - T * (1 / T)`` is ``+-1.5e-8``
    or so), so Optax's value past the end is off `end_value` by about ``1e-8 * (init_value - end_value)``, and
    NaN when that is negative and `power` fractional: ``jax.jit(optax.polynomial_schedule(1.0, 0.01, 0.5,
    10))(10)`` is ``nan``. Here the fraction is 0 from step ``B + T`` on, so the value is `end_value` exactly.
    PyTorch: ``torch.optim.lr_scheduler.PolynomialLR`` (``total_iters`` is `T`, ``power`` is `power`) decays to
    0, i.e. ``end_value = 0``.

    Args:
        init_value: The value up to step `transition_begin`, ``>= 0`` and finite. Optax: ``init_value``.
        end_value: The value from step ``transition_begin + transition_steps`` on, ``>= 0`` and finite. Optax:
            ``end_value``.
        power: The degree of the polynomial, a finite number ``> 0`` (1: linear, 2: quadratic, 0.5: square
            root). Optax: ``power``; PyTorch: ``power``.
        transition_steps: The length of the transition in steps, a Python int; ``<= 0`` disables it (the
            schedule is then ``constant(init_value)``). Optax: ``transition_steps``; PyTorch: ``total_iters``.
        transition_begin: The step at which the transition starts, a Python int ``>= 0``; default 0 (Optax
            replaces a negative value by 0, where this raises). Optax: ``transition_begin``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `init_value` or `end_value` is negative or not finite, `power` is not a finite number
            ``> 0``, `transition_steps` is not an int, or `transition_begin` is not an int ``>= 0``.
        TypeError: If `init_value` or `end_value` is not a real number or scalar array.

    Example:
        >>> import jax
        >>> from adamlab.schedules import polynomial_schedule
        >>> f = jax.jit(polynomial_schedule(1.0, 0.01, power=0.5, transition_steps=10))
        >>> print([round(float(f(t)), 4) for t in (0, 5, 9, 10, 20)])
        [1.0, 0.71, 0.3231, 0.01, 0.01]
    """
    _checks.check_nonnegative("init_value", init_value)
    _checks.check_nonnegative("end_value", end_value)
    if not _checks.is_number(power) or not 0.0 < float(power) < math.inf:
        raise ValueError(f"power must be a finite number > 0, got {power!r}")
    _check_int("transition_steps", transition_steps)
    _check_steps("transition_begin", transition_begin, allow_zero=True)
    if transition_steps <= 0:
        return constant(init_value)

    def schedule(step):
        count = jnp.clip(_steps(step) - float(transition_begin), 0.0, float(transition_steps))
        # 0 set at the end, since XLA divides by T as a multiplication by 1/T, which can leave 1 - T/T at
        # +-1.5e-8 (NaN under a fractional power): see the docstring.
        frac = jnp.where(count < float(transition_steps), 1.0 - count / float(transition_steps), 0.0)
        return (init_value - end_value) * frac**power + end_value

    return schedule


def linear_schedule(init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0) -> Schedule:
    """`init_value` until `transition_begin`, then linear to `end_value` over `transition_steps`: Optax's arithmetic.

    ::

        f(t) = polynomial_schedule(init_value, end_value, 1, T, B)(t)
             = (init_value - end_value) * (1 - clip(t - B, 0, T) / T) + end_value    (end_value from B + T on)
        (B = transition_begin, T = transition_steps)

    The same schedule as :func:`adamlab.schedules.linear_warmup` (which computes ``init_value + frac *
    (end_value - init_value)`` and can differ from this in the last float32 bit); this one follows Optax's order
    of operations. Optax: :func:`optax.linear_schedule`, with the same arguments, bit for bit under jit before
    the end of the transition; from step ``B + T`` on this is `end_value` exactly, where Optax can be off by
    ``1e-8 * (init_value - end_value)`` (see :func:`adamlab.schedules.polynomial_schedule`). PyTorch:
    ``torch.optim.lr_scheduler.LinearLR`` (``start_factor``/``end_factor`` times the base ``lr``,
    ``total_iters`` = `transition_steps`).

    Args:
        init_value: The value up to step `transition_begin`, ``>= 0`` and finite. Optax: ``init_value``.
        end_value: The value from step ``transition_begin + transition_steps`` on, ``>= 0`` and finite. Optax:
            ``end_value``.
        transition_steps: The length of the ramp, a Python int; ``<= 0`` disables it (``constant(init_value)``).
            Optax: ``transition_steps``; PyTorch: ``total_iters``.
        transition_begin: The step at which the ramp starts, a Python int ``>= 0``; default 0. Optax:
            ``transition_begin``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `init_value` or `end_value` is negative or not finite, `transition_steps` is not an int,
            or `transition_begin` is not an int ``>= 0``.
        TypeError: If `init_value` or `end_value` is not a real number or scalar array.

    Example:
        >>> from adamlab.schedules import linear_schedule
        >>> f = linear_schedule(1.0, 0.1, transition_steps=10, transition_begin=5)
        >>> print([round(float(f(t)), 4) for t in (0, 5, 10, 15, 100)])
        [1.0, 1.0, 0.55, 0.1, 0.1]
    """
    return polynomial_schedule(init_value, end_value, 1, transition_steps, transition_begin)


def cosine_decay_schedule(init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0) -> Schedule:
    """Optax's name for :func:`adamlab.schedules.cosine_decay`: cosine from `init_value` to ``alpha * init_value``.

    ::

        f(t) = init_value * ((1 - alpha) * (0.5 * (1 + cos(pi * min(t, D) / D)))**exponent + alpha)
        (D = decay_steps)

    Optax: :func:`optax.cosine_decay_schedule`, with the same arguments, bit for bit under jit; PyTorch:
    ``torch.optim.lr_scheduler.CosineAnnealingLR`` (``T_max = decay_steps``, ``eta_min = alpha * lr``; it
    rises again past ``T_max``, where this stays at its floor).

    Args:
        init_value: The value at step 0, ``>= 0`` and finite. Optax: ``init_value``.
        decay_steps: The length of the decay, a Python int ``>= 1``. Optax: ``decay_steps``; PyTorch: ``T_max``.
        alpha: The final value as a fraction of `init_value`; default 0.0. Not checked. Optax: ``alpha``.
        exponent: The power of the cosine factor; default 1.0. Not checked. Optax: ``exponent``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `init_value` is negative or not finite, or `decay_steps` is not an int ``>= 1``.
        TypeError: If `init_value` is not a real number or scalar array.

    References:
        Loshchilov & Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*, ICLR 2017.

    Example:
        >>> from adamlab.schedules import cosine_decay_schedule
        >>> f = cosine_decay_schedule(1.0, decay_steps=100, alpha=0.1)
        >>> print([round(float(f(t)), 4) for t in (0, 50, 100, 150)])
        [1.0, 0.55, 0.1, 0.1]
    """
    return cosine_decay(init_value, decay_steps, alpha, exponent)


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """One schedule after another: ``schedules[i]`` from step ``boundaries[i - 1]`` on, counting from 0 there.

    ::

        f(t) = schedules[0](t)                           t < b[0]
        f(t) = schedules[i](t - b[i - 1])                b[i - 1] <= t < b[i]
        f(t) = schedules[n - 1](t - b[n - 2])            t >= b[n - 2]
        (b = boundaries, n = len(schedules))

    Each schedule after the first sees the number of steps since its boundary (the step minus the boundary, in
    the step's own type). Optax: :func:`optax.join_schedules`, with the same arguments and arithmetic (a
    ``jnp.where`` per boundary); Optax also takes boundaries that are unsorted or one too many or too few
    (ignoring the extra), where this raises. PyTorch: ``torch.optim.lr_scheduler.SequentialLR`` (``schedulers``,
    ``milestones``).

    Args:
        schedules: The schedules, a non-empty sequence of functions of the step (adamlab's, Optax's or any
            ``step -> value`` callable). Optax: ``schedules``; PyTorch: ``schedulers``.
        boundaries: The steps at which each schedule hands over to the next, Python ints ``>= 0`` in
            non-decreasing order, one fewer than `schedules`. Optax: ``boundaries``; PyTorch: ``milestones``.

    Returns:
        A schedule ``step -> value`` (the joined schedules' values; float32 for adamlab's, float64 under x64).

    Raises:
        ValueError: If `schedules` is empty, `boundaries` is not one shorter, or its entries are not ints ``>= 0``
            in non-decreasing order.
        TypeError: If an entry of `schedules` is not a function of one argument.

    Example:
        >>> from adamlab.schedules import constant_schedule, join_schedules, linear_schedule
        >>> f = join_schedules([linear_schedule(0.0, 1.0, 4), constant_schedule(0.5)], [6])
        >>> print([round(float(f(t)), 4) for t in range(8)])
        [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.5]
    """
    schedules, boundaries = list(schedules), list(boundaries)
    if not schedules:
        raise ValueError("schedules must hold at least one schedule")
    for i, fn in enumerate(schedules):
        if not callable(fn):
            raise TypeError(f"schedules[{i}] must be a function of the step, got {type(fn).__name__}")
        _checks.check_schedule(f"schedules[{i}]", fn)
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"boundaries must hold one step fewer than schedules ({len(schedules) - 1}), got {len(boundaries)}"
        )
    for i, boundary in enumerate(boundaries):
        _check_steps(f"boundaries[{i}]", boundary, allow_zero=True)
        if i and boundary < boundaries[i - 1]:
            raise ValueError(f"boundaries must be in non-decreasing order, got {boundaries!r}")

    def schedule(step):
        value = schedules[0](step)
        for boundary, fn in zip(boundaries, schedules[1:]):
            value = jnp.where(step < boundary, value, fn(step - boundary))
        return value

    return schedule


def warmup_constant_schedule(init_value: float, peak_value: float, warmup_steps: int) -> Schedule:
    """Linear warmup from `init_value` to `peak_value` over `warmup_steps`, then `peak_value`.

    ::

        f(t) = linear_schedule(init_value, peak_value, warmup_steps)(t)
             = (init_value - peak_value) * (1 - clip(t, 0, W) / W) + peak_value      (peak_value from W on)
        (W = warmup_steps)

    Optax: :func:`optax.warmup_constant_schedule`, with the same arguments, bit for bit under jit before step
    `warmup_steps` and exactly `peak_value` from there on (see :func:`adamlab.schedules.linear_schedule`).
    PyTorch: ``torch.optim.lr_scheduler.LinearLR`` with ``end_factor=1`` (``start_factor = init_value / lr``,
    ``total_iters = warmup_steps``).

    Args:
        init_value: The value at step 0, ``>= 0`` and finite. Optax: ``init_value``.
        peak_value: The value from step `warmup_steps` on, ``>= 0`` and finite. Optax: ``peak_value``.
        warmup_steps: The length of the warmup, a Python int (``<= 0``: `init_value` throughout, as in Optax).
            Optax: ``warmup_steps``; PyTorch: ``total_iters``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `init_value` or `peak_value` is negative or not finite, or `warmup_steps` is not an int.
        TypeError: If `init_value` or `peak_value` is not a real number or scalar array.

    Example:
        >>> from adamlab.schedules import warmup_constant_schedule
        >>> f = warmup_constant_schedule(0.0, 1e-3, warmup_steps=100)
        >>> print([round(float(f(t)), 6) for t in (0, 50, 100, 10**6)])
        [0.0, 0.0005, 0.001, 0.001]
    """
    _checks.check_nonnegative("peak_value", peak_value)
    return linear_schedule(init_value, peak_value, warmup_steps)


def warmup_cosine_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    """Linear warmup to `peak_value` over `warmup_steps`, then cosine to `end_value` at step `decay_steps`.

    ::

        f(t) = linear_schedule(init_value, peak_value, W)(t)                             t < W
        f(t) = cosine_decay_schedule(peak_value, D - W, end_value / peak_value, exponent)(t - W)   t >= W
        (W = warmup_steps, D = decay_steps; alpha = 0 when peak_value = 0)

    Built as Optax builds it, :func:`adamlab.schedules.join_schedules` of the two, so it matches
    :func:`optax.warmup_cosine_decay_schedule` (same arguments) bit for bit under jit; the same schedule as
    :func:`adamlab.schedules.warmup_cosine_decay`, whose warmup is computed as ``init + frac * (peak - init)``
    (a last-bit difference). PyTorch: ``torch.optim.lr_scheduler.SequentialLR`` of ``LinearLR`` and
    ``CosineAnnealingLR``.

    Args:
        init_value: The value at step 0, ``>= 0`` and finite. Optax: ``init_value``.
        peak_value: The value at step `warmup_steps`, ``>= 0`` and finite. Optax: ``peak_value``.
        warmup_steps: The length of the warmup, a Python int ``>= 0`` (0: start at `peak_value`). Optax:
            ``warmup_steps``.
        decay_steps: The total length, warmup included, a Python int ``> warmup_steps``. Optax:
            ``decay_steps``; PyTorch: ``T_max`` of the cosine is ``decay_steps - warmup_steps``.
        end_value: The value from step `decay_steps` on; default 0.0. Not checked beyond being a number. Optax:
            ``end_value``; PyTorch: ``eta_min``.
        exponent: The power of the cosine factor; default 1.0. Not checked. Optax: ``exponent``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `init_value` or `peak_value` is negative or not finite, `warmup_steps` is not an int
            ``>= 0`` or `decay_steps` not an int ``> warmup_steps``.
        TypeError: If `init_value`, `peak_value` or `end_value` is not a real number or scalar array.

    Example:
        >>> from adamlab.schedules import warmup_cosine_decay_schedule
        >>> f = warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=10, decay_steps=110, end_value=0.1)
        >>> print([round(float(f(t)), 4) for t in (0, 5, 10, 60, 110, 200)])
        [0.0, 0.5, 1.0, 0.55, 0.1, 0.1]
    """
    _check_steps("warmup_steps", warmup_steps, allow_zero=True)
    _check_steps("decay_steps", decay_steps)
    if decay_steps <= warmup_steps:
        raise ValueError(f"decay_steps ({decay_steps}) must exceed warmup_steps ({warmup_steps}): it counts the warmup")
    _checks.check_nonnegative("peak_value", peak_value)
    _check_finite("end_value", end_value)
    alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
    warmup = linear_schedule(init_value, peak_value, warmup_steps)
    decay = cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent)
    return join_schedules([warmup, decay], [warmup_steps])


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """`init_value` until `transition_begin`, then multiplied by `decay_rate` every `transition_steps` steps.

    ::

        p(t) = (t - B) / T                  (floor((t - B) / T) with staircase)
        f(t) = init_value                                  t <= B
        f(t) = init_value * decay_rate ** p(t)             t > B
        f(t) = max(f(t), end_value) if decay_rate < 1 else min(f(t), end_value)    (with an end_value)
        (B = transition_begin, T = transition_steps)

    A `decay_rate` above 1 makes it grow, with `end_value` as a ceiling. ``transition_steps <= 0`` or
    ``decay_rate == 0`` give ``constant(init_value)``, as in Optax. Optax: :func:`optax.exponential_decay`, with
    the same arguments, bit for bit under jit. PyTorch: ``torch.optim.lr_scheduler.ExponentialLR`` (``gamma`` =
    `decay_rate`, per step: ``transition_steps=1``) or, with ``staircase=True``, ``StepLR`` (``step_size`` =
    `transition_steps`, ``gamma`` = `decay_rate`).

    Args:
        init_value: The value up to step `transition_begin`, ``>= 0`` and finite. Optax: ``init_value``.
        transition_steps: The number of steps over which the value is multiplied by `decay_rate`, a Python int
            (``<= 0``: no decay). Optax: ``transition_steps``; PyTorch: ``step_size`` of ``StepLR``.
        decay_rate: The factor per `transition_steps`, a finite number ``>= 0`` (0: no decay, as in Optax;
            ``> 1``: growth). Optax: ``decay_rate``; PyTorch: ``gamma``.
        transition_begin: The step at which the decay starts, a Python int ``>= 0``; default 0 (Optax replaces a
            negative value by 0, where this raises). Optax: ``transition_begin``.
        staircase: Whether to decay in steps, every `transition_steps`, instead of continuously; default False.
            Optax: ``staircase``.
        end_value: A floor for the value when ``decay_rate < 1``, a ceiling when ``decay_rate > 1``; default
            None (no bound). Optax: ``end_value``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `init_value` or `decay_rate` is negative or not finite, `transition_steps` is not an int,
            `transition_begin` is not an int ``>= 0``, or `end_value` is not finite.
        TypeError: If `decay_rate` is not a Python or NumPy number, `staircase` not a bool, or `init_value` or
            `end_value` not a real number or scalar array.

    Example:
        >>> from adamlab.schedules import exponential_decay
        >>> f = exponential_decay(1.0, transition_steps=10, decay_rate=0.5, end_value=0.2)
        >>> print([round(float(f(t)), 4) for t in (0, 5, 10, 20, 30)])
        [1.0, 0.7071, 0.5, 0.25, 0.2]
        >>> g = exponential_decay(1.0, transition_steps=10, decay_rate=0.5, staircase=True)
        >>> print([round(float(g(t)), 4) for t in (0, 9, 10, 25)])
        [1.0, 1.0, 0.5, 0.25]
    """
    _checks.check_nonnegative("init_value", init_value)
    _check_int("transition_steps", transition_steps)
    if not _checks.is_number(decay_rate):
        raise TypeError(f"decay_rate must be a Python or NumPy number, got {type(decay_rate).__name__}")
    _checks.check_nonnegative("decay_rate", decay_rate)
    _check_steps("transition_begin", transition_begin, allow_zero=True)
    if not isinstance(staircase, bool):
        raise TypeError(f"staircase must be a bool, got {staircase!r}")
    if end_value is not None:
        _check_finite("end_value", end_value)
    if transition_steps <= 0 or decay_rate == 0:
        return constant(init_value)
    bound = jnp.maximum if decay_rate < 1.0 else jnp.minimum

    def schedule(step):
        since = _steps(step) - float(transition_begin)
        p = since / float(transition_steps)
        if staircase:
            p = jnp.floor(p)
        value = jnp.where(since <= 0, init_value, init_value * jnp.power(decay_rate, p))
        return value if end_value is None else bound(value, end_value)

    return schedule


def warmup_exponential_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """Linear warmup to `peak_value` over `warmup_steps`, then exponential decay from `peak_value`.

    ::

        f(t) = linear_schedule(init_value, peak_value, W)(t)                                  t < W
        f(t) = exponential_decay(peak_value, T, decay_rate, B, staircase, end_value)(t - W)   t >= W
        (W = warmup_steps, T = transition_steps, B = transition_begin)

    `transition_begin` counts from the end of the warmup. Built as Optax builds it
    (:func:`adamlab.schedules.join_schedules` of the two): :func:`optax.warmup_exponential_decay_schedule`, with
    the same arguments, bit for bit under jit. PyTorch: ``SequentialLR`` of ``LinearLR`` and ``ExponentialLR``.

    Args:
        init_value: The value at step 0, ``>= 0`` and finite. Optax: ``init_value``.
        peak_value: The value at step `warmup_steps`, where the decay starts, ``>= 0`` and finite. Optax:
            ``peak_value``.
        warmup_steps: The length of the warmup, a Python int ``>= 0``. Optax: ``warmup_steps``.
        transition_steps: As in :func:`adamlab.schedules.exponential_decay`. Optax: ``transition_steps``.
        decay_rate: As in :func:`adamlab.schedules.exponential_decay`. Optax: ``decay_rate``; PyTorch: ``gamma``.
        transition_begin: Steps after the warmup before the decay starts, a Python int ``>= 0``; default 0.
            Optax: ``transition_begin``.
        staircase: Whether to decay in steps; default False. Optax: ``staircase``.
        end_value: A floor (``decay_rate < 1``) or ceiling (``> 1``) of the decay; default None. Optax:
            ``end_value``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: As :func:`adamlab.schedules.exponential_decay` and
            :func:`adamlab.schedules.linear_schedule` do, or if `warmup_steps` is not an int ``>= 0``.
        TypeError: As :func:`adamlab.schedules.exponential_decay` does.

    Example:
        >>> from adamlab.schedules import warmup_exponential_decay_schedule
        >>> f = warmup_exponential_decay_schedule(0.0, 1.0, warmup_steps=10, transition_steps=10, decay_rate=0.5)
        >>> print([round(float(f(t)), 4) for t in (0, 5, 10, 20, 30)])
        [0.0, 0.5, 1.0, 0.5, 0.25]
    """
    _check_steps("warmup_steps", warmup_steps, allow_zero=True)
    _checks.check_nonnegative("peak_value", peak_value)
    warmup = linear_schedule(init_value, peak_value, warmup_steps)
    decay = exponential_decay(peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value)
    return join_schedules([warmup, decay], [warmup_steps])


def sgdr_schedule(cosine_kwargs: Iterable[Mapping[str, Any]]) -> Schedule:
    """SGDR: warm restarts, one :func:`warmup_cosine_decay_schedule` cycle after another.

    ::

        cycle i = warmup_cosine_decay_schedule(**cosine_kwargs[i]), for decay_steps[i] steps
        f(t) = join_schedules(cycles, boundaries=[D0, D0 + D1, ...])(t)
        (Di = cosine_kwargs[i]["decay_steps"])

    Each cycle starts over (with its own warmup) where the previous one's `decay_steps` end; the last cycle
    stays at its ``end_value`` after its end. Optax: :func:`optax.sgdr_schedule`, with the same argument, bit
    for bit under jit. PyTorch: ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`` (cycles of ``T_0 *
    T_mult**i`` steps without warmup: ``warmup_steps=0``, ``decay_steps = T_0 * T_mult**i``, ``end_value`` =
    ``eta_min``).

    Args:
        cosine_kwargs: The cycles, an iterable of dicts of keyword arguments of
            :func:`adamlab.schedules.warmup_cosine_decay_schedule` (``init_value``, ``peak_value``,
            ``warmup_steps``, ``decay_steps``, and optionally ``end_value``, ``exponent``); at least one.
            Optax: ``cosine_kwargs``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If there is no cycle, a cycle lacks ``decay_steps``, or a cycle's arguments are rejected by
            :func:`adamlab.schedules.warmup_cosine_decay_schedule` (the message says which cycle).
        TypeError: If a cycle is not a dict, or has an argument
            :func:`adamlab.schedules.warmup_cosine_decay_schedule` does not take.

    References:
        Loshchilov & Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*, ICLR 2017.

    Example:
        >>> from adamlab.schedules import sgdr_schedule
        >>> cycle = dict(init_value=0.0, peak_value=1.0, warmup_steps=2, decay_steps=10)
        >>> f = sgdr_schedule([cycle, cycle])
        >>> print([round(float(f(t)), 4) for t in (0, 2, 6, 10, 12, 20, 30)])
        [0.0, 1.0, 0.5, 0.0, 1.0, 0.0, 0.0]
    """
    cycles, boundaries, step = [], [], 0
    for i, kwargs in enumerate(cosine_kwargs):
        if not isinstance(kwargs, Mapping):
            raise TypeError(f"cosine_kwargs[{i}] must be a dict of warmup_cosine_decay_schedule's arguments")
        if "decay_steps" not in kwargs:
            raise ValueError(f"cosine_kwargs[{i}] must give decay_steps, the length of the cycle")
        try:
            cycles.append(warmup_cosine_decay_schedule(**kwargs))
        except ValueError as error:
            raise ValueError(f"cosine_kwargs[{i}]: {error}") from None
        step += kwargs["decay_steps"]
        boundaries.append(step)
    if not cycles:
        raise ValueError("cosine_kwargs must hold at least one cycle")
    return join_schedules(cycles, boundaries[:-1])


def _interpolate_linear(start, end, pct):
    return (end - start) * pct + start


def _interpolate_cosine(start, end, pct):
    return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * pct) + 1)


def piecewise_interpolate_schedule(
    interpolate_type: str, init_value: float, boundaries_and_scales: Mapping[int, float] | None = None
) -> Schedule:
    """Values ``v_i = init_value * s_1 * ... * s_i`` at steps ``b_i``, linearly or cosine interpolated between.

    ::

        b_0 = 0, v_0 = init_value; (b_i, s_i) = sorted(boundaries_and_scales.items()); v_i = v_(i-1) * s_i
        pct = (t - b_(i-1)) / max(b_i - b_(i-1), 1)                                  b_(i-1) <= t < b_i
        f(t) = v_(i-1) + (v_i - v_(i-1)) * pct                                       (linear)
        f(t) = v_i + (v_(i-1) - v_i) / 2 * (cos(pi * pct) + 1)                       (cosine)
        f(t) = v_n                                                                   t >= b_n

    The scales multiply up: ``{4: 0.1, 8: 0.01}`` goes to ``0.1 * init_value`` at step 4 and ``0.001 *
    init_value`` at step 8. Optax: :func:`optax.piecewise_interpolate_schedule`, with the same arguments, bit for
    bit under jit for steps ``>= 0``; before step 0 Optax returns 0, where this holds the value of step 0.
    PyTorch has none (``LambdaLR`` with this function).

    Args:
        interpolate_type: ``"linear"`` or ``"cosine"``. Optax: ``interpolate_type``.
        init_value: The value at step 0, ``>= 0`` and finite. Optax: ``init_value``.
        boundaries_and_scales: ``{step: scale}``: the value at each step (an int ``>= 0``) is the previous one
            times the scale (a finite number ``>= 0``); default None (``constant(init_value)``). Optax:
            ``boundaries_and_scales``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `interpolate_type` is neither, `init_value` is negative or not finite, or a step or scale
            of `boundaries_and_scales` is out of range.
        TypeError: If `init_value` is not a real number or scalar array, or `boundaries_and_scales` not a dict.

    Example:
        >>> from adamlab.schedules import piecewise_interpolate_schedule
        >>> f = piecewise_interpolate_schedule("linear", 1.0, {4: 0.1, 8: 0.01})
        >>> print([round(float(f(t)), 6) for t in range(0, 11, 2)])
        [1.0, 0.55, 0.1, 0.0505, 0.001, 0.001]
    """
    interpolate: Callable
    if interpolate_type == "linear":
        interpolate = _interpolate_linear
    elif interpolate_type == "cosine":
        interpolate = _interpolate_cosine
    else:
        raise ValueError(f"interpolate_type must be 'linear' or 'cosine', got {interpolate_type!r}")
    _checks.check_nonnegative("init_value", init_value)
    items = _boundaries_and_scales("boundaries_and_scales", boundaries_and_scales)
    boundaries = tuple(float(b) for b, _ in items)
    scales = tuple(s for _, s in items)

    def schedule(step):
        dtype = widest_float()
        # Optax's value before step 0 is 0 (no interval holds the step); the value of step 0 is more useful.
        t = jnp.maximum(_steps(step), 0.0)
        bounds = jnp.asarray((0.0,) + boundaries, dtype)
        values = jnp.cumprod(jnp.asarray((init_value,) + scales, dtype))
        start, end = bounds[:-1], bounds[1:]
        within = t[..., None]
        pct = (within - start) / jnp.maximum(end - start, 1.0)
        inside = (start <= within) & (within < end)
        value = jnp.sum(jnp.where(inside, interpolate(values[:-1], values[1:], pct), 0.0), axis=-1)
        return jnp.where(t >= bounds[-1], values[-1], value)

    return schedule


def _check_onecycle(transition_steps: int, peak_value: float, div_factor: float, final_div_factor: float) -> None:
    _check_steps("transition_steps", transition_steps)
    _checks.check_nonnegative("peak_value", peak_value)
    _check_factor("div_factor", div_factor)
    _check_factor("final_div_factor", final_div_factor)


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """One cycle in three linear phases: up to `peak_value`, back down to where it started, then down to the floor.

    ::

        v0 = peak_value / div_factor
        f goes linearly v0 -> peak_value on [0, S], peak_value -> v0 on [S, F], v0 -> v0 / final_div_factor
        on [F, T], then stays at v0 / final_div_factor
        (S = int(pct_start * T), F = int(pct_final * T), T = transition_steps)

    Built as Optax builds it, :func:`adamlab.schedules.piecewise_interpolate_schedule` ``("linear", v0, {S:
    div_factor, F: 1 / div_factor, T: 1 / final_div_factor})``: :func:`optax.linear_onecycle_schedule`, with
    the same arguments, bit for bit under jit for steps ``>= 0``. PyTorch: ``torch.optim.lr_scheduler.OneCycleLR``
    with ``anneal_strategy="linear"`` and ``three_phase=True`` (``max_lr``, ``total_steps``, ``pct_start``,
    ``div_factor``, ``final_div_factor``; its phases end one step earlier and its second phase has the length of
    the first).

    Args:
        transition_steps: The length of the cycle, a Python int ``>= 1``. Optax: ``transition_steps``; PyTorch:
            ``total_steps``.
        peak_value: The value at step `S`, ``>= 0`` and finite. Optax: ``peak_value``; PyTorch: ``max_lr``.
        pct_start: The fraction of the cycle spent going up, in ``[0, 1]``; default 0.3. Optax: ``pct_start``;
            PyTorch: ``pct_start``.
        pct_final: The fraction of the cycle at which the value is back at `v0`, in ``[pct_start, 1]``; default
            0.85. Optax: ``pct_final``.
        div_factor: ``peak_value / v0``, a finite number ``> 0``; default 25.0. Optax: ``div_factor``; PyTorch:
            ``div_factor``.
        final_div_factor: ``v0 / final value``, a finite number ``> 0``; default 1e4. Optax:
            ``final_div_factor``; PyTorch: ``final_div_factor``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `transition_steps` is not an int ``>= 1``, `peak_value` is negative or not finite,
            `pct_start` or `pct_final` is out of range, or a division factor is not a finite number ``> 0``.
        TypeError: If `peak_value` is not a real number or scalar array.

    References:
        Smith & Topin, *Super-Convergence: Very Fast Training of Neural Networks Using Large Learning Rates*,
        2017.

    Example:
        >>> from adamlab.schedules import linear_onecycle_schedule
        >>> f = linear_onecycle_schedule(10, 1000.0, pct_start=0.3, pct_final=0.7, div_factor=10.0,
        ...                              final_div_factor=100.0)
        >>> print([round(float(f(t)), 3) for t in (0, 3, 5, 7, 10, 20)])
        [100.0, 1000.0, 550.0, 100.0, 1.0, 1.0]
    """
    _check_onecycle(transition_steps, peak_value, div_factor, final_div_factor)
    _check_fraction("pct_start", pct_start)
    _check_fraction("pct_final", pct_final, low=float(pct_start))
    return piecewise_interpolate_schedule(
        "linear",
        peak_value / div_factor,
        {
            int(pct_start * transition_steps): div_factor,
            int(pct_final * transition_steps): 1.0 / div_factor,
            transition_steps: 1.0 / final_div_factor,
        },
    )


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """One cycle: cosine up from ``peak_value / div_factor`` to `peak_value`, then cosine down to the floor.

    ::

        v0 = peak_value / div_factor
        f goes along a half cosine v0 -> peak_value on [0, S], peak_value -> v0 / final_div_factor on [S, T],
        then stays at v0 / final_div_factor
        (S = int(pct_start * T), T = transition_steps)

    Built as Optax builds it, :func:`adamlab.schedules.piecewise_interpolate_schedule` ``("cosine", v0, {S:
    div_factor, T: 1 / (div_factor * final_div_factor)})``: :func:`optax.cosine_onecycle_schedule`, with the
    same arguments, bit for bit under jit for steps ``>= 0``. PyTorch: ``torch.optim.lr_scheduler.OneCycleLR``
    (``anneal_strategy="cos"``, the default; its phases end one step earlier).

    Args:
        transition_steps: The length of the cycle, a Python int ``>= 1``. Optax: ``transition_steps``; PyTorch:
            ``total_steps``.
        peak_value: The value at step `S`, ``>= 0`` and finite. Optax: ``peak_value``; PyTorch: ``max_lr``.
        pct_start: The fraction of the cycle spent going up, in ``[0, 1]``; default 0.3. Optax: ``pct_start``;
            PyTorch: ``pct_start``.
        div_factor: ``peak_value / v0``, a finite number ``> 0``; default 25.0. Optax: ``div_factor``; PyTorch:
            ``div_factor``.
        final_div_factor: ``v0 / final value``, a finite number ``> 0``; default 1e4. Optax:
            ``final_div_factor``; PyTorch: ``final_div_factor``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `transition_steps` is not an int ``>= 1``, `peak_value` is negative or not finite,
            `pct_start` is not in ``[0, 1]``, or a division factor is not a finite number ``> 0``.
        TypeError: If `peak_value` is not a real number or scalar array.

    References:
        Smith & Topin, *Super-Convergence: Very Fast Training of Neural Networks Using Large Learning Rates*,
        2017.

    Example:
        >>> from adamlab.schedules import cosine_onecycle_schedule
        >>> f = cosine_onecycle_schedule(5, 1000.0, pct_start=0.4, div_factor=10.0, final_div_factor=100.0)
        >>> print([round(float(f(t)), 2) for t in range(7)])
        [100.0, 550.0, 1000.0, 750.25, 250.75, 1.0, 1.0]
    """
    _check_onecycle(transition_steps, peak_value, div_factor, final_div_factor)
    _check_fraction("pct_start", pct_start)
    return piecewise_interpolate_schedule(
        "cosine",
        peak_value / div_factor,
        {int(pct_start * transition_steps): div_factor, int(transition_steps): 1.0 / (div_factor * final_div_factor)},
    )


def piecewise_constant_schedule(
    init_value: float, boundaries_and_scales: Mapping[int, float] | None = None
) -> Schedule:
    """`init_value`, multiplied by each scale from its step on.

    ::

        f(t) = init_value * prod(s for (b, s) in boundaries_and_scales.items() if t >= b)

    Optax: :func:`optax.piecewise_constant_schedule`, with the same arguments and the same running product in
    step order, bit for bit under jit. PyTorch: ``torch.optim.lr_scheduler.MultiStepLR`` (``milestones``, and one
    ``gamma`` for all of them: ``{m: gamma for m in milestones}``).

    Args:
        init_value: The value before the first step of `boundaries_and_scales`, ``>= 0`` and finite. Optax:
            ``init_value``.
        boundaries_and_scales: ``{step: scale}``: from each step (an int ``>= 0``) on, the value is multiplied
            by the scale (a finite number ``>= 0``); default None (``constant(init_value)``). Optax:
            ``boundaries_and_scales``; PyTorch: ``milestones`` and ``gamma``.

    Returns:
        A schedule ``step -> float32 value`` (float64 when ``jax_enable_x64`` is on).

    Raises:
        ValueError: If `init_value` is negative or not finite, or a step or scale is out of range.
        TypeError: If `init_value` is not a real number or scalar array, or `boundaries_and_scales` not a dict.

    Example:
        >>> from adamlab.schedules import piecewise_constant_schedule
        >>> f = piecewise_constant_schedule(1.0, {100: 0.1, 200: 0.1})
        >>> print([round(float(f(t)), 4) for t in (0, 99, 100, 199, 200, 10**6)])
        [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    """
    _checks.check_nonnegative("init_value", init_value)
    items = _boundaries_and_scales("boundaries_and_scales", boundaries_and_scales)

    def schedule(step):
        t = _steps(step)
        value = jnp.full(jnp.shape(t), init_value, widest_float())
        for boundary, scale in items:
            value = jnp.where(t < boundary, value, scale * value)
        return value

    return schedule


__all__ = [
    "ademamix_alpha",
    "ademamix_b3",
    "constant",
    "constant_schedule",
    "cosine_decay",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "linear_warmup",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]
