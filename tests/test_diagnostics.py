"""adamlab.diagnostics: the quantities read off an optimizer state agree with the updates the optimizer makes."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamlab
from adamlab import diagnostics as D


def _params():
    k = jax.random.split(jax.random.PRNGKey(3), 3)
    return {
        "dense": {"w": jax.random.normal(k[0], (4, 3)), "bias": jax.random.normal(k[1], (3,))},
        "emb": jax.random.normal(k[2], (5, 2)),
        "steps": jnp.arange(3),
    }


def _grads(params, step, spread=True):
    """Gradients whose scale differs by orders of magnitude between weights (as in a real model)."""

    def g(path, p):
        if not jnp.issubdtype(p.dtype, jnp.floating):
            return p
        key = jax.random.fold_in(jax.random.PRNGKey(step), hash(jax.tree_util.keystr(path)) % 2**31)
        scale = jnp.logspace(-4, 0, p.size).reshape(p.shape) if spread else 1.0
        return scale * jax.random.normal(key, p.shape)

    return jax.tree_util.tree_map_with_path(g, params)


def _run(tx, params, steps=5):
    state = tx.init(params)
    for t in range(steps):
        updates, state = tx.update(_grads(params, t), state, params)
    return updates, state, _grads(params, steps - 1)


def test_effective_step_size_is_the_adam_scaling_applied_to_the_gradient():
    """With b1 = 0, Adam's update is -lr * g / (sqrt(v_hat) + eps): exactly -effective_step_size * g."""
    params = _params()
    tx = adamlab.adam(0.01, b1=0.0, b2=0.9)
    updates, state, g = _run(tx, params)
    steps = D.effective_step_size(state, 0.01, b2=0.9)
    for path in (("dense", "w"), ("dense", "bias"), ("emb",)):
        u, s, gg = updates, steps, g
        for k in path:
            u, s, gg = u[k], s[k], gg[k]
        np.testing.assert_allclose(np.asarray(-u), np.asarray(s * gg), rtol=2e-6)
    assert steps["steps"].shape == (0,)  # the integer leaf keeps its placeholder


def test_second_moment_hat_matches_a_float64_recomputation():
    params = _params()
    _, state, _ = _run(adamlab.adamw(1e-3, b2=0.95), params, steps=7)
    v = np.zeros((4, 3))
    for t in range(7):
        v = 0.95 * v + 0.05 * np.asarray(_grads(params, t)["dense"]["w"], np.float64) ** 2
    np.testing.assert_allclose(D.second_moment_hat(state, b2=0.95)["dense"]["w"], v / (1 - 0.95**7), rtol=1e-5)
    np.testing.assert_allclose(D.second_moment_hat(state, b2=0.95, bias_correction=False)["dense"]["w"], v, rtol=1e-5)


def test_coupled_decay_is_the_share_of_the_update_that_multiplies_the_weight():
    """Adam+L2 with b1 = 0: update = -(step_size * g + effective_decay * p), element by element."""
    params = _params()
    tx = adamlab.adam(0.01, b1=0.0, b2=0.9, weight_decay=0.5, mask=adamlab.weight_decay_mask)
    updates, state, g = _run(tx, params)
    steps = D.effective_step_size(state, 0.01, b2=0.9)
    decay = D.effective_decay(state, params, 0.01, 0.5, coupled=True, mask=adamlab.weight_decay_mask, b2=0.9)
    for k in ("emb",):
        np.testing.assert_allclose(-updates[k], steps[k] * g[k] + decay[k] * params[k], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(decay["dense"]["w"], 0.5 * steps["dense"]["w"], rtol=1e-6)
    assert np.all(np.asarray(decay["dense"]["bias"]) == 0)  # masked: no decay
    # Weights with the larger gradient history are decayed less: the spread is the point of the picture.
    # (The L2 term enters v too, so with a large wd it floors sqrt(v_hat) at about wd*|p|; take a small one.)
    _, state, _ = _run(adamlab.adam(0.01, b2=0.9, weight_decay=1e-3), params)
    w = np.asarray(D.effective_decay(state, params, 0.01, 1e-3, coupled=True, b2=0.9)["dense"]["w"]).ravel()
    assert w[0] > 30 * w[-1]  # the gradient scale grows 1e4-fold from the first weight to the last


def test_decoupled_decay_is_lr_times_wd_and_is_what_adamw_adds_to_adam():
    params = _params()
    sched = adamlab.schedules.linear_warmup(0.0, 0.02, 10)
    up_w, state_w, _ = _run(adamlab.adamw(sched, weight_decay=0.3, mask=adamlab.weight_decay_mask), params, steps=6)
    up_a, _, _ = _run(adamlab.adam(sched), params, steps=6)
    decay = D.effective_decay(state_w, params, sched, 0.3, coupled=False, mask=adamlab.weight_decay_mask)
    lr_last = float(sched(5))  # the sixth step used schedule(5)
    np.testing.assert_allclose(decay["dense"]["w"], np.full((4, 3), lr_last * 0.3), rtol=1e-6)
    np.testing.assert_array_equal(decay["dense"]["bias"], np.zeros(3))
    for k in ("emb",):
        np.testing.assert_allclose(up_a[k] - up_w[k], decay[k] * params[k], rtol=1e-4, atol=1e-9)


def test_schedule_is_read_at_the_last_step_taken():
    params = _params()
    sched = lambda step: 0.1 * (step + 1.0)
    _, state, _ = _run(adamlab.adam(sched), params, steps=3)
    assert int(D.step_count(state)) == 3
    assert float(D.learning_rate_at(state, sched)) == pytest.approx(0.3)
    np.testing.assert_allclose(D.effective_step_size(state, sched)["emb"], D.effective_step_size(state, 0.3)["emb"])


def test_rmsprop_state_with_eps_in_the_root():
    params = _params()
    tx = adamlab.rmsprop(0.01, decay=0.9, eps=1e-6)
    updates, state, g = _run(tx, params)
    steps = D.effective_step_size(state, 0.01, b2=0.9, eps=1e-6, bias_correction=False, eps_in_sqrt=True)
    np.testing.assert_allclose(-updates["emb"], steps["emb"] * g["emb"], rtol=1e-6)


def test_diagnostics_are_jit_friendly_and_find_the_state_inside_optax_chain():
    params = {k: v for k, v in _params().items() if k != "steps"}  # optax's clipping takes float leaves only
    tx = optax.chain(optax.clip_by_global_norm(10.0), adamlab.adamw(1e-3, weight_decay=0.1))
    _, state, _ = _run(tx, params)

    @jax.jit
    def summary(state, params):
        decay = D.effective_decay(state, params, 1e-3, 0.1, coupled=True, mask=adamlab.weight_decay_mask)
        return D.tree_quantiles(decay, [0.05, 0.5, 0.95], mask=adamlab.weight_decay_mask)

    q = summary(state, params)
    eager = D.tree_quantiles(
        D.effective_decay(state, params, 1e-3, 0.1, coupled=True, mask=adamlab.weight_decay_mask),
        [0.05, 0.5, 0.95],
        mask=adamlab.weight_decay_mask,
    )
    np.testing.assert_allclose(q, eager, rtol=1e-6)
    assert q[0] < q[1] < q[2]


def test_find_state_errors_name_what_is_missing():
    params = _params()
    with pytest.raises(ValueError, match="exactly one RmsState.*found 0"):
        D.effective_step_size(adamlab.sgd(0.1, momentum=0.9).init(params), 0.1)
    two = adamlab.chain(adamlab.scale_by_rms(0.9), adamlab.scale_by_rms(0.99)).init(params)
    with pytest.raises(ValueError, match="found 2"):
        D.second_moment_hat(two)
    state = adamlab.adam().init(params)
    wrong = {**params, "emb": jnp.zeros((5, 3))}
    with pytest.raises(ValueError, match=r"\['emb'\]"):
        D.effective_decay(state, wrong, 1e-3, 0.1, coupled=False)
    with pytest.raises(ValueError, match="weight_decay"):
        D.effective_decay(state, params, 1e-3, -0.1, coupled=False)


def test_update_weight_ratio():
    params = {"w": jnp.full((2, 2), 2.0), "zero": jnp.zeros(3), "both": jnp.zeros(2), "n": jnp.arange(2)}
    updates = {
        "w": jnp.asarray([[0.1, -0.1], [0.1, -0.1]]),
        "zero": jnp.ones(3),
        "both": jnp.zeros(2),
        "n": jnp.arange(2),
    }
    r = D.update_weight_ratio(updates, params)
    assert float(r["w"]) == pytest.approx(0.05)
    assert float(r["zero"]) == np.inf
    assert float(r["both"]) == 0.0 and float(r["n"]) == 0.0
    with pytest.raises(ValueError, match="update_weight_ratio"):
        D.update_weight_ratio({"w": jnp.ones((2, 2))}, params)


def test_tree_quantiles_masks_leaves_and_elements():
    tree = {"a": jnp.arange(4.0), "b": jnp.arange(10.0, 14.0), "c": jnp.zeros((0,))}
    np.testing.assert_allclose(D.tree_quantiles(tree, 0.5), np.median(np.r_[np.arange(4.0), np.arange(10.0, 14.0)]))
    mask = {"a": False, "b": True, "c": True}
    np.testing.assert_allclose(D.tree_quantiles(tree, [0.0, 1.0], mask=mask), [10.0, 13.0])
    elem = {"a": jnp.asarray([True, False, False, True]), "b": False, "c": False}
    np.testing.assert_allclose(jax.jit(lambda t: D.tree_quantiles(t, [0.0, 1.0], mask=elem))(tree), [0.0, 3.0])
    with pytest.raises(ValueError, match="q must be in"):
        D.tree_quantiles(tree, 1.5)
    with pytest.raises(ValueError, match="selects no values"):
        D.tree_quantiles(tree, 0.5, mask={"a": False, "b": False, "c": True})
