"""Adafactor (`adamlab.factored`): against Optax bit for bit, against the float64 paper reference, its O(n + m)
state, bfloat16 storage and its argument checks.

The tree has factored leaves (a (256, 192) matrix; a (3, 130, 140) tensor, factored over its two last axes with
the first a batch axis), leaves that keep a full second moment (those of `mixed_params`, all below
``min_dim_size_to_factor``), a 0-d leaf and an int32 leaf (which has no moment and passes through).
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_factored
from conftest import STEPS, as_dict, mixed_params

from adamlab import testing
from adamlab.factored import FactoredState, adafactor, scale_by_factored_rms, scale_by_param_block_rms

REF_RTOL = 1e-5
# Adafactor with learning_rate=None steps by the update's own size (times RMS(p)): on random gradients the
# params grow by about sqrt(2) per step and overflow float32 after ~110 steps, in Optax as here.
DEFAULT_STEPS = 100
SCHEDULE = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 30, STEPS)
WD_SCHEDULE = optax.linear_schedule(1e-3, 0.0, STEPS)


def paper_rho(count):
    """The paper's relative step size min(1e-2, 1/sqrt(t)) with t = count + 1, as a schedule of the steps taken."""
    return jnp.minimum(1e-2, jax.lax.rsqrt(jnp.asarray(count, jnp.float32) + 1.0))


def tree():
    k = jax.random.split(jax.random.PRNGKey(7), 2)
    return dict(
        mixed_params(),
        matrix=jax.random.normal(k[0], (256, 192)),
        tensor=jax.random.normal(k[1], (3, 130, 140)) * 0.1,
        steps=jnp.asarray(4, jnp.int32),
    )


def no_decay_on_vectors(params):
    return jax.tree.map(lambda p: np.ndim(p) >= 2, params)


@pytest.fixture(scope="module")
def stream():
    return testing.gradient_stream(tree(), STEPS, seed=1)


# ----------------------------------------------------------------------------------------------- Optax parity


def optax_cases():
    mask = no_decay_on_vectors(tree())
    return {
        "rms_defaults": (scale_by_factored_rms(), optax.scale_by_factored_rms()),
        "rms_unfactored": (scale_by_factored_rms(factored=False), optax.scale_by_factored_rms(factored=False)),
        "rms_offset_decay_min_dim": (
            scale_by_factored_rms(True, 0.5, -7, 4, 1e-20),
            optax.scale_by_factored_rms(True, 0.5, -7, 4, 1e-20),
        ),
        "rms_decay_rate_fn": (
            scale_by_factored_rms(decay_rate=0.999, decay_rate_fn=capped),
            optax.scale_by_factored_rms(decay_rate=0.999, decay_rate_fn=capped),
        ),
        "lr": (adafactor(1e-2), optax.adafactor(1e-2)),
        "momentum": (adafactor(1e-2, momentum=0.9), optax.adafactor(1e-2, momentum=0.9)),
        "weight_decay_mask": (
            adafactor(1e-2, weight_decay_rate=1e-3, weight_decay_mask=mask),
            optax.adafactor(1e-2, weight_decay_rate=1e-3, weight_decay_mask=mask),
        ),
        "weight_decay_schedule": (
            adafactor(1e-2, momentum=0.8, weight_decay_rate=WD_SCHEDULE),
            optax.adafactor(1e-2, momentum=0.8, weight_decay_rate=WD_SCHEDULE),
        ),
        "absolute_step": (
            adafactor(1e-3, multiply_by_parameter_scale=False),
            optax.adafactor(1e-3, multiply_by_parameter_scale=False),
        ),
        "schedule_no_clipping": (
            adafactor(SCHEDULE, clipping_threshold=None),
            optax.adafactor(SCHEDULE, clipping_threshold=None),
        ),
        "paper_rho_unfactored": (adafactor(paper_rho, factored=False), optax.adafactor(paper_rho, factored=False)),
    }


def capped(step, decay_rate):
    """Zhai et al.'s schedule: Adafactor's 1 - t**-0.8, capped at decay_rate."""
    return jnp.minimum(decay_rate, 1.0 - (jnp.asarray(step, jnp.float32) + 1.0) ** -0.8)


@pytest.mark.parametrize("name", sorted(optax_cases()))
def test_matches_optax_bitwise_under_jit(name, stream):
    ours, theirs = optax_cases()[name]
    report = testing.compare(ours, theirs, tree(), grads=stream, rtol=0.0, jit=True)
    assert report.max_rel == 0.0, str(report)
    assert report.first_divergence is None, str(report)


def test_defaults_match_optax_bitwise_until_the_params_overflow(stream):
    short = jax.tree.map(lambda x: x[:DEFAULT_STEPS], stream)
    final = testing.run(adafactor(), tree(), short)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(final))
    report = testing.compare(adafactor(), optax.adafactor(), tree(), grads=short, rtol=0.0, jit=True)
    assert report.max_rel == 0.0, str(report)


def test_factored_shapes_are_optax_and_int_leaves_have_placeholders():
    params = tree()
    ours = scale_by_factored_rms().init(params)
    theirs: Any = optax.scale_by_factored_rms().init(params)
    assert isinstance(ours, FactoredState) and ours._fields == theirs._fields
    assert ours.v_row["matrix"].shape == theirs.v_row["matrix"].shape == (192,)
    assert ours.v_col["matrix"].shape == theirs.v_col["matrix"].shape == (256,)
    assert ours.v_row["tensor"].shape == theirs.v_row["tensor"].shape == (3, 130)
    assert ours.v_col["tensor"].shape == theirs.v_col["tensor"].shape == (3, 140)
    assert ours.v["dense"]["w"].shape == theirs.v["dense"]["w"].shape == (5, 3)
    assert ours.v["scalar"].shape == ()
    for field in ("v_row", "v_col", "v"):
        assert getattr(ours, field)["steps"].shape == (0,)
    assert ours.v["matrix"].shape == ours.v_row["dense"]["w"].shape == (0,)
    assert {x.dtype for x in jax.tree.leaves(ours)} == {jnp.dtype(jnp.int32), jnp.dtype(jnp.float32)}


def test_int_leaf_passes_through_unchanged(stream):
    short = jax.tree.map(lambda x: x[:10], stream)
    final: Any = testing.run(adafactor(1e-2, momentum=0.9, weight_decay_rate=1e-3), tree(), short)
    assert final["steps"].dtype == jnp.int32 and int(final["steps"]) == 4
    tx = scale_by_factored_rms()
    g = jax.tree.map(lambda x: x[0], stream)
    for step_update in (g["steps"], jnp.asarray(3, jnp.int32)):  # the stream's is a float; an int one too
        out, _ = jax.jit(tx.update)(dict(g, steps=step_update), tx.init(tree()))
        assert out["steps"].dtype == step_update.dtype and out["steps"] == step_update


# ------------------------------------------------------------------------------------------ float64 reference


def reference_cases():
    mask = no_decay_on_vectors(tree())
    return {
        "lr": (adafactor(1e-2), dict(learning_rate=1e-2)),
        "paper_rho": (adafactor(paper_rho), dict(learning_rate=lambda i: min(1e-2, 1 / np.sqrt(i + 1)))),
        "schedule_momentum_wd_mask": (
            adafactor(SCHEDULE, momentum=0.9, weight_decay_rate=1e-3, weight_decay_mask=mask),
            dict(learning_rate=SCHEDULE, momentum=0.9, weight_decay_rate=1e-3, mask=as_dict(mask)),
        ),
        "absolute_no_clipping_offset": (
            adafactor(1e-3, decay_offset=-3, multiply_by_parameter_scale=False, clipping_threshold=None),
            dict(learning_rate=1e-3, decay_offset=-3, multiply_by_parameter_scale=False, clipping_threshold=None),
        ),
        "unfactored_threshold": (
            adafactor(1e-2, factored=False, clipping_threshold=0.5, decay_rate=0.6),
            dict(learning_rate=1e-2, factored=False, clipping_threshold=0.5, decay_rate=0.6),
        ),
    }


@pytest.mark.parametrize("name", sorted(reference_cases()))
def test_matches_float64_paper_reference(name, stream):
    ours, kwargs = reference_cases()[name]
    final = testing.run(ours, tree(), stream)
    expected = reference_factored.adafactor(as_dict(tree()), as_dict(stream), **kwargs)
    errors = testing.compare_trees(as_dict(final), expected)
    assert max(e.max_rel for e in errors) <= REF_RTOL, errors


def test_reference_tells_factored_from_full(stream):
    """The reference is sharp enough to judge the factoring: a full second moment misses it by far."""
    final = testing.run(adafactor(1e-2, factored=False), tree(), stream)
    expected = reference_factored.adafactor(as_dict(tree()), as_dict(stream), learning_rate=1e-2)
    final = as_dict(final)
    for path in ("['matrix']", "['tensor']"):
        assert np.max(np.abs(final[path] - expected[path])) / np.max(np.abs(expected[path])) > 1e-3, path


# ------------------------------------------------------------------------------------------------- memory


def test_state_of_a_matrix_is_order_n_plus_m():
    params = {"w": jnp.zeros((1024, 1024))}
    state = adafactor(1e-2).init(params)
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
    adam_state: Any = optax.scale_by_adam().init(params)
    adam_second_moment_bytes = sum(x.nbytes for x in jax.tree.leaves(adam_state.nu))
    assert state_bytes / adam_second_moment_bytes < 0.01
    assert state_bytes == (1024 + 1024) * 4 + 4  # v_row, v_col in float32 and the step count
    assert state_bytes / params["w"].size < 0.01  # bytes per parameter


# ----------------------------------------------------------------------------------------------- bfloat16


@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_bfloat16_state_is_finite_and_close_to_float32(stream, rounding):
    params = tree()

    def final_state(tx):
        def step(s, g):
            _, s = tx.update(g, s, params)
            return s, None

        return jax.jit(lambda s, gs: jax.lax.scan(step, s, gs)[0])(tx.init(params), stream)

    wide = final_state(scale_by_factored_rms())
    narrow = final_state(scale_by_factored_rms(state_dtype=jnp.bfloat16, rounding=rounding))
    for field in ("v_row", "v_col", "v"):
        for a, b in zip(jax.tree.leaves(getattr(narrow, field)), jax.tree.leaves(getattr(wide, field))):
            if not b.size:
                continue
            assert a.dtype == jnp.bfloat16
            assert bool(jnp.all(jnp.isfinite(a)))
            rel = jnp.abs(a.astype(jnp.float32) - b) / b
            # bfloat16 keeps 8 bits (up to 0.4% per rounding). With beta_t near 1 (0.999 at step 300) the moment
            # barely forgets, so the roundings of 300 steps add up, like a random walk when stochastic (measured:
            # mean 1%, max 5%); rounded to nearest, a moment also lags once (1 - beta_t) * g**2 is below half an
            # ulp of v (mean 1-4%, max 5%).
            assert float(jnp.max(rel)) < 0.1 and float(jnp.mean(rel)) < 0.05, (field, rel)


def test_bfloat16_adafactor_trains_like_float32(stream):
    params = tree()
    wide = testing.run(adafactor(1e-2), params, stream)
    narrow = testing.run(adafactor(1e-2, state_dtype=jnp.bfloat16), params, stream)
    errors = testing.compare_trees(as_dict(narrow), as_dict(wide))
    assert max(e.max_rel for e in errors) < 1e-2, errors


# ------------------------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: scale_by_factored_rms(decay_rate=-0.8), ValueError, "decay_rate"),
        (lambda: scale_by_factored_rms(epsilon=-1.0), ValueError, "epsilon"),
        (lambda: scale_by_factored_rms(min_dim_size_to_factor=-1), ValueError, "min_dim_size_to_factor"),
        (lambda: scale_by_factored_rms(min_dim_size_to_factor=1.5), TypeError, "min_dim_size_to_factor"),  # pyright: ignore[reportArgumentType]
        (lambda: scale_by_factored_rms(factored=1), TypeError, "factored"),  # pyright: ignore[reportArgumentType]
        (lambda: scale_by_factored_rms(step_offset=0.5), TypeError, "step_offset"),  # pyright: ignore[reportArgumentType]
        (lambda: scale_by_factored_rms(decay_rate_fn=0.8), TypeError, "decay_rate_fn"),  # pyright: ignore[reportArgumentType]
        (lambda: scale_by_factored_rms(state_dtype=jnp.float16), ValueError, "cannot hold a second moment"),
        (lambda: scale_by_factored_rms(state_dtype=jnp.int32), TypeError, "state_dtype"),
        (lambda: scale_by_factored_rms(rounding="up"), ValueError, "rounding"),
        (lambda: scale_by_param_block_rms(-1.0), ValueError, "min_scale"),
        (lambda: adafactor(-1.0), ValueError, "learning_rate"),
        (lambda: adafactor(lambda a, b: 1.0), TypeError, "learning_rate"),  # pyright: ignore[reportArgumentType]
        (lambda: adafactor(1e-2, clipping_threshold=0.0), ValueError, "clipping_threshold"),
        (lambda: adafactor(1e-2, momentum=1.0), ValueError, "momentum"),
        (lambda: adafactor(1e-2, weight_decay_rate=-1e-3), ValueError, "weight_decay_rate"),
        (lambda: adafactor(1e-2, weight_decay_rate=lambda a, b: 0.0), TypeError, "weight_decay_rate"),  # pyright: ignore[reportArgumentType]
        (lambda: adafactor(1e-2, multiply_by_parameter_scale=1), TypeError, "multiply_by_parameter_scale"),  # pyright: ignore[reportArgumentType]
        (lambda: adafactor(1e-2, momentum=0.9, dtype_momentum=jnp.int32), TypeError, "state_dtype"),
    ],
)
def test_bad_arguments_raise_when_built(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_bad_updates_raise_naming_the_path():
    params = {"w": jnp.zeros((256, 192)), "b": jnp.zeros(3)}
    tx = scale_by_factored_rms()
    state = tx.init(params)
    with pytest.raises(ValueError, match=r"scale_by_factored_rms: updates at \['w'\] have shape \(256, 200\)"):
        tx.update({"w": jnp.zeros((256, 200)), "b": jnp.zeros(3)}, state)
    with pytest.raises(ValueError, match=r"updates at \['b'\] have shape \(4,\)"):
        tx.update({"w": jnp.zeros((256, 192)), "b": jnp.zeros(4)}, state)
    with pytest.raises(ValueError, match=r"missing leaf at \['b'\]"):
        tx.update({"w": jnp.zeros((256, 192))}, state)
    with pytest.raises(TypeError, match=r"updates at \['b'\] are int32"):
        tx.update({"w": jnp.zeros((256, 192)), "b": jnp.zeros(3, jnp.int32)}, state)
    with pytest.raises(ValueError, match="adafactor: .*needs the params"):
        opt = adafactor(1e-2)
        opt.update(params, opt.init(params))
