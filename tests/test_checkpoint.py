"""Checkpoints: exact round trips, NamedTuple state types recovered, bit-identical resume, clear refusals.

(Sharded state on 8 devices is checked in tests/sharded_checks.py, run by tests/test_sharding.py.)
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import mixed_params

import adamlab
from adamlab import checkpoint, flat
from adamlab.moments import EmaState, RmsState

STEPS = 3


def _params():
    p = mixed_params()
    p["half"] = {"w": jnp.linspace(-1, 1, 6, dtype=jnp.bfloat16).reshape(2, 3)}
    p["steps"] = jnp.arange(3, dtype=jnp.int32)  # no gradient: its moments are (0,) placeholders
    return p


def _grads(params, seed):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree.unflatten(
        treedef,
        [
            jax.random.normal(k, p.shape, jnp.float32).astype(p.dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p
            for k, p in zip(keys, leaves)
        ],
    )


def _tx():
    return adamlab.adamw(
        adamlab.schedules.warmup_cosine_decay(0.0, 1e-2, 2, 20), weight_decay=0.1, mask=adamlab.weight_decay_mask
    )


@jax.jit
def _step(p, s, g):
    u, s = _tx().update(g, s, p)
    return adamlab.apply_updates(p, u), s


def _bitwise(a, b):
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def _save(fmt, path, tree):
    return checkpoint.save_npz(path / "ck.npz", tree) if fmt == "npz" else checkpoint.save_orbax(path / "ck", tree)


def _load(fmt, path, like):
    return checkpoint.load_npz(path, like) if fmt == "npz" else checkpoint.restore_orbax(path, like)


@pytest.fixture(params=["npz", "orbax"])
def fmt(request):
    if request.param == "orbax":
        pytest.importorskip("orbax.checkpoint")
    return request.param


@pytest.mark.parametrize("layout", ["tree", "flat"])
def test_resume_at_step_k_is_bit_identical_at_step_2k(fmt, layout, tmp_path):
    params = _params()
    if layout == "flat":
        params = flat.flatten(params)
    grads = [_grads(_params(), 10 + i) for i in range(2 * STEPS)]
    if layout == "flat":
        grads = [params.layout.flatten(g) for g in grads]
    p, s = params, _tx().init(params)
    for g in grads:
        p, s = _step(p, s, g)
    uninterrupted = (p, s)

    p, s = params, _tx().init(params)
    for g in grads[:STEPS]:
        p, s = _step(p, s, g)
    path = _save(fmt, tmp_path, {"params": p, "opt_state": s, "step": jnp.asarray(STEPS)})
    del p, s
    # A fresh process would build the template without running anything: shapes only.
    like = jax.eval_shape(lambda: {"params": params, "opt_state": _tx().init(params), "step": jnp.asarray(0)})
    restored = _load(fmt, path, like)
    assert int(restored["step"]) == STEPS
    p, s = restored["params"], restored["opt_state"]
    for g in grads[STEPS:]:
        p, s = _step(p, s, g)
    assert _bitwise((p, s), uninterrupted)


def test_round_trip_keeps_values_dtypes_and_state_types(fmt, tmp_path):
    params = _params()
    p, s = params, _tx().init(params)
    for i in range(2):
        p, s = _step(p, s, _grads(params, i))
    tree = {"opt": s, "key": jax.random.key(7), "raw_key": jax.random.PRNGKey(3), "f8": jnp.ones(4, jnp.float8_e4m3fn)}
    path = _save(fmt, tmp_path, tree)
    back = _load(fmt, path, tree)
    assert _bitwise(_load(fmt, path, jax.eval_shape(lambda: tree))["opt"], tree["opt"])  # a shapes-only template
    assert _bitwise(
        jax.tree.map(lambda x: x, {k: v for k, v in back.items() if k != "key"}),
        {k: v for k, v in tree.items() if k != "key"},
    )
    # NamedTuples come back as NamedTuples (not lists or dicts), with their field names.
    assert isinstance(back["opt"][0], EmaState) and isinstance(back["opt"][2], RmsState)
    assert back["opt"][2].gradient_mean == () and back["opt"][0].moment["steps"].shape == (0,)
    assert back["opt"][0].moment["half"]["w"].dtype == jnp.float32 and back["f8"].dtype == jnp.float8_e4m3fn
    assert jax.dtypes.issubdtype(back["key"].dtype, jax.dtypes.prng_key)
    assert np.array_equal(jax.random.key_data(back["key"]), jax.random.key_data(tree["key"]))


def test_npz_is_plain_numpy_for_numpy_dtypes(tmp_path):
    tree = {"w": jnp.arange(6.0).reshape(2, 3), "n": jnp.asarray(5, jnp.int32)}
    path = checkpoint.save_npz(tmp_path / "plain", tree)
    assert path.name == "plain.npz" and not list(tmp_path.glob("*.tmp"))
    with np.load(path) as data:
        np.testing.assert_array_equal(data["leaf_000000"], np.asarray(tree["n"]))
        np.testing.assert_array_equal(data["leaf_000001"], np.asarray(tree["w"]))
    checkpoint.save_npz(path, {"w": tree["w"] + 1, "n": tree["n"]})  # overwrites in place
    assert float(checkpoint.load_npz(path, tree)["w"][0, 0]) == 1.0


def test_restore_places_leaves_on_the_template_sharding(fmt, tmp_path):
    device = jax.devices()[-1]
    tree = {"w": jnp.ones((2, 2)), "v": jnp.zeros(3)}
    like = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=jax.sharding.SingleDeviceSharding(device)), tree
    )
    back = _load(fmt, _save(fmt, tmp_path, tree), like)
    assert all(x.sharding == jax.sharding.SingleDeviceSharding(device) for x in jax.tree.leaves(back))


def test_restoring_into_another_tree_shape_or_dtype_is_refused(fmt, tmp_path):
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    state = adamlab.adamw(1e-3).init(params)
    path = _save(fmt, tmp_path, state)
    # adam and adamw states have the same leaf paths; adamw has one more (empty) stage.
    with pytest.raises(ValueError, match="other containers"):
        _load(fmt, path, adamlab.adam(1e-3).init(params))
    with pytest.raises(ValueError, match="different tree"):
        _load(fmt, path, adamlab.sgd(1e-3, momentum=0.9).init(params))
    with pytest.raises(ValueError, match=r"\['w'\].*shape \(3, 2\).*\(2, 3\)"):
        _load(fmt, path, adamlab.adamw(1e-3).init({"w": jnp.ones((2, 3)), "b": jnp.zeros(2)}))
    with pytest.raises(TypeError, match=r"\['b'\].*float32.*bfloat16"):
        _load(fmt, path, adamlab.adamw(1e-3, state_dtype=jnp.bfloat16).init(params))
    with pytest.raises(ValueError, match=r"different tree.*\['c'\]"):
        _load(fmt, path, adamlab.adamw(1e-3).init(dict(params, c=jnp.ones(1))))
    with pytest.raises(ValueError, match=r"the template has an extra leaf at \['z'\]"):
        _load(fmt, _save(fmt, tmp_path / "short", {"a": jnp.ones(2)}), {"a": jnp.ones(2), "z": jnp.ones(1)})
    # Plain tuples where the checkpoint has NamedTuples (the trap of restoring without a template), and lists.
    with pytest.raises(ValueError, match=r"different tree.*\[0\]\.moment\['b'\].*\[0\]\[0\]\['b'\]"):
        _load(fmt, path, tuple(tuple(s) for s in state))
    with pytest.raises(ValueError, match="other containers"):
        _load(fmt, _save(fmt, tmp_path / "tuple", (jnp.ones(2), jnp.ones(1))), [jnp.ones(2), jnp.ones(1)])


def test_npz_refuses_foreign_files_and_non_arrays(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.ones(2))
    with pytest.raises(ValueError, match="not an adamlab checkpoint"):
        checkpoint.load_npz(tmp_path / "other.npz", {"a": jnp.ones(2)})
    with pytest.raises(TypeError, match=r"\['lr'\].*float"):
        checkpoint.save_npz(tmp_path / "x.npz", {"lr": 0.1})
