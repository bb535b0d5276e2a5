"""Schedule-free learning (`adamlab.schedulefree`): against ``optax.contrib``, against the float64 reference of the
paper's Algorithm 1, on a noisy quadratic, and its argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_schedule_free
from conftest import STEPS, as_dict, mixed_params

import adamlab
from adamlab import testing
from adamlab.schedulefree import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_adamw,
    schedule_free_eval_params,
    schedule_free_sgd,
)

REF_RTOL = 1e-5
# Optax's schedule_free_adamw multiplies by the reciprocal 1 / (sqrt(v_hat) + eps) (optax.scale_by_rms) where
# adamlab's scale_by_rms divides by sqrt(v_hat) + eps: one rounding apart per element and step, 4e-7 over 300 steps.
RECIPROCAL_RTOL = 1e-6
LR = adamlab.schedules.warmup_cosine_decay(0.0, 1e-3, 30, STEPS)


@pytest.fixture(scope="module")
def stream():
    return testing.gradient_stream(mixed_params(), STEPS, seed=1)


def run_with_state(tx, params, grads, eval_params=schedule_free_eval_params):
    """Final (params, eval params, state) after one jitted step per row of `grads`."""

    @jax.jit
    def go(p, gs):
        def step(carry, g):
            p, s = carry
            u, s = tx.update(g, s, p)
            return (adamlab.apply_updates(p, u), s), None

        p, s = jax.lax.scan(step, (p, tx.init(p)), gs)[0]
        return p, eval_params(s, p), s

    return go(params, grads)


def cases():
    """name -> (adamlab, Optax, tolerance)."""
    return {
        "wrap_sgd": (schedule_free(adamlab.sgd(1e-2), 1e-2), optax.contrib.schedule_free(optax.sgd(1e-2), 1e-2), 0.0),
        "wrap_adam_schedule": (
            schedule_free(adamlab.adam(LR, b1=0.0), LR, b1=0.95, weight_lr_power=1.0),
            optax.contrib.schedule_free(optax.adam(LR, b1=0.0), LR, b1=0.95, weight_lr_power=1.0),
            0.0,
        ),
        "sgd": (schedule_free_sgd(1e-2), optax.contrib.schedule_free_sgd(1e-2), 0.0),
        "sgd_warmup_wd": (
            schedule_free_sgd(1e-2, warmup_steps=20, weight_decay=0.01),
            optax.contrib.schedule_free_sgd(1e-2, warmup_steps=20, weight_decay=0.01),
            0.0,
        ),
        "adamw": (schedule_free_adamw(1e-3), optax.contrib.schedule_free_adamw(1e-3), RECIPROCAL_RTOL),
        "adamw_warmup_wd": (
            schedule_free_adamw(1e-3, warmup_steps=50, b1=0.95, weight_decay=0.1),
            optax.contrib.schedule_free_adamw(1e-3, warmup_steps=50, b1=0.95, weight_decay=0.1),
            RECIPROCAL_RTOL,
        ),
    }


@pytest.mark.parametrize("name", sorted(cases()))
def test_matches_optax_under_jit(name, stream):
    ours, theirs, rtol = cases()[name]
    report = testing.compare(ours, theirs, mixed_params(), grads=stream, rtol=rtol, jit=True)
    assert report.max_rel <= rtol, str(report)
    if rtol == 0.0:
        assert report.max_rel == 0.0, str(report)


@pytest.mark.parametrize("name", ["wrap_sgd", "sgd_warmup_wd", "adamw_warmup_wd"])
def test_eval_params_match_optax(name, stream):
    ours, theirs, rtol = cases()[name]
    p, x, state = run_with_state(ours, mixed_params(), stream)
    _, x_optax, _ = run_with_state(theirs, mixed_params(), stream, optax.contrib.schedule_free_eval_params)
    assert max(e.max_rel for e in testing.compare_trees(x, x_optax)) <= rtol
    # Optax's function reads adamlab's state, bit for bit with adamlab's.
    testing.assert_bitwise_equal(optax.contrib.schedule_free_eval_params(state, p), schedule_free_eval_params(state, p))


def test_state_has_optax_fields():
    params = mixed_params()
    ours, theirs = schedule_free_adamw().init(params), optax.contrib.schedule_free_adamw().init(params)
    assert isinstance(ours, ScheduleFreeState)
    assert ours._fields == optax.contrib.ScheduleFreeState._fields
    for field in ("b1", "weight_sum", "step_count", "max_lr"):
        a, b = getattr(ours, field), getattr(theirs, field)
        assert a.dtype == b.dtype and float(a) == float(b), field


@pytest.mark.parametrize(
    "kw",
    [dict(lr=1e-3), dict(lr=1e-3, warmup_steps=50, b1=0.95, wd=0.1, weight_lr_power=1.0)],
    ids=["default", "warmup_wd"],
)
def test_adamw_matches_float64_reference(kw, stream):
    tx = schedule_free_adamw(
        kw["lr"],
        kw.get("warmup_steps"),
        kw.get("b1", 0.9),
        weight_decay=kw.get("wd", 0.0),
        weight_lr_power=kw.get("weight_lr_power", 2.0),
    )
    y, x, _ = run_with_state(tx, mixed_params(), stream)
    ref_kw = {k: v for k, v in kw.items() if k != "lr"}
    y_ref, x_ref = reference_schedule_free.schedule_free_adamw(
        as_dict(mixed_params()), as_dict(stream), kw["lr"], **ref_kw
    )
    for got, expected in ((y, y_ref), (x, x_ref)):
        errors = testing.compare_trees(as_dict(got), expected)
        assert max(e.max_rel for e in errors) <= REF_RTOL, errors


def test_reference_tells_the_warmup_convention_apart(stream):
    """The reference's tolerance sees a one-step shift of the warmup (the PyTorch implementation's convention)."""
    y, _, _ = run_with_state(schedule_free_adamw(1e-3, warmup_steps=50), mixed_params(), stream)
    p, g = as_dict(mixed_params()), as_dict(stream)
    for convention, close in (("optax", True), ("pytorch", False)):
        y_ref, _ = reference_schedule_free.schedule_free_adamw(p, g, 1e-3, 50, convention=convention)
        error = max(e.max_rel for e in testing.compare_trees(as_dict(y), y_ref))
        assert (error <= REF_RTOL) == close and (close or error > 10 * REF_RTOL), (convention, error)


def test_descends_on_noisy_quadratics():
    """On 0.5 * sum(a * w**2) (curvatures 0.1 to 10) with noisy gradients, from four random starts, both the
    averaged params and the params trained on end far below the start."""
    a = jnp.logspace(-1.0, 1.0, 16)
    loss = lambda w: 0.5 * jnp.sum(a * w**2)
    tx = schedule_free_adamw(0.05, warmup_steps=20)

    @jax.jit
    def go(w0, noise):
        def step(carry, n):
            p, s = carry
            u, s = tx.update({"w": a * p["w"] + n}, s, p)
            return (adamlab.apply_updates(p, u), s), None

        p, s = jax.lax.scan(step, ({"w": w0}, tx.init({"w": w0})), noise)[0]
        return loss(w0), loss(p["w"]), loss(schedule_free_eval_params(s, p)["w"])

    for seed in range(4):
        k_w, k_noise = jax.random.split(jax.random.PRNGKey(seed))
        start, at_y, at_x = go(3.0 * jax.random.normal(k_w, (16,)), 0.5 * jax.random.normal(k_noise, (400, 16)))
        assert float(at_x) < 0.05 * float(start) and float(at_y) < 0.05 * float(start), (seed, start, at_y, at_x)


@pytest.mark.parametrize("warmup", [None, 20])
def test_float64_params_are_bit_identical_to_optax_under_x64(warmup):
    """Without warmup bit for bit; with one, Optax's warmup divides the int32 count in float32 even under x64
    (JAX's integer division), where adamlab's schedule computes in float64: equal to float32 rounding."""
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        params = {"w": jnp.asarray(rng.standard_normal((5, 3))), "b": jnp.zeros(3, jnp.float64)}
        grads = {k: jnp.asarray(rng.standard_normal((STEPS, *v.shape))) for k, v in params.items()}
        ours = run_with_state(schedule_free_sgd(1e-2, warmup_steps=warmup, weight_decay=0.01), params, grads)
        theirs = run_with_state(
            optax.contrib.schedule_free_sgd(1e-2, warmup_steps=warmup, weight_decay=0.01),
            params,
            grads,
            optax.contrib.schedule_free_eval_params,
        )
        assert ours[2].weight_sum.dtype == jnp.float64
        if warmup is None:
            testing.assert_bitwise_equal(ours[:2], theirs[:2])
        else:
            errors = testing.compare_trees(ours[:2], theirs[:2])
            assert 0 < max(e.max_rel for e in errors) < 1e-6


def test_state_dtype_stores_z_and_int_leaves_pass_through():
    params = {"w": jnp.ones(3), "step": jnp.int32(7)}
    tx = schedule_free_sgd(0.1, state_dtype=jnp.bfloat16)
    state = tx.init(params)
    assert state.z["w"].dtype == jnp.bfloat16 and state.z["step"].shape == (0,)
    updates, state = tx.update({"w": jnp.ones(3), "step": jnp.int32(0)}, state, params)
    assert state.z["w"].dtype == jnp.bfloat16 and updates["w"].dtype == jnp.float32
    new = adamlab.apply_updates(params, updates)
    assert int(new["step"]) == 7
    np.testing.assert_array_equal(new["w"], float(jnp.bfloat16(0.9)))  # the first step: c = 1, so y = x = z
    assert int(schedule_free_eval_params(state, new)["step"]) == 7


def test_eval_params_find_the_state_inside_a_chain():
    params = {"w": jnp.ones(2)}
    tx = adamlab.chain(adamlab.clip_by_global_norm(1.0), schedule_free_sgd(0.1))
    state = tx.init(params)
    updates, state = tx.update({"w": jnp.array([3.0, 4.0])}, state, params)
    params = adamlab.apply_updates(params, updates)
    np.testing.assert_allclose(schedule_free_eval_params(state, params)["w"], [0.94, 0.92], rtol=1e-6)


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: schedule_free_adamw(b1=0.0), "b1"),
        (lambda: schedule_free_adamw(b1=1.5), "b1"),
        (lambda: schedule_free_adamw(b2=1.0), "b2"),
        (lambda: schedule_free_adamw(eps=-1.0), "eps"),
        (lambda: schedule_free_adamw(-1e-3), "learning_rate"),
        (lambda: schedule_free_adamw(weight_decay=-0.1), "weight_decay"),
        (lambda: schedule_free_adamw(weight_lr_power=-2.0), "weight_lr_power"),
        (lambda: schedule_free_adamw(warmup_steps=0), "warmup_steps"),
        (lambda: schedule_free_sgd(warmup_steps=2.5), "warmup_steps"),  # type: ignore[arg-type]
        (lambda: schedule_free_sgd(weight_decay=-1.0), "weight_decay"),
        (lambda: schedule_free(adamlab.sgd(0.1), float("nan")), "learning_rate"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter(build, name):
    with pytest.raises(ValueError, match=name):
        build()


def test_bad_types_and_calls_raise():
    with pytest.raises(TypeError, match="state_dtype"):
        schedule_free_sgd(state_dtype=jnp.int32)
    with pytest.raises(TypeError, match="base_optimizer"):
        schedule_free(1e-3, 1e-3)  # type: ignore[arg-type]
    tx = schedule_free_sgd(0.1)
    state = tx.init({"w": jnp.ones(2)})
    with pytest.raises(ValueError, match="needs the params"):
        tx.update({"w": jnp.ones(2)}, state)
    with pytest.raises(ValueError, match="ScheduleFreeState"):
        schedule_free_eval_params(adamlab.sgd(0.1).init({"w": jnp.ones(2)}), {"w": jnp.ones(2)})


def test_a_mixed_tree_keeps_float64_leaves_float64_exact():
    """The averaging's scalars are float64 when a leaf is: a float64 leaf beside float32 ones computes as in an
    all-float64 tree, and the float32 leaves as in an all-float32 one, to rounding (XLA fuses each tree apart)."""
    rng = np.random.default_rng(0)
    tx = schedule_free_adamw(1e-3, warmup_steps=20, weight_decay=0.1)
    with jax.enable_x64(True):
        wide = {"w": rng.standard_normal((5, 3)), "b": rng.standard_normal(3)}
        grads = {k: rng.standard_normal((50, *v.shape)) for k, v in wide.items()}

        def final(dtypes):
            p = {k: jnp.asarray(v, dtypes[k]) for k, v in wide.items()}
            g = {k: jnp.asarray(v, dtypes[k]) for k, v in grads.items()}
            y, x, state = run_with_state(tx, p, g)
            return y, x, state

        y_mixed, x_mixed, state = final({"w": jnp.float64, "b": jnp.float32})
        y64, x64, _ = final({"w": jnp.float64, "b": jnp.float64})
        y32, x32, state32 = final({"w": jnp.float32, "b": jnp.float32})
    assert state.weight_sum.dtype == jnp.float64 and state32.weight_sum.dtype == jnp.float32
    assert y_mixed["w"].dtype == jnp.float64 and y_mixed["b"].dtype == jnp.float32
    for mixed, alone64, alone32 in ((y_mixed, y64, y32), (x_mixed, x64, x32)):
        np.testing.assert_allclose(mixed["w"], alone64["w"], rtol=1e-13)
        np.testing.assert_allclose(mixed["b"], alone32["b"], rtol=1e-6)
