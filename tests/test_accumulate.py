"""Gradient accumulation: k micro-steps give one step of the wrapped optimizer on the mean gradient."""

import functools

import family
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import mixed_params

import adamlab
from adamlab import flat
from adamlab.accumulate import AccumulateState, accumulate_gradients
from adamlab.numerics import skip_nonfinite

K = 3
REAL_STEPS = 4


def _adamw():
    schedule = adamlab.schedules.warmup_cosine_decay(0.0, 1e-2, 2, 10)
    return adamlab.adamw(schedule, weight_decay=0.1, mask=adamlab.weight_decay_mask)


# The optimizers the wrapper is checked with: each keeps count-based state (schedules, bias corrections, slow EMAs);
# and every member of tests/family.py (in the slow tier), lookahead's (fast, slow) params and noisy SGD's key included.
OPTIMIZERS = {
    "adamw": _adamw,
    "amsgrad": lambda: adamlab.amsgrad(adamlab.schedules.warmup_cosine_decay(0.0, 1e-2, 2, 10)),
    "ademamix": lambda: adamlab.ademamix(
        1e-2,
        b3=adamlab.schedules.ademamix_b3(0.9999, 4),
        alpha=adamlab.schedules.ademamix_alpha(5.0, 4),
        weight_decay=0.1,
    ),
    "lion": lambda: adamlab.lion(adamlab.schedules.warmup_cosine_decay(0.0, 1e-3, 2, 10)),
    "adam_atan2": lambda: adamlab.adam_atan2(1e-2),
    "nadam_torch": lambda: adamlab.nadam(adamlab.schedules.warmup_cosine_decay(0.0, 1e-2, 2, 10), momentum_decay=4e-3),
    "sgd_dampening": lambda: adamlab.sgd(1e-2, momentum=0.9, dampening=0.5),
    "cautious_adamw": lambda: adamlab.cautious(_adamw()),
    "stable_adamw": lambda: adamlab.stable_adamw(adamlab.schedules.warmup_cosine_decay(0.0, 1e-2, 2, 10)),
}


NAMES = [*OPTIMIZERS, *(pytest.param(n, marks=pytest.mark.slow) for n in family.FAMILY)]


def _make(name):
    return OPTIMIZERS[name]() if name in OPTIMIZERS else family.build(name)


def _start(name, params):
    """The params `name` steps: the tree, or for lookahead a synced (fast, slow) pair (gradients stay trees)."""
    return family.initial_params(name, params) if name in family.FAMILY else params


def _scan(tx, params, state, grads):
    def body(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        return (adamlab.apply_updates(p, u), s), None

    return jax.lax.scan(body, (params, state), grads)[0]


def _run(tx, params, grads):
    """Applies `tx` to each gradient of the stream `grads` in one jitted scan; returns params and state."""
    return jax.jit(lambda p, g: _scan(tx, p, tx.init(p), g))(params, grads)


def _means(grads, k):
    """The mean of each group of k consecutive gradients, (g1 + g2 + ... + gk) / k, in NumPy's IEEE float32."""

    def mean(x):
        x = np.asarray(x).reshape(-1, k, *x.shape[1:])
        total = x[:, 0]
        for i in range(1, k):
            total = total + x[:, i]
        return jnp.asarray(total / np.float32(k))

    return jax.tree.map(mean, grads)


def _bits(x):
    x = jnp.asarray(x)
    return np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)


def _bitwise(a, b):
    return all(np.array_equal(_bits(x), _bits(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))) and (
        jax.tree.structure(a) == jax.tree.structure(b)
    )


def _discrete(state):
    """The integer and PRNG-key leaves of a state: step counts, a schedule's step, noisy SGD's key."""
    return [x for x in jax.tree.leaves(state) if not jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]


def _tree():
    """A matrix (for muon), a zero vector and a 0-d leaf (per-tensor norms): the shapes that change an optimizer's
    arithmetic; nesting and the other shapes are the wrapper's alone (test_flat_layout_with_a_mask). Each leaf costs
    compile time, once per optimizer and check (adabelief accumulated: 2.2 s of CPU on conftest.mixed_params, 0.8 s
    on this tree)."""
    w = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    return {"w": w, "b": jnp.zeros(3), "scalar": jnp.asarray(0.7, jnp.float32)}


def _stream():
    """The micro-batch gradients, K * REAL_STEPS of them, as a list."""
    grads = adamlab.testing.gradient_stream(_tree(), K * REAL_STEPS, seed=3)
    return [jax.tree.map(lambda x, i=i: x[i], grads) for i in range(K * REAL_STEPS)]


def _nan_like(g):
    return jax.tree.map(lambda x: x.at[(0,) * x.ndim].set(jnp.nan), g)


def _stack(*trees):
    return jax.tree.map(lambda *x: jnp.stack(x), *trees)


@functools.cache
def _one_step_per_mean(name):
    """What every check below is held to: the wrapper with k = 1 (one step of the optimizer per call, under the same
    control flow) on the means of each K micro-batches. Computed once per optimizer and shared (a compile each)."""
    return _run(accumulate_gradients(_make(name), 1), _start(name, _tree()), _means(_stack(*_stream()), K))


@pytest.mark.parametrize("name", NAMES)
def test_k_micro_steps_equal_one_step_on_the_mean_gradient(name):
    p_acc, s_acc = _run(accumulate_gradients(_make(name), K), _start(name, _tree()), _stack(*_stream()))
    p_one, s_one = _one_step_per_mean(name)
    assert _bitwise(p_acc, p_one)
    # Schedules, bias corrections, a lookahead's sync count and noisy SGD's key advanced once per real step, not per
    # micro-step (so the noise drawn per real step is the same as well, as the params confirm).
    assert _bitwise(s_acc.inner_state, s_one.inner_state)
    assert int(s_acc.micro_step) == 0 and all(not np.any(a) for a in jax.tree.leaves(s_acc.accumulator))
    assert not _bitwise(p_acc, _start(name, _tree()))  # the params moved: the comparison could fail


# The members whose params are not the gradients' tree (lookahead's pairs): the wrapper's own handling of them.
PAIRS = [n for n, m in family.FAMILY.items() if m.params != "plain"]


@pytest.mark.parametrize("name", [*OPTIMIZERS, *(pytest.param(n, marks=pytest.mark.slow) for n in PAIRS)])
def test_with_k_1_the_wrapper_is_the_wrapped_optimizer(name):
    p_one, s_one = _one_step_per_mean(name)
    p_ref, s_ref = _run(_make(name), _start(name, _tree()), _means(_stack(*_stream()), K))
    # Another compiled program (the cond and the barriers change XLA's fusions): equal to the last bits or so.
    for a, b in zip(jax.tree.leaves(p_one), jax.tree.leaves(p_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert _bitwise(_discrete(s_one.inner_state), _discrete(s_ref))


@pytest.mark.parametrize("name", NAMES)
def test_skip_nonfinite_outside_drops_the_bad_micro_batch_alone(name):
    grads = _stream()
    poisoned = [*grads[:1], _nan_like(grads[1]), *grads[1:]]  # the second micro-batch comes twice, once poisoned
    p, s = _run(skip_nonfinite(accumulate_gradients(_make(name), K)), _start(name, _tree()), _stack(*poisoned))
    p_one, s_one = _one_step_per_mean(name)
    assert int(s.skipped) == 1 and int(s.inner_state.micro_step) == 0
    assert _bitwise(p, p_one) and _bitwise(s.inner_state.inner_state, s_one.inner_state)


@pytest.mark.parametrize("name", NAMES)
def test_skip_nonfinite_inside_drops_the_whole_real_step(name):
    grads = _stream()
    start = _start(name, _tree())
    tx = accumulate_gradients(skip_nonfinite(_make(name)), K)

    # A real step with a poisoned micro-batch, then the K * REAL_STEPS good ones.
    (p_end, s_end), (ps, ss) = family.trajectory(tx, start, _stack(grads[0], _nan_like(grads[1]), grads[2], *grads))
    p, s = jax.tree.map(lambda x: x[K - 1], (ps, ss))
    assert _bitwise(p, start)  # the real step was skipped: nothing moved
    assert int(s.inner_state.skipped) == 1 and int(s.micro_step) == 0
    assert all(not np.any(a) for a in jax.tree.leaves(s.accumulator))  # and the poisoned sum was dropped
    # Counts, schedules, NAdam's prod mu_i, a lookahead's sync count, noisy SGD's key: the wrapped state is its init.
    assert _bitwise(s.inner_state.inner_state, tx.init(start).inner_state.inner_state)
    # Then the run goes on as if from a fresh start (another program: to the last bits or so).
    p_one, s_one = _one_step_per_mean(name)
    for a, b in zip(jax.tree.leaves(p_end), jax.tree.leaves(p_one)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(s_end.inner_state.skipped) == 1
    assert _bitwise(_discrete(s_end.inner_state.inner_state), _discrete(s_one.inner_state))


def test_mean_of_micro_batches_is_the_full_batch_gradient_step():
    """For a mean loss, accumulating k equal micro-batches steps like the full batch (up to summation order)."""
    kx, kw = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(kx, (24, 5))
    y = jnp.sin(x.sum(axis=1))
    params = {"w": jax.random.normal(kw, (5,)) * 0.3, "bias": jnp.zeros(())}
    loss = lambda p, x, y: jnp.mean((jnp.tanh(x @ p["w"] + p["bias"]) - y) ** 2)
    tx = accumulate_gradients(adamlab.adam(1e-2), 4)
    full = adamlab.adam(1e-2)

    @functools.partial(jax.jit, static_argnums=0)
    def step(tx, p, s, x, y):
        u, s = tx.update(jax.grad(loss)(p, x, y), s, p)
        return adamlab.apply_updates(p, u), s

    p, s = params, tx.init(params)
    q, t = params, full.init(params)
    for _ in range(3):
        for xb, yb in zip(jnp.split(x, 4), jnp.split(y, 4)):
            p, s = step(tx, p, s, xb, yb)
        q, t = step(full, q, t, x, y)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_micro_steps_leave_params_bit_for_bit_unchanged():
    params = {"w": jnp.array([-0.0, 0.0, 1.5, -2.0]), "n": jnp.arange(3)}  # -0.0 survives only a -0.0 update
    tx = accumulate_gradients(adamlab.sgd(0.1), K)
    s = tx.init(params)
    g = {"w": jnp.ones(4), "n": jnp.arange(3)}
    for i in range(K - 1):
        u, s = jax.jit(tx.update)(g, s, params)
        new = adamlab.apply_updates(params, u)
        assert np.array_equal(np.signbit(new["w"]), np.signbit(params["w"])) and np.array_equal(new["w"], params["w"])
        assert int(s.micro_step) == i + 1
    u, s = tx.update(g, s, params)
    np.testing.assert_allclose(u["w"], -0.1 * np.ones(4))


def test_inner_update_runs_only_on_the_kth_micro_step():
    """The wrapped update is not executed on the other micro-steps (a host callback counts executions)."""
    calls = []

    def init(params):
        return ()

    def update(updates, state, params=None):
        jax.debug.callback(lambda: calls.append(1))
        return updates, state

    tx = accumulate_gradients(adamlab.GradientTransformation(init, update), K)
    params = {"w": jnp.ones(3)}
    step = jax.jit(tx.update)
    s = tx.init(params)
    for _ in range(2 * K + 1):
        _, s = step(params, s, params)
    jax.effects_barrier()
    assert len(calls) == 2


def test_one_accumulator_in_float32_and_updates_in_the_gradient_dtype():
    params = {"w": jnp.ones((4, 3), jnp.bfloat16), "b": jnp.zeros(3, jnp.bfloat16), "n": jnp.arange(2)}
    tx = accumulate_gradients(adamlab.adamw(1e-3), 2)
    s = tx.init(params)
    assert isinstance(s, AccumulateState)
    assert s.accumulator["w"].dtype == jnp.float32 and s.accumulator["n"].shape == (0,)
    # The only param-shaped trees in the state: the accumulator and the wrapped optimizer's two moments.
    shaped = [x for x in jax.tree.leaves(s) if x.shape == (4, 3)]
    assert len(shaped) == 3
    g = jax.tree.map(lambda p: jnp.full(p.shape, 0.1, p.dtype) if p.dtype == jnp.bfloat16 else p, params)
    for _ in range(2):
        u, s = tx.update(g, s, params)
    assert u["w"].dtype == jnp.bfloat16 and u["n"].dtype == params["n"].dtype
    assert float(jnp.max(jnp.abs(u["w"]))) > 0
    narrow = accumulate_gradients(adamlab.adamw(1e-3), 2, accumulator_dtype=jnp.bfloat16).init(params)
    assert narrow.accumulator["w"].dtype == jnp.bfloat16


def test_flat_layout_with_a_mask():
    """The wrapper runs on flat buffers (masks mapped onto buckets) exactly as on the tree."""
    params = mixed_params()
    grads = adamlab.testing.gradient_stream(params, 2 * K, seed=5)
    tx = accumulate_gradients(adamlab.adamw(1e-2, weight_decay=0.5, mask=adamlab.weight_decay_mask), K)
    p_tree, s_tree = _run(tx, params, grads)
    fparams = flat.flatten(params)
    fgrads = jax.vmap(fparams.layout.flatten)(grads)
    p_flat, s_flat = _run(tx, fparams, fgrads)
    assert _bitwise(p_flat.unflatten(), p_tree)


def test_inside_an_adamlab_chain_after_clipping():
    """chain(clip, accumulate(adamw)) clips each micro-batch gradient, then the mean goes through adamw's moments."""
    params = {"w": jnp.ones(3)}
    tx = adamlab.chain(adamlab.clip_by_global_norm(1.0), accumulate_gradients(adamlab.adam(1e-1), 2))
    s = tx.init(params)
    g1, g2 = {"w": jnp.array([30.0, 40.0, 0.0])}, {"w": jnp.array([0.0, 0.0, 0.5])}
    _, s = tx.update(g1, s, params)
    u, s = tx.update(g2, s, params)
    mean = {"w": (g1["w"] / 50.0 + g2["w"]) / 2}
    ref, _ = adamlab.adam(1e-1).update(mean, adamlab.adam(1e-1).init(params), params)
    np.testing.assert_allclose(u["w"], ref["w"], rtol=1e-6)


@pytest.mark.parametrize("every_k", [0, -2, 2.5, True, "4"])
def test_bad_every_k_is_refused(every_k):
    with pytest.raises(ValueError, match="every_k"):
        accumulate_gradients(adamlab.sgd(0.1), every_k)


def test_bad_arguments_and_trees_are_named():
    with pytest.raises(TypeError, match="GradientTransformation"):
        accumulate_gradients(lambda g: g, 2)
    with pytest.raises(TypeError, match="accumulator_dtype"):
        accumulate_gradients(adamlab.sgd(0.1), 2, accumulator_dtype=jnp.int32)
    tx = accumulate_gradients(adamlab.sgd(0.1), 2)
    s = tx.init({"a": jnp.ones(2), "b": jnp.ones(3)})
    with pytest.raises(ValueError, match=r"\['b'\]"):
        tx.update({"a": jnp.ones(2), "b": jnp.ones(4)}, s)
    with pytest.raises(ValueError, match="updates"):
        tx.update({"a": jnp.ones(2)}, s)
    with pytest.raises(TypeError, match=r"\['a'\]"):
        tx.update({"a": jnp.ones(2, jnp.int32), "b": jnp.ones(3)}, s)
    with pytest.raises(ValueError, match="state"):
        tx.update({"a": jnp.ones(2), "b": jnp.ones(3)}, s.inner_state)
