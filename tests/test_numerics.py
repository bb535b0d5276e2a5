"""Precision, non-finite gradients, determinism, and the differences from Optax 0.2.8 that motivate them.

Every optimizer, on float32, bfloat16 and float16 params (one mixed tree), must give finite updates and params
on zero, tiny and huge-but-finite gradients; state dtypes and shapes must not change between init and update;
`skip_nonfinite` must leave params and every moment bit-identical on a poisoned step; runs must be
bit-reproducible. The Optax tests assert Optax's behaviour as observed with optax 0.2.8 on CPU: should a later
Optax fix one, its test fails and the list of differences in docs/guides/numerics.md needs updating.
"""

import family
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import mixed_params

import adamlab
from adamlab import numerics, testing

BF16, F16, F32 = jnp.bfloat16, jnp.float16, jnp.float32
LR = 1e-3


def mixed_dtype_params():
    """One leaf per float dtype, plus an int counter and a bool flag that have no gradient."""
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    return {
        "f32": jax.random.normal(k[0], (4, 3), F32),
        "bf16": jax.random.normal(k[1], (5,), F32).astype(BF16),
        "f16": {"w": jax.random.normal(k[2], (2, 2), F32).astype(F16), "scalar": jnp.asarray(0.5, F16)},
        "steps": jnp.arange(3, dtype=jnp.int32),
        "flag": jnp.asarray(True),
    }


# The largest gradients the formulas are exact for: |g| below sqrt(finfo(float32).max) = 1.8e19, so that g**2
# fits float32 (beyond, see test_gradients_whose_square_overflows_keep_the_state_finite_with_saturate).
HUGE = 1e18


def grads_like(params, kind: str):
    """Gradients of one kind in each float leaf's own dtype: the extremes that dtype can hold, up to HUGE."""

    def leaf(p):
        if not jnp.issubdtype(p.dtype, jnp.floating):
            return p  # int / bool leaves carry no gradient; whatever stands there passes through
        fi = jnp.finfo(p.dtype)
        huge = min(float(fi.max), HUGE)
        value = {"zero": 0.0, "subnormal": fi.smallest_subnormal, "tiny": fi.tiny, "huge": huge}[kind]
        signs = jnp.where(jnp.arange(p.size).reshape(p.shape) % 2 == 0, 1, -1).astype(p.dtype)
        return (signs * jnp.asarray(value, p.dtype)).astype(p.dtype)

    return jax.tree.map(leaf, params)


OPTIMIZERS = {
    "sgd": lambda: adamlab.sgd(LR),
    "sgd_momentum": lambda: adamlab.sgd(LR, momentum=0.9),
    "sgd_nesterov": lambda: adamlab.sgd(LR, momentum=0.9, nesterov=True),
    "rmsprop": lambda: adamlab.rmsprop(LR),
    "rmsprop_eps_outside": lambda: adamlab.rmsprop(LR, eps_in_sqrt=False, momentum=0.9),
    "rmsprop_centered": lambda: adamlab.rmsprop(LR, centered=True),
    "adam": lambda: adamlab.adam(LR),
    "adam_eps0": lambda: adamlab.adam(LR, eps=0.0),
    "adam_l2": lambda: adamlab.adam(LR, weight_decay=0.1),
    "adamw": lambda: adamlab.adamw(LR, weight_decay=0.1),
    "adamw_bf16_state": lambda: adamlab.adamw(LR, weight_decay=0.1, state_dtype=BF16),
    "adamw_clip": lambda: adamlab.chain(adamlab.clip_by_global_norm(1.0), adamlab.adamw(LR)),
    "skip_adamw": lambda: numerics.skip_nonfinite(adamlab.adamw(LR)),
    "amsgrad": lambda: adamlab.amsgrad(LR),
    "amsgrad_raw_bf16_state": lambda: adamlab.amsgrad(LR, max_of="raw", state_dtype=BF16),
    "nadamw": lambda: adamlab.nadamw(LR, weight_decay=0.1),
    "nadam_torch": lambda: adamlab.nadam(LR, momentum_decay=4e-3, maximize=True),
    "sgd_dampening": lambda: adamlab.sgd(LR, momentum=0.9, dampening=0.5),
    "rmsprop_torch_order": lambda: adamlab.rmsprop(LR, momentum=0.9, eps_in_sqrt=False, lr_before_momentum=False),
    "ademamix": lambda: adamlab.ademamix(
        LR, b3=adamlab.schedules.ademamix_b3(0.9999, 10), alpha=adamlab.schedules.ademamix_alpha(5.0, 10)
    ),
    "lion": lambda: adamlab.lion(LR),
    "adam_atan2": lambda: adamlab.adam_atan2(LR),
    "cautious_adamw": lambda: adamlab.cautious(adamlab.adamw(LR, weight_decay=0.1)),
    "cautious_lion": lambda: adamlab.cautious(adamlab.lion(LR, weight_decay=0.0)),
    "stable_adamw": lambda: adamlab.stable_adamw(LR, weight_decay=0.1),
}


NO_DECAY = {
    "sgd",
    "sgd_momentum",
    "sgd_nesterov",
    "rmsprop",
    "rmsprop_eps_outside",
    "rmsprop_centered",
    "adam",
    "adam_eps0",
    "amsgrad",
    "amsgrad_raw_bf16_state",
    "ademamix",
    "cautious_lion",
}


def dtypes_and_shapes(tree):
    return jax.tree.map(lambda x: (jnp.asarray(x).dtype, jnp.shape(x)), tree)


def all_finite(tree) -> bool:
    return bool(numerics.all_finite(tree))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_finite_on_zero_tiny_and_huge_gradients(name):
    """3 steps of each gradient kind, jitted: updates and params finite, in their dtype; state layout fixed."""
    tx = OPTIMIZERS[name]()
    params = mixed_dtype_params()

    @jax.jit
    def run(params, grads):
        def step(carry, _):
            params, state, _ = carry
            updates, state = tx.update(grads, state, params)
            return (adamlab.apply_updates(params, updates), state, updates), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        (params, state, updates), _ = jax.lax.scan(step, (params, tx.init(params), zeros), length=3)
        return params, updates, state

    for kind in ("zero", "subnormal", "tiny", "huge"):
        final, updates, state = run(params, grads_like(params, kind))
        assert all_finite(updates) and all_finite(final), (kind, updates)
        assert all_finite(state), (kind, state)
        assert dtypes_and_shapes(final) == dtypes_and_shapes(params)
        assert dtypes_and_shapes(updates) == dtypes_and_shapes(params)
        assert dtypes_and_shapes(state) == dtypes_and_shapes(tx.init(params))
        testing.assert_bitwise_equal(final["steps"], params["steps"])
        testing.assert_bitwise_equal(final["flag"], params["flag"])
        if kind == "zero" and name in NO_DECAY:
            # no gradient and no weight decay: no step, exactly (0/0 would be NaN; eps = 0 included)
            testing.assert_bitwise_equal(final, params)


def test_adam_step_is_exact_for_gradients_up_to_sqrt_of_float32_max():
    """Step 1 of Adam is -lr * g / (|g| + eps) = -lr, for large gradients in every dtype (g**2 fits float32)."""
    params = {"f32": jnp.zeros(3, F32), "bf16": jnp.zeros(3, BF16), "f16": jnp.zeros(3, F16)}
    grads = {"f32": jnp.full(3, 1e18, F32), "bf16": jnp.full(3, -1e18, BF16), "f16": jnp.full(3, 65504, F16)}
    tx = adamlab.adam(LR)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    # 1e-5: Optax's float32 arithmetic (which adamlab shares) rounds (1 - b2) and 1 - b2**1 differently
    np.testing.assert_allclose(np.float32(updates["f32"]), -LR, rtol=1e-5)
    np.testing.assert_allclose(np.float32(updates["bf16"]), LR, rtol=2**-8)
    np.testing.assert_allclose(np.float32(updates["f16"]), -LR, rtol=2**-10)


def test_gradients_whose_square_overflows_keep_the_state_finite_with_saturate():
    """|g| = 1e20: g**2 overflows float32. By default v becomes Inf and that weight's step is 0 from then on,
    bit for bit as in Optax. With saturate=True v stops at the float32 maximum, the step is 0, and v then decays
    as usual, every value finite; a NaN is not hidden."""
    params = {"w": jnp.asarray([0.5, -0.5, 1.0], F32)}
    spike = {"w": jnp.asarray([1e20, -1e20, 1.0], F32)}
    one = {"w": jnp.ones(3, F32)}
    plain, theirs = adamlab.adam(LR), optax.adam(LR)
    u, s = jax.jit(plain.update)(spike, plain.init(params), params)
    u_theirs, s_theirs = jax.jit(theirs.update)(spike, theirs.init(params), params)
    testing.assert_bitwise_equal(u, u_theirs)
    testing.assert_bitwise_equal(s[2].second_moment, s_theirs[0].nu)
    u, s = jax.jit(plain.update)(one, s, params)
    assert np.isinf(np.asarray(s[2].second_moment["w"][0])) and float(u["w"][0]) == 0.0  # frozen: the default

    tx = adamlab.adam(LR, saturate=True)
    step = jax.jit(lambda g, s, p: tx.update(g, s, p))
    updates, state = step(spike, tx.init(params), params)
    v = np.asarray(state[2].second_moment["w"])
    assert list(v[:2]) == [np.finfo(np.float32).max] * 2 and v[2] == np.float32(1 - 0.999)
    assert list(np.asarray(updates["w"][:2])) == [0.0, 0.0] and all_finite(state)
    for _ in range(50):
        updates, state = step(one, state, params)
        assert all_finite(updates) and all_finite(state)
    v50 = np.asarray(state[2].second_moment["w"][0], np.float64)
    np.testing.assert_allclose(v50, np.finfo(np.float32).max * 0.999**50, rtol=1e-5)
    updates, state = step({"w": jnp.asarray([np.nan, 1.0, 1.0], F32)}, state, params)
    assert np.isnan(np.asarray(state[2].second_moment["w"][0])) and np.isnan(np.asarray(updates["w"][0]))
    for make in (lambda: adamlab.adamw(LR, saturate=True), lambda: adamlab.rmsprop(LR, saturate=True)):
        tx = make()
        _, state = jax.jit(tx.update)(spike, tx.init(params), params)
        assert all_finite(state)


def test_global_norm_and_clip_survive_an_overflowing_sum_of_squares():
    big = {"a": jnp.full((2,), 1e20, F32), "b": jnp.ones(3, F32)}
    np.testing.assert_allclose(float(adamlab.global_norm(big)), np.sqrt(2) * 1e20, rtol=1e-6)
    at_max = {"a": jnp.full((2,), jnp.finfo(F32).max, F32)}
    assert float(adamlab.global_norm(at_max)) == np.inf  # the true norm exceeds float32
    for g in (big, {"a": jnp.full((2,), 1e37, F32)}):  # exact below max_norm * 2**126 (see its docstring)
        clip = adamlab.clip_by_global_norm(1.0)
        out, _ = jax.jit(clip.update)(g, clip.init(g))
        np.testing.assert_allclose(float(adamlab.global_norm(out)), 1.0, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(out["a"]), np.full(2, 2**-0.5), rtol=1e-6)
    # Optax's clip divides by the overflowed norm: the clipped gradient is 0, and the step is silently lost
    theirs, _ = optax.clip_by_global_norm(1.0).update(big, ())
    assert float(jnp.max(jnp.abs(theirs["a"]))) == 0.0


@pytest.mark.parametrize("name", ["adamw", "adamw_bf16_state", "sgd_momentum", "rmsprop_centered", "skip_adamw"])
def test_state_layout_is_fixed_and_runs_are_bit_reproducible(name):
    """Same inputs, same bits, twice; jit and op-by-op agree within float32 rounding; state dtypes never change."""
    params = mixed_params()
    stream = testing.gradient_stream(params, 6, seed=4)
    tx = OPTIMIZERS[name]()
    layout = dtypes_and_shapes(tx.init(params))

    def run(jit):
        step = jax.jit(tx.update) if jit else tx.update
        p, s = params, tx.init(params)
        for i in range(6):
            u, s = step(jax.tree.map(lambda x, i=i: x[i], stream), s, p)
            p = adamlab.apply_updates(p, u)
            assert dtypes_and_shapes(s) == layout
        return p, s

    (p1, s1), (p2, s2), (p3, _) = run(True), run(True), run(False)
    testing.assert_bitwise_equal(p1, p2)
    testing.assert_bitwise_equal(s1, s2)
    assert max(e.max_rel for e in testing.compare_trees(p3, p1)) <= 1e-6
    testing.assert_bitwise_equal(run(False)[0], p3)


# ---------------------------------------------------------------- bfloat16 state and stochastic rounding


def test_stochastic_round_is_unbiased_and_picks_a_neighbour():
    x = jnp.full((65_536,), 1.0 + 2**-10, F32)  # a quarter of the way from 1 to the next bfloat16 (1 + 2**-7)
    r = numerics.stochastic_round(x, BF16, jax.random.key(0))
    assert r.dtype == BF16
    assert set(np.unique(np.float32(r)).tolist()) == {1.0, 1.0 + 2**-7}
    assert abs(float(jnp.mean(r.astype(F32))) - (1.0 + 2**-10)) < 6e-5  # 6 standard errors
    np.testing.assert_allclose(float(jnp.mean(r == BF16(1.0 + 2**-7))), 0.125, atol=0.008)
    exact = jnp.asarray([0.0, -0.0, 1.0, -2.5, 3.0e38, jnp.inf, -jnp.inf], F32)
    testing.assert_bitwise_equal(numerics.stochastic_round(exact, BF16, jax.random.key(1))[:5], exact[:5].astype(BF16))
    special = numerics.stochastic_round(
        jnp.asarray([jnp.finfo(F32).max, jnp.inf, jnp.nan], F32), BF16, jax.random.key(2)
    )
    assert float(special[0]) == float(jnp.finfo(BF16).max) and float(special[1]) == np.inf and np.isnan(special[2])
    h = numerics.stochastic_round(jnp.full((65_536,), 1.0 + 2**-12, F32), F16, 7)  # float16, and a seed not a key
    assert set(np.unique(np.float32(h)).tolist()) == {1.0, 1.0 + 2**-10}
    assert abs(float(jnp.mean(h.astype(F32))) - (1.0 + 2**-12)) < 2.5e-5
    testing.assert_bitwise_equal(numerics.stochastic_round(x, BF16, jax.random.key(0)), r)  # same key, same bits


SECOND_MOMENTS = {
    "scale_by_rms": adamlab.scale_by_rms,
    "scale_by_max_rms": adamlab.scale_by_max_rms,  # AMSGrad's v; its maximum of v_hat is then what v was
    "scale_by_atan2_rms": adamlab.scale_by_atan2_rms,
}


@pytest.mark.parametrize("name", list(SECOND_MOMENTS))
def test_bf16_second_moment_trap_and_the_stochastic_rounding_that_avoids_it(name):
    """v = 0.999 * v in bfloat16 rounds back to v: with nearest rounding v never decays; stochastically it does."""
    params = {"w": jnp.zeros((4096,), F32)}
    g1, g0 = {"w": jnp.ones((4096,), F32)}, {"w": jnp.zeros((4096,), F32)}
    results = {}
    for rounding in ("nearest", "stochastic"):
        tx = adamlab.chain(SECOND_MOMENTS[name](0.999, state_dtype=BF16, rounding=rounding))
        step = jax.jit(lambda g, s, tx=tx: tx.update(g, s, gradient=g))
        _, s = step(g1, tx.init(params))
        for _ in range(300):
            _, s = step(g0, s)
        assert s[0].second_moment["w"].dtype == BF16
        results[rounding] = float(jnp.mean(s[0].second_moment["w"].astype(F32)))
    expected = 0.001 * 0.999**300  # float32 storage keeps this to rounding
    assert results["nearest"] == pytest.approx(0.001, rel=2**-8)  # stuck at its first value
    assert results["stochastic"] == pytest.approx(expected, rel=0.02)


def test_state_dtype_validation():
    with pytest.raises(ValueError, match="state_dtype float16 cannot hold a second moment"):
        adamlab.adamw(state_dtype=F16)
    with pytest.raises(TypeError, match="state_dtype must be a float dtype"):
        adamlab.adam(state_dtype=jnp.int32)
    # the refusal names the argument given, not the stage's keyword it is passed on as
    with pytest.raises(ValueError, match="nu_dtype float16 cannot hold a second moment"):
        adamlab.adamw(nu_dtype=F16)
    with pytest.raises(ValueError, match="nu_dtype float16 cannot hold a second moment"):
        adamlab.schedule_free_adamw(nu_dtype=F16)
    with pytest.raises(TypeError, match="mu_dtype must be a float dtype"):
        adamlab.nadam(1e-3, mu_dtype=jnp.int32)
    with pytest.raises(TypeError, match="it stores z, an iterate"):
        adamlab.schedule_free_adamw(state_dtype=jnp.int8)
    with pytest.raises(ValueError, match="rounding must be 'stochastic' or 'nearest'"):
        adamlab.scale_by_rms(0.9, rounding="up")
    tx = adamlab.sgd(LR, momentum=0.9, state_dtype=F16)  # a float16 *first* moment is allowed; it saturates
    params = {"w": jnp.ones(2, F32)}
    u, s = tx.update({"w": jnp.full(2, 1e6, F32)}, tx.init(params), params)
    assert s[0].trace["w"].dtype == F16 and float(s[0].trace["w"][0]) == float(jnp.finfo(F16).max)


# ---------------------------------------------------------------- skip_nonfinite


def poisoned(grads, value):
    return jax.tree.map(lambda g: g.at[(0,) * g.ndim].set(value), grads)


def test_skip_nonfinite_leaves_everything_bit_for_bit():
    params = dict(mixed_params(), neg_zero=jnp.asarray([-0.0, 0.0, -0.0], F32))
    stream = testing.gradient_stream(params, 6, seed=5)
    grads = [jax.tree.map(lambda x, i=i: x[i], stream) for i in range(6)]
    tx, plain = numerics.skip_nonfinite(adamlab.adamw(LR, weight_decay=0.1)), adamlab.adamw(LR, weight_decay=0.1)
    step, plain_step = jax.jit(tx.update), jax.jit(plain.update)

    p, s = params, tx.init(params)
    q, r = params, plain.init(params)
    for i, g in enumerate(grads):
        if i in (1, 3, 4):  # one element of one leaf poisoned: nothing may move, bit for bit
            bad = {1: np.nan, 3: np.inf, 4: -np.inf}[i]
            bad_g = dict(g, blocks=[g["blocks"][0].at[1].set(bad), g["blocks"][1]])
            u, s_after = step(bad_g, s, p)
            p_after = adamlab.apply_updates(p, u)
            testing.assert_bitwise_equal(p_after, p)  # -0.0 params included: the skip step adds -0.0
            testing.assert_bitwise_equal(s_after.inner_state, s.inner_state)
            assert int(s_after.skipped) == int(s.skipped) + 1
            p, s = p_after, s_after
        u, s = step(g, s, p)
        p = adamlab.apply_updates(p, u)
        ru, r = plain_step(g, r, q)
        q = adamlab.apply_updates(q, ru)
    # the wrapped run equals the unwrapped run that never saw the poisoned steps
    testing.assert_bitwise_equal(p, q)
    testing.assert_bitwise_equal(s.inner_state, r)
    assert (int(s.skipped), int(s.consecutive)) == (3, 0)


# One element of one leaf poisoned per bad step; two in a row, and the first step bad (where -0.0 params still are).
BAD_STEPS = {0: ("w", np.nan), 4: ("scalar", np.inf), 5: ("b", -np.inf)}


@pytest.mark.parametrize("name", list(family.FAMILY))
def test_skip_nonfinite_leaves_every_family_member_bit_for_bit(name):
    """Each non-finite step leaves the params and the wrapped state as they were, bit for bit, and the run goes on
    exactly as the run that never saw those steps: the same compiled program on the stream without them."""
    tree = {
        "w": jax.random.normal(jax.random.PRNGKey(0), (4, 3)),  # a matrix, for muon
        "b": jnp.zeros(3, F32),
        "scalar": jnp.asarray(0.7, F32),
        "neg_zero": jnp.asarray([-0.0, 0.0, -0.0], F32),
    }
    good = testing.gradient_stream(tree, 12, seed=5)
    rows = [jax.tree.map(lambda x, i=i: x[i], good) for i in range(12)]
    poisoned, k = [], 0
    for i in range(len(rows) + len(BAD_STEPS)):
        if i in BAD_STEPS:  # a poisoned copy of the next gradient
            leaf, bad = BAD_STEPS[i]
            poisoned.append(dict(rows[k], **{leaf: rows[k][leaf].at[(0,) * rows[k][leaf].ndim].set(bad)}))
        else:
            poisoned.append(rows[k])
            k += 1
    clean = rows + rows[: len(BAD_STEPS)]  # as long, so the same program; its last steps are not compared
    tx = numerics.skip_nonfinite(family.build(name))
    run = lambda params, stream: family.trajectory(tx, params, stream)[1]  # noqa: E731

    start = family.initial_params(name, tree)
    stack = lambda trees: jax.tree.map(lambda *x: jnp.stack(x), *trees)
    ours, theirs = run(start, stack(poisoned)), run(start, stack(clean))
    at = lambda run, i: jax.tree.map(lambda x: x[i], run)
    bits = lambda t: [jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x for x in t]
    before = (start, tx.init(start))
    for i in range(len(poisoned)):
        p, s = at(ours, i)
        if i in BAD_STEPS:  # -0.0 params included: the skip step adds -0.0
            testing.assert_bitwise_equal(jax.tree.leaves(p), jax.tree.leaves(before[0]))
            testing.assert_bitwise_equal(
                bits(jax.tree.leaves(s.inner_state)), bits(jax.tree.leaves(before[1].inner_state))
            )
        else:  # the k-th finite step is the clean run's k-th step
            k = i - sum(j < i for j in BAD_STEPS)
            q, t = at(theirs, k)
            testing.assert_bitwise_equal(jax.tree.leaves(p), jax.tree.leaves(q))
            testing.assert_bitwise_equal(bits(jax.tree.leaves(s.inner_state)), bits(jax.tree.leaves(t.inner_state)))
        before = (p, s)
    assert (int(s.skipped), int(s.consecutive)) == (len(BAD_STEPS), 0)
    assert int(at(theirs, len(rows) - 1)[1].skipped) == 0
    assert not np.array_equal(jax.tree.leaves(p)[0], jax.tree.leaves(start)[0])  # the params moved


def test_skip_nonfinite_gives_up_loudly_after_max_consecutive():
    params = {"w": jnp.ones(3, F32), "b": jnp.zeros(2, F32)}
    good = {"w": jnp.ones(3, F32), "b": jnp.ones(2, F32)}
    bad = dict(good, b=jnp.asarray([1.0, np.nan], F32))
    tx = numerics.skip_nonfinite(adamlab.adam(LR), max_consecutive=2)
    for step in (tx.update, jax.jit(tx.update)):
        s = tx.init(params)
        for g in (bad, bad, good, bad, bad):  # a finite step resets the count
            _, s = step(g, s, params)
        assert (int(s.skipped), int(s.consecutive)) == (4, 2)
        expected = numerics.NonFiniteGradientError if step is tx.update else Exception
        with pytest.raises(expected, match=r"3 steps in a row had non-finite gradients.*\['b'\]"):
            jax.block_until_ready(step(bad, s, params))

    applying = numerics.skip_nonfinite(adamlab.adam(LR), max_consecutive=1, on_limit="apply")
    s = applying.init(params)
    updates = []
    for _ in range(3):
        u, s = jax.jit(applying.update)(bad, s, params)
        updates.append(bool(numerics.all_finite(u)))
    assert updates == [True, False, False] and int(s.skipped) == 1  # skipped once, then applied (NaN), as asked

    forever = numerics.skip_nonfinite(adamlab.adam(LR), max_consecutive=None)
    s = forever.init(params)
    for _ in range(5):
        _, s = forever.update(bad, s, params)
    assert int(s.skipped) == 5


def test_skip_nonfinite_inside_a_chain_and_its_argument_checks():
    params = mixed_params()
    stream = testing.gradient_stream(params, 10, seed=6)
    ours = adamlab.chain(adamlab.clip_by_global_norm(0.5), numerics.skip_nonfinite(adamlab.adam(LR)))
    theirs = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(LR))
    # Not bitwise: compiled in one program with its caller, the wrapper's selects change how XLA fuses the
    # step (an FMA more or less), an ulp here and there; step by step it is bitwise the unwrapped optimizer.
    assert testing.compare(ours, theirs, params, grads=stream).max_rel <= 1e-6
    with pytest.raises(ValueError, match="max_consecutive must be an int >= 0 or None"):
        numerics.skip_nonfinite(adamlab.adam(), max_consecutive=-1)
    with pytest.raises(ValueError, match="on_limit must be 'raise' or 'apply'"):
        numerics.skip_nonfinite(adamlab.adam(), on_limit="ignore")
    with pytest.raises(TypeError, match="not a GradientTransformation"):
        numerics.skip_nonfinite(3)


def test_optax_apply_if_finite_turns_negative_zero_params_positive():
    """Optax skips with +0.0 updates, and -0.0 + 0.0 == +0.0: its 'unchanged' params change sign bits."""
    params = {"w": jnp.asarray([-0.0, 1.0], F32)}
    bad = {"w": jnp.asarray([np.nan, 1.0], F32)}
    theirs = optax.apply_if_finite(optax.adam(LR), 3)
    u, _ = theirs.update(bad, theirs.init(params), params)
    assert np.signbit(np.asarray(optax.apply_updates(params, u)["w"][0])) == np.False_
    ours = numerics.skip_nonfinite(adamlab.adam(LR))
    u, _ = ours.update(bad, ours.init(params), params)
    testing.assert_bitwise_equal(adamlab.apply_updates(params, u), params)


# ---------------------------------------------------------------- differences from Optax 0.2.8


def test_float16_zero_gradient():
    """Optax: eps = 1e-8 underflows to 0 in float16 and Adam's update is 0/0 = NaN. adamlab: 0."""
    params = {"w": jnp.ones(3, F16)}
    zero = {"w": jnp.zeros(3, F16)}
    u, _ = optax.adam(LR).update(zero, optax.adam(LR).init(params), params)
    assert bool(jnp.all(jnp.isnan(u["w"]))), "Optax no longer returns NaN here: update docs/guides/numerics.md"
    u, _ = adamlab.adam(LR).update(zero, adamlab.adam(LR).init(params), params)
    assert u["w"].dtype == F16 and float(jnp.max(jnp.abs(u["w"]))) == 0.0


def test_bfloat16_second_moment_decays():
    """Optax keeps bfloat16 params' moments in bfloat16, where 0.999 * v == v: v never decays. adamlab: float32."""
    params = {"w": jnp.ones(3, BF16)}
    one, zero = {"w": jnp.ones(3, BF16)}, {"w": jnp.zeros(3, BF16)}
    runs = {
        "optax": (optax.adam(LR), lambda s: s[0].nu["w"]),
        "adamlab": (adamlab.adam(LR), lambda s: s[2].second_moment["w"]),
    }
    ratios = {}
    for name, (tx, nu) in runs.items():
        _, s = tx.update(one, tx.init(params), params)
        first = np.float32(nu(s))
        for _ in range(20):
            _, s = tx.update(zero, s, params)
        ratios[name] = (nu(s).dtype, np.float32(nu(s)) / first)
    assert ratios["optax"][0] == BF16 and np.all(ratios["optax"][1] == 1.0), "Optax's bf16 v decays now"
    assert ratios["adamlab"][0] == F32
    np.testing.assert_allclose(ratios["adamlab"][1], 0.999**20, rtol=1e-6)


def test_update_dtype_follows_the_gradient():
    """Optax's mu_dtype=float32 with bfloat16 gradients returns float32 updates; adamlab returns bfloat16."""
    params = {"w": jnp.ones(3, BF16)}
    g = {"w": jnp.ones(3, BF16)}
    theirs = optax.adam(LR, mu_dtype=F32)
    assert theirs.update(g, theirs.init(params), params)[0]["w"].dtype == F32, "Optax's dtype leak is fixed"
    for state_dtype in (None, F32, BF16):
        ours = adamlab.adam(LR, state_dtype=state_dtype)
        assert ours.update(g, ours.init(params), params)[0]["w"].dtype == BF16


def test_injected_hyperparameters_in_bfloat16():
    """optax.inject_hyperparams stores hyperparameters in the params' dtype: b2 = 0.999 becomes 1.0 in bfloat16
    and Optax's Adam returns NaN. adamlab refuses a bfloat16 decay rate, naming it and the fix."""
    params = {"w": jnp.ones(3, BF16)}
    g = {"w": jnp.ones(3, BF16)}
    theirs = optax.inject_hyperparams(optax.adam)(learning_rate=LR, b2=0.999)
    state = theirs.init(params)
    assert state.hyperparams["b2"].dtype == BF16 and float(state.hyperparams["b2"]) == 1.0
    assert bool(jnp.all(jnp.isnan(theirs.update(g, state, params)[0]["w"]))), "Optax's bf16 b2 works now"
    ours = optax.inject_hyperparams(adamlab.adam)(learning_rate=LR, b2=0.999)
    with pytest.raises(TypeError, match=r"b1 is a bfloat16 array.*hyperparam_dtype=jnp.float32"):
        ours.update(g, ours.init(params), params)
    ours = optax.inject_hyperparams(adamlab.adam, hyperparam_dtype=F32)(learning_rate=LR, b2=0.999)
    u, _ = ours.update(g, ours.init(params), params)
    assert u["w"].dtype == BF16 and float(u["w"][0]) == pytest.approx(-LR, rel=2**-8)
