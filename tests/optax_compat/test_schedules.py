"""Optax 0.2.8's schedule tests (optax/schedules/_schedule_test.py), re-expressed for adamlab.schedules.

Mapping: optax.constant_schedule -> constant, optax.linear_schedule (polynomial_schedule with power=1) ->
linear_warmup, optax.cosine_decay_schedule -> cosine_decay, optax.warmup_cosine_decay_schedule ->
warmup_cosine_decay. Inputs, expected values and tolerances are Optax's.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamlab
from adamlab import schedules


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
    common = dict(init_value=0.0, peak_value=peak, warmup_steps=warmup_steps, decay_steps=decay_steps, end_value=end)
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
