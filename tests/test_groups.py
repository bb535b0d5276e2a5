"""Parameter groups: masked, partition, set_to_zero, freeze, against Optax and with no moments for leaves a
transformation does not train."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import mixed_params

import adamlab
from adamlab import testing


def model_params():
    k = jax.random.split(jax.random.PRNGKey(3), 4)
    return {
        "embed": jax.random.normal(k[0], (50, 8)),
        "encoder": {"w": jax.random.normal(k[1], (8, 8)), "norm": {"scale": jnp.ones(8)}},
        "head": {"w": jax.random.normal(k[2], (8, 4)), "b": jnp.zeros(4)},
    }


LABELS = {"embed": "embed", "encoder": "frozen", "head": {"w": "decay", "b": "no_decay"}}


def state_bytes(state) -> int:
    return sum(x.nbytes for x in jax.tree.leaves(state))


def test_torch_style_parameter_groups_match_optax_partition():
    params = model_params()
    stream = testing.gradient_stream(params, 50, seed=5)
    ours = adamlab.partition(
        {
            "embed": adamlab.adam(1e-2),
            "frozen": adamlab.set_to_zero(),
            "decay": adamlab.adamw(1e-3, weight_decay=0.1),
            "no_decay": adamlab.adamw(1e-3, weight_decay=0.0),
        },
        LABELS,
    )
    theirs = optax.partition(
        {
            "embed": optax.adam(1e-2),
            "frozen": optax.set_to_zero(),
            "decay": optax.adamw(1e-3, weight_decay=0.1),
            "no_decay": optax.adamw(1e-3, weight_decay=0.0),
        },
        LABELS,
    )
    final = testing.run(ours, params, stream)
    testing.assert_bitwise_equal(final, testing.run(theirs, params, stream))
    testing.assert_bitwise_equal(final["encoder"], params["encoder"])  # frozen: not a bit moved
    assert not np.allclose(final["embed"], params["embed"])


def test_groups_keep_no_moments_for_leaves_they_do_not_train():
    params = model_params()
    n = {k: sum(x.size for x in jax.tree.leaves(v)) for k, v in params.items()}
    groups = adamlab.partition(
        {"frozen": adamlab.set_to_zero(), "trained": adamlab.adamw(1e-3)},
        {"embed": "frozen", "encoder": "frozen", "head": "trained"},
    )
    # AdamW keeps two float32 moments per trained weight and two int32 counters; nothing for the frozen ones.
    assert state_bytes(groups.init(params)) == 2 * 4 * n["head"] + 2 * 4
    only_head = adamlab.masked(adamlab.adam(1e-3), {"embed": False, "encoder": False, "head": True})
    assert state_bytes(only_head.init(params)) == 2 * 4 * n["head"] + 2 * 4
    theirs = optax.masked(optax.adam(1e-3), {"embed": False, "encoder": False, "head": True})
    # Optax's masked adam keeps as much (MaskedNode in place of the others), less adamlab's second step counter.
    assert state_bytes(theirs.init(params)) + 4 == state_bytes(only_head.init(params))
    assert state_bytes(adamlab.adam(1e-3).init(params)) == 2 * 4 * sum(n.values()) + 2 * 4


def test_masked_passes_the_other_leaves_through_and_matches_optax_under_jit():
    params = mixed_params()
    mask = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)
    ours, theirs = adamlab.masked(adamlab.adam(1e-3), mask), optax.masked(optax.adam(1e-3), mask)
    g = jax.tree.map(lambda x: x * 0.5 + 1.0, params)
    u_ours, s = jax.jit(ours.update)(g, ours.init(params), params)
    u_theirs, _ = jax.jit(theirs.update)(g, theirs.init(params), params)
    testing.assert_bitwise_equal(u_ours, u_theirs)
    testing.assert_bitwise_equal(u_ours["scalar"], g["scalar"])  # masked out: unchanged


def test_freeze_last_in_a_chain_holds_frozen_leaves_bit_for_bit_weight_decay_included():
    params = model_params()
    tx = adamlab.chain(
        adamlab.adamw(1e-2, weight_decay=0.5), adamlab.freeze({"embed": True, "encoder": False, "head": False})
    )
    final = testing.run(tx, params, testing.gradient_stream(params, 20, seed=1))
    testing.assert_bitwise_equal(final["embed"], params["embed"])
    assert not np.allclose(final["head"]["w"], params["head"]["w"])


def test_groups_inside_a_chain_see_the_clipped_gradient():
    params = model_params()
    stream = testing.gradient_stream(params, 20, seed=2, scale=10.0)
    ours = adamlab.chain(
        adamlab.clip_by_global_norm(1.0),
        adamlab.partition(
            {"a": adamlab.adam(1e-2), "b": adamlab.sgd(1e-2, momentum=0.9)}, {"embed": "a", "encoder": "b", "head": "a"}
        ),
    )
    theirs = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.partition(
            {"a": optax.adam(1e-2), "b": optax.sgd(1e-2, momentum=0.9)}, {"embed": "a", "encoder": "b", "head": "a"}
        ),
    )
    a, b = testing.run(ours, params, stream), testing.run(theirs, params, stream)
    assert max(e.max_rel for e in testing.compare_trees(a, b)) <= 1e-6


def test_bad_labels_and_masks_are_named():
    params = model_params()
    with pytest.raises(ValueError, match="labels 'nope' name no transformation"):
        adamlab.partition({"a": adamlab.adam(1e-3)}, {"embed": "a", "encoder": "nope", "head": "a"}).init(params)
    with pytest.raises(ValueError, match="labels does not match the params"):
        adamlab.partition({"a": adamlab.adam(1e-3)}, {"embed": "a"}).init(params)
    with pytest.raises(TypeError, match="mask leaves must be Python bools"):
        adamlab.masked(adamlab.adam(1e-3), jax.tree.map(lambda x: jnp.ones(x.shape, bool), params)).init(params)
    with pytest.raises(TypeError, match="partition: transforms must be a non-empty dict"):
        adamlab.partition([adamlab.adam(1e-3)], LABELS)


def test_groups_on_the_flat_layout_work_per_bucket_and_equal_the_pytree_run():
    from adamlab import flat

    params = model_params()
    labels = {"embed": "embed", "encoder": "frozen", "head": "trained"}
    tx = adamlab.partition(
        {"embed": adamlab.adam(1e-2), "frozen": adamlab.set_to_zero(), "trained": adamlab.sgd(1e-2, momentum=0.9)},
        labels,
    )
    layout = flat.Layout.of(params, group=labels)
    stream = testing.gradient_stream(params, 20, seed=6)
    fp, fs = layout.flatten(params), tx.init(layout.flatten(params))
    step = jax.jit(lambda p, s, g: (lambda u, s: (adamlab.apply_updates(p, u), s))(*tx.update(g, s, p)))
    for i in range(20):
        fp, fs = step(fp, fs, layout.flatten(jax.tree.map(lambda x, i=i: x[i], stream)))
    tree_run = testing.run(tx, params, stream)  # a scan, compiled apart: equal to rounding
    assert max(e.max_rel for e in testing.compare_trees(fp.unflatten(), tree_run)) <= 1e-6
    testing.assert_bitwise_equal(fp.unflatten()["encoder"], params["encoder"])
    with pytest.raises(ValueError, match="build the layout grouped by them"):
        tx.init(flat.Layout.of(params).flatten(params))
