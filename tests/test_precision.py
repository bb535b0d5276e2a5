"""float64 as exact as float32: per-step scalars in the precision of the leaves they multiply.

Under ``jax_enable_x64`` with float64 params, every optimizer of the family is bit-identical to Optax under x64 over
300 jitted steps with a learning-rate schedule, and within 1e-12 of the float64 NumPy reference; a tree mixing
float32 and float64 leaves computes each leaf as a tree of its dtype alone would. The float32 path (without x64) is
``tests/test_parity.py``'s, unchanged: bit for bit with Optax.
"""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference
from torch_compat import reference as torch_reference

import adamlab
from adamlab.moments import bias_correction_term

STEPS = 300
SHAPES = {"w": (5, 3), "b": (3,), "scalar": (), "one": (1,), "kernel": (2, 3, 2)}
GRAD_SCALES = {"w": 1.0, "b": 0.1, "scalar": 1.0, "one": 3.0, "kernel": 10.0}
LR = adamlab.schedules.warmup_cosine_decay(0.0, 1e-3, 30, STEPS)
ETA = adamlab.schedules.warmup_cosine_decay(0.0, 1.0, 30, STEPS, end_value=0.1)


def problem(seed: int = 0):
    """float64 params (the zero bias among them) and a float64 gradient stream, as NumPy arrays."""
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s) if k != "b" else np.zeros(s) for k, s in SHAPES.items()}
    grads = {k: GRAD_SCALES[k] * rng.standard_normal((STEPS, *s)) for k, s in SHAPES.items()}
    return params, grads


def run(tx, params, grads, apply=optax.apply_updates):
    """Final params after one jitted step per row of `grads` (a scan), under x64."""
    with jax.enable_x64(True):

        @jax.jit
        def go(p, stream):
            def step(carry, g):
                p, state = carry
                updates, state = tx.update(g, state, p)
                return (apply(p, updates), state), None

            return jax.lax.scan(step, (p, tx.init(p)), stream)[0][0]

        out = go(jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, grads))
        return jax.tree.map(np.asarray, out)


def max_rel(a, b):
    return max(float(np.max(np.abs(a[k] - b[k])) / max(np.max(np.abs(b[k])), 1e-300)) for k in b)


def _ref(fn, **kw):
    def ref(p, g):
        with jax.enable_x64(True):  # adamlab's schedules are evaluated in float64 by the reference too
            return fn(p, g, **kw)

    return ref


def _torch_nadam(decoupled_wd=0.0):
    """Optax's NAdam is torch's with ``momentum_decay=inf`` (mu_t = b1); the stream as a list of dicts."""

    def ref(p, g):
        steps = [{k: g[k][i] for k in g} for i in range(STEPS)]
        kw = dict(weight_decay=decoupled_wd, decoupled_weight_decay=True) if decoupled_wd else {}
        with jax.enable_x64(True):
            return torch_reference.nadam(p, steps, lr=lambda k: float(LR(k)), momentum_decay=math.inf, **kw)

    return ref


# name -> (adamlab, Optax under x64, float64 reference)
CASES: dict[str, tuple[Any, Any, Any]] = {
    "adam": (adamlab.adam(LR), optax.adam(LR), _ref(reference.adam, lr=LR)),
    "adamw": (
        adamlab.adamw(LR, weight_decay=0.1),
        optax.adamw(LR, weight_decay=0.1),
        _ref(reference.adam, lr=LR, decoupled_wd=0.1),
    ),
    "adam_l2": (
        adamlab.adam(LR, weight_decay=0.1),
        optax.chain(optax.add_decayed_weights(0.1), optax.adam(LR)),
        _ref(reference.adam, lr=LR, l2=0.1),
    ),
    "amsgrad": (adamlab.amsgrad(LR), optax.amsgrad(LR), _ref(reference.amsgrad, lr=LR)),
    "nadam": (adamlab.nadam(LR), optax.nadam(LR), _torch_nadam()),
    "nadamw": (adamlab.nadamw(LR, weight_decay=0.1), optax.nadamw(LR, weight_decay=0.1), _torch_nadam(0.1)),
    "ademamix": (
        adamlab.ademamix(LR, weight_decay=0.1),
        optax.contrib.ademamix(LR, weight_decay=0.1),
        _ref(reference.ademamix, lr=LR, wd=0.1),
    ),
    "lion": (adamlab.lion(LR, weight_decay=0.1), optax.lion(LR, weight_decay=0.1), _ref(reference.lion, lr=LR, wd=0.1)),
    "rmsprop": (adamlab.rmsprop(LR), optax.rmsprop(LR), _ref(reference.rmsprop, lr=LR)),
    "rmsprop_momentum": (  # eps inside the root: outside it, the two libraries order the division differently
        adamlab.rmsprop(LR, momentum=0.9),
        optax.rmsprop(LR, momentum=0.9),
        _ref(reference.rmsprop, lr=LR, momentum=0.9),
    ),
    "sgd": (adamlab.sgd(LR, momentum=0.9), optax.sgd(LR, momentum=0.9), _ref(reference.sgd, lr=LR, momentum=0.9)),
    "sgd_nesterov": (
        adamlab.sgd(LR, momentum=0.9, nesterov=True),
        optax.sgd(LR, momentum=0.9, nesterov=True),
        _ref(reference.sgd, lr=LR, momentum=0.9, nesterov=True),
    ),
    "adamw_paper": (
        adamlab.adamw(1e-3, weight_decay=0.1, schedule=ETA),
        optax.chain(
            optax.scale_by_adam(), optax.scale(1e-3), optax.add_decayed_weights(0.1), optax.scale_by_learning_rate(ETA)
        ),
        _ref(reference.adamw_paper, alpha=1e-3, eta=ETA, weight_decay=0.1),
    ),
    "adam_optax_schedule": (
        adamlab.adam(optax.cosine_decay_schedule(1e-3, STEPS)),
        optax.adam(optax.cosine_decay_schedule(1e-3, STEPS)),
        _ref(reference.adam, lr=lambda k: 1e-3 * 0.5 * (1 + math.cos(math.pi * k / STEPS))),
    ),
}


@pytest.fixture(scope="module")
def stream():
    return problem()


@pytest.mark.parametrize("name", sorted(CASES))
def test_float64_params_are_bit_identical_to_optax_under_x64(name, stream):
    ours, theirs, _ = CASES[name]
    params, grads = stream
    a, b = run(ours, params, grads), run(theirs, params, grads)
    assert all(v.dtype == np.float64 for v in a.values())
    for k in b:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}: leaf {k}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_float64_params_are_within_1e12_of_the_float64_reference(name, stream):
    ours, _, ref = CASES[name]
    params, grads = stream
    assert max_rel(run(ours, params, grads), ref(params, grads)) <= 1e-12


def test_the_reference_would_catch_float32_scalars(stream):
    """What this module guards against: the bias corrections rounded to float32 put Adam 1e-6 or more away."""
    params, grads = stream

    class Float32Bc(NamedTuple):
        count: jax.Array

    def float32_bias_correct(decay):
        def update(u, state, params=None, **extra):
            count = state.count + 1
            bc = (1 - jnp.float32(decay) ** count).astype(jnp.float32)
            return jax.tree.map(lambda x: x / bc, u), Float32Bc(count)

        return adamlab.GradientTransformation(lambda p: Float32Bc(jnp.zeros((), jnp.int32)), update)

    tx = adamlab.chain(
        adamlab.scale_by_ema(0.9),
        float32_bias_correct(0.9),
        adamlab.scale_by_rms(0.999, 1e-8, bias_correction=True),
        adamlab.scale_by_learning_rate(LR),
    )
    assert max_rel(run(tx, params, grads), CASES["adam"][2](params, grads)) > 1e-8


def test_first_adam_step_in_float64_is_exact():
    """Step 1 is ``-lr * g / (|g| + eps)``: 6.7e-6 off when 1 - b**t was float32, now float64 rounding."""
    params = {"w": np.linspace(-1.0, 1.0, 7)}
    grads = {"w": np.linspace(-3.0, 2.0, 7)[None]}
    out = run(adamlab.adam(1e-3), params, grads)["w"]
    g = grads["w"][0]
    np.testing.assert_allclose(out, params["w"] - 1e-3 * g / (np.abs(g) + 1e-8), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", ["adam", "adamw", "nadam", "ademamix", "rmsprop_momentum", "adamw_paper", "sgd"])
def test_a_mixed_tree_keeps_each_leaf_in_its_own_precision(name, stream):
    """float64 leaves beside float32 ones stay float64-exact; the float32 ones compute as a float32 tree would.

    (Leaf for leaf the comparison is to rounding, not bits: XLA fuses a leaf's arithmetic differently in
    different trees, Optax's too.)
    """
    ours, _, ref = CASES[name]
    params, grads = stream
    narrow = {"w", "scalar", "kernel"}

    def cast(tree):
        return {k: v.astype(np.float32 if k in narrow else np.float64) for k, v in tree.items()}

    mixed = run(ours, cast(params), cast(grads))
    alone32 = run(ours, {k: v.astype(np.float32) for k, v in params.items()}, cast(grads))
    expected = ref(params, grads)
    for k, v in mixed.items():
        assert v.dtype == (np.float32 if k in narrow else np.float64), k
        if k in narrow:
            np.testing.assert_allclose(v, alone32[k], rtol=1e-6, atol=1e-7 * np.max(np.abs(v)), err_msg=k)
        else:
            assert max_rel({k: v}, {k: expected[k]}) <= 1e-12, k


@pytest.mark.parametrize("name", ["adam", "adamw", "nadam", "sgd", "rmsprop"])
def test_float32_params_under_x64_match_optax_under_x64(name, stream):
    """Optax under x64 computes its scalars in float64 and rounds them to each leaf's dtype; so does adamlab. The
    values agree to float32 rounding (XLA simplifies the two programs' float32 arithmetic differently: an ulp)."""
    ours, theirs, _ = CASES[name]
    params, grads = jax.tree.map(lambda x: x.astype(np.float32), stream)
    a, b = run(ours, params, grads), run(theirs, params, grads)
    for k in b:
        assert a[k].dtype == np.float32
    assert max_rel(a, b) <= 1e-6


def test_bias_correction_term_takes_the_precision_of_the_moment_it_divides():
    class Seen(NamedTuple):
        count: jax.Array
        moment: Any

    seen = {}

    def per_step(t):
        bc = bias_correction_term(0.999, t)

        def leaf(u, m):
            seen[u.dtype.name] = bc.dtype.name
            return u / bc, m

        return leaf

    tx = adamlab.moment_stage("seen", Seen, per_step=per_step)
    with jax.enable_x64(True):
        tree = {"a": jnp.ones(2, jnp.float32), "b": jnp.ones(2, jnp.float64), "c": jnp.ones(2, jnp.bfloat16)}
        out, _ = tx.update(tree, tx.init(tree))
        assert seen == {"float32": "float32", "float64": "float64"}  # bfloat16 computes in float32
        np.testing.assert_array_equal(np.asarray(out["b"]), np.full(2, 1 / (1 - 0.999)))
        assert bias_correction_term(0.999, jnp.int32(1)).dtype == jnp.float32  # outside a stage: float32
    assert bias_correction_term(0.999, jnp.int32(1)).dtype == jnp.float32


@pytest.mark.parametrize(
    "schedule",
    [
        adamlab.schedules.constant(0.1),
        adamlab.schedules.linear_warmup(0.0, 1.0, 7),
        adamlab.schedules.cosine_decay(1.0, 7, alpha=0.1),
        adamlab.schedules.warmup_cosine_decay(0.0, 1.0, 3, 11),
    ],
)
def test_schedules_compute_in_float64_under_x64(schedule):
    with jax.enable_x64(True):
        values = [schedule(jnp.int32(k)) for k in range(12)]
        assert all(v.dtype == jnp.float64 for v in values)
        # float32 arithmetic would be off by ~1e-8 somewhere along a warmup or a cosine
        ref = [float(schedule(k)) for k in range(12)]
    assert schedule(jnp.int32(3)).dtype == jnp.float32
    np.testing.assert_allclose([float(v) for v in values], ref, rtol=1e-15)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "rmsprop", "nadam"])
def test_complex128_params_compute_in_float64_precision(name):
    """complex128 leaves get float64 scalars: Optax under x64 to float64 rounding (Optax keeps ``v`` complex, with a
    zero imaginary part, so the division differs by an ulp: ``tests/test_complex.py``); float32 scalars would leave
    1e-7."""
    rng = np.random.default_rng(2)
    params = {"z": rng.standard_normal((4, 3)) + 1j * rng.standard_normal((4, 3))}
    grads = {"z": rng.standard_normal((STEPS, 4, 3)) + 1j * rng.standard_normal((STEPS, 4, 3))}
    ours, theirs, _ = CASES[name]
    a, b = run(ours, params, grads), run(theirs, params, grads)
    assert a["z"].dtype == np.complex128
    assert float(np.max(np.abs(a["z"] - b["z"])) / np.max(np.abs(b["z"]))) < 1e-14
