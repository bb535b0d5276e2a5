"""Gradient accumulation: k micro-steps give one step of the wrapped optimizer on the mean gradient."""

import functools

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


# The optimizers the wrapper is checked with: each keeps count-based state (schedules, bias corrections, slow EMAs).
FAMILY = {
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


def _run(tx, params, grads):
    """Applies `tx` to each gradient of the stream `grads` in one jitted scan; returns params and state."""

    @jax.jit
    def go(params, grads):
        def body(carry, g):
            p, s = carry
            u, s = tx.update(g, s, p)
            return (adamlab.apply_updates(p, u), s), None

        return jax.lax.scan(body, (params, tx.init(params)), grads)[0]

    return go(params, grads)


def _means(grads, k):
    """The mean of each group of k consecutive gradients, (g1 + g2 + ... + gk) / k, in NumPy's IEEE float32."""

    def mean(x):
        x = np.asarray(x).reshape(-1, k, *x.shape[1:])
        total = x[:, 0]
        for i in range(1, k):
            total = total + x[:, i]
        return jnp.asarray(total / np.float32(k))

    return jax.tree.map(mean, grads)


def _bitwise(a, b):
    return all(
        np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    ) and jax.tree.structure(a) == jax.tree.structure(b)


@pytest.mark.parametrize("name", list(FAMILY))
def test_k_micro_steps_equal_one_step_on_the_mean_gradient(name):
    make = FAMILY[name]
    params = mixed_params()
    grads = adamlab.testing.gradient_stream(params, K * REAL_STEPS, seed=3)
    p_acc, s_acc = _run(accumulate_gradients(make(), K), params, grads)
    # The same wrapper with k = 1 is one step of the optimizer per call, under the same control flow: exactly equal.
    p_one, s_one = _run(accumulate_gradients(make(), 1), params, _means(grads, K))
    assert _bitwise(p_acc, p_one)
    assert _bitwise(s_acc.inner_state, s_one.inner_state)
    # The plain optimizer on the means is another compiled program (fusions differ): equal to the last bits or so.
    p_ref, s_ref = _run(make(), params, _means(grads, K))
    for a, b in zip(jax.tree.leaves(p_acc), jax.tree.leaves(p_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # The schedule and the bias corrections advanced once per real step, not per micro-step.
    counts = [x for x in jax.tree.leaves(s_acc.inner_state) if x.dtype == jnp.int32 and x.ndim == 0]
    assert counts and all(int(c) == REAL_STEPS for c in counts)
    assert int(s_acc.micro_step) == 0 and all(not np.any(a) for a in jax.tree.leaves(s_acc.accumulator))


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


def _nan_like(g):
    return jax.tree.map(lambda x: x.at[(0,) * x.ndim].set(jnp.nan), g)


@pytest.mark.parametrize("name", list(FAMILY))
def test_skip_nonfinite_outside_drops_the_bad_micro_batch_alone(name):
    make = FAMILY[name]
    params = {"w": jnp.linspace(-1, 1, 6).reshape(2, 3), "bias": jnp.zeros(3)}
    grads = [jax.tree.map(lambda p, i=i: jnp.full_like(p, 0.1 * (i + 1)) + p, params) for i in range(K)]
    tx = skip_nonfinite(accumulate_gradients(make(), K))
    stream = jax.tree.map(lambda *x: jnp.stack(x), grads[0], _nan_like(grads[1]), *grads[1:])
    p, s = _run(tx, params, stream)
    q, t = _run(accumulate_gradients(make(), K), params, jax.tree.map(lambda *x: jnp.stack(x), *grads))
    assert int(s.skipped) == 1 and _bitwise(p, q) and _bitwise(s.inner_state, t)


@pytest.mark.parametrize("name", list(FAMILY))
def test_skip_nonfinite_inside_drops_the_whole_real_step(name):
    make = FAMILY[name]
    params = {"w": jnp.linspace(-1, 1, 6).reshape(2, 3), "bias": jnp.zeros(3)}
    grads = [jax.tree.map(lambda p, i=i: jnp.full_like(p, 0.1 * (i + 1)) + p, params) for i in range(K)]
    tx = accumulate_gradients(skip_nonfinite(make()), K)
    step = jax.jit(lambda p, s, g: (lambda u, s: (adamlab.apply_updates(p, u), s))(*tx.update(g, s, p)))
    s = tx.init(params)
    p = params
    for g in [grads[0], _nan_like(grads[1]), grads[2]]:
        p, s = step(p, s, g)
    assert _bitwise(p, params)  # the real step was skipped: nothing moved
    assert int(s.inner_state.skipped) == 1 and int(s.micro_step) == 0
    assert all(not np.any(a) for a in jax.tree.leaves(s.accumulator))  # and the poisoned sum was dropped
    scalars = [c for c in jax.tree.leaves(s.inner_state.inner_state) if c.ndim == 0]
    counts = [int(c) for c in scalars if jnp.issubdtype(c.dtype, jnp.integer)]
    assert counts and set(counts) == {0}  # schedule and bias corrections did not advance
    assert all(float(c) == 1.0 for c in scalars if jnp.issubdtype(c.dtype, jnp.floating))  # NAdam's prod mu_i
    for g in grads:
        p, s = step(p, s, g)
    ref, _ = _run(accumulate_gradients(make(), K), params, jax.tree.map(lambda *x: jnp.stack(x), *grads))
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


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
