"""The flat layout: exact round trips, parity with the pytree path, masks inside buckets, the pytree drop-in path."""

import functools
import pathlib
import re

import family
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import mixed_params

import adamlab
from adamlab import flat, testing
from adamlab.groups import Cut
from adamlab.step import train_step, update_step

STEPS = 100


def mixed_dtype_params():
    """float32 and bfloat16 leaves, an int32 counter, a scalar, a size-1 leaf and an empty leaf."""
    p = mixed_params()
    k = jax.random.split(jax.random.PRNGKey(7), 2)
    p["half"] = {"w": jax.random.normal(k[0], (4, 3)).astype(jnp.bfloat16), "bias": jnp.zeros((3,), jnp.bfloat16)}
    p["steps"] = jnp.asarray(5, jnp.int32)
    p["empty"] = jnp.zeros((0, 3), jnp.float32)
    return p


def grads_like(params, seed, steps=STEPS):
    """A gradient stream (leading axis: the step): float leaves normal, other leaves zeros (they have no gradient).

    Drawn with NumPy: `jax.random` would compile a sampler for every leaf shape.
    """
    rng = np.random.default_rng(seed)

    def draw(p):
        if not jnp.issubdtype(p.dtype, jnp.floating):
            return jnp.zeros((steps, *p.shape), p.dtype)
        return jnp.asarray(rng.standard_normal((steps, *p.shape), np.float32)).astype(p.dtype)

    return jax.tree.map(draw, params)


def run(tx, params, stream, to_param_space=lambda g: g):
    """`STEPS` jitted steps of `tx` from `params` over the stream; returns (params, state)."""

    def body(carry, g):
        p, s = carry
        u, s = tx.update(to_param_space(g), s, p)
        return (adamlab.apply_updates(p, u), s), None

    return jax.jit(lambda p, s, gs: jax.lax.scan(body, (p, s), gs)[0])(params, tx.init(params), stream)


def decaying_mask(params):
    return jax.tree_util.tree_map_with_path(lambda path, p: "b" not in jax.tree_util.keystr(path), params)


OPTIMIZERS = {
    "adamw_masked": lambda: adamlab.adamw(3e-3, weight_decay=0.1, mask=adamlab.weight_decay_mask),
    "adamw_path_mask": lambda: adamlab.adamw(3e-3, weight_decay=0.1, mask=decaying_mask),
    "sgd_nesterov": lambda: adamlab.sgd(1e-2, momentum=0.9, nesterov=True),
    "rmsprop_centered": lambda: adamlab.rmsprop(1e-3, centered=True, momentum=0.5),
    # Rounded to nearest: stochastic rounding draws its bits per leaf, so per bucket it draws others.
    "adamw_bf16_state": lambda: adamlab.chain(
        adamlab.scale_by_ema(0.9, state_dtype=jnp.bfloat16),
        adamlab.bias_correct(0.9),
        adamlab.scale_by_rms(0.999, bias_correction=True, state_dtype=jnp.bfloat16, rounding="nearest"),
        adamlab.add_decoupled_weight_decay(1e-2),
        adamlab.scale_by_learning_rate(1e-3),
    ),
    "amsgrad_raw": lambda: adamlab.amsgrad(3e-3, max_of="raw"),
    # PyTorch's conventions: NAdam's momentum schedule, SGD's dampening, RMSprop's lr after the momentum.
    "nadamw_torch": lambda: adamlab.nadamw(3e-3, weight_decay=0.1, momentum_decay=4e-3, maximize=True),
    "sgd_dampening": lambda: adamlab.sgd(adamlab.schedules.linear_warmup(1e-3, 1e-2, 5), momentum=0.9, dampening=0.3),
    "rmsprop_torch_order": lambda: adamlab.rmsprop(
        adamlab.schedules.linear_warmup(1e-4, 1e-3, 5), momentum=0.9, eps_in_sqrt=False, lr_before_momentum=False
    ),
    "ademamix_scheduled": lambda: adamlab.ademamix(
        3e-3,
        b3=adamlab.schedules.ademamix_b3(0.9999, 50),
        alpha=adamlab.schedules.ademamix_alpha(5.0, 50),
        weight_decay=0.1,
        mask=adamlab.weight_decay_mask,
    ),
    "lion": lambda: adamlab.lion(3e-4, weight_decay=0.1, mask=adamlab.weight_decay_mask),
    "adam_atan2": lambda: adamlab.adam_atan2(3e-3, weight_decay=0.1, mask=adamlab.weight_decay_mask),
    # Its count of agreeing signs is per tensor: on the flat layout per leaf within the bucket (flat.leaf_totals).
    "cautious_adamw": lambda: adamlab.cautious(adamlab.adamw(3e-3, weight_decay=0.1, mask=adamlab.weight_decay_mask)),
    "stable_adamw": lambda: adamlab.stable_adamw(3e-3, weight_decay=0.1, mask=adamlab.weight_decay_mask),
}


# Agree to rounding, not bit for bit: ``u + alpha * m2`` with a scheduled alpha, which XLA contracts into a fused
# multiply-add in one program and not in the other (a 0-d leaf alone vs inside a bucket); StableAdamW's per-tensor
# mean, a segment sum within a bucket against a sum over the leaf (another order); NAdam's look-ahead
# ``a * m + b * g`` and PyTorch's damped momentum ``(1 - d) * g + mu * t``, sums of two products.
FMA_ROUNDING = {"ademamix_scheduled", "stable_adamw", "nadamw_torch", "sgd_dampening"}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_flat_path_is_bitwise_the_pytree_path_over_100_steps(name):
    params = mixed_dtype_params()
    stream = grads_like(params, seed=1)
    tx = OPTIMIZERS[name]()
    tree_p, tree_s = run(tx, params, stream)

    fp = flat.flatten(params, group=None if name == "adamw_path_mask" else adamlab.weight_decay_mask)
    layout = fp.layout
    flat_stream = jax.vmap(layout.flatten)(stream)
    flat_p, flat_s = run(tx, fp, flat_stream)

    if name in FMA_ROUNDING:
        for a, b in zip(jax.tree.leaves(flat_p.unflatten()), jax.tree.leaves(tree_p)):
            np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=1e-6, atol=1e-7)
    else:
        testing.assert_bitwise_equal(flat_p.unflatten(), tree_p)
        testing.assert_bitwise_equal(flat.state_to_tree(flat_s), tree_s)
    assert not np.array_equal(np.asarray(tree_p["dense"]["w"]), np.asarray(params["dense"]["w"]))


@pytest.mark.parametrize("solo_above", [1, 8])
def test_packed_pytree_path_matches_the_pytree_path(solo_above):
    """All leaves alone (bitwise), and small leaves packed while larger ones stay alone.

    A packed leaf's update is computed in its bucket and added to the param
    in another fusion than the pytree path's, where XLA may contract
    ``p - lr * u`` into one fused multiply-add: the params agree to an ulp per
    step. The moments are computed by the same fusions and agree bit for bit.
    """
    params = mixed_dtype_params()
    stream = grads_like(params, seed=2)
    tx = adamlab.adamw(3e-3, weight_decay=0.1, mask=decaying_mask)
    tree_p, tree_s = run(tx, params, stream)
    ptx = flat.packed(tx, solo_above=solo_above)
    packed_p, packed_s = run(ptx, params, stream)
    if solo_above == 1:
        testing.assert_bitwise_equal(packed_p, tree_p)
    else:
        assert max(e.max_rel for e in testing.compare_trees(packed_p, tree_p)) < 1e-6
    assert max(e.max_rel for e in testing.compare_trees(flat.state_to_tree(packed_s), tree_s)) < 1e-6


# -- the rest of Optax's first-order family (tests/family.py) -----------------------------------------------------

FAMILY_STEPS = 30  # the registry's schedules decay to 0 at step 30

# Members whose Flat path agrees with the pytree path to rounding, not bit for bit, and why. Per-tensor norms and
# RMSs (LAMB's and LARS's trust ratios, NovoGrad's v, Adafactor's update clipping and parameter scale) are segment
# sums within a bucket (flat.leaf_totals) against a sum over the leaf: another order. The others are elementwise:
# sums of two products (``b1 * m + (1 - b1) * g``, schedule-free's interpolations, the noise ``u + std * n``) that
# XLA contracts into a fused multiply-add in one program and not in the other. Through `flat.packed` every member
# agrees to rounding: a packed leaf's moments and update are computed in its bucket, in other fusions.
FLAT_ROUNDING = {
    "adafactor",
    "lamb",
    "lars",
    "novograd",
    "noisy_sgd",
    "optimistic_adam_v2",
    "adopt",
    "schedule_free_adamw",
    "schedule_free_sgd",
}
# Measured over 30 steps: at most 3.2e-7 of a leaf's largest magnitude (params and state, both paths).
FAMILY_RTOL = 3e-6
# Members refused on a layout, with the message that names why. The default layout (buckets grouped by the decay
# mask) mixes Muon's matrices with AdamW's vectors in one bucket, which Muon's partition cannot split. Lookahead's
# params are a LookaheadParams pair, not a tree like its gradients: pack the optimizer inside it instead.
FAMILY_REFUSED = {
    "flat": {"muon": "labels gives bucket 1 of the flat layout 2 different values"},
    "packed": {"lookahead_adamw": r"pack the optimizer inside it: adamlab.lookahead\(flat.packed"},
}


def family_params():
    """`mixed_dtype_params` with an empty vector for the empty matrix: Muon's width scale (as Optax's) divides by
    a matrix's row count."""
    return {**mixed_dtype_params(), "empty": jnp.zeros((0,), jnp.float32)}


def _keys_as_data(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x, tree)


def _unflat(tree):
    return jax.tree.map(
        lambda x: x.unflatten() if isinstance(x, flat.Flat) else x, tree, is_leaf=lambda x: isinstance(x, flat.Flat)
    )


def _spread(expected, actual):
    """`expected` with each 0-d leaf spread to `actual`'s leaf: a per-tensor statistic of a leaf that shares its
    bucket is kept once per element of the leaf (its own leaf's value), as flat.leaf_totals gives it."""
    return jax.tree.map(lambda e, a: jnp.broadcast_to(e, a.shape) if np.ndim(e) == 0 else e, expected, actual)


@functools.cache
def _family_tree_run(name):
    params = family_params()
    tx = family.build(name)
    stream = grads_like(params, seed=6, steps=FAMILY_STEPS)
    return run(tx, family.initial_params(name, params), stream)


def _family_case(name, path):
    """(the pytree run, this path's run with its params and state as the pytree's); raises what the path raises."""
    params = family_params()
    stream = grads_like(params, seed=6, steps=FAMILY_STEPS)
    tx = family.build(name)
    if path == "flat":
        fp = flat.flatten(params)
        got_p, got_s = run(tx, family.initial_params(name, fp), jax.vmap(fp.layout.flatten)(stream))
    else:  # each matrix in a bucket of its own (its shape kept), the vectors and scalars packed
        got_p, got_s = run(flat.packed(tx, solo_above=12), family.initial_params(name, params), stream)
    return _family_tree_run(name), (_unflat(got_p), flat.state_to_tree(got_s))


@pytest.mark.parametrize("path", ["flat", "packed"])
@pytest.mark.parametrize("name", list(family.FAMILY))
def test_family_on_the_flat_layout_is_the_pytree_path_or_refused(name, path):
    """Every member on a Flat (all leaves packed) and through `flat.packed` (matrices solo): the pytree path's
    params and state, bit for bit or to rounding (FLAT_ROUNDING, and `flat.packed`), or an error naming why
    (FAMILY_REFUSED)."""
    assert FLAT_ROUNDING | set(FAMILY_REFUSED[path]) <= set(family.FAMILY)
    if name in FAMILY_REFUSED[path]:
        with pytest.raises(ValueError, match=FAMILY_REFUSED[path][name]):
            _family_case(name, path)
        return
    (tree_p, tree_s), (got_p, got_s) = _family_case(name, path)
    tree_s, got_s = _keys_as_data(_spread(tree_s, got_s)), _keys_as_data(got_s)
    if path == "flat" and name not in FLAT_ROUNDING:
        testing.assert_bitwise_equal(got_p, tree_p)
        testing.assert_bitwise_equal(got_s, tree_s)
    else:
        errors = testing.compare_trees(got_p, tree_p) + testing.compare_trees(got_s, tree_s)
        assert max(e.max_rel for e in errors) < FAMILY_RTOL, max(errors, key=lambda e: e.max_rel)
    moved = got_p.fast if family.FAMILY[name].params == "lookahead" else got_p
    assert not np.array_equal(np.asarray(moved["dense"]["w"]), np.asarray(family_params()["dense"]["w"]))


def test_a_shape_the_arithmetic_needs_is_refused_where_packed_and_kept_in_a_solo_bucket():
    """Adafactor's factored moments and Muon's Newton-Schulz read a matrix's rows and columns: a Flat that packs
    such a matrix is refused, naming it; in a bucket of its own the matrix keeps its shape and steps as on the tree."""
    params = family_params()
    factoring = {"min_dim_size_to_factor": 2}  # every matrix of the tree is factored
    with pytest.raises(ValueError, match=r"scale_by_factored_rms needs the shape of \['blocks'\]\[1\]\['kernel'\]"):
        family.build("adafactor", **factoring).init(flat.flatten(params))
    by_rank = flat.flatten(params, group=lambda t: jax.tree.map(lambda x: x.ndim == 2, t))  # Muon's groups, packed
    with pytest.raises(ValueError, match=r"newton_schulz needs the shape of \['dense'\]\['w'\] \(5, 3\)"):
        tx = family.build("muon")
        tx.update(jax.tree.map(jnp.ones_like, by_rank), tx.init(by_rank), by_rank)
    # Kept solo, the matrices are factored as leaves: v_row and v_col, no full v.
    tx = family.build("adafactor", **factoring)
    stream = grads_like(params, seed=7, steps=5)
    tree_p, tree_s = run(tx, params, stream)
    fp = flat.flatten(params, solo_above=12)
    flat_p, flat_s = run(tx, fp, jax.vmap(fp.layout.flatten)(stream))
    state = flat.state_to_tree(flat_s)
    assert state[0].v_row["dense"]["w"].shape == (3,) and state[0].v["dense"]["w"].shape == (0,)
    errors = testing.compare_trees(flat_p.unflatten(), tree_p) + testing.compare_trees(state, tree_s)
    assert max(e.max_rel for e in errors) < FAMILY_RTOL  # the per-leaf RMSs of the packed vectors: segment sums


def test_require_leaf_shapes_passes_trees_solo_buckets_and_what_is_not_computed():
    params = {"w": jnp.ones((4, 4)), "b": jnp.zeros(3), "n": jnp.zeros((2, 2), jnp.int32)}
    is_matrix = lambda shape: len(shape) == 2  # noqa: E731
    flat.require_leaf_shapes(params, "demo", is_matrix)
    flat.require_leaf_shapes(flat.flatten(params, solo_above=16), "demo", is_matrix)  # n: integer, never computed
    packed = flat.flatten(params, group=None)
    with pytest.raises(ValueError, match=r"demo needs the shape of \['w'\] \(4, 4\), which bucket 0 .* into \(19,\)"):
        flat.require_leaf_shapes(packed, "demo", is_matrix)
    flat.require_leaf_shapes(packed, "demo", lambda shape: len(shape) > 2)
    cut = flat.Flat((Cut(),) + packed.buckets[1:], packed.layout)  # a partition's other group
    flat.require_leaf_shapes(cut, "demo", is_matrix)


def test_per_tensor_statistics_and_partition_cuts_convert_to_the_tree_state_and_back():
    """NovoGrad's v is a scalar per leaf: a 0-d buffer for a bucket of one leaf (the pytree's scalar), its leaf's
    value per element in a shared bucket. Muon's partition holds a Cut where a group has no state."""
    params = family_params()
    for name, fp in [("novograd", flat.flatten(params)), ("muon", flat.flatten(params, solo_above=12))]:
        tx = family.build(name)
        grads = jax.tree.map(lambda g: g[0], jax.vmap(fp.layout.flatten)(grads_like(params, seed=8, steps=1)))
        state = jax.jit(tx.update)(grads, tx.init(fp), fp)[1]
        tree_state = flat.state_to_tree(state)
        assert jax.tree.structure(tree_state) == jax.tree.structure(tx.init(params))
        for like in (state, jax.eval_shape(tx.init, fp)):
            testing.assert_bitwise_equal(flat.state_from_tree(tree_state, like), state)
    tx, fp = family.build("novograd"), flat.flatten(params)
    tree_state = flat.state_to_tree(tx.init(fp))
    v = tree_state[0].second_moment
    assert v["half"]["bias"].shape == () and v["dense"]["b"].shape == (3,)  # alone in its bucket; shared
    wrong = (tree_state[0]._replace(second_moment={**v, "half": {**v["half"], "bias": jnp.zeros(3)}}), *tree_state[1:])
    with pytest.raises(
        ValueError, match=r"\['half'\]\['bias'\] has 3 elements where `like` keeps a state of shape \(\)"
    ):
        flat.state_from_tree(wrong, tx.init(fp))


def test_packed_inside_a_chain_gets_the_gradient_and_clipping_agrees_to_rounding():
    params = mixed_params()
    stream = jax.tree.map(lambda g: 3.0 * g, grads_like(params, seed=3))
    ours = adamlab.chain(adamlab.clip_by_global_norm(1.0), flat.packed(adamlab.adam(1e-3), solo_above=8))
    ref = adamlab.chain(adamlab.clip_by_global_norm(1.0), adamlab.adam(1e-3))
    a, _ = run(ours, params, stream)
    b, _ = run(ref, params, stream)
    assert max(e.max_rel for e in testing.compare_trees(a, b)) < 1e-6
    # The clip lives inside the packed stage too: the norm is then summed per bucket, in another order.
    c, _ = run(flat.packed(adamlab.chain(adamlab.clip_by_global_norm(1.0), adamlab.adam(1e-3))), params, stream)
    assert max(e.max_rel for e in testing.compare_trees(c, b)) < 1e-6


def test_round_trip_is_exact_for_every_dtype_and_shape():
    params = mixed_dtype_params()
    for kw in [{}, {"group": None}, {"bucket_bytes": 24}, {"solo_above": 4}]:
        fp = flat.flatten(params, **kw)
        back = flat.unflatten(fp)
        testing.assert_bitwise_equal(back, params)
        assert jax.tree.structure(back) == jax.tree.structure(params)
        assert fp.layout.size == sum(int(np.size(x)) for x in jax.tree.leaves(params))


def test_layout_index_tiles_each_bucket_exactly():
    params = mixed_dtype_params()
    layout = flat.Layout.of(params, bucket_bytes=40)
    for j, b in enumerate(layout.buckets):
        slots = sorted((layout.slots[i] for i in b.leaves), key=lambda s: s.offset)
        assert all(s.bucket == j and s.dtype == b.dtype for s in slots)
        ends = [s.offset + s.size for s in slots]
        assert [s.offset for s in slots] == [0] + ends[:-1]
        assert (ends[-1] if ends else 0) == b.size
        # A bucket exceeds the cap only when it holds one leaf that alone exceeds it.
        assert b.size * b.dtype.itemsize <= 40 or len(b.leaves) == 1
    assert len(layout.buckets) > 3
    assert {b.dtype for b in layout.buckets} == {np.dtype(jnp.float32), np.dtype(jnp.bfloat16), np.dtype(jnp.int32)}


def test_buckets_are_grouped_by_dtype_and_decay_mask():
    layout = flat.Layout.of(mixed_dtype_params())
    mask = jax.tree.leaves(adamlab.weight_decay_mask(mixed_dtype_params()))
    for b in layout.buckets:
        assert len({mask[i] for i in b.leaves}) == 1
        assert len({layout.slots[i].dtype for i in b.leaves}) == 1


def test_empty_tree():
    for tree in [{}, [], ()]:
        fp = flat.flatten(tree)
        assert fp.buckets == ()
        tx = adamlab.adamw(1e-3)
        state = tx.init(fp)
        updates, state = tx.update(fp, state, fp)
        assert flat.unflatten(adamlab.apply_updates(fp, updates)) == tree
        assert flat.state_to_tree(state)[0].moment == tree


def test_size_one_and_scalar_leaves_step_like_the_pytree():
    params = {"one": jnp.ones((1,)), "scalar": jnp.asarray(2.0), "col": jnp.ones((1, 1))}
    stream = grads_like(params, seed=4, steps=10)
    tx = adamlab.adamw(1e-2, weight_decay=0.1)
    tree_p, _ = run(tx, params, stream)
    fp = flat.flatten(params)
    flat_p, _ = run(tx, fp, jax.vmap(fp.layout.flatten)(stream))
    testing.assert_bitwise_equal(flat_p.unflatten(), tree_p)
    assert flat_p.unflatten()["scalar"].shape == ()


def test_decay_mask_selects_elements_inside_a_shared_bucket():
    """With zero gradients AdamW's step is exactly -lr*wd*p on decayed elements and 0 elsewhere."""
    params = {"w": jnp.full((3, 2), 2.0), "b": jnp.full((4,), 3.0), "v": jnp.full((5,), 5.0)}
    elementwise = {"w": True, "b": False, "v": jnp.asarray([True, False, True, False, True])}
    lr, wd = 0.5, 0.25
    fp = flat.flatten(params, group=None)  # one bucket: the mask must select elements
    assert len(fp.buckets) == 1
    resolved = fp.layout.mask(elementwise)
    assert np.asarray(resolved.buckets[0]).tolist() == [False] * 4 + [True, False, True, False, True] + [True] * 6
    tx = adamlab.adamw(lr, weight_decay=wd, mask=elementwise)
    zeros = jax.tree.map(jnp.zeros_like, fp)
    u, _ = tx.update(zeros, tx.init(fp), fp)
    new = adamlab.apply_updates(fp, u).unflatten()
    np.testing.assert_array_equal(new["w"], np.full((3, 2), 2.0 - lr * wd * 2.0, np.float32))
    np.testing.assert_array_equal(new["b"], params["b"])
    np.testing.assert_array_equal(
        new["v"], np.asarray([5 - lr * wd * 5, 5, 5 - lr * wd * 5, 5, 5 - lr * wd * 5], np.float32)
    )


def test_mask_forms_on_flat_buffers():
    params = mixed_dtype_params()
    fp = flat.flatten(params)  # grouped by weight_decay_mask: every bucket all-or-nothing
    m = fp.layout.mask(adamlab.weight_decay_mask)
    assert all(isinstance(x, bool) for x in m.buckets)
    decayed = {fp.layout.slots[i].path for b, x in zip(fp.layout.buckets, m.buckets) if x for i in b.leaves}
    assert decayed == {"['dense']['w']", "['blocks'][1]['kernel']", "['half']['w']", "['empty']"}
    # A prefix mask, a resolved Flat mask and the callable give the same steps.
    prefix = {
        "dense": {"w": True, "b": False},
        "scalar": False,
        "one": False,
        "blocks": [False, {"kernel": True}],
        "half": {"w": True, "bias": False},
        "steps": False,
        "empty": True,
    }
    grads = jax.tree.map(lambda g: g[0], jax.vmap(fp.layout.flatten)(grads_like(params, seed=5, steps=1)))

    def one_step(mk):
        tx = adamlab.adamw(1e-2, weight_decay=0.3, mask=mk)
        return adamlab.apply_updates(fp, tx.update(grads, tx.init(fp), fp)[0])

    results = [one_step(mk) for mk in (adamlab.weight_decay_mask, prefix, m)]
    assert not np.array_equal(np.asarray(results[0].buckets[0]), np.asarray(fp.buckets[0]))
    for r in results[1:]:
        testing.assert_bitwise_equal(r, results[0])


def test_a_mask_of_another_layout_is_refused():
    fp = flat.flatten(mixed_params())
    other = flat.flatten({"x": jnp.ones(3)})
    with pytest.raises(ValueError, match="another layout"):
        fp.layout.mask(other.layout.mask(True))


def test_gradient_through_the_views_is_the_flat_gradient_of_the_tree():
    params = mixed_params()
    fp = flat.flatten(params)

    def loss(tree):
        return sum(jnp.sum(jnp.sin(x) * (i + 1)) for i, x in enumerate(jax.tree.leaves(tree)))

    g_tree = jax.jit(jax.grad(loss))(params)
    g_flat = jax.jit(jax.grad(lambda f: loss(f.unflatten())))(fp)
    assert isinstance(g_flat, flat.Flat) and g_flat.layout == fp.layout
    testing.assert_bitwise_equal(g_flat, fp.layout.flatten(g_tree))
    # split's transpose is a concatenation: no per-leaf pad-and-add in the backward pass.
    hlo = jax.jit(jax.grad(lambda f: loss(f.unflatten()))).lower(fp).as_text()
    assert "concatenate" in hlo and hlo.count("stablehlo.pad") == 0


def test_train_step_on_flat_buffers_matches_the_pytree_train_step():
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    params = {
        "w1": jax.random.normal(k[0], (4, 8)) * 0.5,
        "b1": jnp.zeros(8),
        "w2": jax.random.normal(k[1], (8, 1)),
        "seen": jnp.asarray(0, jnp.int32),
    }
    x, y = jax.random.normal(k[2], (32, 4)), jax.random.normal(k[3], (32, 1))

    def loss(p, x, y):
        return jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] - y) ** 2)

    tx = adamlab.adamw(1e-2, weight_decay=0.1, mask=adamlab.weight_decay_mask)
    tree_step, flat_step = train_step(loss, tx), train_step(loss, tx)
    tp, ts = jax.tree.map(jnp.copy, params), tx.init(params)
    fp = flat.flatten(params)
    fs = tx.init(fp)
    for _ in range(20):
        tp, ts, tl = tree_step(tp, ts, x, y)
        fp, fs, fl = flat_step(fp, fs, x, y)
        # The model reads its weights through slices, so XLA may fuse its matmuls differently: an ulp.
        assert abs(float(fl) - float(tl)) <= 1e-6 * abs(float(tl))
    assert max(e.max_rel for e in testing.compare_trees(fp.unflatten(), tp)) < 1e-5
    assert int(fp.unflatten()["seen"]) == 0
    assert float(tl) < float(loss(params, x, y))


def test_update_step_donates_params_and_state():
    params = mixed_params()
    fp = flat.flatten(params)
    tx = adamlab.adamw(1e-3)
    state = tx.init(fp)
    step = update_step(tx)
    new_p, new_s = step(fp, state, jax.tree.map(jnp.ones_like, fp))
    assert all(b.is_deleted() for b in fp.buckets)
    assert all(x.is_deleted() for x in jax.tree.leaves(state) if x.size)
    assert not any(b.is_deleted() for b in new_p.buckets)
    kept = update_step(tx, donate=False)
    p2, _ = kept(new_p, new_s, jax.tree.map(jnp.ones_like, new_p))
    assert not any(b.is_deleted() for b in new_p.buckets)


def test_state_round_trip_through_the_tree():
    params = mixed_dtype_params()
    fp = flat.flatten(params)
    tx = adamlab.chain(adamlab.adamw(1e-3), adamlab.parameter_ema(0.9))
    state = tx.init(fp)
    state = tx.update(jax.tree.map(jnp.ones_like, fp), state, fp)[1]
    tree_state = flat.state_to_tree(state)
    assert jax.tree.structure(tree_state) == jax.tree.structure(tx.init(params))
    for like in (state, jax.eval_shape(tx.init, fp)):
        testing.assert_bitwise_equal(flat.state_from_tree(tree_state, like), state)


def test_packed_state_converts_to_the_pytree_state():
    params = mixed_dtype_params()
    tx = adamlab.adamw(1e-3)
    ptx = flat.packed(tx, solo_above=6)
    state = ptx.init(params)
    tree_state = flat.state_to_tree(state)
    testing.assert_bitwise_equal(tree_state, tx.init(params))
    testing.assert_bitwise_equal(flat.state_from_tree(tree_state, state), state)


def test_solo_buckets_keep_the_leaf_shape_and_cost_no_copy():
    params = {"big": jnp.ones((64, 32)), "small": jnp.ones((3,)), "tiny": jnp.ones((2,))}
    layout = flat.layout_for(params, solo_above=1000)
    shapes = sorted(b.shape for b in layout.buckets)
    assert shapes == [(5,), (64, 32)]
    ptx = flat.packed(adamlab.adamw(1e-3), solo_above=1000)
    compiled = update_step(ptx).lower(params, ptx.init(params), params).compile()
    ops = compiled.as_text()
    assert " copy(" not in ops, "the donated param should be updated in place"


def test_errors_name_the_problem():
    params = mixed_params()
    fp = flat.flatten(params)
    with pytest.raises(ValueError, match=r"\['dense'\]\['w'\] has shape"):
        fp.layout.flatten({**params, "dense": {"w": jnp.ones((2, 2)), "b": params["dense"]["b"]}})
    with pytest.raises(TypeError, match=r"\['one'\] has dtype bfloat16"):
        fp.layout.flatten({**params, "one": params["one"].astype(jnp.bfloat16)})
    with pytest.raises(ValueError, match="structure"):
        fp.layout.flatten({"dense": params["dense"]})
    with pytest.raises(ValueError, match="buckets, got 1 buffers"):
        fp.layout.unflatten(fp.buckets[:1])
    with pytest.raises(ValueError, match="buffer 0 has shape"):
        fp.layout.unflatten((jnp.ones(3),) + fp.buckets[1:])
    with pytest.raises(ValueError, match="bucket_bytes"):
        flat.flatten(params, bucket_bytes=0)
    with pytest.raises(ValueError, match="solo_above"):
        flat.flatten(params, solo_above=0)
    with pytest.raises(TypeError, match="not an array"):
        flat.flatten({"a": 1.0})
    with pytest.raises(TypeError, match="complex"):
        flat.flatten({"a": jnp.ones(2, jnp.complex64)})
    with pytest.raises(TypeError, match="group key"):
        flat.flatten(params, group=lambda t: jax.tree.map(lambda _: np.ones(2), t))
    with pytest.raises(TypeError, match="takes a Flat"):
        flat.unflatten(params)
    with pytest.raises(TypeError, match="GradientTransformation"):
        flat.packed(object())
    with pytest.raises(ValueError, match="structure"):
        flat.state_from_tree({"x": 1}, adamlab.adamw(1e-3).init(fp))


def test_guide_flat_example_trains_and_round_trips():
    guide = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "guides" / "flat_layout.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", guide, re.S) if "flat.flatten(" in b)
    scope = {}
    exec(compile(block, "flat_layout.md", "exec"), scope)
    assert repr(scope["fp"]) == "Flat(float32[32], float32[160])"
    assert float(scope["value"]) < 0.01
    assert jax.tree.structure(scope["params"]) == jax.tree.structure(scope["tree_state"][0].moment)
