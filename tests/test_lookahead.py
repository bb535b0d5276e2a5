"""Lookahead (`adamlab.slow_weights`): against ``optax.lookahead`` (final fast and slow params), against a float64
NumPy transcription of the paper's Algorithm 1 around SGD, the state reset, Optax's params type, and the checks."""

from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import STEPS, as_dict, mixed_params

import adamlab
from adamlab import testing
from adamlab.slow_weights import LookaheadParams, LookaheadState, lookahead

REF_RTOL = 1e-5


@pytest.fixture(scope="module")
def stream():
    return testing.gradient_stream(mixed_params(), STEPS, seed=1)


def cases():
    return {
        "adam": (lookahead(adamlab.adam(1e-3), 5, 0.5), optax.lookahead(optax.adam(1e-3), 5, 0.5)),
        "adamw_reset_state": (
            lookahead(adamlab.adamw(1e-3, weight_decay=0.1), 6, 0.3, reset_state=True),
            optax.lookahead(optax.adamw(1e-3, weight_decay=0.1), 6, 0.3, reset_state=True),
        ),
        "sgd_momentum_every_step": (
            lookahead(adamlab.sgd(1e-2, momentum=0.9), 1, 0.8),
            optax.lookahead(optax.sgd(1e-2, momentum=0.9), 1, 0.8),
        ),
    }


@pytest.mark.parametrize("name", sorted(cases()))
def test_matches_optax_bitwise_under_jit(name, stream):
    """Both the fast and the slow params (the two halves of the LookaheadParams) are bit-identical."""
    ours, theirs = cases()[name]
    params = optax.LookaheadParams.init_synced(mixed_params())
    report = testing.compare(ours, theirs, params, grads=stream, rtol=0.0, jit=True)
    assert report.max_rel == 0.0, str(report)
    assert {e.path.split("[")[0] for e in report.leaves} == {".fast", ".slow"}


def lookahead_sgd_reference(params, grads, lr, k, alpha):
    """Zhang et al.'s Algorithm 1 with SGD as the inner optimizer, float64: k fast steps, then the slow step."""
    slow = {n: np.asarray(v, np.float64) for n, v in params.items()}
    fast = {n: v.copy() for n, v in slow.items()}
    steps = next(iter(grads.values())).shape[0]
    for i in range(steps):
        for n in fast:
            fast[n] = fast[n] - lr * np.asarray(grads[n][i], np.float64)
        if (i + 1) % k == 0:
            for n in fast:
                slow[n] = slow[n] + alpha * (fast[n] - slow[n])
                fast[n] = slow[n].copy()
    return fast, slow


def test_matches_the_float64_reference(stream):
    """299 steps: the last synchronization is at step 295, so the fast weights have moved since."""
    grads = jax.tree.map(lambda g: g[:299], stream)
    tx = lookahead(adamlab.sgd(1e-2), 5, 0.5)
    final = cast(LookaheadParams, testing.run(tx, LookaheadParams.init_synced(mixed_params()), grads))
    fast, slow = lookahead_sgd_reference(as_dict(mixed_params()), as_dict(grads), 1e-2, 5, 0.5)
    for got, expected in ((final.fast, fast), (final.slow, slow)):
        errors = testing.compare_trees(as_dict(got), expected)
        assert max(e.max_rel for e in errors) <= REF_RTOL, errors
    assert max(e.max_abs for e in testing.compare_trees(as_dict(final.fast), slow)) > 1e-3


def test_adamlab_params_run_in_an_optax_loop():
    """adamlab's LookaheadParams with optax.apply_updates; the updates come back in the params' own type."""
    tx = lookahead(adamlab.sgd(0.5), sync_period=2, slow_step_size=0.5)
    params = LookaheadParams.init_synced({"w": jnp.array([4.0])})
    state = tx.init(params)
    for _ in range(2):
        updates, state = tx.update(params.fast, state, params)
        assert type(updates) is LookaheadParams
        params = cast(LookaheadParams, optax.apply_updates(params, updates))
    assert isinstance(params, LookaheadParams) and isinstance(state, LookaheadState)
    np.testing.assert_array_equal(params.fast["w"], [2.5])  # 4 -> 2 -> 1, then slow 4 + 0.5 * (1 - 4)
    np.testing.assert_array_equal(params.slow["w"], [2.5])
    assert int(state.steps_since_sync) == 0


def test_reset_state_restarts_the_fast_optimizer_after_each_sync():
    params = LookaheadParams.init_synced({"w": jnp.ones(3)})
    grads = {"w": jnp.array([1.0, -2.0, 0.5])}
    tx = lookahead(adamlab.adam(0.1), 3, 0.5, reset_state=True)
    fresh = adamlab.adam(0.1).init(params.fast)
    state = tx.init(params)
    for step in range(1, 7):
        updates, state = tx.update(grads, state, params)
        params = adamlab.apply_updates(params, updates)
        if step % 3 == 0:
            testing.assert_bitwise_equal(state.fast_state, fresh)
        else:
            assert int(state.fast_state[1].count) == step % 3


def test_init_takes_the_fast_params_alone():
    params = mixed_params()
    a = lookahead(adamlab.adam(1e-3), 5, 0.5).init(params)
    b = lookahead(adamlab.adam(1e-3), 5, 0.5).init(LookaheadParams.init_synced(params))
    testing.assert_bitwise_equal(a, b)


@pytest.mark.parametrize(
    "kw, error, name",
    [
        (dict(sync_period=0), ValueError, "sync_period"),
        (dict(sync_period=2.5), TypeError, "sync_period"),
        (dict(slow_step_size=1.5), ValueError, "slow_step_size"),
        (dict(slow_step_size=-0.1), ValueError, "slow_step_size"),
        (dict(slow_step_size="half"), TypeError, "slow_step_size"),
        (dict(reset_state=1), TypeError, "reset_state"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter(kw, error, name):
    args = dict(fast_optimizer=adamlab.sgd(0.1), sync_period=5, slow_step_size=0.5) | kw
    with pytest.raises(error, match=name):
        lookahead(**args)


def test_update_needs_the_pair_of_params():
    tx = lookahead(adamlab.sgd(0.1), 5, 0.5)
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    with pytest.raises(ValueError, match="LookaheadParams"):
        tx.update(params, state, params)
    with pytest.raises(TypeError, match="fast_optimizer"):
        lookahead(0.1, 5, 0.5)  # type: ignore[arg-type]
