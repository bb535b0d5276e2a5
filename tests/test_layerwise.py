"""The layer-wise methods (`adamlab.layerwise`): against Optax, against the float64 reference of each paper
(tests/reference_layerwise.py), on zero norms, on the flat layout, and with bad arguments."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_layerwise as ref
from conftest import STEPS, as_dict, mixed_params

import adamlab
from adamlab import flat, testing
from adamlab.layerwise import (
    TensorRmsState,
    lamb,
    lars,
    normalize_by_update_norm,
    novograd,
    scale_by_novograd,
    scale_by_tensor_rms,
    scale_by_trust_ratio,
)

# float32 state and arithmetic against float64, over 300 steps.
REF_RTOL = 1e-5
SCHEDULE = optax.linear_schedule(1e-3, 1e-2, 100)


def no_decay_on_biases(params):
    return jax.tree_util.tree_map_with_path(lambda path, p: "b" not in jax.tree_util.keystr(path), params)


def max_rel(actual, expected):
    return max(e.max_rel for e in testing.compare_trees(as_dict(actual), expected))


@pytest.fixture(scope="module")
def stream():
    return testing.gradient_stream(mixed_params(), STEPS, seed=1)


# ----------------------------------------------------------------------------------------------- Optax parity


def optax_cases():
    mask = no_decay_on_biases
    return {
        "trust_ratio": (
            adamlab.chain(scale_by_trust_ratio(), adamlab.scale(-1e-2)),
            optax.chain(optax.scale_by_trust_ratio(), optax.scale(-1e-2)),
        ),
        "trust_ratio_floor_eps": (
            adamlab.chain(scale_by_trust_ratio(0.1, 0.5, 1e-3), adamlab.scale_by_learning_rate(SCHEDULE)),
            optax.chain(optax.scale_by_trust_ratio(0.1, 0.5, 1e-3), optax.scale_by_learning_rate(SCHEDULE)),
        ),
        "normalize_by_update_norm": (
            adamlab.chain(normalize_by_update_norm(-1e-2)),
            optax.normalize_by_update_norm(-1e-2),
        ),
        "normalize_then_schedule": (
            adamlab.chain(normalize_by_update_norm(eps=1e-3), adamlab.scale_by_learning_rate(SCHEDULE)),
            optax.chain(optax.normalize_by_update_norm(eps=1e-3), optax.scale_by_learning_rate(SCHEDULE)),
        ),
        "lamb": (lamb(1e-3), optax.lamb(1e-3)),
        "lamb_schedule_wd_mask": (
            lamb(SCHEDULE, weight_decay=0.1, mask=mask),
            optax.lamb(SCHEDULE, weight_decay=0.1, mask=mask),
        ),
        "lamb_eps_root_wd": (
            lamb(3e-3, 0.8, 0.99, 1e-8, 1e-10, weight_decay=0.01),
            optax.lamb(3e-3, 0.8, 0.99, 1e-8, 1e-10, weight_decay=0.01),
        ),
        "lars": (lars(0.1), optax.lars(0.1)),
        "lars_schedule_wd_masks_nesterov": (
            lars(SCHEDULE, 1e-2, mask, 0.01, 1e-6, mask, nesterov=True),
            optax.lars(SCHEDULE, 1e-2, mask, 0.01, 1e-6, mask, nesterov=True),
        ),
        "lars_no_trust_ratio": (
            lars(0.01, 1e-3, trust_ratio_mask=False, momentum=0.5),
            optax.lars(0.01, 1e-3, trust_ratio_mask=False, momentum=0.5),
        ),
        "novograd": (novograd(1e-3), optax.novograd(1e-3)),
        "novograd_wd": (novograd(1e-3, weight_decay=0.1), optax.novograd(1e-3, weight_decay=0.1)),
        "novograd_schedule_wd": (
            novograd(SCHEDULE, 0.95, 0.5, 1e-8, 1e-8, 0.1),
            optax.novograd(SCHEDULE, 0.95, 0.5, 1e-8, 1e-8, 0.1),
        ),
        "novograd_schedule": (novograd(SCHEDULE, b2=0.5), optax.novograd(SCHEDULE, b2=0.5)),
    }


# Within rounding, not bit for bit: NovoGrad's momentum ``b1 * m + g * (1 / sqrt(v)) (+ wd * p)``. XLA turns the
# division by a per-tensor scalar into a reciprocal multiply in both programs, then contracts a product of the sum
# into a fused multiply-add in one program and not in the other (Optax's runs in a lax.cond branch); which
# configurations round alike depends on the fusions. With a constant rate and a decay they do here.
ROUNDING = {"novograd", "novograd_schedule", "novograd_schedule_wd"}


@pytest.mark.parametrize("name", sorted(optax_cases()))
def test_matches_optax_over_300_jitted_steps(name, stream):
    ours, theirs = optax_cases()[name]
    report = testing.compare(ours, theirs, mixed_params(), grads=stream, jit=True)
    if name in ROUNDING:
        assert report.max_rel <= 1e-6, report
    else:
        assert report.max_rel == 0.0, report


def test_stage_orders_are_optaxs():
    def names(tx):
        return [adamlab.stage_info(s).name for s in adamlab.stage_info(tx).stages]

    rms = ["scale_by_ema", "bias_correct", "scale_by_rms"]
    assert names(lamb(1e-3)) == [*rms, "scale_by_trust_ratio", "scale"]
    assert names(lamb(1e-3, weight_decay=0.1)) == [*rms, "add_decoupled_weight_decay", "scale_by_trust_ratio", "scale"]
    assert names(lars(0.1)) == ["scale_by_trust_ratio", "scale", "trace"]
    assert names(lars(0.1, 1e-4, trust_ratio_mask=no_decay_on_biases)) == [
        "add_coupled_weight_decay",
        "masked",
        "scale",
        "trace",
    ]
    assert names(novograd(SCHEDULE, weight_decay=0.1)) == [
        "scale_by_tensor_rms",
        "add_decoupled_weight_decay",
        "trace",
        "scale_by_learning_rate",
    ]


# ----------------------------------------------------------------------------------------- float64 reference


def reference_cases():
    params = mixed_params()
    mask = as_dict(no_decay_on_biases(params))
    return {
        "trust_ratio": (
            adamlab.chain(scale_by_trust_ratio(0.1, 0.5, 1e-3), adamlab.scale_by_learning_rate(1e-2)),
            lambda p, g: ref.trust_ratio_sgd(p, g, 1e-2, 0.1, 0.5, 1e-3),
        ),
        "normalize_by_update_norm": (
            adamlab.chain(normalize_by_update_norm(-1e-2, 1e-3)),
            lambda p, g: ref.normalized_sgd(p, g, -1e-2, 1e-3),
        ),
        "lamb": (lamb(1e-3), lambda p, g: ref.lamb(p, g, 1e-3)),
        "lamb_schedule_wd_mask": (
            lamb(SCHEDULE, weight_decay=0.1, mask=no_decay_on_biases),
            lambda p, g: ref.lamb(p, g, SCHEDULE, weight_decay=0.1, mask=mask),
        ),
        "lars": (lars(0.1), lambda p, g: ref.lars(p, g, 0.1)),
        "lars_schedule_wd_masks_nesterov": (
            lars(SCHEDULE, 1e-2, no_decay_on_biases, 0.01, 1e-6, no_decay_on_biases, nesterov=True),
            lambda p, g: ref.lars(p, g, SCHEDULE, 1e-2, mask, 0.01, 1e-6, mask, nesterov=True),
        ),
        "novograd": (novograd(1e-3), lambda p, g: ref.novograd(p, g, 1e-3)),
        "novograd_schedule_wd": (
            novograd(SCHEDULE, 0.95, 0.5, 1e-8, 1e-8, 0.1),
            lambda p, g: ref.novograd(p, g, SCHEDULE, 0.95, 0.5, 1e-8, 1e-8, 0.1),
        ),
    }


@pytest.mark.parametrize("name", sorted(reference_cases()))
def test_matches_the_float64_reference_of_the_paper(name, stream):
    tx, reference = reference_cases()[name]
    params = mixed_params()
    ours = testing.run(tx, params, stream, jit=True)
    expected = reference(as_dict(params), as_dict(stream))
    assert max_rel(ours, expected) <= REF_RTOL
    assert max_rel(params, expected) > 1e-3  # the params moved: the comparison could fail


# --------------------------------------------------------------------------------------------- zero norms


def zero_tree():
    return {"w": jnp.zeros((3, 2)), "b": jnp.zeros(3), "s": jnp.zeros(())}


@pytest.mark.parametrize(
    "make",
    [
        lambda: adamlab.chain(scale_by_trust_ratio(), adamlab.scale(-0.1)),
        lambda: adamlab.chain(scale_by_trust_ratio(0.0, 1.0, 0.0), adamlab.scale(-0.1)),
        lambda: lamb(0.1, weight_decay=0.1),
        lambda: lars(0.1, 0.1),
        lambda: novograd(0.1, eps=1e-6),
        lambda: adamlab.chain(normalize_by_update_norm()),
    ],
    ids=["trust_ratio", "trust_ratio_eps0", "lamb", "lars", "novograd", "normalize"],
)
def test_zero_params_and_zero_updates_give_finite_steps(make):
    tx = make()
    params = zero_tree()
    state = tx.init(params)
    grad = {"w": jnp.ones((3, 2)), "b": jnp.zeros(3), "s": jnp.asarray(-2.0)}  # b: zero param and zero update
    for _ in range(3):
        updates, state = tx.update(grad, state, params)
        assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))
        params = adamlab.apply_updates(params, updates)
    assert float(jnp.abs(params["w"]).max()) > 0  # the zero params moved
    np.testing.assert_array_equal(np.asarray(params["b"]), 0.0)  # a zero gradient gives a zero step


def test_a_zero_norm_leaves_the_update_unscaled_as_optax_does():
    params = {"zero": jnp.zeros(3), "w": jnp.array([3.0, 4.0]), "still": jnp.array([1.0, 1.0])}
    updates = {"zero": jnp.array([1.0, -2.0, 0.5]), "w": jnp.array([0.0, 0.5]), "still": jnp.zeros(2)}
    ours, _ = scale_by_trust_ratio().update(updates, adamlab.EmptyState(), params)
    theirs, _ = optax.scale_by_trust_ratio().update(updates, optax.EmptyState(), params)
    testing.assert_bitwise_equal(ours, theirs)
    np.testing.assert_array_equal(np.asarray(ours["zero"]), np.asarray(updates["zero"]))
    np.testing.assert_allclose(np.asarray(ours["w"]), [0.0, 5.0])


def test_the_derivative_through_a_zero_norm_is_finite():
    """Differentiating through the step (meta-learning) at zero params and a zero update gives no NaN."""

    def loss(p):
        u, _ = scale_by_trust_ratio(min_norm=0.0).update({"w": p["w"] * 0.0, "v": p["w"] + 1.0}, (), p)
        return jnp.sum(u["w"]) + jnp.sum(u["v"] ** 2)

    grad = jax.grad(loss)({"w": jnp.zeros(3), "v": jnp.zeros(3)})
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grad))


# --------------------------------------------------------------------------------------- leaves and layouts


def test_integer_leaves_pass_through_and_keep_placeholders():
    params = {"w": jnp.array([3.0, 4.0]), "step": jnp.asarray(7, jnp.int32)}
    grads = {"w": jnp.array([1.0, 2.0]), "step": jnp.asarray(0, jnp.int32)}
    for tx in (lamb(0.1), lars(0.1), novograd(0.1), adamlab.chain(normalize_by_update_norm())):
        updates, _ = tx.update(grads, tx.init(params), params)
        assert updates["step"].dtype == jnp.int32 and int(updates["step"]) == 0
        assert float(jnp.abs(updates["w"]).max()) > 0
    state = scale_by_tensor_rms().init(params)
    assert isinstance(state, TensorRmsState)
    assert state.second_moment["w"].shape == () and state.second_moment["step"].shape == (0,)


def test_novograd_keeps_one_scalar_per_tensor():
    state = novograd(1e-3).init(mixed_params())
    shapes = {np.shape(v) for v in jax.tree.leaves(state[0].second_moment)}
    assert shapes == {()}
    assert jax.tree.structure(state[1].trace) == jax.tree.structure(mixed_params())


# The flat layout: small leaves share one bucket, where the per-tensor sums are segment sums (another order than
# a sum over the leaf): the runs agree to rounding. lamb and lars take their norms from scale_by_trust_ratio.
FLAT_CASES = {
    "trust_ratio": lambda: adamlab.chain(scale_by_trust_ratio(0.0, 0.5, 1e-6), adamlab.scale(-1e-2)),
    "novograd": lambda: novograd(3e-3, weight_decay=0.1),
}


@pytest.mark.parametrize("name", sorted(FLAT_CASES))
def test_per_tensor_norms_are_per_leaf_on_the_flat_layout(name, stream):
    params = mixed_params()
    stream = jax.tree.map(lambda g: g[:30], stream)  # a new stream length would compile its own draws
    tx = FLAT_CASES[name]()
    tree_p = testing.run(tx, params, stream)
    fp = flat.flatten(params, group=None)
    assert any(len(b.leaves) > 1 for b in fp.layout.buckets)  # leaves do share a bucket
    flat_p = testing.run(tx, fp, jax.vmap(fp.layout.flatten)(stream))
    assert isinstance(flat_p, flat.Flat)
    errs = testing.compare_trees(flat_p.unflatten(), tree_p)
    assert max(e.max_rel for e in errs) <= 1e-5
    moved = testing.compare_trees(tree_p, params)
    assert min(e.max_abs for e in moved) > 0


def test_scale_by_novograd_is_the_primitive_of_novograd(stream):
    params = mixed_params()
    stream = jax.tree.map(lambda g: g[:20], stream)
    a = testing.run(adamlab.chain(scale_by_novograd(0.9, 0.3, 1e-6, 0.0, 0.01), adamlab.scale(-1e-3)), params, stream)
    b = testing.run(optax.chain(optax.scale_by_novograd(0.9, 0.3, 1e-6, 0.0, 0.01), optax.scale(-1e-3)), params, stream)
    assert 0.0 < max(e.max_rel for e in testing.compare_trees(a, testing.run(optax.identity(), params, stream)))
    assert max(e.max_rel for e in testing.compare_trees(a, b)) <= 1e-6  # the momentum's rounding: see ROUNDING


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: scale_by_trust_ratio(min_norm=-1.0), "min_norm"),
        (lambda: scale_by_trust_ratio(trust_coefficient=-0.1), "trust_coefficient"),
        (lambda: scale_by_trust_ratio(eps=float("nan")), "eps"),
        (lambda: normalize_by_update_norm(scale_factor=0.0), "scale_factor"),
        (lambda: normalize_by_update_norm(scale_factor=float("inf")), "scale_factor"),
        (lambda: normalize_by_update_norm(eps=-1e-6), "eps"),
        (lambda: scale_by_tensor_rms(decay=1.0), "decay"),
        (lambda: scale_by_novograd(b1=1.0), "b1"),
        (lambda: novograd(1e-3, b2=-0.1), "b2"),
        (lambda: novograd(1e-3, eps_root=-1.0), "eps_root"),
        (lambda: novograd(1e-3, weight_decay=-0.1), "weight_decay"),
        (lambda: novograd(-1e-3), "learning_rate"),
        (lambda: lamb(1e-3, b1=1.5), "b1"),
        (lambda: lamb(1e-3, eps=-1.0), "eps"),
        (lambda: lamb(1e-3, weight_decay=-0.1), "weight_decay"),
        (lambda: lars(0.1, momentum=1.5), "momentum"),
        (lambda: lars(0.1, weight_decay=-1.0), "weight_decay"),
        (lambda: lars(0.1, trust_coefficient=-1.0), "trust_coefficient"),
        (lambda: lars(0.1, eps=-1.0), "eps"),
        (lambda: lars(float("nan")), "learning_rate"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_parameter(build, name):
    with pytest.raises(ValueError, match=name):
        build()


def test_bad_types_and_missing_params():
    with pytest.raises(TypeError, match="nesterov"):
        lars(0.1, nesterov="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scale_factor"):
        normalize_by_update_norm(scale_factor="big")  # type: ignore[arg-type]
    tx = lamb(1e-3)
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="needs the params"):
        tx.update({"w": jnp.ones(2)}, tx.init(params))
    with pytest.raises(ValueError, match="needs the gradient"):
        scale_by_tensor_rms().update(params, scale_by_tensor_rms().init(params))
    with pytest.raises(ValueError, match="tree structure"):
        rms = adamlab.chain(scale_by_tensor_rms())
        rms.update({"v": jnp.ones(2)}, rms.init(params))


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (scale_by_trust_ratio, optax.scale_by_trust_ratio),
        (normalize_by_update_norm, optax.normalize_by_update_norm),
        (scale_by_novograd, optax.scale_by_novograd),
        (novograd, optax.novograd),
        (lamb, optax.lamb),
        (lars, optax.lars),
    ],
    ids=lambda f: f.__name__,
)
def test_positional_arguments_and_defaults_are_optaxs(ours, theirs):
    def positional(f):
        ps = inspect.signature(f).parameters.values()
        return [(p.name, p.default) for p in ps if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]

    assert positional(ours) == positional(theirs)
