"""Complex params, as Optax supports them: first moments complex, moments of |g|**2 real.

Each optimizer is held to Optax on a mixed complex64/float32 tree and to the complex128 NumPy reference. Optax
keeps its second moment in the param's complex dtype (with a zero imaginary part) and divides by it as a complex
number; adamlab keeps it real (half the memory) and divides by a real, so the two agree to rounding, not bit
for bit.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference
from conftest import as_dict

import adamlab
from adamlab import flat, testing

STEPS = 100
C64 = jnp.complex64


def complex_params():
    k = jax.random.split(jax.random.PRNGKey(7), 3)
    return {
        "z": jax.random.normal(k[0], (4, 3), C64),
        "w": jax.random.normal(k[1], (5,), jnp.float32),
        "zs": {"scalar": jnp.asarray(0.5 - 1.5j, C64), "v": jax.random.normal(k[2], (2,), C64)},
    }


CASES = {
    "adam": (lambda: adamlab.adam(1e-2), lambda: optax.adam(1e-2), lambda p, g: reference.adam(p, g, 1e-2)),
    "adamw": (
        lambda: adamlab.adamw(1e-2, weight_decay=0.1),
        lambda: optax.adamw(1e-2, weight_decay=0.1),
        lambda p, g: reference.adam(p, g, 1e-2, decoupled_wd=0.1),
    ),
    "adam_l2": (
        lambda: adamlab.adam(1e-2, weight_decay=0.1),
        lambda: optax.chain(optax.add_decayed_weights(0.1), optax.adam(1e-2)),
        lambda p, g: reference.adam(p, g, 1e-2, l2=0.1),
    ),
    "rmsprop": (
        lambda: adamlab.rmsprop(1e-2),
        lambda: optax.rmsprop(1e-2),
        lambda p, g: reference.rmsprop(p, g, 1e-2, eps=1e-8),
    ),
    "rmsprop_centered": (
        lambda: adamlab.rmsprop(1e-2, centered=True),
        lambda: optax.rmsprop(1e-2, centered=True),
        None,
    ),
    "sgd_nesterov": (
        lambda: adamlab.sgd(1e-2, momentum=0.9, nesterov=True),
        lambda: optax.sgd(1e-2, momentum=0.9, nesterov=True),
        lambda p, g: reference.sgd(p, g, 1e-2, momentum=0.9, nesterov=True),
    ),
    "clip_adam": (
        lambda: adamlab.chain(adamlab.clip_by_global_norm(1.0), adamlab.adam(1e-2)),
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2)),
        None,
    ),
}


@pytest.fixture(scope="module")
def stream():
    return testing.gradient_stream(complex_params(), STEPS, seed=2)


def float_part(tree):
    return as_dict(tree)


@pytest.mark.parametrize("name", sorted(CASES))
def test_complex_params_match_optax_and_the_complex128_reference(name, stream):
    ours, theirs, ref = CASES[name]
    params = complex_params()
    final = testing.run(ours(), params, stream)
    assert final["z"].dtype == C64 and final["w"].dtype == jnp.float32
    expected = testing.run(theirs(), params, stream)
    errors = testing.compare_trees(final, expected)
    assert max(e.max_rel for e in errors) <= 1e-5, errors
    if ref is not None:
        exact = ref(float_part(params), float_part(stream))
        errors = testing.compare_trees(float_part(final), exact)
        assert max(e.max_rel for e in errors) <= 1e-5, errors


def test_complex_state_dtypes_are_stable_and_the_second_moment_is_real(stream):
    params = complex_params()
    tx = adamlab.adam(1e-2)
    state = tx.init(params)
    assert state[0].moment["z"].dtype == C64  # m: complex
    assert state[2].second_moment["z"].dtype == jnp.float32  # v = EMA of |g|**2: real, 4 bytes an element
    layout = jax.tree.map(lambda x: (x.dtype, x.shape), state)
    for i in range(3):
        _, state = jax.jit(tx.update)(jax.tree.map(lambda g, i=i: g[i], stream), state, params)
    assert jax.tree.map(lambda x: (x.dtype, x.shape), state) == layout
    bf16 = adamlab.adam(1e-2, state_dtype=jnp.bfloat16).init(params)
    assert bf16[0].moment["z"].dtype == C64 and bf16[2].second_moment["z"].dtype == jnp.bfloat16


@pytest.mark.parametrize(
    "mu_dtype, real_moment, complex_moment",
    [
        (jnp.float32, jnp.float32, C64),
        (C64, jnp.float32, C64),
        (jnp.bfloat16, jnp.bfloat16, C64),  # no complex type is narrower than complex64
        (jnp.complex128, jnp.float64, jnp.complex128),
    ],
)
def test_a_state_dtype_sets_the_precision_and_the_param_whether_complex(mu_dtype, real_moment, complex_moment):
    """`mu_dtype`/`accumulator_dtype` on a mixed tree: the first moment of a complex param stays complex (a real
    dtype would drop its imaginary part), a real param's stays real; the updates equal the run without a dtype."""
    with jax.enable_x64(jnp.dtype(mu_dtype) == jnp.complex128):
        params = complex_params()
        grads = jax.tree.map(lambda p: 0.3 * p + 0.1, params)
        for tx, plain, first in [
            (adamlab.adam(1e-2, mu_dtype=mu_dtype), adamlab.adam(1e-2), lambda s: s[0].moment),
            (adamlab.sgd(1e-2, 0.9, accumulator_dtype=mu_dtype), adamlab.sgd(1e-2, 0.9), lambda s: s[0].trace),
        ]:
            state, plain_state = tx.init(params), plain.init(params)
            assert first(state)["w"].dtype == real_moment
            assert first(state)["z"].dtype == first(state)["zs"]["v"].dtype == complex_moment
            for _ in range(2):
                updates, state = jax.jit(tx.update)(grads, state, params)
                want, plain_state = jax.jit(plain.update)(grads, plain_state, params)
            tol = 1e-2 if mu_dtype == jnp.bfloat16 else 1e-6  # bfloat16 rounds the real param's moment
            np.testing.assert_allclose(updates["z"], want["z"], rtol=1e-6)
            np.testing.assert_allclose(updates["w"], want["w"], rtol=tol)


def test_adam_minimises_a_complex_parabola():
    """Optax's own convergence test: |z - target|**2 for complex z, from 0."""
    target = jnp.asarray([1.0 - 2.0j, -0.5 + 0.25j], C64)
    loss = lambda z: jnp.sum(jnp.abs(z - target) ** 2)
    for tx in (adamlab.adam(0.05), adamlab.adamw(0.05, weight_decay=0.0), adamlab.rmsprop(0.05)):
        z, state = jnp.zeros(2, C64), tx.init(jnp.zeros(2, C64))

        @jax.jit
        def step(z, state, tx=tx):
            g = jnp.conj(jax.grad(loss)(z))  # JAX's grad of a real function of z is conj(dL/dz*)
            u, state = tx.update(g, state, z)
            return adamlab.apply_updates(z, u), state

        for _ in range(500):
            z, state = step(z, state)
        np.testing.assert_allclose(np.asarray(z), np.asarray(target), atol=2e-2)


def test_global_norm_of_complex_leaves_is_the_modulus():
    tree = {"z": jnp.asarray([3 + 4j], C64), "r": jnp.asarray([12.0])}
    assert float(adamlab.global_norm(tree)) == pytest.approx(13.0)
    assert float(adamlab.global_norm(tree)) == pytest.approx(float(optax.global_norm(tree)))


def test_the_flat_layout_refuses_complex_leaves_and_says_what_to_do():
    with pytest.raises(TypeError, match=r"\['z'\] is complex.*keep complex params on the pytree path"):
        flat.flatten({"z": jnp.ones(2, C64)})
