"""The Adam family beyond Adam and AdamW (`adamlab.variants`): against Optax, against the float64 reference, and
the properties each variant's docstring promises.

Where Optax has the optimizer and adamlab's arithmetic is Optax's step for step, the jitted 300-step runs must
be bit-identical; every variant must match its float64 NumPy reference (tests/reference.py) within `REF_RTOL`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference
from conftest import STEPS, as_dict, mixed_params

import adamlab
from adamlab import testing

# As in test_parity: float32 storage and Optax's float32 ``1 - b2**t`` stay within 1e-5 of float64 over 300 steps.
REF_RTOL = 1e-5
LION_SCHEDULE = adamlab.schedules.warmup_cosine_decay(0.0, 1e-4, 30, STEPS)
B3 = adamlab.schedules.ademamix_b3(0.9999, 100)
ALPHA = adamlab.schedules.ademamix_alpha(5.0, 100)


def no_decay_on_biases(params):
    return jax.tree_util.tree_map_with_path(lambda path, p: "b" not in jax.tree_util.keystr(path), params)


def ref_mask():
    return as_dict(no_decay_on_biases(mixed_params()))


def max_rel(actual, expected):
    return max(e.max_rel for e in testing.compare_trees(as_dict(actual), expected))


def stage_names(tx):
    return [adamlab.stage_info(s).name for s in adamlab.stage_info(tx).stages]


@pytest.fixture(scope="module")
def stream():
    return testing.gradient_stream(mixed_params(), STEPS, seed=1)


# ----------------------------------------------------------------------------------------------- Optax parity


def optax_cases():
    mask = no_decay_on_biases(mixed_params())
    return {
        "amsgrad": (adamlab.amsgrad(1e-3), optax.amsgrad(1e-3)),
        "amsgrad_no_bias_correction": (
            adamlab.amsgrad(1e-3, bias_correction_mu=False, bias_correction_nu=False),
            optax.amsgrad(1e-3, bias_correction_mu=False, bias_correction_nu=False),
        ),
        "nadam": (adamlab.nadam(1e-3), optax.nadam(1e-3)),
        "nadamw": (adamlab.nadamw(1e-3, weight_decay=0.1), optax.nadamw(1e-3, weight_decay=0.1)),
        "ademamix_wd_mask": (
            adamlab.ademamix(1e-3, weight_decay=0.1, mask=mask),
            optax.contrib.ademamix(1e-3, weight_decay=0.1, mask=mask),
        ),
        "ademamix_schedules": (
            adamlab.ademamix(1e-3, b3=B3, alpha=ALPHA),
            optax.contrib.ademamix(1e-3, b3=B3, alpha=ALPHA),
        ),
        "lion": (adamlab.lion(1e-4), optax.lion(1e-4)),
        "lion_schedule": (adamlab.lion(LION_SCHEDULE), optax.lion(LION_SCHEDULE)),
    }


@pytest.mark.parametrize("name", sorted(optax_cases()))
def test_matches_optax_bitwise_under_jit(name, stream):
    ours, theirs = optax_cases()[name]
    report = testing.compare(ours, theirs, mixed_params(), grads=stream, rtol=0.0, jit=True)
    assert report.max_rel == 0.0, str(report)
    assert report.first_divergence is None, str(report)


# ------------------------------------------------------------------------------------------ float64 reference


def reference_cases():
    return {
        "amsgrad_optax": (adamlab.amsgrad(1e-3), lambda p, g: reference.amsgrad(p, g, 1e-3, convention="optax")),
        "amsgrad_raw_pytorch": (
            adamlab.amsgrad(1e-3, max_of="raw"),
            lambda p, g: reference.amsgrad(p, g, 1e-3, convention="pytorch"),
        ),
        "amsgrad_paper": (
            adamlab.amsgrad(1e-3, bias_correction_mu=False, bias_correction_nu=False),
            lambda p, g: reference.amsgrad(p, g, 1e-3, convention="paper"),
        ),
        "ademamix_wd_mask": (
            adamlab.ademamix(1e-3, weight_decay=0.1, mask=no_decay_on_biases),
            lambda p, g: reference.ademamix(p, g, 1e-3, wd=0.1, mask=ref_mask()),
        ),
        "ademamix_schedules": (
            adamlab.ademamix(1e-3, b3=B3, alpha=ALPHA),
            lambda p, g: reference.ademamix(p, g, 1e-3, b3=B3, alpha=ALPHA),
        ),
        # Lion's steps all have one size: float32 rounds ``p - lr * (1 + wd * p)`` the same way step after step,
        # a storage bias that reaches 1e-5 relative over 300 steps with lion(1e-4)'s defaults and is no formula
        # error. Without decay a step of 2**-13 is exact in float32, so only the formula is tested; the
        # scheduled case below (steps of varying size) tests the decay.
        "lion": (adamlab.lion(2.0**-13, weight_decay=0.0), lambda p, g: reference.lion(p, g, 2.0**-13)),
        "lion_schedule_wd": (
            adamlab.lion(LION_SCHEDULE, weight_decay=0.1),
            lambda p, g: reference.lion(p, g, LION_SCHEDULE, wd=0.1),
        ),
        "adam_atan2": (adamlab.adam_atan2(1e-3), lambda p, g: reference.adam_atan2(p, g, 1e-3, wd=1e-4)),
        "adam_atan2_ab_wd": (
            adamlab.adam_atan2(1e-3, a=2.0, b=0.5, weight_decay=0.1),
            lambda p, g: reference.adam_atan2(p, g, 1e-3, a=2.0, b=0.5, wd=0.1),
        ),
        "cautious_adamw": (
            adamlab.cautious(adamlab.adamw(1e-3, weight_decay=0.1)),
            lambda p, g: reference.cautious_adamw(p, g, 1e-3, wd=0.1),
        ),
        "stable_adamw": (
            adamlab.stable_adamw(1e-3, weight_decay=0.1),
            lambda p, g: reference.stable_adamw(p, g, 1e-3, wd=0.1),
        ),
        "stable_adamw_spikes": (
            adamlab.stable_adamw(1e-3, weight_decay=0.1),
            lambda p, g: reference.stable_adamw(p, g, 1e-3, wd=0.1),
        ),
    }


def spiky(stream):
    """Every 25th gradient 30x larger: the steps where StableAdamW's clip acts (RMS_t > 1)."""
    return jax.tree.map(lambda x: x.at[::25].multiply(30.0), stream)


@pytest.mark.parametrize("name", sorted(reference_cases()))
def test_matches_float64_reference(name, stream):
    ours, ref = reference_cases()[name]
    params = mixed_params()
    stream = spiky(stream) if name.endswith("_spikes") else stream
    final = testing.run(ours, params, stream)
    expected = ref(as_dict(params), as_dict(stream))
    assert max_rel(final, expected) <= REF_RTOL, testing.compare_trees(as_dict(final), expected)


def test_references_tell_the_variants_apart(stream):
    """The reference tolerance sees a wrong variant: each optimizer is far from its neighbours' references."""
    params, g = as_dict(mixed_params()), as_dict(stream)
    final = testing.run(adamlab.amsgrad(1e-3), mixed_params(), stream)
    assert max_rel(final, reference.adam(params, g, 1e-3)) > REF_RTOL  # the maximum matters on this stream
    assert max_rel(final, reference.amsgrad(params, g, 1e-3, convention="paper")) > REF_RTOL
    final = testing.run(adamlab.cautious(adamlab.adamw(1e-3, weight_decay=0.1)), mixed_params(), stream)
    assert max_rel(final, reference.adam(params, g, 1e-3, decoupled_wd=0.1)) > REF_RTOL
    final = testing.run(adamlab.ademamix(1e-3, b3=B3, alpha=ALPHA), mixed_params(), stream)
    assert max_rel(final, reference.ademamix(params, g, 1e-3)) > REF_RTOL  # constant b3, alpha
    final = testing.run(adamlab.lion(2.0**-13, b1=0.99, b2=0.9, weight_decay=0.0), mixed_params(), stream)
    assert max_rel(final, reference.lion(params, g, 2.0**-13)) > REF_RTOL  # b1 and b2 swapped


# ------------------------------------------------------------------------------------ AMSGrad's two conventions


def spike_then_small(steps=STEPS, seed=2):
    """Small gradients after one large first gradient: the maximum of the bias-corrected ``v`` is the first
    ``g**2`` for good, while the maximum of the raw ``v`` is ``(1 - b2) * g**2``, corrected by the growing
    ``1 - b2**t``."""
    g = testing.gradient_stream(mixed_params(), steps, seed=seed, scale=0.01)
    return jax.tree.map(lambda x: x.at[0].multiply(1e4), g)


def test_amsgrad_conventions_differ_and_each_matches_its_reference():
    params, g = mixed_params(), spike_then_small()
    optax_final = testing.run(adamlab.amsgrad(1e-2), params, g)
    torch_final = testing.run(adamlab.amsgrad(1e-2, max_of="raw"), params, g)
    assert max_rel(torch_final, as_dict(optax_final)) > 1e-3
    expected_optax = reference.amsgrad(as_dict(params), as_dict(g), 1e-2, convention="optax")
    expected_torch = reference.amsgrad(as_dict(params), as_dict(g), 1e-2, convention="pytorch")
    assert max_rel(optax_final, expected_optax) <= REF_RTOL
    assert max_rel(torch_final, expected_torch) <= REF_RTOL
    assert max_rel(optax_final, expected_torch) > 1e-3
    assert max_rel(torch_final, expected_optax) > 1e-3
    # Optax's convention is also what optax.amsgrad does on this stream
    assert testing.compare(adamlab.amsgrad(1e-2), optax.amsgrad(1e-2), params, grads=g).max_rel == 0.0


def test_amsgrad_rejects_unknown_max_of():
    with pytest.raises(ValueError, match="max_of"):
        adamlab.amsgrad(1e-3, max_of="corrected")


# ------------------------------------------------------------------------------------------------- cautious


def test_cautious_stage_order():
    for tx in (adamlab.adamw(1e-3, weight_decay=0.1), adamlab.lion(1e-4)):
        plain = stage_names(tx)
        at = plain.index("add_decoupled_weight_decay")
        assert stage_names(adamlab.cautious(tx)) == [*plain[:at], "cautious_mask", *plain[at:]]
    adamw_c = stage_names(adamlab.cautious(adamlab.adamw(1e-3, weight_decay=0.1)))
    assert adamw_c.index("scale_by_rms") < adamw_c.index("cautious_mask") < adamw_c.index("add_decoupled_weight_decay")
    lion_c = stage_names(adamlab.cautious(adamlab.lion(1e-4)))
    assert lion_c.index("scale_by_sign") < lion_c.index("cautious_mask") < lion_c.index("add_decoupled_weight_decay")


@pytest.mark.parametrize(
    "tx",
    [lambda: adamlab.rmsprop(1e-3, momentum=0.9), lambda: adamlab.scale(1.0)],
    ids=["rmsprop_momentum", "no_moment"],
)
def test_cautious_rejects(tx):
    with pytest.raises(ValueError, match="cautious"):
        adamlab.cautious(tx())


def test_cautious_is_n_over_n_plus_1_when_all_signs_agree():
    """Gradients of a fixed sign per coordinate: the Adam direction agrees everywhere, every mask is all ones,
    and the cautious update is Adam's times ``n / (n + 1)`` exactly, leaf by leaf and step by step."""
    params = mixed_params()
    signs = jax.tree.map(lambda p: np.where(np.arange(p.size).reshape(p.shape) % 3 == 0, -1.0, 1.0), params)
    rng = np.random.default_rng(3)
    g = jax.tree.map(lambda s: (np.abs(rng.standard_normal((8, *s.shape))) * s).astype(np.float32), signs)
    plain, careful = adamlab.adamw(1.0, weight_decay=0.0), adamlab.cautious(adamlab.adamw(1.0, weight_decay=0.0))
    s_plain, s_careful = plain.init(params), careful.init(params)
    step_plain, step_careful = jax.jit(plain.update), jax.jit(careful.update)
    for i in range(8):
        gi = jax.tree.map(lambda x, i=i: x[i], g)
        u_plain, s_plain = step_plain(gi, s_plain, params)
        u_careful, s_careful = step_careful(gi, s_careful, params)
        for a, c, sign in zip(jax.tree.leaves(u_plain), jax.tree.leaves(u_careful), jax.tree.leaves(signs)):
            a, c = np.asarray(a), np.asarray(c)
            np.testing.assert_array_equal(np.sign(a), -np.asarray(sign))  # every sign agrees: the mask is all ones
            factor = np.float32(a.size) / np.float32(a.size + 1)
            np.testing.assert_array_equal(c, a * factor)


def test_cautious_zeroes_disagreeing_coordinates():
    """One step along +g, then a step along -g/10: the momentum still points the old way everywhere, so every
    coordinate of the cautious direction is dropped and only the (unmasked) decay moves the params."""
    params = {"w": jnp.ones((4, 3), jnp.float32)}
    g = jax.random.normal(jax.random.PRNGKey(4), (4, 3))
    tx = adamlab.cautious(adamlab.adamw(1e-2, weight_decay=0.5))
    state = tx.init(params)
    _, state = tx.update({"w": g}, state, params)
    u, _ = tx.update({"w": -0.1 * g}, state, params)
    np.testing.assert_allclose(np.asarray(u["w"]), -1e-2 * 0.5 * np.ones((4, 3)), rtol=1e-6)


# ------------------------------------------------------------------------------------------------- adam_atan2


def hostile_stream(params, steps=60, seed=5):
    """Normal gradients scaled per element and step by 10**k, k uniform in [-30, 15]: float32 ``g**2`` of the
    tiny ones underflows to 0 (so ``v`` can be 0 where ``m`` is not), and the huge ones come as sudden spikes."""
    rng = np.random.default_rng(seed)

    def leaf(p):
        shape = (steps, *np.shape(p))
        return (rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 16, shape)).astype(np.float32)

    return jax.tree.map(leaf, params)


def max_abs_updates(tx, params, grads):
    """The largest ``|update|`` over all coordinates at every step (NaN if any update is not finite)."""

    def step(state, g):
        u, state = tx.update(g, state, params)
        leaves = jax.tree.leaves(u)
        worst = jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in leaves]))
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
        return state, jnp.where(finite, worst, jnp.nan)

    return np.asarray(jax.jit(lambda s, gs: jax.lax.scan(step, s, gs)[1])(tx.init(params), grads), np.float64)


def quiet_then_spike(params, quiet=1000, after=20, seed=6):
    """Gradients of size 1e-20 (float32 squares them to 0) for `quiet` steps, one of size 1e15, then tiny again:
    late in a run Adam's bias corrections no longer hold ``m_hat / sqrt(v_hat)`` near 1 and the spike's step is
    ``(1 - b1) / sqrt(1 - b2)``-ish times the learning rate."""
    g = testing.gradient_stream(params, quiet + 1 + after, seed=seed, scale=1e-20)
    return jax.tree.map(lambda x: x.at[quiet].multiply(1e35), g)


def test_adam_atan2_update_is_bounded():
    params = mixed_params()
    lr, a = 1e-3, 1.27
    bound = lr * a * np.pi / 2
    tx = adamlab.adam_atan2(lr, a=a, weight_decay=0.0)
    for g in (hostile_stream(params), quiet_then_spike(params)):
        worst = max_abs_updates(tx, params, g)
        assert np.all(worst <= bound * (1 + 1e-6)), (np.nanmax(worst), bound)  # NaN fails too
        assert worst.max() >= 0.99 * bound  # v underflows to 0 where m does not: the bound is reached
    # on the second stream Adam's m_hat / (sqrt(v_hat) + eps) goes past the bound at the spike
    assert max_abs_updates(adamlab.adam(lr), params, quiet_then_spike(params)).max() > 1.2 * bound


def test_adam_atan2_zero_gradient_gives_zero_update():
    params = mixed_params()
    zeros = jax.tree.map(jnp.zeros_like, params)
    tx = adamlab.adam_atan2(1e-3, weight_decay=0.0)
    state = tx.init(params)
    for _ in range(3):
        u, state = tx.update(zeros, state, params)
        for x in jax.tree.leaves(u):
            assert not np.any(np.isnan(np.asarray(x)))
            np.testing.assert_array_equal(np.asarray(x), 0.0)
    # a leaf whose gradient is zero while the others' are not moves by exactly 0 as well
    g = jax.tree.map(jnp.ones_like, params)
    g["dense"]["b"] = jnp.zeros_like(params["dense"]["b"])
    u, _ = tx.update(g, tx.init(params), params)
    np.testing.assert_array_equal(np.asarray(u["dense"]["b"]), 0.0)
    assert np.all(np.asarray(u["dense"]["w"]) < 0)


# -------------------------------------------------------------------------------------- AdEMAMix's schedulers


def test_ademamix_b3_scheduler():
    np.testing.assert_allclose(float(B3(0)), 0.9, rtol=1e-6)
    np.testing.assert_allclose(float(B3(100)), 0.9999, rtol=1e-6)
    np.testing.assert_allclose(float(B3(1000)), 0.9999, rtol=1e-6)
    h0, h1 = adamlab.half_life(0.9), adamlab.half_life(0.9999)
    for step in (25, 50, 75):
        expected = h0 + step / 100 * (h1 - h0)
        # float32 b near 1 carries ~1e-4 relative error on the half-life here; a linear ramp of b itself
        # (0.925 at step 25) would give a half-life of 9 steps, not 1,700
        np.testing.assert_allclose(adamlab.half_life(float(B3(step))), expected, rtol=1e-3)


def test_ademamix_alpha_scheduler():
    assert float(ALPHA(0)) == 0.0
    np.testing.assert_allclose(float(ALPHA(50)), 2.5, rtol=1e-6)
    for step in (100, 101, 1000):
        assert float(ALPHA(step)) == 5.0


def test_ademamix_alpha_without_warmup_is_alpha():
    """No warmup: `alpha` from the first step, as `ademamix_b3(b3, 0)` is `b3` from the first step (once
    `alpha_start` at every step); a negative warmup is refused."""
    assert float(adamlab.schedules.ademamix_b3(0.9999, 0)(0)) == pytest.approx(0.9999, rel=1e-6)
    assert float(adamlab.schedules.ademamix_alpha(5.0, 0)(0)) == 5.0
    with pytest.raises(ValueError, match="warmup_steps"):
        adamlab.schedules.ademamix_alpha(5.0, -1)


def test_cautious_mask_refuses_eps_zero():
    """eps = 0 would turn a tensor whose signs all disagree into 0 * inf = NaN."""
    with pytest.raises(ValueError, match="eps must be > 0"):
        adamlab.cautious_mask(0.0)


# ----------------------------------------------------------------------------------------------------- StableAdamW


def test_stable_adamw_is_adamw_until_a_gradient_outgrows_v(stream):
    """While every RMS_t <= 1 (gradients shrinking, so v_hat > g**2) StableAdamW is AdamW bit for bit; on spikes
    it clips, and both its step and its decay shrink by the same per-tensor factor."""
    params = mixed_params()
    # The first gradient, shrinking by 0.98 a step: each g_t**2 is below every earlier one, so below v_hat.
    shrinking = jax.tree.map(
        lambda x: x[:1] * (0.98 ** jnp.arange(x.shape[0], dtype=jnp.float32)).reshape(-1, *[1] * (x.ndim - 1)), stream
    )
    same = testing.compare(
        adamlab.stable_adamw(1e-3, weight_decay=0.1),
        adamlab.adamw(1e-3, 0.9, 0.99, 1e-6, weight_decay=0.1),
        params,
        grads=shrinking,
        jit=True,
    )
    assert same.max_rel == 0.0, str(same)
    differs = testing.compare(
        adamlab.stable_adamw(1e-3, weight_decay=0.1),
        adamlab.adamw(1e-3, 0.9, 0.99, 1e-6, weight_decay=0.1),
        params,
        grads=spiky(stream),
        jit=True,
    )
    assert differs.max_rel > 1e-3
    # One spike after quiet steps: the update, decay included, is AdamW's divided by that tensor's RMS_t.
    p = {"w": jnp.linspace(-1.0, 1.0, 8)}
    quiet = [{"w": jnp.full(8, 0.01)}] * 20 + [{"w": jnp.full(8, 1.0)}]
    stable, plain = adamlab.stable_adamw(1e-3, weight_decay=0.5), adamlab.adamw(1e-3, 0.9, 0.99, 1e-6, weight_decay=0.5)
    s1, s2 = stable.init(p), plain.init(p)
    for g in quiet:
        u1, s1 = stable.update(g, s1, p)
        u2, s2 = plain.update(g, s2, p)
    v_hat = s2[2].second_moment["w"] / (1 - 0.99**21)
    rms = float(jnp.sqrt(jnp.mean(1.0 / jnp.maximum(v_hat, 1e-12))))
    assert rms > 1
    np.testing.assert_allclose(u1["w"], u2["w"] / rms, rtol=1e-5)


def test_clip_by_rms_ratio_needs_a_second_moment():
    with pytest.raises(ValueError, match="no scale_by_rms stage"):
        adamlab.clip_by_rms_ratio(adamlab.scale_by_ema(0.9), 0.99)
