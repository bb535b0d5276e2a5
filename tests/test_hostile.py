"""Hostile input, property-based: random trees, random hyperparameters, mismatched trees and masks.

Every call either works or raises a ValueError/TypeError that adamlab raised itself (the innermost frame of the
traceback is in the adamlab package, not in JAX) with a message that names the problem: the hyperparameter, the
tree path, the mask. Integer and boolean leaves have no gradient and pass through untouched.

Eager and small: the leaves come from a handful of (shape, dtype) pairs, so JAX's per-operation compile cache
is warm after the first examples.
"""

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import adamlab
from adamlab import numerics, testing

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
PACKAGE = pathlib.Path(adamlab.__file__).resolve().parent
BF16 = jnp.bfloat16

SHAPES = [(), (0,), (3,), (2, 0), (2, 3)]
DTYPES = [jnp.float32, BF16, jnp.float16, jnp.int32, jnp.bool_]


def make_leaf(shape, dtype, seed):
    x = np.random.default_rng(seed).normal(size=shape)
    if dtype == jnp.bool_:
        return jnp.asarray(x > 0)
    if dtype == jnp.int32:
        return jnp.asarray(np.round(3 * x), jnp.int32)
    return jnp.asarray(x, dtype)


leaves = st.one_of(
    st.none(),
    st.builds(make_leaf, st.sampled_from(SHAPES), st.sampled_from(DTYPES), st.integers(0, 100)),
)
keys = st.sampled_from(["a", "b", "c"])
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.dictionaries(keys, children, max_size=3),
        st.lists(children, max_size=3),
        st.lists(children, max_size=2).map(tuple),
    ),
    max_leaves=6,
)

JUST_UNDER_ONE = float(np.nextafter(np.float32(1), np.float32(0)))  # 1 - 2**-24, the largest float32 below 1
decays = st.sampled_from([0.0, 0.5, 0.9, 0.999, JUST_UNDER_ONE])
rates = st.sampled_from([0.0, 1e-3])  # larger rates are tried in the hyperparameter test
epsilons = st.sampled_from([0.0, 1e-12, 1e-8, 1e-3])
state_dtypes = st.sampled_from([None, BF16])


@st.composite
def optimizers(draw):
    kind = draw(st.sampled_from(["sgd", "rmsprop", "adam", "adamw", "clip_adam", "skip_adamw"]))
    lr, sd = draw(rates), draw(state_dtypes)
    if kind == "sgd":
        momentum = draw(st.one_of(st.none(), decays))
        return adamlab.sgd(lr, momentum, nesterov=momentum is not None and draw(st.booleans()), state_dtype=sd)
    if kind == "rmsprop":
        # Centered RMSProp divides by sqrt(variance) + eps, and the variance of identical samples is 0: with eps
        # outside the root its step is g / eps, 1e12 for eps = 1e-12, beyond float16 by the formula itself.
        centered = draw(st.booleans())
        return adamlab.rmsprop(
            lr,
            draw(decays),
            draw(epsilons),
            eps_in_sqrt=centered or draw(st.booleans()),
            centered=centered,
            momentum=draw(st.one_of(st.none(), decays)),
            bias_correction=draw(st.booleans()),
            state_dtype=sd,
        )
    b1, b2, eps, wd = draw(decays), draw(decays), draw(epsilons), draw(st.sampled_from([0.0, 0.1]))
    if kind == "adam":
        return adamlab.adam(lr, b1, b2, eps, weight_decay=wd, state_dtype=sd)
    if kind == "adamw":
        return adamlab.adamw(lr, b1, b2, eps, weight_decay=wd, mask=adamlab.weight_decay_mask, state_dtype=sd)
    if kind == "clip_adam":
        return adamlab.chain(adamlab.clip_by_global_norm(1.0), adamlab.adam(lr, b1, b2, eps, state_dtype=sd))
    return numerics.skip_nonfinite(adamlab.adamw(lr, b1, b2, eps, weight_decay=wd, state_dtype=sd))


def gradient(params, scale: float, seed: int):
    """Float leaves get float gradients of magnitude ~scale in their dtype; int and bool leaves get themselves."""

    def leaf(p):
        if not jnp.issubdtype(p.dtype, jnp.floating):
            return p
        return jnp.asarray(scale * np.random.default_rng(seed).normal(size=p.shape), p.dtype)

    return jax.tree.map(leaf, params)


def raised_by_adamlab(excinfo) -> bool:
    tb = excinfo.tb
    while tb.tb_next is not None:
        tb = tb.tb_next
    return pathlib.Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE)


def assert_clear_error(excinfo, *names):
    assert excinfo.type in (ValueError, TypeError), excinfo.type
    assert raised_by_adamlab(excinfo), f"raised outside adamlab: {excinfo.value}"
    message = str(excinfo.value)
    assert any(n in message for n in names), (names, message)


def float_leaves(tree):
    return [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]


@SETTINGS
@given(params=trees, tx=optimizers(), scale=st.sampled_from([0.0, 1e-30, 1.0, 1e4]), seed=st.integers(0, 99))
def test_any_tree_any_valid_hyperparameters(params, tx, scale, seed):
    """Three steps work; float leaves stay finite and keep dtype and shape; the rest is returned untouched."""
    state = tx.init(params)
    layout = jax.tree.map(lambda x: (x.dtype, x.shape), state)
    p = params
    for i in range(3):
        updates, state = tx.update(gradient(params, scale, seed + i), state, p)
        p = adamlab.apply_updates(p, updates)
    assert jax.tree.structure(p) == jax.tree.structure(params)
    assert jax.tree.map(lambda x: (x.dtype, x.shape), state) == layout
    for new, old in zip(jax.tree.leaves(p), jax.tree.leaves(params)):
        assert (new.dtype, new.shape) == (old.dtype, old.shape)
        if jnp.issubdtype(old.dtype, jnp.floating):
            assert bool(jnp.all(jnp.isfinite(new))), (new, old)
        else:
            testing.assert_bitwise_equal(new, old)
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in float_leaves(updates))


HYPERPARAMETERS = {
    # name in the message -> a constructor taking the value
    "b1": lambda v: adamlab.adam(b1=v),
    "b2": lambda v: adamlab.adamw(b2=v),
    "eps": lambda v: adamlab.adam(eps=v),
    "learning_rate": lambda v: adamlab.adamw(v),
    "weight_decay": lambda v: adamlab.adamw(weight_decay=v),
    "decay": lambda v: adamlab.rmsprop(1e-3, decay=v),
    "max_norm": lambda v: adamlab.clip_by_global_norm(v),
}
hostile_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, -0.0, JUST_UNDER_ONE, 1 - 2**-30, 1e-40, 2**31]),
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.sampled_from(
        [
            jnp.asarray(0.5, BF16),
            jnp.asarray(0.9, jnp.float16),
            jnp.ones(2),
            jnp.asarray(0.9),
            np.float32(0.99),
            jnp.asarray(1, jnp.int32),
            np.asarray([0.1]),
            jnp.asarray(True),
            [0.9],
            (0.9,),
            jnp.asarray(1 + 0j),
        ]
    ),
)


@SETTINGS
@given(name=st.sampled_from(sorted(HYPERPARAMETERS)), value=hostile_values)
def test_any_hyperparameter_value_works_or_names_itself(name, value):
    try:
        tx = HYPERPARAMETERS[name](value)
    except (ValueError, TypeError):
        with pytest.raises((ValueError, TypeError)) as excinfo:
            HYPERPARAMETERS[name](value)
        assert_clear_error(excinfo, name)
        return
    # accepted: then it is a usable real scalar, and a step is finite (for magnitudes float32 can scale by)
    v = float(np.asarray(value))
    assert v > 0 if name == "max_norm" else 0 <= v <= np.finfo(np.float32).max
    if name in ("b1", "b2", "decay"):
        assert np.float32(v) < 1
    params = {"w": jnp.asarray([0.5, -1.0, 2.0]), "n": jnp.arange(2)}
    updates, _ = tx.update({"w": jnp.asarray([1.0, -2.0, 0.0]), "n": jnp.arange(2)}, tx.init(params), params)
    assert not bool(jnp.any(jnp.isnan(updates["w"]))), (name, value, updates)
    if v <= 1e6:
        assert bool(jnp.all(jnp.isfinite(updates["w"]))), (name, value, updates)


def mutate(tree, how: str, rng: np.random.Generator):
    """One structural or type change at a random leaf position; returns (mutated tree, what the error names)."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    if not flat:
        return {"extra": jnp.ones(2)}, "extra"
    i = int(rng.integers(len(flat)))
    path, leaf = flat[i]
    where = jax.tree_util.keystr(path) or "<root>"
    leaves_ = [x for _, x in flat]
    if how == "shape":
        leaves_[i] = jnp.ones((*leaf.shape, 2), leaf.dtype)
    elif how == "python_scalar":
        leaves_[i] = 1.0
    elif how == "int_for_float":
        if not jnp.issubdtype(leaf.dtype, jnp.floating) or leaf.size == 0:
            return mutate(tree, "shape", rng)
        leaves_[i] = jnp.ones(leaf.shape, jnp.int32)
    elif how == "string":
        leaves_[i] = np.asarray(["x"] * max(leaf.size, 1))
    return jax.tree_util.tree_unflatten(treedef, leaves_), where


@SETTINGS
@given(
    params=trees,
    tx=optimizers(),
    how=st.sampled_from(["shape", "python_scalar", "int_for_float", "string", "extra_key", "container"]),
    seed=st.integers(0, 99),
)
def test_mismatched_gradients_are_named(params, tx, how, seed):
    """A gradient tree that does not fit the params raises, by apply_updates at the latest, naming where."""
    assume(params is not None)  # update(g, state, None) means "no params given": weight decay says so instead
    state = tx.init(params)
    grads = gradient(params, 1.0, seed)
    if how == "extra_key":
        grads, where = {"params": grads, "extra": jnp.ones(1)}, "extra"
    elif how == "container":
        if not isinstance(grads, (list, tuple)):
            grads, where = [grads], "<root>"
        else:
            grads, where = (tuple(grads) if isinstance(grads, list) else list(grads)), "container"
    else:
        grads, where = mutate(grads, how, np.random.default_rng(seed))
    with pytest.raises((ValueError, TypeError)) as excinfo:
        updates, _ = tx.update(grads, state, params)
        adamlab.apply_updates(params, updates)
    assert_clear_error(excinfo, where, "tree structure", "container", "extra leaf")


@st.composite
def masks_for(draw, params):
    """A mask that is valid, or broken in one of the ways users break masks; returns (mask, valid, what)."""
    kind = draw(st.sampled_from(["tree", "prefix", "callable", "array", "missing_key", "non_bool", "bad_array"]))
    if kind == "tree":
        return jax.tree.map(lambda _: draw(st.booleans()), params), True, None
    if kind == "prefix":
        return draw(st.booleans()), True, None
    if kind == "callable":
        return adamlab.weight_decay_mask, True, None
    if kind == "array":
        return jax.tree.map(lambda p: jnp.asarray(np.arange(p.size).reshape(p.shape) % 2 == 0), params), True, None
    if kind == "missing_key":
        return {"not_a_param": True, "w": True}, False, "mask does not match the params"
    if kind == "non_bool":
        return jax.tree.map(lambda _: 1, params), False, "mask leaf at"
    return jax.tree.map(lambda p: jnp.ones((p.size + 1,), bool), params), False, "mask at"


@SETTINGS
@given(data=st.data(), seed=st.integers(0, 99))
def test_masks_work_or_are_refused_at_init(data, seed):
    params = {"w": jnp.ones((2, 3)), "bias": jnp.ones(3), "n": jnp.arange(2)}
    mask, valid, what = data.draw(masks_for(params))
    tx = adamlab.adamw(0.1, weight_decay=0.5, mask=mask)
    if not valid:
        with pytest.raises((ValueError, TypeError)) as excinfo:
            tx.init(params)
        assert_clear_error(excinfo, what)
        return
    state = tx.init(params)
    zero = jax.tree.map(lambda p: jnp.zeros_like(p) if jnp.issubdtype(p.dtype, jnp.floating) else p, params)
    updates, _ = tx.update(zero, state, params)
    # with a zero gradient the update is exactly -lr * wd * p where the mask is True, and 0 elsewhere
    resolved = adamlab.resolve_mask(mask, params)
    for key in ("w", "bias"):
        expected = np.where(np.asarray(resolved[key]), -0.1 * 0.5 * np.asarray(params[key]), 0.0)
        np.testing.assert_allclose(np.asarray(updates[key]), np.broadcast_to(expected, params[key].shape), rtol=1e-6)


def test_error_messages_name_the_path():
    """The property above, in one fixed case per message, so a regression shows its text."""
    params = {"a": {"w": jnp.ones(3)}, "n": jnp.arange(2)}
    tx = adamlab.adam(1e-3)
    state = tx.init(params)
    cases = [
        ({"a": {"w": jnp.ones(3, jnp.int32)}, "n": jnp.arange(2)}, r"updates at \['a'\]\['w'\] are int32"),
        ({"a": {"w": 1.0}, "n": jnp.arange(2)}, r"updates at \['a'\]\['w'\] is a float, not an array"),
        ({"a": {"w": jnp.ones(4)}, "n": jnp.arange(2)}, r"\['a'\]\['w'\] have shape \(4,\)"),
    ]
    for grads, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            tx.update(grads, state, params)
    with pytest.raises(TypeError, match=r"params at \['x'\] is a float, not an array \(wrap it: jnp.asarray"):
        tx.init({"x": 0.5})
    with pytest.raises(TypeError, match=r"apply_updates: the update at \['w'\] is int32"):
        adamlab.apply_updates({"w": jnp.ones(2)}, {"w": jnp.ones(2, jnp.int32)})
    with pytest.raises(ValueError, match=re.escape("b2 must be in [0, 1) in float32")):
        adamlab.adam(b2=1 - 2**-30)
    with pytest.raises(TypeError, match="learning_rate must be a scalar, got an array of shape"):
        adamlab.sgd(jnp.ones(2))
