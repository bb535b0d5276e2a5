"""Long runs: counters saturate at the int32 maximum, bias correction stays exact and finite, schedules see the
right step. Reaching 2**31 steps is done by setting the counters, not by stepping."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import mixed_params

import adamlab
from adamlab import numerics, testing
from adamlab.moments import bias_correction_term

INT32_MAX = 2**31 - 1


def set_counters(state, value: int):
    """Every int32 scalar in the state is a step counter: set them all."""
    return jax.tree.map(lambda x: jnp.asarray(value, jnp.int32) if x.dtype == jnp.int32 and x.ndim == 0 else x, state)


def counters(state) -> list[int]:
    return [int(x) for x in jax.tree.leaves(state) if x.dtype == jnp.int32 and x.ndim == 0]


@pytest.mark.parametrize(
    "tx",
    [
        adamlab.adamw(adamlab.schedules.warmup_cosine_decay(0.0, 1e-3, 10, 100), weight_decay=0.1),
        adamlab.rmsprop(1e-3, centered=True, bias_correction=True),
        numerics.skip_nonfinite(adamlab.adam(1e-3, state_dtype=jnp.bfloat16)),
    ],
    ids=["adamw_schedule", "rmsprop_centered_bc", "skip_adam_bf16_state"],
)
def test_counters_saturate_instead_of_wrapping(tx):
    params = mixed_params()
    grads = jax.tree.map(jnp.ones_like, params)
    state = set_counters(tx.init(params), INT32_MAX - 1)
    step = jax.jit(tx.update)
    for _ in range(3):
        updates, state = step(grads, state, params)
        inner = counters(getattr(state, "inner_state", state))
        assert inner and all(c == INT32_MAX for c in inner), counters(state)
        assert bool(numerics.all_finite(updates)) and bool(numerics.all_finite(state))
    # a wrapped counter would be negative: decay**negative is huge and the step would blow up
    assert all(c >= 0 for c in counters(state))


def test_skip_nonfinite_counters_saturate():
    params = {"w": jnp.ones(2)}
    tx = numerics.skip_nonfinite(adamlab.sgd(0.1), max_consecutive=None)
    state = set_counters(tx.init(params), INT32_MAX - 1)
    for _ in range(2):
        _, state = tx.update({"w": jnp.asarray([np.nan, 1.0])}, state, params)
    assert (int(state.skipped), int(state.consecutive)) == (INT32_MAX, INT32_MAX)


@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9, 0.999, 0.9999, 1 - 2**-24])
def test_bias_correction_exact_at_step_one_and_finite_forever(decay):
    d = np.float32(decay)
    assert float(bias_correction_term(decay, jnp.asarray(1, jnp.int32))) == np.float32(1) - d  # exact (Sterbenz)
    steps = [1, 2, 10, 1000, 10**6, 10**9, INT32_MAX]
    terms = np.asarray([float(bias_correction_term(decay, jnp.asarray(t, jnp.int32))) for t in steps])
    assert np.all(np.isfinite(terms)) and np.all(terms > 0) and np.all(terms <= 1)
    assert np.all(np.diff(terms) >= 0)  # 1 - decay**t only grows
    # float32 pow is good to about an ulp of 1 (6e-8) in decay**t; relative to 1 - decay**t that is more when
    # decay is near 1 and t small (the moments docstring quantifies it)
    np.testing.assert_allclose(terms, 1 - np.float64(d) ** np.asarray(steps, np.float64), rtol=1e-6, atol=2.4e-7)
    if decay < 0.9999:
        assert terms[steps.index(10**9)] == 1.0  # decay**1e9 underflows: no correction left, exactly


def test_adam_at_step_a_billion_is_adam_without_bias_correction():
    """At t = 1e9 both corrections are exactly 1: the update is -lr * m / (sqrt(v) + eps) on the stored moments."""
    params = {"w": jnp.asarray([0.3, -1.2, 2.0])}
    g = {"w": jnp.asarray([0.5, -0.25, 4.0])}
    tx = adamlab.adam(1e-3)
    state = tx.init(params)
    m, v = jnp.asarray([0.1, 0.2, -0.3]), jnp.asarray([0.04, 0.5, 1.0])
    state = set_counters(
        (state[0]._replace(moment={"w": m}), state[1], state[2]._replace(second_moment={"w": v}), *state[3:]), 10**9 - 1
    )
    updates, state = jax.jit(tx.update)(g, state, params)
    m1 = 0.1 * g["w"] + 0.9 * m
    v1 = 0.001 * g["w"] ** 2 + 0.999 * v
    np.testing.assert_allclose(updates["w"], -1e-3 * m1 / (jnp.sqrt(v1) + 1e-8), rtol=1e-6)
    assert counters(state) == [10**9, 10**9]


def test_schedules_are_evaluated_at_the_step_count():
    """Step k uses schedule(k): step 0 uses schedule(0), as in Optax, also after 1e9 steps."""
    seen = lambda step: 1.0 + (step % 1000).astype(jnp.float32)  # the learning rate tells the step it was given
    tx = adamlab.sgd(seen)
    params = {"w": jnp.zeros(())}
    g = {"w": jnp.ones(())}
    state = tx.init(params)
    for k in range(4):
        u, state = tx.update(g, state, params)
        assert float(u["w"]) == -(1.0 + k)
    u, _ = tx.update(g, set_counters(state, 10**9), params)
    assert float(u["w"]) == -1.0  # schedule(10**9), not schedule(10**9 + 1)
    # and in AdamW: a warmup from 0 makes the first step exactly 0, as in Optax; were the schedule one step off,
    # the runs would part by far more than the 1e-6 that the schedules' own arithmetic accounts for
    ours = adamlab.adamw(adamlab.schedules.warmup_cosine_decay(0.0, 1e-2, 5, 50))
    theirs = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 1e-2, 5, 50), weight_decay=1e-4)
    params = mixed_params()
    stream = testing.gradient_stream(params, 8, seed=7)
    first, _ = ours.update(jax.tree.map(lambda x: x[0], stream), ours.init(params), params)
    assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(first))
    assert testing.compare(ours, theirs, params, grads=stream).max_rel <= 1e-6
    shifted = adamlab.adamw(lambda step: adamlab.schedules.warmup_cosine_decay(0.0, 1e-2, 5, 50)(step + 1))
    assert testing.compare(shifted, theirs, params, grads=stream).max_rel > 1e-3
