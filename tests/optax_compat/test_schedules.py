"""Optax 0.2.8's schedule tests (optax/schedules/_schedule_test.py and _join_test.py), re-expressed for
adamlab.schedules.

Mapping: optax.constant_schedule -> constant, optax.linear_schedule (polynomial_schedule with power=1) ->
linear_warmup, optax.cosine_decay_schedule -> cosine_decay, optax.warmup_cosine_decay_schedule ->
warmup_cosine_decay; the schedules adamlab has under Optax's own names (polynomial_schedule, linear_schedule,
exponential_decay, piecewise_constant_schedule, piecewise_interpolate_schedule, linear_onecycle_schedule,
cosine_onecycle_schedule, sgdr_schedule, join_schedules) keep them. Inputs, expected values and tolerances are
Optax's. Not ported: PiecewiseConstantTest.test_negative (a negative init_value, which adamlab rejects: see
test_piecewise_constant_negative_init_value_raises).
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamlab
from adamlab import schedules
from adamlab.schedules import (
    constant_schedule,
    cosine_onecycle_schedule,
    exponential_decay,
    join_schedules,
    linear_onecycle_schedule,
    linear_schedule,
    piecewise_constant_schedule,
    piecewise_interpolate_schedule,
    polynomial_schedule,
    sgdr_schedule,
)


def _values(schedule, n):
    fn = jax.jit(schedule)
    return np.array([fn(step) for step in range(n)])


def test_constant():
    """From optax/schedules/_schedule_test.py::ConstantTest.test_constant."""
    expected = np.full(15, 10, dtype=np.float32)
    np.testing.assert_allclose(expected, _values(schedules.constant(10), 15), atol=1e-3)


def test_linear():
    """From optax/schedules/_schedule_test.py::PolynomialTest.test_linear (power=1, i.e. optax.linear_schedule)."""
    schedule = schedules.linear_warmup(init_value=10.0, end_value=20.0, transition_steps=10)
    expected = np.array(list(range(10, 20)) + [20] * 5, dtype=np.float32)
    np.testing.assert_allclose(expected, _values(schedule, 15), atol=1e-3)


@pytest.mark.parametrize("num_steps", [-1, 0])
def test_zero_steps_schedule(num_steps):
    """From optax/schedules/_schedule_test.py::PolynomialTest.test_zero_steps_schedule (power=1)."""
    schedule = jax.jit(schedules.linear_warmup(init_value=10.0, end_value=20.0, transition_steps=num_steps))
    for step in range(15):
        np.testing.assert_allclose(schedule(step), 10.0)


def test_linear_with_transition_begin():
    """From optax/schedules/_schedule_test.py::PolynomialTest.test_with_decay_begin, at power=1 (Optax's test uses
    power=2, which adamlab has no schedule for): init 30, end 10, 10 transition steps starting at step 4."""
    schedule = schedules.linear_warmup(init_value=30.0, end_value=10.0, transition_steps=10, transition_begin=4)
    expected = np.array([30.0] * 4 + [10.0 + 20.0 * (1.0 - n / 10) for n in range(10)] + [10] * 6, dtype=np.float32)
    np.testing.assert_allclose(expected, _values(schedule, 20), atol=1e-3)


def _half_cosine(fractions):
    return 0.5 + 0.5 * np.cos(np.pi * np.array(fractions))


def test_cosine_decay_count_smaller_count():
    """From optax/schedules/_schedule_test.py::CosineDecayTest.test_decay_count_smaller_count."""
    expected = 0.1 * _half_cosine([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    np.testing.assert_allclose(expected, _values(schedules.cosine_decay(0.1, 10, 0.0), 10), atol=1e-3)


FRACTIONS_5_OF_12 = [0.0, 0.2, 0.4, 0.6, 0.8] + [1.0] * 7


def test_cosine_decay_count_greater_count():
    """From optax/schedules/_schedule_test.py::CosineDecayTest.test_decay_count_greater_count."""
    expected = 0.1 * _half_cosine(FRACTIONS_5_OF_12)
    np.testing.assert_allclose(expected, _values(schedules.cosine_decay(0.1, 5, 0.0), 12), atol=1e-3)


def test_cosine_decay_count_greater_count_with_alpha():
    """From optax/schedules/_schedule_test.py::CosineDecayTest.test_decay_count_greater_count_with_alpha."""
    expected = 0.1 * (0.9 * _half_cosine(FRACTIONS_5_OF_12) + 0.1)
    np.testing.assert_allclose(expected, _values(schedules.cosine_decay(0.1, 5, 0.1), 12), atol=1e-3)


def test_cosine_decay_with_exponent():
    """From optax/schedules/_schedule_test.py::CosineDecayTest.test_with_exponent."""
    schedule = jax.jit(schedules.cosine_decay(init_value=0.1, decay_steps=100, alpha=0.0, exponent=2))
    np.testing.assert_allclose(
        schedule(np.array([0, 10, 50, 75, 100])),
        np.array([0.1, 0.09516553580760956, 0.025, 0.0021446612663567066, 0.0]),
        rtol=1e-6,
        atol=1e-8,
    )


def test_cosine_decay_with_giant_int_steps():
    """From optax/schedules/_schedule_test.py::CosineDecayTest.test_with_giant_int_steps (decay_steps=1e10)."""
    schedule = jax.jit(schedules.cosine_decay(init_value=1000.0, decay_steps=int(1e10), alpha=0.0, exponent=1))
    np.testing.assert_allclose(schedule(int(1e9)), 975.52826)


@pytest.mark.parametrize(
    "init_value,peak_value,end_value", [(10, 0.5, 1e-4), (5, 3, 0.0)], ids=["with_end_value", "without_end_value"]
)
def test_warmup_cosine_decay_limits(init_value, peak_value, end_value):
    """From optax/schedules/_schedule_test.py::WarmupCosineDecayTest.test_limits."""
    schedule = jax.jit(
        schedules.warmup_cosine_decay(
            init_value=init_value, peak_value=peak_value, warmup_steps=100, decay_steps=1000, end_value=end_value
        )
    )
    np.testing.assert_allclose(init_value, schedule(0))
    np.testing.assert_allclose(peak_value, schedule(100))
    np.testing.assert_allclose(end_value, schedule(1000), rtol=1e-3)


def test_warmup_cosine_decay_with_exponent():
    """From optax/schedules/_schedule_test.py::WarmupCosineDecayTest.test_with_exponent (negative end value)."""
    schedule = jax.jit(
        schedules.warmup_cosine_decay(
            init_value=0.2, peak_value=1.21, end_value=-3.0, warmup_steps=50, decay_steps=100, exponent=2
        )
    )
    np.testing.assert_allclose(
        schedule(np.array([0, 10, 50, 75, 100])),
        np.array([0.20000004768371582, 0.4020000100135803, 1.2100000381469727, -1.947500228881836, -3.000000238418579]),
        rtol=1e-6,
        atol=1e-8,
    )


def test_warmup_cosine_decay_zero_peak_value():
    """From optax/schedules/_schedule_test.py::WarmupCosineDecayTest.test_zero_peak_value."""
    schedule = jax.jit(
        schedules.warmup_cosine_decay(
            init_value=0.2, peak_value=0, end_value=-3.0, warmup_steps=50, decay_steps=100, exponent=2
        )
    )
    np.testing.assert_allclose(
        schedule(np.array([0, 10, 50, 75, 100])), np.array([0.2, 0.16, 0.0, 0.0, 0.0]), rtol=1e-6, atol=1e-8
    )


def test_warmup_cosine_decay_monotonicity_and_exponent_ordering():
    """From optax/schedules/_schedule_test.py::WarmupCosineDecayTest.test_monotonicity_and_exponent_ordering."""
    warmup_steps, decay_steps, peak, end = 5, 25, 1.0, 0.1
    common: dict[str, Any] = dict(
        init_value=0.0, peak_value=peak, warmup_steps=warmup_steps, decay_steps=decay_steps, end_value=end
    )
    steps = np.arange(decay_steps + 1)
    p1 = [float(v) for v in schedules.warmup_cosine_decay(**common, exponent=1.0)(steps)]
    p2 = [float(v) for v in schedules.warmup_cosine_decay(**common, exponent=2.0)(steps)]
    assert all(p1[t] < p1[t + 1] for t in range(warmup_steps))
    assert p1[warmup_steps] == pytest.approx(peak, abs=5e-7)
    assert all(p1[t] >= p1[t + 1] for t in range(warmup_steps, decay_steps))
    assert p1[-1] == pytest.approx(end, abs=5e-7)
    assert all(p2[t] <= p1[t] + 1e-12 for t in range(warmup_steps, decay_steps + 1))


def test_warmup_cosine_decay_raises_when_decay_equals_warmup():
    """From optax/schedules/_schedule_test.py::WarmupCosineDecayTest.test_raises_when_decay_equals_warmup."""
    with pytest.raises(ValueError):
        schedules.warmup_cosine_decay(init_value=0.2, peak_value=1.2, warmup_steps=10, decay_steps=10, end_value=0.0)


@pytest.mark.parametrize(
    "factory,kwargs",
    [
        (adamlab.adam, {}),
        (adamlab.adamw, {}),
        (adamlab.rmsprop, {}),
        (adamlab.rmsprop, {"momentum": 0.9}),
        (adamlab.sgd, {"momentum": 0.9}),
    ],
    ids=["adam", "adamw", "rmsprop", "rmsprop_momentum", "sgd_momentum"],
)
def test_schedule_as_learning_rate(factory, kwargs):
    """From optax/schedules/_schedule_test.py::ScheduleAsLearningRateTest.test_optimization: a constant schedule
    of 1e-3 as `learning_rate` gives the params a float 1e-3 gives, over 10 jitted steps on the parabola."""
    with_schedule = factory(learning_rate=schedules.constant(1e-3), **kwargs)
    with_float = factory(learning_rate=1e-3, **kwargs)
    target = jnp.array([1.0, -1.0, 1.0])
    objective = lambda p: jnp.sum((p - target) ** 2)

    def run(opt):
        @jax.jit
        def step(params, state):
            updates, state = opt.update(jax.grad(objective)(params), state, params)
            return adamlab.apply_updates(params, updates), state

        params = jnp.array([-1.0, 10.0, 1.0])
        state = opt.init(params)
        for _ in range(10):
            params, state = step(params, state)
        return params

    np.testing.assert_allclose(run(with_schedule), run(with_float), rtol=1e-6)


# ---- PolynomialTest, with adamlab's polynomial_schedule and linear_schedule --------------------------------------


@pytest.mark.parametrize("power_one", [False, True])
def test_polynomial_linear(power_one):
    """From optax/schedules/_schedule_test.py::PolynomialTest.test_linear (linear_schedule, and polynomial_schedule
    with power=1, as Optax's test builds it)."""
    schedule = polynomial_schedule(10.0, 20.0, 1, 10) if power_one else linear_schedule(10.0, 20.0, 10)
    expected = np.array(list(range(10, 20)) + [20] * 5, dtype=np.float32)
    np.testing.assert_allclose(expected, _values(schedule, 15), atol=1e-3)


@pytest.mark.parametrize("num_steps", [-1, 0])
def test_polynomial_zero_steps_schedule(num_steps):
    """From optax/schedules/_schedule_test.py::PolynomialTest.test_zero_steps_schedule."""
    schedule = jax.jit(polynomial_schedule(init_value=10.0, end_value=20.0, power=1, transition_steps=num_steps))
    for step in range(15):
        np.testing.assert_allclose(schedule(step), 10.0)


def test_polynomial_nonlinear():
    """From optax/schedules/_schedule_test.py::PolynomialTest.test_nonlinear."""
    schedule = polynomial_schedule(init_value=25.0, end_value=10.0, power=2, transition_steps=10)
    expected = np.array([10.0 + 15.0 * (1.0 - n / 10) ** 2 for n in range(10)] + [10] * 5, dtype=np.float32)
    np.testing.assert_allclose(expected, _values(schedule, 15), atol=1e-3)


def test_polynomial_with_decay_begin():
    """From optax/schedules/_schedule_test.py::PolynomialTest.test_with_decay_begin."""
    schedule = polynomial_schedule(init_value=30.0, end_value=10.0, power=2, transition_steps=10, transition_begin=4)
    expected = np.array(
        [30.0] * 4 + [10.0 + 20.0 * (1.0 - n / 10) ** 2 for n in range(10)] + [10] * 6, dtype=np.float32
    )
    np.testing.assert_allclose(expected, _values(schedule, 20), atol=1e-3)


# ---- PiecewiseConstantTest -------------------------------------------------------------------------------------


def test_piecewise_constant_positive():
    """From optax/schedules/_schedule_test.py::PiecewiseConstantTest.test_positive."""
    expected = np.array([0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(expected, _values(piecewise_constant_schedule(0.1, {3: 2.0, 6: 0.5}), 10), atol=1e-3)


def test_piecewise_constant_negative_init_value_raises():
    """In place of optax/schedules/_schedule_test.py::PiecewiseConstantTest.test_negative: adamlab's schedules take
    values >= 0 (Optax's gives the negated schedule)."""
    with pytest.raises(ValueError, match="init_value"):
        piecewise_constant_schedule(-0.1, {3: 2.0, 6: 0.5})


# ---- ExponentialTest -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_constant_schedule(staircase):
    """From optax/schedules/_schedule_test.py::ExponentialTest.test_constant_schedule (decay_rate=1)."""
    schedule = exponential_decay(init_value=1.0, transition_steps=15, decay_rate=1.0, staircase=staircase)
    np.testing.assert_allclose(np.ones(15, np.float32), _values(schedule, 15), atol=1e-3)


@pytest.mark.parametrize("staircase", [False, True])
@pytest.mark.parametrize("transition_steps", [-1, 0])
def test_exponential_nonvalid_transition_steps(staircase, transition_steps):
    """From optax/schedules/_schedule_test.py::ExponentialTest.test_nonvalid_transition_steps: a constant."""
    schedule = jax.jit(exponential_decay(1.0, transition_steps=transition_steps, decay_rate=1.0, staircase=staircase))
    for step in range(15):
        np.testing.assert_allclose(schedule(step), 1.0)


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_nonvalid_decay_rate(staircase):
    """From optax/schedules/_schedule_test.py::ExponentialTest.test_nonvalid_decay_rate (0: a constant)."""
    schedule = jax.jit(exponential_decay(1.0, transition_steps=2, decay_rate=0.0, staircase=staircase))
    for step in range(15):
        np.testing.assert_allclose(schedule(step), 1.0)


def _staircased(count, transition_steps, staircase):
    p = count / transition_steps
    return np.floor(p) if staircase else p


@pytest.mark.parametrize("staircase,transition_begin", [(False, 0), (True, 0), (False, 5), (True, 5)])
def test_exponential(staircase, transition_begin):
    """From optax/schedules/_schedule_test.py::ExponentialTest.test_exponential (decay_rate=2: growth)."""
    schedule = exponential_decay(
        init_value=1.0, transition_steps=2, decay_rate=2.0, transition_begin=transition_begin, staircase=staircase
    )
    expected = np.array(
        [1.0] * transition_begin + [np.power(2.0, _staircased(count, 2, staircase)) for count in range(15)],
        dtype=np.float32,
    )
    np.testing.assert_allclose(expected, _values(schedule, 15 + transition_begin), atol=1e-3)


@pytest.mark.parametrize(
    "decay_rate,end_value,staircase",
    [(0.2, 0.1, False), (1.0, 0.1, False), (2.0, 3.0, False), (0.2, 0.1, True), (1.0, 0.1, True), (2.0, 3.0, True)],
)
def test_exponential_end_value_with_staircase(decay_rate, end_value, staircase):
    """From optax/schedules/_schedule_test.py::ExponentialTest.test_end_value_with_staircase."""
    schedule = exponential_decay(
        init_value=1.0,
        transition_steps=2,
        decay_rate=decay_rate,
        transition_begin=3,
        staircase=staircase,
        end_value=end_value,
    )
    expected = np.array(
        [1.0] * 3 + [np.power(decay_rate, _staircased(count, 2, staircase)) for count in range(11)], dtype=np.float32
    )
    expected = np.maximum(expected, end_value) if decay_rate < 1.0 else np.minimum(expected, end_value)
    np.testing.assert_allclose(expected, _values(schedule, 14), atol=1e-3)


def test_exponential_immutable_count():
    """From optax/schedules/_schedule_test.py::ExponentialTest.test_immutable_count."""
    schedule = exponential_decay(init_value=32.0, transition_steps=1, decay_rate=0.5)
    np.testing.assert_allclose(np.array([32, 16, 8, 4, 2], dtype=np.float32), _values(schedule, 5), atol=1e-3)


# ---- SGDRTest --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lr0,lr1,lr2", [(1.6, 0.8, 0.4), (1.6, 1.6, 1.6)], ids=["with_step_decay", "without"])
def test_sgdr_limits(lr0, lr1, lr2):
    """From optax/schedules/_schedule_test.py::SGDRTest.test_limits."""
    cycles = [
        {"decay_steps": int(step), "peak_value": lr, "init_value": 0, "end_value": 0.0, "warmup_steps": 500}
        for step, lr in zip([2e3, 3e3, 5e3], [lr0, lr1, lr2])
    ]
    schedule = jax.jit(sgdr_schedule(cycles))
    np.testing.assert_allclose(lr0, schedule(500))
    np.testing.assert_allclose(lr1, schedule(2500))
    np.testing.assert_allclose(lr2, schedule(5500))


# ---- PiecewiseInterpolateTest ----------------------------------------------------------------------------------


def _listed(schedule, n):
    fn = jax.jit(schedule)
    return [fn(step) for step in range(n)]


def test_piecewise_interpolate_linear():
    """From optax/schedules/_schedule_test.py::PiecewiseInterpolateTest.test_linear_piecewise."""
    expected = [200.0, 220.0, 240.0, 260.0, 280.0, 300.0, 255.0, 210.0, 165.0, 120.0, 75.0, 75.0, 75.0]
    schedule = piecewise_interpolate_schedule("linear", 200.0, {5: 1.5, 10: 0.25})
    np.testing.assert_allclose(_listed(schedule, 13), expected, atol=1e-3)


def test_piecewise_interpolate_cosine():
    """From optax/schedules/_schedule_test.py::PiecewiseInterpolateTest.test_cos_piecewise."""
    expected = [400.0, 360.0, 280.0, 240.0, 264.0, 288.0, 288.0, 288.0, 288.0]
    schedule = piecewise_interpolate_schedule("cosine", 400.0, {5: 1.2, 3: 0.6, 7: 1.0})
    np.testing.assert_allclose(_listed(schedule, 9), expected, atol=1e-3)


def test_piecewise_interpolate_empty_dict():
    """From optax/schedules/_schedule_test.py::PiecewiseInterpolateTest.test_empty_dict."""
    np.testing.assert_allclose(_listed(piecewise_interpolate_schedule("linear", 13.0, {}), 5), [13.0] * 5, atol=1e-3)


def test_piecewise_interpolate_no_dict():
    """From optax/schedules/_schedule_test.py::PiecewiseInterpolateTest.test_no_dict."""
    np.testing.assert_allclose(_listed(piecewise_interpolate_schedule("cosine", 17.0), 3), [17.0] * 3, atol=1e-3)


@pytest.mark.parametrize("args", [("linar", 13.0), ("", 13.0, {5: 3.0}), (None, 13.0, {})])
def test_piecewise_interpolate_invalid_type(args):
    """From optax/schedules/_schedule_test.py::PiecewiseInterpolateTest.test_invalid_type."""
    with pytest.raises(ValueError):
        piecewise_interpolate_schedule(*args)


def test_piecewise_interpolate_invalid_scale():
    """From optax/schedules/_schedule_test.py::PiecewiseInterpolateTest.test_invalid_scale."""
    with pytest.raises(ValueError):
        piecewise_interpolate_schedule("linear", 13.0, {5: -3})


def test_piecewise_interpolate_zero_interval_size():
    """From optax/schedules/_schedule_test.py::PiecewiseInterpolateTest.test_zero_interval_size."""
    schedule = piecewise_interpolate_schedule("linear", 13.0, {0: 2.0, 5: 3.0})
    assert all(jnp.isfinite(schedule(i)) for i in range(6))
    assert float(schedule(0)) == pytest.approx(26.0)
    assert float(schedule(5)) == pytest.approx(78.0)


# ---- OneCycleTest ----------------------------------------------------------------------------------------------


def test_linear_onecycle():
    """From optax/schedules/_schedule_test.py::OneCycleTest.test_linear."""
    schedule = linear_onecycle_schedule(
        transition_steps=10, peak_value=1000, pct_start=0.3, pct_final=0.7, div_factor=10.0, final_div_factor=100.0
    )
    expected = [100.0, 400.0, 700.0, 1000.0, 775.0, 550.0, 325.0, 100.0, 67.0, 34.0, 1.0, 1.0]
    np.testing.assert_allclose(_listed(schedule, 12), expected, atol=1e-3)


def test_cosine_onecycle():
    """From optax/schedules/_schedule_test.py::OneCycleTest.test_cosine."""
    schedule = cosine_onecycle_schedule(
        transition_steps=5, peak_value=1000.0, pct_start=0.4, div_factor=10.0, final_div_factor=100.0
    )
    np.testing.assert_allclose(_listed(schedule, 7), [100.0, 550.0, 1000.0, 750.25, 250.75, 1.0, 1.0], atol=1e-3)


@pytest.mark.parametrize("make", [cosine_onecycle_schedule, linear_onecycle_schedule])
def test_onecycle_nonpositive_transition_steps(make):
    """From optax/schedules/_schedule_test.py::OneCycleTest.test_nonpositive_transition_steps."""
    with pytest.raises(ValueError):
        make(transition_steps=0, peak_value=5.0)


# ---- JoinTest (optax/schedules/_join_test.py) -------------------------------------------------------------------


def test_join_schedules():
    """From optax/schedules/_join_test.py::JoinTest.test_join_schedules."""
    schedule = join_schedules(
        schedules=[constant_schedule(1.0), constant_schedule(2.0), constant_schedule(1.0)], boundaries=[3, 6]
    )
    for step, expected in enumerate([1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 1.0]):
        np.testing.assert_allclose(expected, schedule(step), atol=0.0)
