"""Recombining the primitives: variants built in a few lines, checked against the float64 reference or Optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import reference
from conftest import as_dict, mixed_params

import adamlab
from adamlab import testing


def test_adam_rebuilt_from_primitives_is_adam():
    rebuilt = adamlab.chain(
        adamlab.scale_by_ema(0.9),
        adamlab.bias_correct(0.9),
        adamlab.scale_by_rms(0.999, 1e-8, bias_correction=True),
        adamlab.scale_by_learning_rate(1e-3),
    )
    report = testing.compare(rebuilt, adamlab.adam(1e-3), mixed_params(), steps=100)
    assert report.max_rel == 0.0


def test_adamw_rebuilt_from_primitives_is_adamw():
    rebuilt = adamlab.chain(
        adamlab.adam(1.0),  # learning rate 1 and the sign flip: undo it with scale(-1)
        adamlab.scale(-1.0),
        adamlab.add_decoupled_weight_decay(0.1),
        adamlab.scale_by_learning_rate(1e-3),
    )
    report = testing.compare(rebuilt, optax.adamw(1e-3, weight_decay=0.1), mixed_params(), steps=100)
    assert report.max_rel <= 1e-6, str(report)


def test_adam_without_bias_correction_matches_reference():
    tx = adamlab.chain(
        adamlab.scale_by_ema(0.9), adamlab.scale_by_rms(0.999, 1e-8), adamlab.scale_by_learning_rate(1e-3)
    )
    params = mixed_params()
    stream = testing.gradient_stream(params, 200, seed=3)
    final = testing.run(tx, params, stream)
    expected = reference.adam(as_dict(params), as_dict(stream), 1e-3, bias_correction=False)
    assert max(e.max_rel for e in testing.compare_trees(as_dict(final), expected)) <= 1e-5


def test_rmsprop_with_ema_momentum():
    """EMA of the RMS-scaled step: d_t = b*d_{t-1} + (1-b) * g_t / (sqrt(v_t) + eps)."""
    tx = adamlab.chain(
        adamlab.scale_by_rms(0.99, 1e-8), adamlab.scale_by_ema(0.9), adamlab.scale_by_learning_rate(1e-2)
    )
    params = {"w": jnp.zeros(4)}
    stream = testing.gradient_stream(params, 50, seed=4)
    final = testing.run(tx, params, stream)
    g = np.asarray(stream["w"], np.float64)
    v = np.zeros(4)
    d = np.zeros(4)
    p = np.zeros(4)
    for t in range(50):
        v = 0.99 * v + 0.01 * g[t] ** 2
        d = 0.9 * d + 0.1 * g[t] / (np.sqrt(v) + 1e-8)
        p = p - 1e-2 * d
    np.testing.assert_allclose(final["w"], p, rtol=1e-5, atol=1e-7)


def test_second_moment_reads_the_gradient_not_the_first_moment():
    """After one step from zero, m = (1-b1) g but v must be (1-b2) g**2, not (1-b2) m**2."""
    params = {"w": jnp.array([2.0, -3.0])}
    tx = adamlab.adam(1e-3)
    _, state = tx.update(params, tx.init(params), params)
    rms = next(s for s in state if isinstance(s, adamlab.RmsState))
    np.testing.assert_allclose(rms.second_moment["w"], 0.001 * np.array([4.0, 9.0]), rtol=1e-6)


def test_coupled_decay_enters_both_moments():
    params = {"w": jnp.array([1.0])}
    grads = {"w": jnp.array([0.5])}
    tx = adamlab.adam(1e-3, weight_decay=0.5)
    _, state = tx.update(grads, tx.init(params), params)
    ema = next(s for s in state if isinstance(s, adamlab.EmaState))
    rms = next(s for s in state if isinstance(s, adamlab.RmsState))
    np.testing.assert_allclose(ema.moment["w"], [0.1 * 1.0], rtol=1e-6)  # g + wd*p = 1.0
    np.testing.assert_allclose(rms.second_moment["w"], [0.001 * 1.0], rtol=1e-6)


def test_decoupled_decay_is_the_same_for_every_weight():
    """AdamW with zero gradients: only the decay acts, p <- p * (1 - lr*wd) for every weight alike."""
    params = {"w": jnp.array([1.0, 100.0, -5.0])}
    tx = adamlab.adamw(0.1, weight_decay=0.2)
    u, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    np.testing.assert_allclose(adamlab.apply_updates(params, u)["w"], params["w"] * (1 - 0.1 * 0.2), rtol=1e-6)


def test_masked_leaves_are_not_decayed():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    zeros = jax.tree.map(jnp.zeros_like, params)
    tx = adamlab.adamw(0.1, weight_decay=0.5, mask=adamlab.weight_decay_mask)
    u, _ = tx.update(zeros, tx.init(params), params)
    assert float(jnp.max(jnp.abs(u["b"]))) == 0.0
    np.testing.assert_allclose(u["w"], -0.05 * np.ones((2, 2)), rtol=1e-6)


def test_elementwise_bool_array_mask():
    params = {"w": jnp.ones(4)}
    mask = {"w": jnp.array([True, False, True, False])}
    tx = adamlab.add_decoupled_weight_decay(0.5, mask=mask)
    u, _ = tx.update({"w": jnp.zeros(4)}, tx.init(params), params)
    np.testing.assert_array_equal(u["w"], [0.5, 0.0, 0.5, 0.0])


def test_weight_decay_mask_llm_rule():
    params = {
        "embed": jnp.ones((10, 4)),
        "block": {"attn": {"kernel": jnp.ones((4, 4)), "bias": jnp.ones(4)}, "ln_1": {"scale": jnp.ones(4)}},
        "final_norm": {"weight": jnp.ones((4, 4))},
        "mlp": {"w": jnp.ones((4, 8)), "b": jnp.ones(8)},
        "scalar": jnp.ones(()),
    }
    mask = adamlab.weight_decay_mask(params)
    assert mask == {
        "embed": True,
        "block": {"attn": {"kernel": True, "bias": False}, "ln_1": {"scale": False}},
        "final_norm": {"weight": False},
        "mlp": {"w": True, "b": False},
        "scalar": False,
    }


def test_updates_keep_the_param_dtype_and_moments_are_float32():
    params = {"h": jnp.ones(3, jnp.bfloat16), "f": jnp.ones(3, jnp.float16), "s": jnp.ones(3)}
    for tx in (adamlab.adam(1e-3), adamlab.adamw(1e-3), adamlab.rmsprop(1e-3, momentum=0.9), adamlab.sgd(0.1, 0.9)):
        state = tx.init(params)
        u, state2 = jax.jit(tx.update)(params, state, params)
        assert jax.tree.map(lambda x: x.dtype, u) == jax.tree.map(lambda x: x.dtype, params)
        for leaf in jax.tree.leaves(state):
            if leaf.ndim:
                assert leaf.dtype == jnp.float32
        assert jax.tree.map(lambda x: (x.dtype, x.shape), state) == jax.tree.map(lambda x: (x.dtype, x.shape), state2)
        assert jax.tree.map(lambda x: x.dtype, adamlab.apply_updates(params, u)) == jax.tree.map(
            lambda x: x.dtype, params
        )


def test_state_dtype_option():
    params = {"w": jnp.ones(3)}
    state = adamlab.adam(1e-3, state_dtype=jnp.bfloat16).init(params)
    assert {leaf.dtype for leaf in jax.tree.leaves(state) if leaf.ndim} == {jnp.dtype(jnp.bfloat16)}


def test_integer_leaves_pass_through():
    params = {"w": jnp.ones(3), "step": jnp.array(7, jnp.int32), "flags": jnp.array([True, False])}
    grads = {"w": jnp.ones(3), "step": jnp.array(1, jnp.int32), "flags": jnp.array([False, False])}
    tx = adamlab.adamw(1e-3)
    u, _ = tx.update(grads, tx.init(params), params)
    new = adamlab.apply_updates(params, u)
    assert int(new["step"]) == 7 and new["flags"].tolist() == [True, False]
    assert float(new["w"][0]) < 1.0


def test_step_counter_saturates():
    tx = adamlab.bias_correct(0.9)
    state = adamlab.CountState(jnp.array(jnp.iinfo(jnp.int32).max - 1, jnp.int32))
    for _ in range(3):
        out, state = tx.update({"w": jnp.ones(2)}, state)
    assert int(state.count) == jnp.iinfo(jnp.int32).max
    np.testing.assert_array_equal(out["w"], [1.0, 1.0])


def test_parameter_ema_matches_reference_and_optax():
    params = mixed_params()
    stream = testing.gradient_stream(params, 40, seed=5)
    ema = adamlab.parameter_ema(0.9)
    ema_bc = adamlab.parameter_ema(0.9, bias_correction=True)
    theirs = optax.ema(0.9, debias=True)
    s, s_bc, s_theirs = ema.init(params), ema_bc.init(params), theirs.init(params)
    ref = {k: np.asarray(v, np.float64) for k, v in as_dict(params).items()}
    for i in range(40):
        p = jax.tree.map(lambda x, i=i: x[i], stream)  # a stream of parameter values
        avg, s = ema.update(p, s)
        avg_bc, s_bc = ema_bc.update(p, s_bc)
        avg_theirs, s_theirs = theirs.update(p, s_theirs)
        ref = {k: 0.9 * ref[k] + 0.1 * np.asarray(v, np.float64) for k, v in as_dict(p).items()}
    assert max(e.max_rel for e in testing.compare_trees(as_dict(avg), ref)) <= 1e-5
    assert max(e.max_rel for e in testing.compare_trees(avg_bc, avg_theirs)) <= 1e-6  # eager: ulp-level rounding


def test_effective_window_and_half_life():
    assert abs(adamlab.effective_window(0.9) - 10.0) < 1e-9
    assert abs(adamlab.effective_window(0.999) - 1000.0) < 1e-9
    assert abs(adamlab.half_life(0.5) - 1.0) < 1e-12
    # after half_life steps, beta**n == 0.5
    assert abs(0.999 ** adamlab.half_life(0.999) - 0.5) < 1e-12
