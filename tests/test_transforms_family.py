"""Optax's gradient transformations under their names (`adamlab.clipping`, `adamlab.gradients`): against Optax bit
for bit over 300 jitted steps, inside `optax.chain`, on integer and complex leaves, against a float64 NumPy
reference (tests/reference_transforms.py), and the errors they raise.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_transforms
from conftest import STEPS, as_dict, mixed_params

import adamlab
from adamlab import testing
from adamlab.clipping import adaptive_grad_clip, clip, clip_by_block_rms, unitwise_norm
from adamlab.gradients import ZeroNansState, centralize, keep_params_nonnegative, zero_nans

# float32 arithmetic against float64 over 300 SGD steps: the params' rounding (6e-8 per step) stays below this.
REF_RTOL = 1e-6


@pytest.fixture(scope="module")
def stream():
    return testing.gradient_stream(mixed_params(), STEPS, seed=1)


@pytest.fixture(scope="module")
def nan_stream(stream):
    """The stream with a NaN wherever a gradient exceeds 1.5 (about 7% of the elements, every leaf some steps)."""
    return jax.tree.map(lambda g: jnp.where(g > 1.5, jnp.nan, g), stream)


def parity_cases():
    """(adamlab chain, Optax chain) pairs: each transformation before (or, for keep_params_nonnegative, after) an
    optimizer, so that its output reaches the params."""
    return {
        "clip": (adamlab.chain(clip(0.1), adamlab.adamw(1e-3)), optax.chain(optax.clip(0.1), optax.adamw(1e-3))),
        "clip_sgd": (adamlab.chain(clip(0.5), adamlab.sgd(0.1)), optax.chain(optax.clip(0.5), optax.sgd(0.1))),
        "clip_by_block_rms": (
            adamlab.chain(clip_by_block_rms(0.5), adamlab.adamw(1e-3)),
            optax.chain(optax.clip_by_block_rms(0.5), optax.adamw(1e-3)),
        ),
        "clip_by_block_rms_sgd": (
            adamlab.chain(clip_by_block_rms(0.7), adamlab.sgd(0.1, momentum=0.9)),
            optax.chain(optax.clip_by_block_rms(0.7), optax.sgd(0.1, momentum=0.9)),
        ),
        "adaptive_grad_clip": (
            adamlab.chain(adaptive_grad_clip(0.05), adamlab.adamw(1e-3)),
            optax.chain(optax.adaptive_grad_clip(0.05), optax.adamw(1e-3)),
        ),
        "adaptive_grad_clip_sgd_eps": (
            adamlab.chain(adaptive_grad_clip(0.02, eps=1e-2), adamlab.sgd(0.1)),
            optax.chain(optax.adaptive_grad_clip(0.02, eps=1e-2), optax.sgd(0.1)),
        ),
        "adaptive_grad_clip_after_adam": (
            adamlab.chain(adamlab.adam(1e-2), adaptive_grad_clip(0.001)),
            optax.chain(optax.adam(1e-2), optax.adaptive_grad_clip(0.001)),
        ),
        "centralize": (
            adamlab.chain(centralize(), adamlab.adamw(1e-3)),
            optax.chain(optax.centralize(), optax.adamw(1e-3)),
        ),
        "zero_nans": (
            adamlab.chain(zero_nans(), adamlab.adamw(1e-3)),
            optax.chain(optax.zero_nans(), optax.adamw(1e-3)),
        ),
        "keep_params_nonnegative": (
            adamlab.chain(adamlab.sgd(0.1), keep_params_nonnegative()),
            optax.chain(optax.sgd(0.1), optax.keep_params_nonnegative()),
        ),
        "keep_params_nonnegative_adamw": (
            adamlab.chain(adamlab.adamw(1e-2), keep_params_nonnegative()),
            optax.chain(optax.adamw(1e-2), optax.keep_params_nonnegative()),
        ),
    }


@pytest.mark.parametrize("name", list(parity_cases()))
def test_bitwise_optax_over_300_jitted_steps(name, stream, nan_stream):
    ours, theirs = parity_cases()[name]
    grads = nan_stream if name == "zero_nans" else stream
    report = testing.compare(ours, theirs, mixed_params(), grads=grads, jit=True)
    assert report.steps == STEPS
    assert report.max_rel == 0.0, str(report)
    # Not vacuous: the transformation changes what its optimizer alone reaches (on NaNs, it keeps it finite).
    plain = adamlab.chain(*[s for s in adamlab.stage_info(ours).stages if adamlab.stage_info(s).name not in OURS])
    final, final_plain, _ = testing.run(ours, mixed_params(), grads, reference=plain)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(final))
    if name == "zero_nans":
        assert not all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(final_plain))
    else:
        assert max(e.max_rel for e in testing.compare_trees(final, final_plain)) > 1e-3


OURS = {"clip", "clip_by_block_rms", "adaptive_grad_clip", "centralize", "zero_nans", "keep_params_nonnegative"}


def test_keep_params_nonnegative_keeps_every_param_nonnegative(stream):
    tx = adamlab.chain(adamlab.sgd(0.1), keep_params_nonnegative())
    params = jax.tree.map(jnp.abs, mixed_params())
    final = testing.run(tx, params, stream)
    assert all(bool(jnp.all(x >= 0)) for x in jax.tree.leaves(final))
    assert any(bool(jnp.any(x == 0)) for x in jax.tree.leaves(final))  # the constraint was active


def test_zero_nans_state_matches_optax(nan_stream):
    params = mixed_params()
    ours, theirs = zero_nans(), optax.zero_nans()
    s1, s2 = ours.init(params), theirs.init(params)
    step1, step2 = jax.jit(ours.update), jax.jit(theirs.update)
    flags = []
    for i in range(20):
        g = jax.tree.map(lambda x, i=i: x[i], nan_stream)
        u1, s1 = step1(g, s1)
        u2, s2 = step2(g, s2)
        testing.assert_bitwise_equal(u1, u2)
        testing.assert_bitwise_equal(s1.found_nan, s2.found_nan)
        flags += [bool(f) for f in jax.tree.leaves(s1.found_nan)]
    assert isinstance(s1, ZeroNansState) and type(s1).__name__ == type(s2).__name__
    assert any(flags) and not all(flags)


# ------------------------------------------------------------------------------------------ inside optax.chain


def optax_chain_cases():
    return {
        "clip": (clip(0.1), optax.clip(0.1)),
        "clip_by_block_rms": (clip_by_block_rms(0.5), optax.clip_by_block_rms(0.5)),
        "adaptive_grad_clip": (adaptive_grad_clip(0.05), optax.adaptive_grad_clip(0.05)),
        "centralize": (centralize(), optax.centralize()),
        "zero_nans": (zero_nans(), optax.zero_nans()),
    }


@pytest.mark.parametrize("name", list(optax_chain_cases()))
def test_inside_optax_chain(name, stream, nan_stream):
    ours, theirs = optax_chain_cases()[name]
    grads = nan_stream if name == "zero_nans" else stream
    report = testing.compare(
        optax.chain(ours, optax.adamw(1e-3)), optax.chain(theirs, optax.adamw(1e-3)), mixed_params(), grads=grads
    )
    assert report.max_rel == 0.0, str(report)


def test_keep_params_nonnegative_inside_optax_chain(stream):
    report = testing.compare(
        optax.chain(optax.sgd(0.1), keep_params_nonnegative()),
        optax.chain(optax.sgd(0.1), optax.keep_params_nonnegative()),
        mixed_params(),
        grads=stream,
    )
    assert report.max_rel == 0.0, str(report)


@pytest.mark.parametrize(
    "ours, theirs, kwargs",
    [
        pytest.param(clip, optax.clip, {"max_delta": 0.1}, id="clip"),
        pytest.param(clip_by_block_rms, optax.clip_by_block_rms, {"threshold": 0.5}, id="clip_by_block_rms"),
        pytest.param(adaptive_grad_clip, optax.adaptive_grad_clip, {"clipping": 0.05, "eps": 1e-3}, id="agc"),
    ],
)
def test_traced_hyperparameters_under_inject_hyperparams(ours, theirs, kwargs, stream):
    """The hyperparameters arrive as float32 arrays, traced in update (optax.inject_hyperparams)."""
    report = testing.compare(
        optax.chain(optax.inject_hyperparams(ours)(**kwargs), optax.adamw(1e-3)),
        optax.chain(optax.inject_hyperparams(theirs)(**kwargs), optax.adamw(1e-3)),
        mixed_params(),
        grads=stream,
    )
    assert report.max_rel == 0.0, str(report)


# ------------------------------------------------------------------------------------ integer, bool and complex


def all_transformations():
    return {
        "clip": clip(0.1),
        "clip_by_block_rms": clip_by_block_rms(0.1),
        "adaptive_grad_clip": adaptive_grad_clip(0.01),
        "centralize": centralize(),
        "zero_nans": zero_nans(),
        "keep_params_nonnegative": keep_params_nonnegative(),
    }


@pytest.mark.parametrize("name", list(all_transformations()))
def test_int_and_bool_leaves_pass_through(name):
    tx = all_transformations()[name]
    params = {
        "w": jnp.array([[1.0, -2.0], [3.0, 0.5]]),
        "step": jnp.array(7, jnp.int32),
        "ids": jnp.array([-5, 9], jnp.int32),
        "flag": jnp.array([True, False]),
    }
    updates = {
        "w": jnp.array([[-30.0, jnp.nan], [4.0, -2.0]]),
        "step": jnp.array(-3, jnp.int32),
        "ids": jnp.array([-50, 90], jnp.int32),
        "flag": jnp.array([False, True]),
    }
    state = tx.init(params)
    out, _ = jax.jit(tx.update)(updates, state, params)
    for k in ("step", "ids", "flag"):
        assert out[k].dtype == updates[k].dtype
        np.testing.assert_array_equal(out[k], updates[k])
    assert out["w"].dtype == jnp.float32
    assert not np.array_equal(np.asarray(out["w"]), np.asarray(updates["w"]), equal_nan=True)
    if name == "zero_nans":
        assert state.found_nan["step"].dtype == jnp.bool_
        assert not bool(tx.update(updates, state)[1].found_nan["ids"])


def numpy_stream(params, steps, seed):
    """Normal gradients like `testing.gradient_stream`'s, drawn by NumPy (eager jax.random compiles per shape)."""
    rng = np.random.default_rng(seed)

    def draw(p):
        g = rng.normal(size=(steps, *p.shape))
        if jnp.iscomplexobj(p):
            g = g + 1j * rng.normal(size=g.shape)
        return jnp.asarray(g, p.dtype)

    return jax.tree.map(draw, params)


def complex_params():
    like = {name: jnp.zeros(shape, jnp.complex64) for name, shape in {"w": (4, 3), "v": (5,), "k": (2, 3, 2)}.items()}
    like["r"] = jnp.zeros((3, 2))  # a real leaf among them
    return jax.tree.map(lambda g: g[0], numpy_stream(like, 1, 3))


@pytest.mark.parametrize(
    "ours, theirs",
    [
        pytest.param(clip_by_block_rms(0.5), optax.clip_by_block_rms(0.5), id="clip_by_block_rms"),
        pytest.param(adaptive_grad_clip(0.05), optax.adaptive_grad_clip(0.05), id="adaptive_grad_clip"),
        pytest.param(centralize(), optax.centralize(), id="centralize"),
        pytest.param(zero_nans(), optax.zero_nans(), id="zero_nans"),
    ],
)
def test_complex_leaves_match_optax(ours, theirs):
    params = complex_params()
    grads = numpy_stream(params, 50, seed=2)
    report = testing.compare(
        adamlab.chain(ours, adamlab.sgd(0.1)), optax.chain(theirs, optax.sgd(0.1)), params, grads=grads
    )
    assert report.max_rel == 0.0, str(report)


@pytest.mark.parametrize("tx", [clip(1.0), keep_params_nonnegative()], ids=["clip", "keep_params_nonnegative"])
def test_complex_leaves_are_refused_where_they_have_no_order(tx):
    params = {"w": jnp.ones(2), "z": jnp.ones(2, jnp.complex64)}
    with pytest.raises(TypeError, match=r"\['z'\].*complex"):
        tx.update(params, tx.init(params), params)


def test_bfloat16_clip_stays_in_the_leaf_dtype():
    g = {"w": jnp.array([0.3, -0.05, -2.0], jnp.bfloat16)}
    out, _ = clip(0.1).update(g, clip(0.1).init(g))
    ref, _ = optax.clip(0.1).update(g, optax.clip(0.1).init(g))
    testing.assert_bitwise_equal(out, ref)


def test_float64_leaves_under_x64_match_optax_and_keep_their_dtype():
    """Under x64 a float64 leaf computes in float64 and a float32 one in float32, as in Optax, bit for bit."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(5)
        params = {"w": jnp.asarray(rng.normal(size=(5, 3))), "v": jnp.asarray(rng.normal(size=4), jnp.float32)}
        grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=(30, *p.shape)), p.dtype), params)
        for ours, theirs in [
            (clip(0.1), optax.clip(0.1)),
            (clip_by_block_rms(0.5), optax.clip_by_block_rms(0.5)),
            (adaptive_grad_clip(0.05), optax.adaptive_grad_clip(0.05)),
            (centralize(), optax.centralize()),
            (zero_nans(), optax.zero_nans()),
        ]:
            tx = adamlab.chain(ours, adamlab.sgd(0.1))
            report = testing.compare(tx, optax.chain(theirs, optax.sgd(0.1)), params, grads=grads)
            assert report.max_rel == 0.0, (adamlab.stage_info(ours).name, str(report))
            final = testing.run(tx, params, grads)
            assert jax.tree.map(lambda x: x.dtype, final) == {"w": jnp.float64, "v": jnp.float32}


# --------------------------------------------------------------------------------------- float64 NumPy reference


def test_adaptive_grad_clip_matches_the_float64_reference(stream):
    final = testing.run(adamlab.chain(adaptive_grad_clip(0.05), adamlab.sgd(0.1)), mixed_params(), stream)
    expected = reference_transforms.agc_sgd(as_dict(mixed_params()), as_dict(stream), lr=0.1, clipping=0.05)
    errors = testing.compare_trees(as_dict(final), expected)
    assert max(e.max_rel for e in errors) <= REF_RTOL, errors


def test_clip_by_block_rms_matches_the_float64_reference(stream):
    final = testing.run(adamlab.chain(clip_by_block_rms(0.5), adamlab.sgd(0.1)), mixed_params(), stream)
    expected = reference_transforms.block_rms_sgd(as_dict(mixed_params()), as_dict(stream), lr=0.1, threshold=0.5)
    errors = testing.compare_trees(as_dict(final), expected)
    assert max(e.max_rel for e in errors) <= REF_RTOL, errors


def test_the_references_clip():
    """The reference's clips do clip: block RMS to the threshold, AGC's units to clipping times the params'."""
    g = np.array([[3.0, 0.1], [4.0, 0.0]])
    np.testing.assert_allclose(np.sqrt(np.mean(reference_transforms.block_rms(g, 0.5) ** 2)), 0.5)
    out = reference_transforms.agc(g, np.ones((2, 2)), 0.1, 1e-3)
    np.testing.assert_allclose(np.linalg.norm(out, axis=0), [0.1 * np.sqrt(2), 0.1])


def test_unitwise_norm_matches_optax():
    rng = np.random.default_rng(0)
    xs = [jnp.asarray(rng.normal(size=s), jnp.float32) for s in [(), (4,), (1, 5), (3, 4), (2, 3, 4), (2, 2, 3, 4)]]
    xs.append(jnp.asarray(rng.normal(size=(2, 2, 2, 3, 4)), jnp.float32))
    testing.assert_bitwise_equal(
        jax.jit(lambda xs: [unitwise_norm(x) for x in xs])(xs),
        jax.jit(lambda xs: [optax.transforms.unitwise_norm(x) for x in xs])(xs),
    )
    x = jnp.ones((2, 3, 4))
    testing.assert_bitwise_equal(unitwise_norm(x, axis=(1, 2)), optax.transforms.unitwise_norm(x, axis=(1, 2)))
    testing.assert_bitwise_equal(unitwise_norm(x, axis=[1, 2]), unitwise_norm(x, axis=(1, 2)))


def test_adaptive_grad_clip_axis_matches_optax():
    params = {"k": numpy_stream({"k": jnp.zeros((2, 2, 2, 3, 4, 2))}, 1, 1)["k"][0]}
    grads = numpy_stream(params, 20, seed=4)
    report = testing.compare(
        adamlab.chain(adaptive_grad_clip(0.1, 1e-3, (0, 1, 2)), adamlab.sgd(0.1)),
        optax.chain(optax.adaptive_grad_clip(0.1, 1e-3, (0, 1, 2)), optax.sgd(0.1)),
        params,
        grads=grads,
    )
    assert report.max_rel == 0.0, str(report)


# ------------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: clip(-0.1), "max_delta must be >= 0"),
        (lambda: clip(float("nan")), "max_delta must be >= 0"),
        (lambda: clip_by_block_rms(0.0), "threshold must be > 0"),
        (lambda: clip_by_block_rms(-1.0), "threshold must be > 0"),
        (lambda: adaptive_grad_clip(0.0), "clipping must be > 0"),
        (lambda: adaptive_grad_clip(-0.1), "clipping must be > 0"),
        (lambda: adaptive_grad_clip(0.1, eps=-1e-3), "eps must be >= 0"),
    ],
)
def test_bad_arguments_raise_at_build_time(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: clip("0.1"), "max_delta must be a real number"),  # pyright: ignore[reportArgumentType]
        (lambda: clip_by_block_rms(jnp.ones(2)), "threshold must be a scalar"),
        (lambda: adaptive_grad_clip(0.1, 1e-3, "0"), "axis must be None, an int"),  # pyright: ignore[reportArgumentType]
        (lambda: adaptive_grad_clip(0.1, 1e-3, (0, 1.0)), "axis must be None, an int"),  # pyright: ignore[reportArgumentType]
    ],
)
def test_bad_argument_types_raise_at_build_time(build, match):
    with pytest.raises(TypeError, match=match):
        build()


@pytest.mark.parametrize(
    "tx, name",
    [
        (adaptive_grad_clip(0.1), "adaptive_grad_clip"),
        (keep_params_nonnegative(), "keep_params_nonnegative"),
    ],
)
def test_missing_params_raise(tx, name):
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match=f"{name} needs the params"):
        tx.update(params, tx.init(params))
    with pytest.raises(ValueError, match=f"{name} needs the params"):
        adamlab.chain(adamlab.sgd(0.1), tx).update(params, adamlab.chain(adamlab.sgd(0.1), tx).init(params))
    with pytest.raises(ValueError, match=r"missing leaf at \['b'\]"):
        tx.update(params, tx.init(params), {"w": jnp.ones(3), "b": jnp.ones(2)})
    assert tx.update({}, tx.init({}))[0] == {}  # an empty tree needs no params


def test_adaptive_grad_clip_refuses_a_rank_6_leaf_at_init():
    params = {"k": jnp.ones((2, 2, 2, 2, 2, 2))}
    with pytest.raises(ValueError, match=r"rank 6 .*pass axis=.*\['k'\]"):
        adaptive_grad_clip(0.1).init(params)
    adaptive_grad_clip(0.1, axis=(0, 1)).init(params)  # an explicit axis covers any rank
    adaptive_grad_clip(0.1).init({"v": jnp.ones((1, 1, 1, 1, 1, 1, 5))})  # a vector by shape


@pytest.mark.parametrize("tx", [adaptive_grad_clip(0.1), centralize()], ids=["adaptive_grad_clip", "centralize"])
def test_per_shape_stages_refuse_the_flat_layout(tx):
    flat = adamlab.flat.flatten({"w": jnp.ones((2, 3)), "b": jnp.ones(3)})
    with pytest.raises(TypeError, match="Flat"):
        tx.update(flat, tx.init(flat), flat)


def test_clip_by_block_rms_on_the_flat_layout_is_per_leaf():
    tree = {"w": jnp.array([[3.0, 4.0], [0.0, 0.0]]), "b": jnp.array([0.1, 0.2])}
    flat = adamlab.flat.flatten(tree, group=None)
    assert len(flat.buckets) == 1  # both leaves share a buffer
    tx = clip_by_block_rms(1.0)
    out_flat, _ = tx.update(flat, tx.init(flat))
    out_tree, _ = tx.update(tree, tx.init(tree))
    testing.assert_bitwise_equal(out_flat.unflatten(), out_tree)


def test_zero_nans_refuses_a_tree_unlike_init():
    tx = zero_nans()
    with pytest.raises(ValueError, match=r"zero_nans.*\['b'\]"):
        tx.update({"w": jnp.ones(2), "b": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))
