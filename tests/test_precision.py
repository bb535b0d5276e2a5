"""float64 as exact as float32: per-step scalars in the precision of the leaves they multiply.

Under ``jax_enable_x64`` with float64 params, every optimizer of the family is bit-identical to Optax under x64 over
300 jitted steps with a learning-rate schedule, and within 1e-12 of the float64 NumPy reference; a tree mixing
float32 and float64 leaves computes each leaf as a tree of its dtype alone would. The float32 path (without x64) is
``tests/test_parity.py``'s, unchanged: bit for bit with Optax. The rest of the family (tests/family.py) likewise,
over 30 steps on conftest.mixed_params: bit-identical to Optax under x64 but for NOT_BITWISE (Optax's float32
scalars, a fused multiply-add; measured and explained there), and within 1e-12 of the papers' float64 references.
"""

import contextlib
import functools
import math
import os
from typing import Any, NamedTuple

import conftest
import family
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference
import reference_accumulators
import reference_adaptive
import reference_factored
import reference_layerwise
import reference_muon
import reference_schedule_free
from conftest import as_dict, mixed_params
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


# ---------------------------------------------------------------- the issue-22 family (tests/family.py)

FAMILY_STEPS = 30  # the family's schedule reaches 0 at step 30


@functools.cache
def family_problem():
    """conftest.mixed_params in float64 and a float64 gradient stream, as NumPy arrays."""
    params = jax.tree.map(lambda x: np.asarray(x, np.float64), mixed_params())
    grads = adamlab.testing.gradient_stream(mixed_params(), FAMILY_STEPS, seed=7)
    return params, jax.tree.map(lambda x: np.asarray(x, np.float64), grads)


@contextlib.contextmanager
def _optax_on_adamlabs_schedule():
    """Optax's own schedules give float32 values for an int32 count even under x64, adamlab's float64: with
    adamlab's schedule on both sides the optimizers' own arithmetic is what is compared (as CASES above does)."""
    saved, family.OPTAX_LR = family.OPTAX_LR, family.LR
    try:
        yield
    finally:
        family.OPTAX_LR = saved


def _run_together(jobs):
    """Final params of each ``(tx, params)`` on the family stream, every scan in one program, under x64."""
    _, grads = family_problem()
    txs = [tx for tx, _ in jobs]
    with jax.enable_x64(True):

        def scan(tx, p, stream):
            def step(carry, g):
                p, state = carry
                updates, state = tx.update(g, state, p)
                return (optax.apply_updates(p, updates), state), None

            return jax.lax.scan(step, (p, tx.init(p)), stream)[0][0]

        go = jax.jit(lambda ps, stream: [scan(tx, p, stream) for tx, p in zip(txs, ps)])
        ps = [jax.tree.map(jnp.asarray, p) for _, p in jobs]
        return [jax.tree.map(np.asarray, out) for out in go(ps, jax.tree.map(jnp.asarray, grads))]


@functools.cache
def _family_runs(name):
    """adamlab's member and its Optax counterpart from the same float64 params; rprop with Optax's lag."""
    params, _ = family_problem()
    theirs_params = optax.LookaheadParams.init_synced(params) if family.FAMILY[name].params == "lookahead" else params
    with _optax_on_adamlabs_schedule():
        jobs = [
            (
                family.build(name, **({"optax_lag": True} if name == "rprop" else {})),
                family.initial_params(name, params),
            ),
            (family.FAMILY[name].optax(), theirs_params),
        ]
        return _run_together(jobs)


# Measured over the 30 steps, and why not bitwise.
NOT_BITWISE = {
    # Optax's decay rate ``1 - t**-0.8`` from ``jnp.array(t, jnp.float32)`` (factorized.py); measured 1.6e-8. adamlab
    # takes it in the params' precision, 5e-16 from the float64 reference (Optax: 1.2e-7).
    "adafactor": 5e-8,
    # Optax's warmup, ``warmup_constant_schedule`` of the int32 count, is float32 under x64 (as every Optax schedule
    # is); measured 2.2e-8 and 2.4e-8. Without a warmup adamw's is 1.5e-16 (an ulp) and sgd's bitwise.
    "schedule_free_adamw": 7e-8,
    "schedule_free_sgd": 7e-8,
    # XLA contracts ``b1 * m + (g / (sqrt(v) + eps) + wd * p)`` into fused multiply-adds in one program and not in
    # the other: ``v`` is bitwise, ``m`` an ulp off from the first step; measured 1.3e-16. Only XLA's default CPU
    # fusion emitters do: under the suite's (tests/conftest.py) the two are bitwise.
    "novograd": 1e-15,
}
FUSED_ONLY = {"novograd"}


def _max_rel(a, b):
    return max(
        float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-300))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


@pytest.mark.parametrize("name", list(family.FAMILY))
def test_every_family_member_in_float64_is_bit_identical_to_optax_under_x64(name):
    ours, theirs = _family_runs(name)
    assert all(v.dtype == np.float64 for v in jax.tree.leaves(ours))
    assert _max_rel(ours, family.initial_params(name, family_problem()[0])) > 1e-3  # the params moved
    if name in NOT_BITWISE:
        worst = _max_rel(ours, theirs)
        assert worst <= NOT_BITWISE[name], worst
        # 0 would mean the entry is stale, but for novograd's FMAs, which the suite's emitters do not form
        assert worst > 0 or (name in FUSED_ONLY and conftest.EMITTER_FLAG in os.environ.get("XLA_FLAGS", "")), name
    else:
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
            np.testing.assert_array_equal(a, b, err_msg=name)


@functools.cache  # the references ask once per leaf and step
def _lr_at(step):
    """The family's schedule in float64, as adamlab evaluates it under x64."""
    with jax.enable_x64(True):
        return float(family.LR(step))


# name -> (keywords for family.build where the reference leaves an option out, float64 reference(params, grads)),
# the references written from the papers (tests/reference_*.py), in the family's hyperparameters.
REFERENCES: dict[str, tuple[dict, Any]] = {
    "adabelief": ({}, lambda p, g: reference_adaptive.adabelief(p, g, _lr_at)),
    "adadelta": ({}, lambda p, g: reference_accumulators.adadelta(p, g, 1.0, wd=family.WD)),
    "adafactor": ({}, lambda p, g: reference_factored.adafactor(p, g, _lr_at)),
    "adagrad": ({}, lambda p, g: reference_accumulators.adagrad(p, g, _lr_at)),
    # The reference is the paper's, without Optax's eps (inside the maximum, or beside the root): 1e-8 relative.
    "adamax": ({"eps": 0.0}, lambda p, g: reference_adaptive.adamax(p, g, _lr_at)),
    "adamaxw": ({"eps": 0.0}, lambda p, g: reference_adaptive.adamax(p, g, _lr_at, wd=family.WD)),
    "adan": ({}, lambda p, g: reference_adaptive.adan(p, g, _lr_at, wd=family.WD)),
    "lamb": ({}, lambda p, g: reference_layerwise.lamb(p, g, _lr_at, weight_decay=family.WD)),
    "lars": ({}, lambda p, g: reference_layerwise.lars(p, g, _lr_at, weight_decay=family.WD)),
    "novograd": ({}, lambda p, g: reference_layerwise.novograd(p, g, _lr_at, weight_decay=family.WD)),
    "radam": ({"eps": 0.0}, lambda p, g: reference_adaptive.radam(p, g, _lr_at)),
    "yogi": ({}, lambda p, g: reference_adaptive.yogi(p, g, _lr_at)),
    "rprop": ({"optax_lag": False}, lambda p, g: reference_accumulators.rprop(p, g, 1e-3)),  # the paper's first step
    "sign_sgd": ({}, lambda p, g: reference_accumulators.sign_sgd(p, g, _lr_at)),
    "signum": ({}, lambda p, g: reference_accumulators.signum(p, g, _lr_at)),
    "optimistic_adam_v2": ({}, lambda p, g: reference_adaptive.optimistic_adam(p, g, _lr_at)),
    "adopt": ({}, lambda p, g: reference_adaptive.adopt(p, g, _lr_at)),
    "simplified_ademamix": ({}, lambda p, g: reference_adaptive.simplified_ademamix(p, g, _lr_at, wd=family.WD)),
    "schedule_free_adamw": (
        {},
        lambda p, g: reference_schedule_free.schedule_free_adamw(p, g, 1e-2, warmup_steps=3, wd=family.WD)[0],
    ),
    "muon": ({}, lambda p, g: reference_muon.muon(p, g, _lr_at, weight_decay=family.WD)),
}
NO_REFERENCE = {
    "noisy_sgd": "its noise comes from JAX's PRNG, which a NumPy reference cannot draw",
    "schedule_free_sgd": "tests/reference_schedule_free.py has schedule-free AdamW only",
    "lookahead_adamw": "no float64 reference of lookahead; its fast optimizer, AdamW, is CASES['adamw']",
}


def test_every_family_member_has_a_float64_reference_or_says_why_not():
    assert set(REFERENCES) | set(NO_REFERENCE) == set(family.FAMILY)
    assert not set(REFERENCES) & set(NO_REFERENCE)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_every_family_member_in_float64_is_within_1e12_of_its_float64_reference(name):
    keywords, ref = REFERENCES[name]
    params, grads = family_problem()
    ours = _family_runs(name)[0] if not keywords else _run_together([(family.build(name, **keywords), params)])[0]
    expected = ref(as_dict(params), as_dict(grads))
    ours = as_dict(ours)
    assert set(ours) == set(expected)
    worst = max(float(np.max(np.abs(ours[k] - expected[k])) / np.max(np.abs(expected[k]))) for k in expected)
    assert worst <= 1e-12, worst
    assert max_rel(as_dict(params), expected) > 1e-3  # the params moved: the comparison could fail
