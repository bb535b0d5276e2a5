"""Optax 0.2.8's tests of apply_updates (optax/_src/update_test.py), clipping
(optax/transforms/_clipping_test.py) and adding (optax/transforms/_adding_test.py), re-expressed for adamlab.
Inputs, step counts and tolerances are Optax's (its ``assert_trees_all_close`` defaults: rtol=1e-6, atol=0).

Mapping: optax.apply_updates -> adamlab.apply_updates; optax.clip_by_global_norm -> adamlab.clip_by_global_norm;
optax.tree.norm -> adamlab.global_norm; optax.add_decayed_weights(wd, mask) -> both of adamlab's weight decays,
add_coupled_weight_decay and add_decoupled_weight_decay: each returns ``u + wd * p`` (no learning rate), they
differ only in where a chain lets them stand (before / after the moments), so standalone both are Optax's.

Not ported: adamlab has no such function:
- update_test.py: UpdateTest.test_incremental_update, UpdateTest.test_periodic_update,
  UpdateTest.test_none_argument[incremental_update] (incremental_update, periodic_update).
- _clipping_test.py: ClippingTest.test_clip (elementwise clip), test_clip_by_block_rms (clip_by_block_rms),
  test_adaptive_grad_clip, test_adaptive_grad_clip_with_axis, test_adaptive_grad_clip_default_axis_conv3d
  (adaptive_grad_clip), test_unitwise_norm_with_axis (unitwise_norm), test_per_example_global_norm_clip
  (per_example_global_norm_clip), test_per_example_layer_norm_clip (per_example_layer_norm_clip).
- _adding_test.py: AddingTest.test_add_noise_has_correct_variance_scaling (add_noise).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamlab

STEPS = 50

WEIGHT_DECAYS = [
    pytest.param(adamlab.add_coupled_weight_decay, id="coupled"),
    pytest.param(adamlab.add_decoupled_weight_decay, id="decoupled"),
]


def _assert_close(actual, expected, rtol=1e-6, atol=0.0):
    """Optax's test_utils.assert_trees_all_close: same structure, then np.testing.assert_allclose leaf by leaf."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------------------- apply_updates


def test_apply_updates():
    """From optax/_src/update_test.py::UpdateTest.test_apply_updates (under jax.jit, as in Optax)."""
    params = ({"a": jnp.ones((3, 2))}, jnp.ones((1,)))
    grads = jax.tree.map(lambda t: 2 * t, params)
    exp_params = jax.tree.map(lambda t: 3 * t, params)
    new_params = jax.jit(adamlab.apply_updates)(params, grads)
    _assert_close(exp_params, new_params, atol=1e-10, rtol=1e-5)


def test_apply_updates_mixed_precision():
    """From optax/_src/update_test.py::UpdateTest.test_apply_updates_mixed_precision: bfloat16 params plus float32
    updates stay bfloat16 (under jax.jit, as in Optax)."""
    params = (
        {"a": jnp.ones((3, 2), dtype=jnp.bfloat16)},
        jnp.ones((1,), dtype=jnp.bfloat16),
    )
    grads = jax.tree.map(lambda t: (2 * t).astype(jnp.float32), params)
    new_params = jax.jit(adamlab.apply_updates)(params, grads)
    for leaf in jax.tree.leaves(new_params):
        assert leaf.dtype == jnp.bfloat16


def test_apply_updates_none_argument():
    """From optax/_src/update_test.py::UpdateTest.test_none_argument (case apply_updates)."""
    x = jnp.array([1.0, 2.0, 3.0])
    adamlab.apply_updates(None, x)


# ------------------------------------------------------------------------------------------------------- clipping


def test_clip_by_global_norm():
    """From optax/transforms/_clipping_test.py::ClippingTest.test_clip_by_global_norm (eager, as in Optax; adamlab
    runs the eager update through its own cached jax.jit)."""
    per_step_updates = (jnp.array([500.0, 5.0]), jnp.array([300.0, 3.0]))
    updates = per_step_updates
    for i in range(1, STEPS + 1):
        clipper = adamlab.clip_by_global_norm(1.0 / i)
        # Check that the clipper actually works and global norm is <= max_norm
        updates, _ = clipper.update(updates, None)
        assert round(float(adamlab.global_norm(updates)) - 1.0 / i, 6) == 0  # assertAlmostEqual(places=6)
        # Check that continuously clipping won't cause numerical issues.
        updates_step, _ = clipper.update(per_step_updates, None)
        _assert_close(updates, updates_step)


# --------------------------------------------------------------------------------------------------------- adding


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_add_decayed_weights(weight_decay):
    """From optax/transforms/_adding_test.py::AddingTest.test_add_decayed_weights, with optax.add_decayed_weights
    replaced by each of adamlab's weight decays (update jitted, as in Optax)."""
    # The mask is a pytree of bools: decay the first two terms, not the last.
    mask = (True, {"a": True, "b": False})
    tx = weight_decay(0.1, mask=mask)
    updates = (
        jnp.zeros((2,), dtype=jnp.float32),
        {"a": jnp.zeros((2,), dtype=jnp.float32), "b": jnp.zeros((2,), dtype=jnp.float32)},
    )
    weights = (
        jnp.ones((2,), dtype=jnp.float32),
        {"a": jnp.ones((2,), dtype=jnp.float32), "b": jnp.ones((2,), dtype=jnp.float32)},
    )
    expected_tx_updates = (
        0.1 * jnp.ones((2,), dtype=jnp.float32),
        {"a": 0.1 * jnp.ones((2,), dtype=jnp.float32), "b": jnp.zeros((2,), dtype=jnp.float32)},
    )
    state = tx.init(weights)
    transform_fn = jax.jit(tx.update)
    new_updates, _ = transform_fn(updates, state, weights)
    _assert_close(new_updates, expected_tx_updates)


@pytest.mark.parametrize("weight_decay", WEIGHT_DECAYS)
def test_add_decayed_weights_none_argument(weight_decay):
    """From optax/transforms/_adding_test.py::AddingTest.test_none_argument, with optax.add_decayed_weights
    replaced by each of adamlab's weight decays."""
    weights = (
        jnp.ones((2,), dtype=jnp.float32),
        {"a": jnp.ones((2,), dtype=jnp.float32), "b": jnp.ones((2,), dtype=jnp.float32)},
    )
    tf = weight_decay(0.1, mask=None)
    tf.update(None, 0, weights)
