"""Muon (`adamlab.orthogonal`): against ``optax.contrib.muon``, against the float64 reference (tests/reference_muon.py),
the Newton-Schulz iteration's singular-value band, and the checks of its arguments.

adamlab's Muon follows Optax's order of operations step for step (the same vmapped products, the same brackets in
``(b A + (c A) @ A) X``, a decay known to be 0 skipped), so the jitted 300-step runs must be bit-identical.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_muon
from conftest import STEPS, as_dict, mixed_params

from adamlab import testing
from adamlab.groups import Cut, PartitionState
from adamlab.orthogonal import (
    MuonDimensionNumbers,
    muon,
    orthogonalize_via_newton_schulz,
    scale_by_muon,
    scale_by_shape,
)

STANDARD = jnp.array([3.4445, -4.7750, 2.0315])
SCHEDULE = optax.warmup_cosine_decay_schedule(0.0, 0.02, 30, STEPS)
# The float32 Newton-Schulz steps amplify rounding by up to the slope 3.4445 per step at small singular values,
# so a float32 update carries a relative error near 1e-6 (not 1e-7) of float64's; over 300 steps the params stay
# within REF_RTOL of the float64 reference.
REF_RTOL = 1e-5


def muon_params():
    """`mixed_params()` (vectors, a scalar, a size-1 leaf, a (5, 3) matrix, a 3-D kernel) plus matrices of three
    aspect ratios."""
    k = jax.random.split(jax.random.PRNGKey(7), 3)
    params = mixed_params()
    params["mats"] = {
        "tall": 0.1 * jax.random.normal(k[0], (64, 32)),
        "wide": 0.1 * jax.random.normal(k[1], (32, 64)),
        "square": 0.1 * jax.random.normal(k[2], (48, 48)),
    }
    return params


@pytest.fixture(scope="module")
def stream():
    return testing.gradient_stream(muon_params(), STEPS, seed=1)


def decay_matrices_not_the_small_one(params):
    return jax.tree_util.tree_map_with_path(lambda path, p: "dense" not in jax.tree_util.keystr(path), params)


def optax_cases():
    mask = decay_matrices_not_the_small_one(muon_params())

    def dims(ours: bool):
        spec = MuonDimensionNumbers if ours else optax.contrib.MuonDimensionNumbers
        tree = jax.tree.map(lambda p: spec() if p.ndim == 2 else None, muon_params())
        tree["blocks"][1]["kernel"] = spec(reduction_axis=(0, 1), output_axis=2)
        return tree

    return {
        "defaults": (muon(0.02), optax.contrib.muon(0.02)),
        "no_nesterov": (muon(0.02, nesterov=False), optax.contrib.muon(0.02, nesterov=False)),
        "weight_decay": (
            muon(0.02, weight_decay=0.1, weight_decay_mask=mask, adam_weight_decay=0.05),
            optax.contrib.muon(0.02, weight_decay=0.1, weight_decay_mask=mask, adam_weight_decay=0.05),
        ),
        "schedule": (muon(SCHEDULE, adam_learning_rate=1e-3), optax.contrib.muon(SCHEDULE, adam_learning_rate=1e-3)),
        "dimension_numbers": (
            muon(0.02, muon_weight_dimension_numbers=dims(True)),
            optax.contrib.muon(0.02, muon_weight_dimension_numbers=dims(False)),
        ),
        **{
            name: (muon(0.02, **kwargs), optax.contrib.muon(0.02, **kwargs))
            for name, kwargs in {
                "aol": {"preconditioning": "aol"},
                "schatten": {"preconditioning": "schatten"},
                "spectral": {"preconditioning": "spectral"},
                "dion": {"ns_coeffs": "dion"},
                "adaptive": {"adaptive": True},
                "consistent_rms": {"consistent_rms": 0.2},
            }.items()
        },
    }


# Each case compiles two Muons with four unrolled Newton-Schulz iterations (about 6 s of CPU): the defaults stay
# in the fast tier, the others are marked slow.
@pytest.mark.parametrize(
    "name", [n if n == "defaults" else pytest.param(n, marks=pytest.mark.slow) for n in sorted(optax_cases())]
)
def test_matches_optax_bitwise_under_jit(name, stream):
    ours, theirs = optax_cases()[name]
    report = testing.compare(ours, theirs, muon_params(), grads=stream, rtol=0.0, jit=True)
    assert report.max_rel == 0.0, str(report)


@pytest.mark.slow
def test_integer_leaf_passes_through_and_changes_nothing_else(stream):
    # optax.contrib.muon cannot take an int leaf under jit (its AdamW moments of an int param start as int zeros
    # and come back float, so a scan's carry changes type): compare adamlab with and without one instead.
    table = jnp.arange(6, dtype=jnp.int32).reshape(2, 3)
    params = dict(muon_params(), step=jnp.int32(3), table=table)
    grads = dict(stream, step=jnp.zeros((STEPS,), jnp.int32), table=jnp.zeros((STEPS, 2, 3), jnp.int32))
    with_int = as_dict(testing.run(muon(0.02), params, grads, jit=True))
    without = as_dict(testing.run(muon(0.02), muon_params(), stream, jit=True))
    assert int(with_int["['step']"]) == 3 and np.array_equal(with_int["['table']"], table)
    assert set(with_int) == set(without) | {"['step']", "['table']"}
    for k, v in without.items():
        assert np.array_equal(v, with_int[k]), k


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        pytest.param({"nesterov": False}, marks=pytest.mark.slow),
        pytest.param({"weight_decay": 0.1, "adam_weight_decay": 0.05}, marks=pytest.mark.slow),
    ],
    ids=["defaults", "no_nesterov", "weight_decay"],
)
def test_matches_float64_reference(kwargs, stream):
    # AdamW's rate 1e-3 as in test_variants: at Muon's 0.02 its float32 `1 - b2**t` (6e-6 relative at t = 3)
    # alone would take a size-1 leaf past 1e-5 over 300 steps.
    params, grads = as_dict(muon_params()), as_dict(stream)
    ours = testing.run(muon(0.02, adam_learning_rate=1e-3, **kwargs), params, grads, jit=True)
    expected = reference_muon.muon(params, grads, 0.02, adam_lr=1e-3, **kwargs)
    worst = max(e.max_rel for e in testing.compare_trees(ours, expected))
    assert worst <= REF_RTOL, worst


def test_float64_params_match_the_float64_reference_to_rounding(stream):
    # Under x64 the same chain computes in float64: the algorithm, not float32 rounding, is what is compared.
    params, grads = as_dict(muon_params()), as_dict(stream)
    expected = reference_muon.muon(params, grads, 0.02, weight_decay=0.1)
    with jax.enable_x64(True):
        wide = {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}
        ours = testing.run(
            muon(0.02, weight_decay=0.1), wide, {k: jnp.asarray(v, jnp.float64) for k, v in grads.items()}
        )
        worst = max(e.max_rel for e in testing.compare_trees(ours, expected))
    assert worst <= 1e-12, worst


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (128, 16), (10, 40)])
def test_singular_values_land_in_the_standard_band(shape):
    # Five quintic steps with (3.4445, -4.7750, 2.0315) map every singular value in [0.002, 1] (after the
    # Frobenius normalization) into [0.682, 1.203] (the scalar map, evaluated on a fine grid); a Gaussian matrix
    # with aspect ratio >= 2 has no singular value near 0 (Marchenko-Pastur), so all of them land in the band.
    for seed in range(3):
        g = jax.random.normal(jax.random.PRNGKey(seed), shape)
        s = np.linalg.svd(np.asarray(orthogonalize_via_newton_schulz(g, STANDARD), np.float64), compute_uv=False)
        assert s.min() > 0.67 and s.max() < 1.21, (shape, seed, s.min(), s.max())
        exact = np.linalg.svd(np.asarray(g, np.float64), compute_uv=False)
        assert s.size == min(shape) and exact.min() > 0  # full rank, so each direction gets a singular value


def test_orthogonalization_keeps_the_singular_vectors():
    g = jax.random.normal(jax.random.PRNGKey(0), (24, 12))
    o = np.asarray(orthogonalize_via_newton_schulz(g, STANDARD), np.float64)
    u, _, vt = np.linalg.svd(np.asarray(g, np.float64), full_matrices=False)
    inner = u.T @ o @ vt.T  # diag(S') if O = U S' V^T
    assert np.max(np.abs(inner - np.diag(np.diag(inner)))) < 1e-4
    assert np.all(np.diag(inner) > 0.65)


def test_matches_the_float64_newton_schulz():
    g = jax.random.normal(jax.random.PRNGKey(1), (40, 16))
    got = np.asarray(orthogonalize_via_newton_schulz(g, STANDARD), np.float64)
    want = reference_muon.newton_schulz(np.asarray(g))
    # float32 products amplified by up to 3.4445 per step: about 1e-6 relative, far from the band's width.
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-5


def test_dimension_numbers_orthogonalize_each_batch_matrix():
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 8, 4))  # batch, rows, cols
    dims = MuonDimensionNumbers(reduction_axis=1, output_axis=2)
    got = jax.jit(lambda x: orthogonalize_via_newton_schulz(x, STANDARD, dimension_numbers=dims))(x)
    one = jax.jit(lambda m: orthogonalize_via_newton_schulz(m, STANDARD))
    for i in range(3):
        assert bool(jnp.allclose(got[i], one(x[i]), atol=1e-6))


def test_state_structure():
    params = {"w": jnp.zeros((4, 2)), "b": jnp.zeros(2)}
    (state,) = muon(0.1).init(params)
    assert isinstance(state, PartitionState)
    assert list(state.inner_states) == ["muon", "adam"]
    assert [type(s).__name__ for s in state.inner_states["muon"]] == [
        "EmaState",
        "CountState",
        "EmptyState",
        "EmptyState",
        "EmptyState",
    ]
    assert state.inner_states["muon"][0].moment["b"] == Cut()
    assert [type(s).__name__ for s in scale_by_muon().init({"w": jnp.zeros((2, 2))})] == [
        "EmaState",
        "CountState",
        "EmptyState",
    ]


def test_shape_scaling_factors():
    u = {"wide": jnp.ones((2, 8)), "tall": jnp.ones((8, 2))}
    out, _ = scale_by_shape().update(u, scale_by_shape().init(u))
    assert float(out["wide"][0, 0]) == float(jnp.sqrt(4.0)) and float(out["tall"][0, 0]) == 1.0
    out, _ = scale_by_shape(consistent_rms=0.2).update(u, scale_by_shape().init(u))
    assert float(out["tall"][0, 0]) == float(jnp.sqrt(8.0) * 0.2)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"ns_coeffs": "polar"}, "ns_coeffs"),
        ({"ns_coeffs": (1.0, 2.0)}, "ns_coeffs"),
        ({"ns_coeffs": "dion", "ns_steps": 3}, "ns_coeffs"),
        ({"ns_steps": -1}, "ns_steps"),
        ({"beta": 1.0}, "beta"),
        ({"eps": -1.0}, "eps"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"adam_b1": 1.5}, "adam_b1"),
        ({"adam_b2": -0.1}, "adam_b2"),
        ({"adam_eps_root": -1.0}, "adam_eps_root"),
        ({"adam_weight_decay": -1.0}, "adam_weight_decay"),
        ({"adam_learning_rate": -1.0}, "adam_learning_rate"),
        ({"preconditioning": "newton"}, "preconditioning"),
        ({"consistent_rms": -0.2}, "consistent_rms"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        muon(1e-3, **kwargs)


def test_bad_learning_rate_and_types():
    with pytest.raises(ValueError, match="learning_rate"):
        muon(-1.0)
    with pytest.raises(TypeError, match="ns_steps"):
        muon(1e-3, ns_steps=2.5)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="nesterov"):
        scale_by_muon(nesterov=1)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="dimension_numbers"):
        orthogonalize_via_newton_schulz(jnp.ones(3), STANDARD)
    with pytest.raises(ValueError, match="rank >= 2"):
        scale_by_muon().update({"b": jnp.ones(3)}, scale_by_muon().init({"b": jnp.ones(3)}))


def test_an_empty_matrix_gets_an_empty_update_and_changes_nothing_else():
    # optax.contrib.muon divides by the empty matrix's fan and raises ZeroDivisionError; adamlab passes it through
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(4, 3), "b": jnp.ones(3)}
    grads = jax.tree.map(lambda p: 0.5 * p + 0.1, params)
    with_empty = dict(params, e=jnp.ones((0, 3)))
    tx = muon(0.02)
    u, _ = jax.jit(tx.update)(dict(grads, e=jnp.ones((0, 3))), tx.init(with_empty), with_empty)
    expected, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    assert u["e"].shape == (0, 3)
    for k in params:
        assert np.array_equal(u[k], expected[k]), k


def test_under_inject_hyperparams():
    """A traced ns_steps cannot size the unrolled iteration: the refusal says to make it static, and then the
    injected Muon (learning rate as state) is Optax's, bit for bit."""
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(4, 3), "b": jnp.ones(3)}
    grads = jax.tree.map(lambda p: 0.5 * p + 0.1, params)
    with pytest.raises(TypeError, match=r"static_args=\('ns_steps',\)"):
        tx = optax.inject_hyperparams(muon)(learning_rate=0.02, ns_steps=5)
        tx.update(grads, tx.init(params), params)
    ours = optax.inject_hyperparams(muon, static_args=("ns_steps",))(learning_rate=0.02, ns_steps=5)
    theirs = optax.inject_hyperparams(optax.contrib.muon, static_args=("ns_steps",))(learning_rate=0.02, ns_steps=5)
    u, _ = jax.jit(ours.update)(grads, ours.init(params), params)
    v, _ = jax.jit(theirs.update)(grads, theirs.init(params), params)
    for k in params:
        assert np.array_equal(u[k], v[k]), k
