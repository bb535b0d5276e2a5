"""Weight decay done as the paper does it, and stated as an EMA timescale.

- `adamw(alpha, weight_decay=wd, schedule=eta)` is Loshchilov & Hutter's Algorithm 2,
  ``p <- p - eta_t * (alpha * adam + wd * p)``: held to a float64 reference, to its chain in
  docs/guides/getting_started.md bit for bit, and to Optax's equivalent chain; sweeping `alpha` leaves the decay per
  step alone, where Optax's form moves it.
- `decay_timescale` / `weight_decay_for_timescale`: ``tau = 1 / (lr * wd)`` steps, the window of the EMA that
  decoupled decay makes of the weights.
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

ALPHA, WD = 3e-3, 0.05
ETA = adamlab.schedules.warmup_cosine_decay(0.0, 1.0, 30, STEPS, end_value=0.1)  # a multiplier in [0, 1]


def no_decay_on_biases(params):
    return jax.tree_util.tree_map_with_path(lambda path, p: "b" not in jax.tree_util.keystr(path), params)


def paper_chain(alpha, wd, eta, mask=None, b1=0.9, b2=0.999, eps=1e-8):
    """The chain for the paper's AdamW (docs/guides/getting_started.md), written out."""
    return adamlab.chain(
        adamlab.scale_by_ema(b1),
        adamlab.bias_correct(b1),
        adamlab.scale_by_rms(b2, eps, bias_correction=True),  # m_hat / (sqrt(v_hat) + eps)
        adamlab.scale(alpha),  # * alpha, the base rate
        adamlab.add_decoupled_weight_decay(wd, mask),  # + wd * p
        adamlab.scale_by_learning_rate(eta),  # * -eta_t
    )


@pytest.fixture(scope="module")
def stream():
    return testing.gradient_stream(mixed_params(), STEPS, seed=3)


def test_paper_adamw_matches_a_float64_algorithm_2(stream):
    params = mixed_params()
    mask = no_decay_on_biases(params)
    final = testing.run(adamlab.adamw(ALPHA, weight_decay=WD, mask=mask, schedule=ETA), params, stream)
    expected = reference.adamw_paper(as_dict(params), as_dict(stream), ALPHA, ETA, WD, mask=as_dict(mask))
    errors = testing.compare_trees(as_dict(final), expected)
    assert max(e.max_rel for e in errors) <= 1e-5, errors
    # The reference can tell the forms apart: Optax's (decay lr_t * wd = alpha * eta_t * wd) is far off.
    optax_form = reference.adam(
        as_dict(params), as_dict(stream), lambda i: ALPHA * float(ETA(i)), decoupled_wd=WD, mask=as_dict(mask)
    )
    assert max(e.max_rel for e in testing.compare_trees(optax_form, expected)) > 1e-3


def test_paper_adamw_is_its_chain_bit_for_bit_and_optax_agrees(stream):
    params = mixed_params()
    mask = no_decay_on_biases(params)
    ours = adamlab.adamw(ALPHA, weight_decay=WD, mask=mask, schedule=ETA)
    report = testing.compare(ours, paper_chain(ALPHA, WD, ETA, mask), params, grads=stream, jit=True)
    assert report.max_rel == 0.0, str(report)
    optax_eta = optax.warmup_cosine_decay_schedule(0.0, 1.0, 30, STEPS, end_value=0.1)
    theirs = optax.chain(
        optax.scale_by_adam(),
        optax.scale(ALPHA),
        optax.add_decayed_weights(WD, mask),
        optax.scale_by_learning_rate(optax_eta),
    )
    report = testing.compare(ours, theirs, params, grads=stream, jit=True)
    assert report.max_rel <= 1e-6, str(report)


def _decay_factors(tx, steps=12):
    """p_{t+1} / p_t per step for a weight whose gradient is always 0 (so the only thing moving it is the decay)."""
    params = {"w": jnp.ones((4,), jnp.float32)}
    state, p, out = tx.init(params), params, []
    update = jax.jit(tx.update)
    for _ in range(steps):
        u, state = update({"w": jnp.zeros(4)}, state, p)
        new = adamlab.apply_updates(p, u)
        out.append(float(new["w"][0] / p["w"][0]))
        p = new
    return np.array(out)


def test_sweeping_alpha_leaves_the_paper_decay_alone_and_moves_optaxs():
    eta = adamlab.schedules.warmup_cosine_decay(0.0, 1.0, 4, 40)
    alphas = [1e-4, 1e-3, 1e-2]  # two decades
    paper = [_decay_factors(adamlab.adamw(a, weight_decay=0.1, schedule=eta)) for a in alphas]
    for f in paper[1:]:
        np.testing.assert_array_equal(f, paper[0])
    np.testing.assert_allclose(1 - paper[0], 0.1 * np.array([float(eta(t)) for t in range(12)]), rtol=1e-5)

    coupled_to_lr = [_decay_factors(adamlab.adamw(lambda t, a=a: a * eta(t), weight_decay=0.1)) for a in alphas]
    shrink = [1 - f[5:] for f in coupled_to_lr]  # past the warmup's zero
    # float32 weights resolve a shrink of alpha * wd = 1e-5 per step to about 0.6%
    np.testing.assert_allclose(shrink[2] / shrink[0], 100.0, rtol=1e-2)
    np.testing.assert_allclose(shrink[1] / shrink[0], 10.0, rtol=1e-2)


def test_paper_adamw_refuses_two_schedules():
    eta = adamlab.schedules.cosine_decay(1.0, 100)
    with pytest.raises(ValueError, match="learning_rate is the base rate alpha, a number"):
        adamlab.adamw(adamlab.schedules.cosine_decay(1e-3, 100), schedule=eta)
    with pytest.raises(TypeError, match="schedule must be a function"):
        adamlab.adamw(1e-3, schedule=0.5)
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        adamlab.adamw(-1e-3, schedule=eta)


def test_without_a_schedule_adamw_is_unchanged(stream):
    params = mixed_params()
    report = testing.compare(
        adamlab.adamw(ALPHA, weight_decay=WD, schedule=None),
        optax.adamw(ALPHA, weight_decay=WD),
        params,
        grads=stream,
        jit=True,
    )
    assert report.max_rel == 0.0, str(report)


# ------------------------------------------------------------------------------------------- scheduled decay

WD_SCHEDULE = adamlab.schedules.linear_schedule(0.2, 0.0, STEPS // 2)
OPTAX_WD_SCHEDULE = optax.linear_schedule(0.2, 0.0, STEPS // 2)

# Every Optax optimizer whose weight decay may be a schedule, each as (adamlab, Optax) for a decay `wd`.
SCHEDULED_DECAY = {
    "adamw": (lambda wd: adamlab.adamw(1e-2, weight_decay=wd), lambda wd: optax.adamw(1e-2, weight_decay=wd)),
    "nadamw": (lambda wd: adamlab.nadamw(1e-2, weight_decay=wd), lambda wd: optax.nadamw(1e-2, weight_decay=wd)),
    "adamaxw": (lambda wd: adamlab.adamaxw(1e-2, weight_decay=wd), lambda wd: optax.adamaxw(1e-2, weight_decay=wd)),
    "adan": (lambda wd: adamlab.adan(1e-2, weight_decay=wd), lambda wd: optax.adan(1e-2, weight_decay=wd)),
    "lamb": (lambda wd: adamlab.lamb(1e-2, weight_decay=wd), lambda wd: optax.lamb(1e-2, weight_decay=wd)),
    "lars": (lambda wd: adamlab.lars(1e-2, weight_decay=wd), lambda wd: optax.lars(1e-2, weight_decay=wd)),
    "lion": (lambda wd: adamlab.lion(1e-3, weight_decay=wd), lambda wd: optax.lion(1e-3, weight_decay=wd)),
    "adadelta": (lambda wd: adamlab.adadelta(1.0, weight_decay=wd), lambda wd: optax.adadelta(1.0, weight_decay=wd)),
    "adafactor": (
        lambda wd: adamlab.adafactor(1e-2, weight_decay_rate=wd),
        lambda wd: optax.adafactor(1e-2, weight_decay_rate=wd),
    ),
    "muon": (
        lambda wd: adamlab.muon(1e-2, weight_decay=wd, adam_weight_decay=wd),
        lambda wd: optax.contrib.muon(1e-2, weight_decay=wd, adam_weight_decay=wd),
    ),
    "add_decayed_weights": (adamlab.add_decoupled_weight_decay, optax.add_decayed_weights),
}


@pytest.mark.parametrize("name", sorted(SCHEDULED_DECAY))
def test_scheduled_weight_decay_matches_optax(name, stream):
    """A decay schedule is evaluated at the steps already taken, as Optax's; a constant schedule is the number."""
    ours, theirs = SCHEDULED_DECAY[name]
    params, grads = mixed_params(), jax.tree.map(lambda g: g[:60], stream)
    _, _, rel = testing.run(ours(WD_SCHEDULE), params, grads, reference=theirs(OPTAX_WD_SCHEDULE))
    # Optax evaluates its schedule in float32 and adamlab in the widest float, rounded once: the same float32
    # value; the one exception is the bare stage, whose unscaled params grow past 50 and differ there by an ulp.
    assert float(rel.max()) <= (1e-7 if name == "add_decayed_weights" else 0.0), rel.max()
    constant = testing.run(ours(adamlab.schedules.constant(0.2)), params, grads)
    number = testing.run(ours(0.2), params, grads)
    assert max(e.max_rel for e in testing.compare_trees(constant, number)) <= 1e-7


def test_scheduled_weight_decay_matches_float64_references(stream):
    """AdamW and Adam+L2 with a decaying ``wd_t``, against reference.adam evaluating the schedule per step."""
    params, grads = mixed_params(), jax.tree.map(lambda g: g[:100], stream)
    p, g = as_dict(params), as_dict(grads)
    for tx, expected in (
        (adamlab.adamw(1e-2, weight_decay=WD_SCHEDULE), reference.adam(p, g, 1e-2, decoupled_wd=WD_SCHEDULE)),
        (adamlab.adam(1e-2, weight_decay=WD_SCHEDULE), reference.adam(p, g, 1e-2, l2=WD_SCHEDULE)),
    ):
        errors = testing.compare_trees(as_dict(testing.run(tx, params, grads)), expected)
        assert max(e.max_rel for e in errors) <= 1e-5, errors
    # the reference tells a schedule from its first value
    constant = reference.adam(p, g, 1e-2, decoupled_wd=0.2)
    off = testing.compare_trees(
        as_dict(testing.run(adamlab.adamw(1e-2, weight_decay=WD_SCHEDULE), params, grads)), constant
    )
    assert max(e.max_rel for e in off) > 1e-3


def test_scheduled_weight_decay_counts_its_steps_and_a_number_keeps_no_state():
    params = {"w": jnp.ones(3)}
    tx = adamlab.add_decoupled_weight_decay(WD_SCHEDULE)
    state = tx.init(params)
    assert state == adamlab.ScheduleState(jnp.zeros((), jnp.int32))
    _, state = tx.update({"w": jnp.zeros(3)}, state, params)
    assert int(state.count) == 1
    assert adamlab.add_decoupled_weight_decay(0.1).init(params) == adamlab.EmptyState()
    with pytest.raises(TypeError, match="weight_decay"):
        adamlab.add_decoupled_weight_decay(lambda a, b: a)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        adamlab.adamw(1e-3, weight_decay=-0.1)


# ---------------------------------------------------------------------------------------------------- timescale


def test_timescale_and_weight_decay_are_inverse():
    lr = np.array([1e-4, 3e-4, 1e-3, 6e-3])
    wd = np.array([0.1, 0.01, 1.0, 0.05])
    tau = adamlab.decay_timescale(lr, wd)
    np.testing.assert_allclose(tau, 1 / (lr * wd), rtol=1e-15)
    np.testing.assert_allclose(adamlab.weight_decay_for_timescale(tau, lr), wd, rtol=1e-15)
    np.testing.assert_allclose(
        adamlab.decay_timescale(lr, adamlab.weight_decay_for_timescale(tau, lr)), tau, rtol=1e-15
    )
    assert adamlab.decay_timescale(1e-3, 0.1) == pytest.approx(10_000.0)
    assert adamlab.weight_decay_for_timescale(10_000, 1e-3) == pytest.approx(0.1)
    # JAX arrays, also under jit (traced values are not checked, only computed).
    got = jax.jit(adamlab.decay_timescale)(jnp.asarray(lr, jnp.float32), jnp.asarray(wd, jnp.float32))
    np.testing.assert_allclose(got, tau, rtol=1e-6)
    # The window of the EMA with decay b = 1 - lr * wd.
    assert adamlab.decay_timescale(1e-3, 0.1) == pytest.approx(adamlab.effective_window(1 - 1e-3 * 0.1), rel=1e-9)


@pytest.mark.parametrize("bad", [0.0, -1e-3, float("nan"), float("inf"), np.array([1e-3, 0.0])])
def test_timescale_refuses_nonpositive_values(bad):
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        adamlab.decay_timescale(bad, 0.1)
    with pytest.raises(ValueError, match="timescale must be > 0"):
        adamlab.weight_decay_for_timescale(bad, 1e-3)
    with pytest.raises(TypeError, match="weight_decay must be a number"):
        adamlab.decay_timescale(1e-3, "0.1")


def test_decayed_weights_are_the_ema_of_minus_u_over_wd():
    """p <- p - lr * (u + wd * p) from p = 0 equals scale_by_ema(1 - lr*wd) run on -u / wd: the weights are an EMA
    of the updates with window decay_timescale(lr, wd)."""
    lr, wd, steps = 0.01, 0.5, 400
    updates = np.random.default_rng(0).normal(size=(steps, 6)).astype(np.float32) + 0.3
    decay = adamlab.chain(adamlab.add_decoupled_weight_decay(wd), adamlab.scale_by_learning_rate(lr))
    ema = adamlab.scale_by_ema(1 - lr * wd)
    p = jnp.zeros(6)
    d_state, e_state = decay.init(p), ema.init(p)
    for u in updates:
        step, d_state = decay.update(jnp.asarray(u), d_state, p)
        p = adamlab.apply_updates(p, step)
        m, e_state = ema.update(jnp.asarray(-u / wd), e_state)
    np.testing.assert_allclose(p, m, rtol=1e-4, atol=1e-6)
    assert adamlab.decay_timescale(lr, wd) == pytest.approx(200.0)
