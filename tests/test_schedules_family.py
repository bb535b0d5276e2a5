"""Optax's schedules under Optax's names (adamlab.schedules): parity with Optax, float64 closed forms, bad input.

Each schedule is evaluated like Optax's, one jitted call per step (a Python int step, int32 inside jit), over steps
from before the beginning to past the end. float32 values are bit for bit Optax's, except:

- polynomial_schedule, linear_schedule and warmup_constant_schedule at and past the end of the transition, where
  Optax's ``1 - count / T`` can come out at +-1.5e-8 instead of 0 (XLA divides by T as a multiplication by 1/T): Optax's
  value there is off end_value by ``~1e-8 * |init_value - end_value|`` (NaN under a fractional power), adamlab's is
  end_value exactly;
- piecewise_interpolate_schedule and the one-cycle schedules before step 0, where Optax's value is 0 and adamlab's
  is that of step 0.

Under x64 every schedule computes in float64 and is held to 1e-12 relative of a closed form in Python floats.
"""

import inspect
import math
from typing import Any

import jax
import numpy as np
import optax
import pytest

import adamlab.schedules
from adamlab.schedules import (
    constant_schedule,
    cosine_decay_schedule,
    cosine_onecycle_schedule,
    exponential_decay,
    join_schedules,
    linear_onecycle_schedule,
    linear_schedule,
    piecewise_constant_schedule,
    piecewise_interpolate_schedule,
    polynomial_schedule,
    sgdr_schedule,
    warmup_constant_schedule,
    warmup_cosine_decay_schedule,
    warmup_exponential_decay_schedule,
)

# ---------------------------------------------------------------------------------------------------------------
# Closed forms in Python floats (float64), written from the formulas in the docstrings.


def _poly(init_value, end_value, power, transition_steps, transition_begin=0):
    def f(t):
        if transition_steps <= 0:
            return float(init_value)
        c = min(max(t - transition_begin, 0), transition_steps)
        return (init_value - end_value) * (1 - c / transition_steps) ** power + end_value

    return f


def _linear(init_value, end_value, transition_steps, transition_begin=0):
    return _poly(init_value, end_value, 1, transition_steps, transition_begin)


def _exp(init_value, transition_steps, decay_rate, transition_begin=0, staircase=False, end_value=None):
    def f(t):
        if transition_steps <= 0 or decay_rate == 0:
            return float(init_value)
        since = t - transition_begin
        p = since / transition_steps
        if staircase:
            p = math.floor(p)
        value = init_value if since <= 0 else init_value * decay_rate**p
        if end_value is not None:
            value = max(value, end_value) if decay_rate < 1 else min(value, end_value)
        return value

    return f


def _cosine(init_value, decay_steps, alpha=0.0, exponent=1.0):
    def f(t):
        c = min(t, decay_steps)
        return init_value * ((1 - alpha) * (0.5 * (1 + math.cos(math.pi * c / decay_steps))) ** exponent + alpha)

    return f


def _join(fns, boundaries):
    def f(t):
        value = fns[0](t)
        for boundary, fn in zip(boundaries, fns[1:]):
            if t >= boundary:
                value = fn(t - boundary)
        return value

    return f


def _warmup_cosine(init_value, peak_value, warmup_steps, decay_steps, end_value=0.0, exponent=1.0):
    alpha = 0.0 if peak_value == 0 else end_value / peak_value
    warm = _linear(init_value, peak_value, warmup_steps)
    return _join([warm, _cosine(peak_value, decay_steps - warmup_steps, alpha, exponent)], [warmup_steps])


def _warmup_exp(init_value, peak_value, warmup_steps, *args, **kwargs):
    return _join([_linear(init_value, peak_value, warmup_steps), _exp(peak_value, *args, **kwargs)], [warmup_steps])


def _sgdr(cycles):
    boundaries = list(np.cumsum([c["decay_steps"] for c in cycles])[:-1])
    return _join([_warmup_cosine(**c) for c in cycles], boundaries)


def _piecewise_constant(init_value, boundaries_and_scales=None):
    def f(t):
        value = float(init_value)
        for boundary, scale in sorted((boundaries_and_scales or {}).items()):
            if t >= boundary:
                value *= scale
        return value

    return f


def _piecewise_interpolate(interpolate_type, init_value, boundaries_and_scales=None):
    items = sorted((boundaries_and_scales or {}).items())
    bounds = [0] + [b for b, _ in items]
    values = [float(init_value)]
    for _, scale in items:
        values.append(values[-1] * scale)

    def f(t):
        t = max(t, 0)
        if t >= bounds[-1]:
            return values[-1]
        i = max(i for i in range(len(bounds) - 1) if bounds[i] <= t)
        pct = (t - bounds[i]) / max(bounds[i + 1] - bounds[i], 1)
        start, end = values[i], values[i + 1]
        if interpolate_type == "linear":
            return start + (end - start) * pct
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    return f


def _linear_onecycle(transition_steps, peak_value, pct_start=0.3, pct_final=0.85, div_factor=25.0, final=1e4):
    return _piecewise_interpolate(
        "linear",
        peak_value / div_factor,
        {
            int(pct_start * transition_steps): div_factor,
            int(pct_final * transition_steps): 1 / div_factor,
            transition_steps: 1 / final,
        },
    )


def _cosine_onecycle(transition_steps, peak_value, pct_start=0.3, div_factor=25.0, final_div_factor=1e4):
    return _piecewise_interpolate(
        "cosine",
        peak_value / div_factor,
        {int(pct_start * transition_steps): div_factor, transition_steps: 1 / (div_factor * final_div_factor)},
    )


# ---------------------------------------------------------------------------------------------------------------
# The cases: (adamlab, optax, reference, args, kwargs, steps). Optax's own test values first, then others (powers of
# two and not as lengths, begins, fractional powers, growth, bounds).

SGDR_CYCLES = [
    {"decay_steps": int(s), "peak_value": lr, "init_value": 0, "end_value": 0.0, "warmup_steps": 500}
    for s, lr in zip([2e3, 3e3, 5e3], [1.6, 0.8, 0.4])
]
SGDR_SMALL = [
    {"init_value": 0.1, "peak_value": 1.0, "warmup_steps": 3, "decay_steps": 10, "end_value": 0.05},
    {"init_value": 0.0, "peak_value": 0.5, "warmup_steps": 0, "decay_steps": 7, "exponent": 2.0},
    {"init_value": 0.2, "peak_value": 0.3, "warmup_steps": 5, "decay_steps": 6},
]
CASES = {
    "polynomial_linear": (polynomial_schedule, optax.polynomial_schedule, _poly, (10.0, 20.0, 1, 10), {}),
    "polynomial_quadratic": (polynomial_schedule, optax.polynomial_schedule, _poly, (25.0, 10.0, 2, 10), {}),
    "polynomial_begin": (polynomial_schedule, optax.polynomial_schedule, _poly, (30.0, 10.0, 2, 10, 4), {}),
    "polynomial_sqrt": (polynomial_schedule, optax.polynomial_schedule, _poly, (1.0, 0.01, 0.5, 16), {}),
    "polynomial_float_power": (polynomial_schedule, optax.polynomial_schedule, _poly, (3e-4, 1e-5, 1.7, 37, 3), {}),
    "polynomial_zero_steps": (polynomial_schedule, optax.polynomial_schedule, _poly, (10.0, 20.0, 1, 0), {}),
    "linear": (linear_schedule, optax.linear_schedule, _linear, (1.0, 0.01, 100), {}),
    "linear_begin": (linear_schedule, optax.linear_schedule, _linear, (0.0, 1e-3, 8, 5), {}),
    "warmup_constant": (warmup_constant_schedule, optax.warmup_constant_schedule, _linear, (1e-5, 3e-4, 13), {}),
    "exponential": (exponential_decay, optax.exponential_decay, _exp, (1.0, 2, 2.0), {"transition_begin": 5}),
    "exponential_staircase": (
        exponential_decay,
        optax.exponential_decay,
        _exp,
        (1.0, 2, 2.0),
        {"transition_begin": 5, "staircase": True},
    ),
    "exponential_floor": (exponential_decay, optax.exponential_decay, _exp, (1.0, 2, 0.2, 3, False, 0.1), {}),
    "exponential_floor_staircase": (exponential_decay, optax.exponential_decay, _exp, (1.0, 2, 0.2, 3, True, 0.1), {}),
    "exponential_ceiling": (exponential_decay, optax.exponential_decay, _exp, (1.0, 2, 2.0, 3, False, 3.0), {}),
    "exponential_halving": (exponential_decay, optax.exponential_decay, _exp, (32.0, 1, 0.5), {}),
    "exponential_slow": (exponential_decay, optax.exponential_decay, _exp, (3e-4, 7, 0.93), {}),
    "exponential_zero_rate": (exponential_decay, optax.exponential_decay, _exp, (1.0, 2, 0.0), {}),
    "piecewise_constant": (
        piecewise_constant_schedule,
        optax.piecewise_constant_schedule,
        _piecewise_constant,
        (0.1, {3: 2.0, 6: 0.5}),
        {},
    ),
    "piecewise_constant_steps": (
        piecewise_constant_schedule,
        optax.piecewise_constant_schedule,
        _piecewise_constant,
        (3e-4, {20: 0.1, 5: 0.3, 0: 0.7}),
        {},
    ),
    "piecewise_constant_none": (
        piecewise_constant_schedule,
        optax.piecewise_constant_schedule,
        _piecewise_constant,
        (0.3,),
        {},
    ),
    "piecewise_linear": (
        piecewise_interpolate_schedule,
        optax.piecewise_interpolate_schedule,
        _piecewise_interpolate,
        ("linear", 200.0, {5: 1.5, 10: 0.25}),
        {},
    ),
    "piecewise_cosine": (
        piecewise_interpolate_schedule,
        optax.piecewise_interpolate_schedule,
        _piecewise_interpolate,
        ("cosine", 400.0, {5: 1.2, 3: 0.6, 7: 1.0}),
        {},
    ),
    "piecewise_zero_interval": (
        piecewise_interpolate_schedule,
        optax.piecewise_interpolate_schedule,
        _piecewise_interpolate,
        ("linear", 13.0, {0: 2.0, 5: 3.0}),
        {},
    ),
    "piecewise_cosine_odd": (
        piecewise_interpolate_schedule,
        optax.piecewise_interpolate_schedule,
        _piecewise_interpolate,
        ("cosine", 1e-3, {7: 0.3, 19: 0.01}),
        {},
    ),
    "piecewise_empty": (
        piecewise_interpolate_schedule,
        optax.piecewise_interpolate_schedule,
        _piecewise_interpolate,
        ("linear", 13.0, {}),
        {},
    ),
    "linear_onecycle": (
        linear_onecycle_schedule,
        optax.linear_onecycle_schedule,
        _linear_onecycle,
        (10, 1000.0, 0.3, 0.7, 10.0, 100.0),
        {},
    ),
    "linear_onecycle_defaults": (
        linear_onecycle_schedule,
        optax.linear_onecycle_schedule,
        _linear_onecycle,
        (23, 3e-3),
        {},
    ),
    "cosine_onecycle": (
        cosine_onecycle_schedule,
        optax.cosine_onecycle_schedule,
        _cosine_onecycle,
        (5, 1000.0, 0.4, 10.0, 100.0),
        {},
    ),
    "cosine_onecycle_defaults": (
        cosine_onecycle_schedule,
        optax.cosine_onecycle_schedule,
        _cosine_onecycle,
        (29, 3e-3),
        {},
    ),
    "cosine_decay": (cosine_decay_schedule, optax.cosine_decay_schedule, _cosine, (0.1, 10, 0.1), {}),
    "cosine_decay_exponent": (cosine_decay_schedule, optax.cosine_decay_schedule, _cosine, (0.1, 13, 0.0, 2.0), {}),
    "warmup_cosine": (
        warmup_cosine_decay_schedule,
        optax.warmup_cosine_decay_schedule,
        _warmup_cosine,
        (0.2, 1.21, 5, 17),
        {"end_value": 0.01, "exponent": 2.0},
    ),
    "warmup_cosine_no_warmup": (
        warmup_cosine_decay_schedule,
        optax.warmup_cosine_decay_schedule,
        _warmup_cosine,
        (0.0, 3e-4, 0, 11),
        {},
    ),
    "warmup_cosine_zero_peak": (
        warmup_cosine_decay_schedule,
        optax.warmup_cosine_decay_schedule,
        _warmup_cosine,
        (0.2, 0.0, 5, 10, -3.0, 2.0),
        {},
    ),
    "warmup_exponential": (
        warmup_exponential_decay_schedule,
        optax.warmup_exponential_decay_schedule,
        _warmup_exp,
        (0.0, 1.0, 6, 3, 0.5),
        {"transition_begin": 2, "end_value": 0.1},
    ),
    "warmup_exponential_staircase": (
        warmup_exponential_decay_schedule,
        optax.warmup_exponential_decay_schedule,
        _warmup_exp,
        (1e-4, 3e-4, 7, 4, 0.8, 0, True),
        {},
    ),
    "sgdr_small": (sgdr_schedule, optax.sgdr_schedule, _sgdr, (SGDR_SMALL,), {}),
}
# Past the end of a linear or polynomial transition Optax's value can be off end_value (see the module docstring).
POLYNOMIAL = {n for n in CASES if n.startswith(("polynomial", "linear", "warmup_constant")) and "onecycle" not in n}
# Before step 0 Optax's piecewise interpolation is 0.
INTERPOLATED = {n for n in CASES if n.startswith("piecewise_") and "constant" not in n or "onecycle" in n}


def _steps(args, name):
    """From 3 steps before 0 to well past the end (the largest step an argument names, times 1.5, plus 5)."""
    numbers = [a for a in args if isinstance(a, int)]
    numbers += [b for a in args if isinstance(a, dict) for b in a]
    if name.startswith("sgdr"):
        numbers = [sum(c["decay_steps"] for c in args[0])]
    return list(range(-3, int(1.5 * max(numbers + [10])) + 5))


def _jitted(schedule, steps):
    fn = jax.jit(schedule)
    return np.array([np.asarray(fn(step)) for step in steps])


def _end_of_transition(name, args):
    """The step from which a linear or polynomial schedule is at its end value, and that value (None if none)."""
    if name.startswith("polynomial"):
        init, end, _, steps, *begin = args
    else:
        init, end, steps, *begin = args
    return (steps + (begin[0] if begin else 0), end) if steps > 0 else None


@pytest.mark.parametrize("name", sorted(CASES))
def test_bit_for_bit_with_optax(name):
    ours_fn, theirs_fn, _, args, kwargs = CASES[name]
    steps = np.array(_steps(args, name))
    ours = _jitted(ours_fn(*args, **kwargs), steps)
    theirs = _jitted(theirs_fn(*args, **kwargs), steps)
    assert ours.dtype == np.float32
    exact = np.ones(len(steps), bool)
    if name in POLYNOMIAL and _end_of_transition(name, args):
        end_step, end_value = _end_of_transition(name, args)  # type: ignore[misc]
        exact = steps < end_step
        # adamlab holds end_value exactly; Optax is within ~1e-8 * |init - end| of it (NaN under a power < 1).
        np.testing.assert_array_equal(ours[~exact], np.float32(end_value))
        finite = np.isfinite(theirs[~exact])
        scale = abs(args[0] - args[1])
        np.testing.assert_allclose(theirs[~exact][finite], np.float32(end_value), rtol=0, atol=1e-7 * scale)
    if name in INTERPOLATED:
        exact = steps >= 0
        np.testing.assert_array_equal(ours[~exact], ours[steps == 0][0])
        np.testing.assert_array_equal(theirs[~exact], 0.0)
    np.testing.assert_array_equal(ours[exact], theirs[exact])


@pytest.mark.parametrize("name", sorted(CASES))
def test_float64_closed_form(name):
    ours_fn, _, reference, args, kwargs = CASES[name]
    steps = _steps(args, name)
    expected = np.array([reference(*args, **kwargs)(t) for t in steps])
    with jax.enable_x64(True):
        ours = _jitted(ours_fn(*args, **kwargs), steps)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-14 * np.max(np.abs(expected)))


def test_sgdr_optax_limits_bit_for_bit():
    """Optax's SGDR test (three cycles of 2000, 3000, 5000 steps with a 500-step warmup), at its checkpoints and
    around the restarts, bit for bit; float64 to 1e-12."""
    steps = [0, 1, 250, 499, 500, 501, 1999, 2000, 2001, 2500, 4999, 5000, 5500, 9999, 10000, 12345]
    ours = _jitted(sgdr_schedule(SGDR_CYCLES), steps)
    np.testing.assert_array_equal(ours, _jitted(optax.sgdr_schedule(SGDR_CYCLES), steps))
    np.testing.assert_array_equal(ours[[4, 9, 12]], np.array([1.6, 0.8, 0.4], np.float32))
    with jax.enable_x64(True):
        ours64 = _jitted(sgdr_schedule(SGDR_CYCLES), steps)
    np.testing.assert_allclose(ours64, [_sgdr(SGDR_CYCLES)(t) for t in steps], rtol=1e-12, atol=1e-14)


def test_join_schedules_bit_for_bit():
    """Optax's join test (constants 1, 2, 1 at boundaries 3, 6), and a join of unlike schedules whose later parts
    count from their boundary: bit for bit with optax.join_schedules of Optax's own schedules."""
    steps = list(range(-2, 40))
    ours = join_schedules([constant_schedule(1.0), constant_schedule(2.0), constant_schedule(1.0)], [3, 6])
    assert [float(ours(t)) for t in range(8)] == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 1.0, 1.0]
    parts = [(linear_schedule, (0.0, 1.0, 7)), (exponential_decay, (1.0, 3, 0.7)), (cosine_decay_schedule, (0.5, 9))]
    theirs_parts = [optax.linear_schedule(0.0, 1.0, 7), optax.exponential_decay(1.0, 3, 0.7)]
    theirs_parts.append(optax.cosine_decay_schedule(0.5, 9))
    ours = _jitted(join_schedules([f(*a) for f, a in parts], [7, 20]), steps)
    np.testing.assert_array_equal(ours, _jitted(optax.join_schedules(theirs_parts, [7, 20]), steps))
    # A boundary that counts from the start: the exponential decay starts again at step 7 with its init value.
    assert ours[steps.index(7)] == 1.0 and ours[steps.index(20)] == np.float32(0.5)
    # Optax's own schedules joined by adamlab's join: the same values.
    np.testing.assert_array_equal(_jitted(join_schedules(theirs_parts, [7, 20]), steps), ours)


@pytest.mark.parametrize("power", [0.5, 0.25])
@pytest.mark.parametrize("transition_steps", [10, 1000])
def test_polynomial_holds_end_value_where_optax_is_nan(power, transition_steps):
    """Under jit, Optax's polynomial schedule with a fractional power is NaN at and past the end for these lengths
    (XLA's ``c * (1 / T)`` leaves ``1 - c / T`` at -1.5e-8, and ``(-1.5e-8) ** power`` is NaN); adamlab's holds
    end_value."""
    steps = [transition_steps - 1, transition_steps, transition_steps + 1, 10 * transition_steps]
    theirs = _jitted(optax.polynomial_schedule(1.0, 0.01, power, transition_steps), steps)
    ours = _jitted(polynomial_schedule(1.0, 0.01, power, transition_steps), steps)
    assert np.isnan(theirs[1:]).all()  # the Optax bug this guards against; it would fail if Optax fixed it
    np.testing.assert_array_equal(ours[1:], np.float32(0.01))
    assert ours[0] == theirs[0] and ours[0] > 0.01


@pytest.mark.parametrize("power", [0.5, 0.25])
def test_polynomial_holds_end_value_where_optax_is_off(power):
    """With 100 steps Optax's ``1 - c / T`` ends at +2.2e-8 instead: under a fractional power its value past the end
    is 1.5% (power 0.5) to 120% (power 0.25) above end_value; adamlab's is end_value."""
    steps = [99, 100, 101, 1000]
    theirs = _jitted(optax.polynomial_schedule(1.0, 0.01, power, 100), steps)
    ours = _jitted(polynomial_schedule(1.0, 0.01, power, 100), steps)
    assert (theirs[1:] > 0.0101).all()
    np.testing.assert_array_equal(ours[1:], np.float32(0.01))
    assert ours[0] == theirs[0]


def test_array_steps():
    """A schedule takes an array of steps (traced or not) and gives the value at each, as step by step."""
    steps = np.arange(-2, 40, dtype=np.int32)
    for name in ("polynomial_begin", "exponential_floor_staircase", "piecewise_cosine_odd", "warmup_cosine"):
        ours_fn, _, _, args, kwargs = CASES[name]
        schedule = ours_fn(*args, **kwargs)
        np.testing.assert_array_equal(jax.jit(schedule)(steps), _jitted(schedule, steps.tolist()), err_msg=name)
        assert schedule(steps.astype(np.float32)).shape == steps.shape


def test_huge_python_int_steps():
    """A Python int step beyond int32 (a run past 2**31 steps) gives the end value, where JAX cannot take it."""
    assert float(polynomial_schedule(1.0, 0.5, 2, 10)(2**40)) == 0.5
    assert float(exponential_decay(1.0, 10, 0.5, end_value=0.25)(2**40)) == 0.25
    assert float(piecewise_constant_schedule(1.0, {5: 0.5})(2**40)) == 0.5
    assert float(piecewise_interpolate_schedule("linear", 1.0, {5: 0.5})(2**40)) == 0.5
    assert float(sgdr_schedule(SGDR_SMALL)(2**40)) == 0.0


OPTAX_NAMED = [
    constant_schedule,
    cosine_decay_schedule,
    cosine_onecycle_schedule,
    exponential_decay,
    join_schedules,
    linear_onecycle_schedule,
    linear_schedule,
    piecewise_constant_schedule,
    piecewise_interpolate_schedule,
    polynomial_schedule,
    sgdr_schedule,
    warmup_constant_schedule,
    warmup_cosine_decay_schedule,
    warmup_exponential_decay_schedule,
]


@pytest.mark.parametrize("ours", OPTAX_NAMED, ids=lambda f: f.__name__)
def test_optax_signature(ours):
    """Optax's arguments, in Optax's order, with Optax's defaults (and the function under Optax's name, exported)."""
    theirs = getattr(optax, ours.__name__)
    described = [(p.name, p.kind, p.default) for p in inspect.signature(ours).parameters.values()]
    assert described == [(p.name, p.kind, p.default) for p in inspect.signature(theirs).parameters.values()]
    assert ours.__name__ in adamlab.schedules.__all__


def _untyped(fn: Any) -> Any:
    """`fn`, hidden from the type checker, for the calls below that pass a wrong type on purpose."""
    return fn


BAD = [
    (lambda: polynomial_schedule(-1.0, 0.0, 1, 10), ValueError, "init_value"),
    (lambda: polynomial_schedule(1.0, float("nan"), 1, 10), ValueError, "end_value"),
    (lambda: polynomial_schedule(1.0, 0.0, 0.0, 10), ValueError, "power"),
    (lambda: polynomial_schedule(1.0, 0.0, float("inf"), 10), ValueError, "power"),
    (lambda: _untyped(polynomial_schedule)(1.0, 0.0, 1, 10.0), ValueError, "transition_steps"),
    (lambda: polynomial_schedule(1.0, 0.0, 1, 10, -1), ValueError, "transition_begin"),
    (lambda: _untyped(linear_schedule)(1.0, 0.0, 10, 2.5), ValueError, "transition_begin"),
    (lambda: _untyped(linear_schedule)("1", 0.0, 10), TypeError, "init_value"),
    (lambda: warmup_constant_schedule(0.0, -1.0, 10), ValueError, "peak_value"),
    (lambda: exponential_decay(-1.0, 10, 0.5), ValueError, "init_value"),
    (lambda: exponential_decay(1.0, 10, -0.5), ValueError, "decay_rate"),
    (lambda: exponential_decay(1.0, 10, float("inf")), ValueError, "decay_rate"),
    (lambda: _untyped(exponential_decay)(1.0, 10, np.zeros(2)), TypeError, "decay_rate"),
    (lambda: _untyped(exponential_decay)(1.0, 1.5, 0.5), ValueError, "transition_steps"),
    (lambda: exponential_decay(1.0, 10, 0.5, -1), ValueError, "transition_begin"),
    (lambda: _untyped(exponential_decay)(1.0, 10, 0.5, staircase=1), TypeError, "staircase"),
    (lambda: exponential_decay(1.0, 10, 0.5, end_value=float("inf")), ValueError, "end_value"),
    (lambda: _untyped(exponential_decay)(1.0, 10, 0.5, end_value="0.1"), TypeError, "end_value"),
    (lambda: piecewise_constant_schedule(-0.1, {3: 2.0}), ValueError, "init_value"),
    (lambda: piecewise_constant_schedule(0.1, {3: -2.0}), ValueError, "scale"),
    (lambda: _untyped(piecewise_constant_schedule)(0.1, {3.0: 2.0}), ValueError, "step"),
    (lambda: piecewise_constant_schedule(0.1, {-3: 2.0}), ValueError, "step"),
    (lambda: _untyped(piecewise_constant_schedule)(0.1, [(3, 2.0)]), TypeError, "boundaries_and_scales"),
    (lambda: piecewise_interpolate_schedule("linar", 13.0), ValueError, "interpolate_type"),
    (lambda: _untyped(piecewise_interpolate_schedule)(None, 13.0), ValueError, "interpolate_type"),
    (lambda: piecewise_interpolate_schedule("linear", 13.0, {5: -3}), ValueError, "scale"),
    (lambda: piecewise_interpolate_schedule("cosine", 13.0, {5: float("nan")}), ValueError, "scale"),
    (lambda: piecewise_interpolate_schedule("cosine", -13.0, {5: 3}), ValueError, "init_value"),
    (lambda: linear_onecycle_schedule(0, 5.0), ValueError, "transition_steps"),
    (lambda: cosine_onecycle_schedule(0, 5.0), ValueError, "transition_steps"),
    (lambda: cosine_onecycle_schedule(10, -5.0), ValueError, "peak_value"),
    (lambda: cosine_onecycle_schedule(10, 5.0, pct_start=1.5), ValueError, "pct_start"),
    (lambda: linear_onecycle_schedule(10, 5.0, pct_start=0.5, pct_final=0.4), ValueError, "pct_final"),
    (lambda: linear_onecycle_schedule(10, 5.0, div_factor=0.0), ValueError, "div_factor"),
    (lambda: cosine_onecycle_schedule(10, 5.0, final_div_factor=-1.0), ValueError, "final_div_factor"),
    (lambda: warmup_cosine_decay_schedule(0.2, 1.2, 10, 10), ValueError, "decay_steps"),
    (lambda: warmup_cosine_decay_schedule(0.2, -1.2, 10, 20), ValueError, "peak_value"),
    (lambda: warmup_cosine_decay_schedule(-0.2, 1.2, 10, 20), ValueError, "init_value"),
    (lambda: warmup_cosine_decay_schedule(0.2, 1.2, -1, 20), ValueError, "warmup_steps"),
    (lambda: warmup_cosine_decay_schedule(0.2, 1.2, 1, 20, end_value=float("nan")), ValueError, "end_value"),
    (lambda: warmup_exponential_decay_schedule(0.0, 1.0, -1, 10, 0.5), ValueError, "warmup_steps"),
    (lambda: warmup_exponential_decay_schedule(0.0, 1.0, 5, 10, -0.5), ValueError, "decay_rate"),
    (lambda: warmup_exponential_decay_schedule(0.0, -1.0, 5, 10, 0.5), ValueError, "peak_value"),
    (lambda: cosine_decay_schedule(1.0, 0), ValueError, "decay_steps"),
    (lambda: constant_schedule(-1.0), ValueError, "value"),
    (lambda: join_schedules([], []), ValueError, "schedules"),
    (lambda: _untyped(join_schedules)([constant_schedule(1.0), 2.0], [3]), TypeError, r"schedules\[1\]"),
    (lambda: _untyped(join_schedules)([constant_schedule(1.0), lambda a, b: a], [3]), TypeError, r"schedules\[1\]"),
    (lambda: join_schedules([constant_schedule(1.0)] * 2, []), ValueError, "boundaries"),
    (lambda: join_schedules([constant_schedule(1.0)] * 2, [3, 4]), ValueError, "boundaries"),
    (lambda: join_schedules([constant_schedule(1.0)] * 3, [5, 4]), ValueError, "non-decreasing"),
    (lambda: _untyped(join_schedules)([constant_schedule(1.0)] * 2, [2.5]), ValueError, r"boundaries\[0\]"),
    (lambda: sgdr_schedule([]), ValueError, "cosine_kwargs"),
    (lambda: sgdr_schedule([{"init_value": 0.0, "peak_value": 1.0, "warmup_steps": 2}]), ValueError, "decay_steps"),
    (lambda: _untyped(sgdr_schedule)([SGDR_SMALL[0], 3]), TypeError, r"cosine_kwargs\[1\]"),
    (lambda: sgdr_schedule([SGDR_SMALL[0], {**SGDR_SMALL[1], "decay_steps": 0}]), ValueError, r"\[1\]"),
]


@pytest.mark.parametrize("make,error,match", BAD)
def test_bad_arguments_raise(make, error, match):
    with pytest.raises(error, match=match):
        make()
