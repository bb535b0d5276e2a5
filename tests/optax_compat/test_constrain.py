"""Optax 0.2.8's tests of its constraints (optax/transforms/_constraining_test.py) and of gradient centralization
(optax/_src/transform_test.py::TransformTest.test_centralize), re-expressed for adamlab. Inputs, step counts and
tolerances are Optax's (its ``assert_trees_all_close`` defaults: rtol=1e-6, atol=0).

Mapping: optax.keep_params_nonnegative, optax.zero_nans, optax.ZeroNansState, optax.centralize -> the functions
and class of the same names in adamlab.gradients; trace(decay=0, nesterov=False) followed by scale(-LR) (Optax's
plain SGD) -> adamlab.sgd(LR), whose update is ``-LR * g`` too; optax.apply_updates -> adamlab.apply_updates.

Nothing of these tests is left out.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamlab
from adamlab.gradients import ZeroNansState, centralize, keep_params_nonnegative, zero_nans

LR = 1e-2


def _assert_close(actual, expected, rtol=1e-6, atol=0.0):
    """Optax's test_utils.assert_trees_all_close: same structure, then np.testing.assert_allclose leaf by leaf."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------------------------------- constraints


def test_keep_params_nonnegative():
    """From optax/transforms/_constraining_test.py::ConstraintsTest.test_keep_params_nonnegative."""
    grads = (jnp.array([500.0, -500.0, 0.0]), jnp.array([500.0, -500.0, 0.0]), jnp.array([500.0, -500.0, 0.0]))
    params = (jnp.array([-1.0, -1.0, -1.0]), jnp.array([1.0, 1.0, 1.0]), jnp.array([0.0, 0.0, 0.0]))

    # vanilla sgd
    opt = adamlab.sgd(LR)
    updates, _ = opt.update(grads, opt.init(params), params)
    new_params = adamlab.apply_updates(params, updates)
    _assert_close(
        new_params,
        (jnp.array([-6.0, 4.0, -1.0]), jnp.array([-4.0, 6.0, 1.0]), jnp.array([-5.0, 5.0, 0.0])),
    )

    # sgd with keeping parameters non-negative
    opt = adamlab.chain(adamlab.sgd(LR), keep_params_nonnegative())
    updates, _ = opt.update(grads, opt.init(params), params)
    new_params = adamlab.apply_updates(params, updates)
    _assert_close(
        new_params,
        (jnp.array([0.0, 4.0, 0.0]), jnp.array([0.0, 6.0, 1.0]), jnp.array([0.0, 5.0, 0.0])),
    )


def test_zero_nans():
    """From optax/transforms/_constraining_test.py::ConstraintsTest.test_zero_nans (init and update jitted, as in
    Optax)."""
    params = (jnp.zeros([3]), jnp.zeros([3]), jnp.zeros([3]))
    opt = zero_nans()
    opt_state = jax.jit(opt.init)(params)
    update_fn = jax.jit(opt.update)
    _assert_close(opt_state, ZeroNansState((jnp.array(False),) * 3))

    # An update with nans
    grads_with_nans = (
        jnp.ones([3]),
        jnp.array([1.0, float("nan"), float("nan")]),
        jnp.array([float("nan"), 1.0, 1.0]),
    )
    updates, opt_state = update_fn(grads_with_nans, opt_state)
    _assert_close(opt_state, ZeroNansState((jnp.array(False), jnp.array(True), jnp.array(True))))
    _assert_close(updates, (jnp.ones([3]), jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 1.0])))

    # An update with nans and infs
    grads_with_nans_infs = (
        jnp.ones([3]),
        jnp.array([1.0, float("nan"), float("nan")]),
        jnp.array([float("inf"), 1.0, 1.0]),
    )
    updates, opt_state = update_fn(grads_with_nans_infs, opt_state)
    _assert_close(opt_state, ZeroNansState((jnp.array(False), jnp.array(True), jnp.array(False))))
    _assert_close(updates, (jnp.ones([3]), jnp.array([1.0, 0.0, 0.0]), jnp.array([float("inf"), 1.0, 1.0])))

    # An update with only good values
    grads = (jnp.ones([3]), jnp.ones([3]), jnp.ones([3]))
    updates, opt_state = update_fn(grads, opt_state)
    _assert_close(opt_state, ZeroNansState((jnp.array(False), jnp.array(False), jnp.array(False))))
    _assert_close(updates, grads)


def test_none_arguments():
    """From optax/transforms/_constraining_test.py::ConstraintsTest.test_none_arguments."""
    tf = keep_params_nonnegative()
    state = tf.init(jnp.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError):
        tf.update(jnp.array([1.0, 2.0, 3.0]), state, None)


# ---------------------------------------------------------------------------------------------------- centralize


@pytest.mark.parametrize(
    "inputs, outputs",
    [
        pytest.param([1.0, 2.0], [1.0, 2.0], id="1d"),
        pytest.param([[1.0, 2.0], [3.0, 4.0]], [[-0.5, 0.5], [-0.5, 0.5]], id="2d"),
        pytest.param(
            [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]],
            [[[-1.5, -0.5], [0.5, 1.5]], [[-1.5, -0.5], [0.5, 1.5]]],
            id="3d",
        ),
    ],
)
def test_centralize(inputs, outputs):
    """From optax/_src/transform_test.py::TransformTest.test_centralize."""
    inputs = jnp.asarray(inputs)
    outputs = jnp.asarray(outputs)
    centralizer = centralize()
    centralized_inputs, _ = centralizer.update(inputs, {})
    _assert_close(centralized_inputs, outputs)
