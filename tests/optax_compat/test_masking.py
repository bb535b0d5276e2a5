"""Optax 0.2.8's masking tests (optax/transforms/_masking_test.py) not already in test_combining.py, re-expressed
for adamlab: map_params over a masked custom transformation, nested masks, the masked state's layout, and callable
pytrees as masks. Inputs are Optax's.

adamlab.masked allocates no state for masked-out leaves: the inner transformation sees the tree with each of them
replaced by an empty `adamlab.groups.Cut` node (Optax: a `MaskedNode`, one per masked-out *prefix*).
docs/guides/groups.md: "Each group's state holds moments for its own leaves only"; "`adamlab.masked(tx, mask)` runs
`tx` on the masked-in leaves only (the others' updates pass through)".

Not ported: MaskedTest.test_tree_map_params subtest 'inner' (optax.tree.map_params on an Optax transformation, no
adamlab in it); test_mask_compatible_callable_pytree's subtest on Optax's private ``_masking._mask_callable`` is
ported against adamlab's private counterpart, ``adamlab._checks.is_function``.
"""

import copy
import dataclasses

import jax
import jax.numpy as jnp
import optax
import pytest

import adamlab
from adamlab import _checks
from adamlab.groups import Cut, MaskedState

SGD_BUILDERS = {"sgd": lambda: adamlab.sgd(1.0), "stateful_sgd": lambda: adamlab.sgd(1.0, momentum=0.0)}


def _assert_trees_equal(actual, expected):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        assert jnp.shape(a) == jnp.shape(b) and bool(jnp.all(jnp.asarray(a) == jnp.asarray(b)))


def _assert_trees_close(actual, expected, rtol=1e-6):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        assert jnp.shape(a) == jnp.shape(b) and bool(jnp.allclose(a, b, rtol=rtol))


# ---------------------------------------------------------------------------------------------- tree.map_params


def _tree_map_params_setup():
    params = {
        "a": {"b": (jnp.zeros((1, 2)), jnp.zeros((2, 2)))},
        "c": {"d": jnp.zeros((1, 2)), "e": (jnp.zeros((1, 2)), jnp.zeros((1, 2)))},
    }
    mask = {"a": {"b": (True, False)}, "c": {"d": True, "e": (False, True)}}
    expected = {
        "a": {"b": (jnp.ones((1, 2)), jnp.zeros((2, 2)))},
        "c": {"d": jnp.ones((1, 2)), "e": (jnp.ones((1, 2)), jnp.ones((1, 2)))},
    }

    def init_fn(params):
        return {"count": 1, "params": params, "params_copy": params}

    def update_fn(updates, state, params=None):
        del params
        return updates, state

    inner = optax.GradientTransformation(init_fn, update_fn)
    return params, expected, adamlab.masked(inner, mask)


def test_masked_tree_map_params_custom_inner():
    """From optax/transforms/_masking_test.py::MaskedTest.test_tree_map_params (subtest 'masked'): on a masked
    transformation whose state holds the params, map_params changes the masked-in params of the state as it would
    change the params themselves."""
    params, expected, masked = _tree_map_params_setup()

    def increment_dim_1(v):
        return v + 1 if v.shape[0] == 1 else v

    state = masked.init(params)
    result = optax.tree.map_params(masked, increment_dim_1, state)
    _assert_trees_equal(result, masked.init(expected))


def test_masked_tree_map_params_with_extra_args():
    """From optax/transforms/_masking_test.py::MaskedTest.test_tree_map_params (subtest 'masked_with_extra_args'):
    map_params with a second tree (sharding axes) and is_leaf on the masked-out nodes (adamlab's `Cut`, Optax's
    `MaskedNode`) gives the axes of the masked-in params and None elsewhere."""
    params, _, masked = _tree_map_params_setup()
    sharding_axes = {"a": {"b": (1, 2)}, "c": {"d": 1, "e": (1, 2)}}
    state = masked.init(params)
    new_state = optax.tree.map_params(
        masked,
        lambda p, axis: None if isinstance(p, Cut) else axis,
        state,
        sharding_axes,
        is_leaf=lambda v: isinstance(v, Cut),
        transform_non_params=lambda v: None,
    )
    sharded_params = {"a": {"b": (1, None)}, "c": {"d": 1, "e": (None, 2)}}
    assert isinstance(new_state, MaskedState)
    assert new_state.inner_state["count"] is None
    assert new_state.inner_state["params"] == sharded_params
    assert new_state.inner_state["params_copy"] == sharded_params


# ------------------------------------------------------------------------------------------------------ nested mask


@pytest.mark.parametrize("builder", list(SGD_BUILDERS), ids=list(SGD_BUILDERS))
def test_masked_nested_mask(builder):
    """From optax/transforms/_masking_test.py::MaskedTest.test_nested_mask (sgd, stateful_sgd; Optax issue 271): a
    masked sgd(1.0) under a tree mask, inside a masked with a mask function (ndim > 1), negates the updates of the
    leaves both masks select only."""
    params = {
        "linear_1": {"w": jnp.zeros((1, 1)), "b": jnp.zeros(1)},
        "linear_2": {"w": jnp.zeros((1, 2)), "b": jnp.zeros(2)},
        "linear_3": {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)},
    }
    outer_mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
    inner_mask = jax.tree.map(lambda _: True, params)
    inner_mask["linear_2"] = False

    tx = adamlab.masked(adamlab.masked(SGD_BUILDERS[builder](), inner_mask), outer_mask)
    input_updates = jax.tree.map(jnp.ones_like, params)
    correct_updates = copy.deepcopy(input_updates)
    correct_updates["linear_1"]["w"] *= -1.0
    correct_updates["linear_3"]["w"] *= -1.0

    state = jax.jit(tx.init)(params)
    updates, _ = jax.jit(tx.update)(input_updates, state, params)
    _assert_trees_close(updates, correct_updates)


# -------------------------------------------------------------------------------------------------- state structure


def test_masked_state_structure():
    """From optax/transforms/_masking_test.py::MaskedTest.test_masked_state_structure (Optax issue 271).

    Optax expects the momentum trace ``{'a': [zeros(1), (zeros(2), MaskedNode())], 'b': MaskedNode()}``. adamlab's
    documented layout (docs/guides/groups.md: each group's state holds moments for its own leaves only) puts one
    empty `Cut` node in place of each masked-out leaf, including those under the prefix ``'b': False``: the trace
    holds arrays for the two masked-in leaves only, and the structure differs from Optax's under 'b'.
    """
    params = {"a": [jnp.ones(1), (jnp.ones(2), jnp.ones(3))], "b": {"c": jnp.ones(4), "d": jnp.ones(5)}}
    mask = {"a": [True, (True, False)], "b": False}
    tx = adamlab.masked(adamlab.sgd(1.0, momentum=0.0), mask)
    trace = jax.jit(tx.init)(params).inner_state[0].trace
    expected_trace = {"a": [jnp.zeros(1), (jnp.zeros(2), Cut())], "b": {"c": Cut(), "d": Cut()}}
    _assert_trees_equal(trace, expected_trace)
    assert [x.shape for x in jax.tree.leaves(trace)] == [(1,), (2,)]

    # Optax's layout, for contrast: one MaskedNode for the whole masked-out prefix 'b'.
    optax_trace = optax.masked(optax.sgd(1.0, momentum=0.0), mask).init(params).inner_state[0].trace
    assert isinstance(optax_trace["b"], optax.MaskedNode)
    assert jax.tree.structure(trace) != jax.tree.structure(optax_trace)


# --------------------------------------------------------------------------------------------- callable pytree mask


@dataclasses.dataclass
class _MaskCompatibleModule:
    """Optax's test class: a pytree that is also callable, as an Equinox module is."""

    w: jax.Array

    def __call__(self, x):
        return self.w.dot(x)


jax.tree_util.register_pytree_node(
    _MaskCompatibleModule, lambda m: ((m.w,), None), lambda _, c: _MaskCompatibleModule(*c)
)


def test_mask_compatible_callable_pytree_is_not_a_function():
    """From optax/transforms/_masking_test.py::MaskedTest.test_mask_compatible_callable_pytree (subtest 'test
    _mask_callable utility'; Optax issue 913): the module is callable, but the masking logic does not treat it as a
    mask function (Optax's private ``_masking._mask_callable`` -> adamlab's private ``_checks.is_function``)."""
    module = _MaskCompatibleModule(jnp.array([1.0, 2.0, 3.0]))
    assert callable(module)
    assert not _checks.is_function(module)


def test_mask_compatible_callable_pytree():
    """From optax/transforms/_masking_test.py::MaskedTest.test_mask_compatible_callable_pytree (subtest 'test masked
    transform on callable pytree'): a callable pytree mask of False is read as a mask, and the updates pass through
    unchanged."""
    module = _MaskCompatibleModule(jnp.array([1.0, 2.0, 3.0]))
    opt = adamlab.masked(adamlab.sgd(1.0), _MaskCompatibleModule(False))
    state = opt.init(module)
    new_updates, _ = opt.update(module, state)
    _assert_trees_equal(new_updates, module)
