"""Adagrad, Adadelta, Rprop (`adamlab.accumulators`) and signSGD, Signum, gradient noise (`adamlab.sign_methods`):
against Optax, against the float64 references (tests/reference_accumulators.py), and the properties the
docstrings promise.

Every Optax counterpart is matched bit for bit over 300 jitted steps: adamlab follows Optax's order of
operations in each formula. Two differences on purpose are tested as such: `optax.rprop` applies each step one
step late (``optax_lag=True`` reproduces it), and `optax.adadelta()` without a learning rate ascends.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_accumulators as ref
from conftest import STEPS, as_dict, mixed_params

import adamlab
from adamlab import testing
from adamlab.accumulators import adadelta, adagrad, rprop, scale_by_adadelta, scale_by_rprop, scale_by_rss
from adamlab.sign_methods import add_noise, noisy_sgd, sign_sgd, signum

# As in test_variants: float32 storage stays within 1e-5 of the float64 reference over 300 steps.
REF_RTOL = 1e-5
SCHEDULE = optax.warmup_cosine_decay_schedule(0.0, 0.05, 30, STEPS)


def no_decay_on_biases(params):
    return jax.tree_util.tree_map_with_path(lambda path, p: "b" not in jax.tree_util.keystr(path), params)


def max_rel(actual, expected):
    return max(e.max_rel for e in testing.compare_trees(as_dict(actual), expected))


def leaf(tree):
    """The one leaf of a single-leaf tree, as a NumPy array."""
    (x,) = jax.tree.leaves(tree)
    return np.asarray(x)


@pytest.fixture(scope="module")
def stream():
    return testing.gradient_stream(mixed_params(), STEPS, seed=1)


# ----------------------------------------------------------------------------------------------- Optax parity


def optax_cases():
    mask = no_decay_on_biases(mixed_params())
    return {
        "adagrad": (adagrad(0.1), optax.adagrad(0.1)),
        "adagrad_schedule": (adagrad(SCHEDULE), optax.adagrad(SCHEDULE)),
        "adagrad_no_initial_value": (adagrad(0.1, 0.0, 1e-3), optax.adagrad(0.1, 0.0, 1e-3)),
        "adadelta": (adadelta(1.0), optax.adadelta(1.0)),
        "adadelta_schedule_wd_mask": (
            adadelta(SCHEDULE, 0.95, 1e-5, weight_decay=0.1, weight_decay_mask=mask),
            optax.adadelta(SCHEDULE, 0.95, 1e-5, weight_decay=0.1, weight_decay_mask=mask),
        ),
        # Rprop's learning_rate is its initial step size, not a schedule (in Optax too): no schedule case.
        "rprop_optax_lag": (rprop(0.01, optax_lag=True), optax.rprop(0.01)),
        "rprop_optax_lag_bounds": (
            rprop(1e-3, 0.3, 1.5, 1e-4, 0.02, optax_lag=True),
            optax.rprop(1e-3, 0.3, 1.5, 1e-4, 0.02),
        ),
        "sign_sgd": (sign_sgd(1e-3), optax.sign_sgd(1e-3)),
        "sign_sgd_schedule": (sign_sgd(SCHEDULE), optax.sign_sgd(SCHEDULE)),
        "signum": (signum(1e-3), optax.signum(1e-3)),
        "signum_schedule": (signum(SCHEDULE, 0.5), optax.signum(SCHEDULE, 0.5)),
        "noisy_sgd": (noisy_sgd(1e-2, key=3), optax.noisy_sgd(1e-2, key=3)),
        "noisy_sgd_schedule_typed_key": (
            noisy_sgd(SCHEDULE, 0.3, 0.6, jax.random.key(5)),
            optax.noisy_sgd(SCHEDULE, 0.3, 0.6, jax.random.key(5)),
        ),
        "add_noise_before_adam": (
            adamlab.chain(add_noise(0.1, 0.55, 7), adamlab.adam(1e-3)),
            optax.chain(optax.add_noise(0.1, 0.55, 7), optax.adam(1e-3)),
        ),
    }


# Random draws inside a 300-step scan compile slowly (> 5 s): one noise case stays in the fast tier.
SLOW_CASES = {"noisy_sgd_schedule_typed_key", "add_noise_before_adam"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW_CASES else []) for n in sorted(optax_cases())]
)
def test_matches_optax_bitwise_under_jit(name, stream):
    ours, theirs = optax_cases()[name]
    report = testing.compare(ours, theirs, mixed_params(), grads=stream, rtol=0.0, jit=True)
    assert report.max_rel == 0.0, str(report)
    assert report.first_divergence is None, str(report)


def test_rprop_default_is_the_papers_step_not_optaxs_lagged_one(stream):
    """Optax's first Rprop update is 0 and each later one is the previous step's; adamlab's default is not."""
    params = {"w": jnp.zeros(2)}
    theirs, ours, lagged = optax.rprop(0.1), rprop(0.1), rprop(0.1, optax_lag=True)
    s_t, s_o, s_l = theirs.init(params), ours.init(params), lagged.init(params)
    outs = []
    for g in (1.0, 1.0, -1.0, -1.0):
        grad = {"w": jnp.array([g, -g])}
        u_t, s_t = theirs.update(grad, s_t, params)
        u_o, s_o = ours.update(grad, s_o, params)
        u_l, s_l = lagged.update(grad, s_l, params)
        np.testing.assert_array_equal(leaf(u_l), leaf(u_t))
        outs.append((float(leaf(u_t)[0]), float(leaf(u_o)[0])))
    # (optax, adamlab) per step: Optax lags one step behind and steps 0 twice after the flip.
    expected = [(0.0, -0.1), (-0.1, -0.12), (0.0, 0.0), (0.0, 0.06)]
    np.testing.assert_allclose(np.array(outs), np.array(expected), rtol=1e-6)
    report = testing.compare(rprop(0.01), optax.rprop(0.01), mixed_params(), grads=stream, jit=True)
    assert report.max_rel > 1e-2


def test_adadelta_without_learning_rate_descends_where_optax_ascends():
    params = {"w": jnp.ones(3)}
    grad = {"w": jnp.array([1.0, -2.0, 0.5])}
    ours, _ = adadelta().update(grad, adadelta().init(params), params)
    one, _ = adadelta(1.0).update(grad, adadelta(1.0).init(params), params)
    theirs, _ = optax.adadelta().update(grad, optax.adadelta().init(params), params)
    np.testing.assert_array_equal(ours["w"], one["w"])
    np.testing.assert_array_equal(ours["w"], -leaf(theirs))  # Optax's None drops the sign flip too
    assert bool(jnp.all(ours["w"] * grad["w"] < 0))


# ------------------------------------------------------------------------------------------ float64 reference


def reference_cases():
    mask = no_decay_on_biases(mixed_params())
    return {
        "adagrad": (adagrad(0.1), lambda p, g: ref.adagrad(p, g, 0.1)),
        "adagrad_schedule": (adagrad(SCHEDULE), lambda p, g: ref.adagrad(p, g, SCHEDULE)),
        # PyTorch's Adagrad: eps outside the root, lr_decay, L2, no initial accumulator. A large eps so that the
        # two placements of eps differ by far more than the tolerance (test_references_tell_them_apart).
        "adagrad_pytorch": (
            adagrad(0.1, 0.0, 0.1, eps_in_sqrt=False, lr_decay=0.01, weight_decay=0.05),
            lambda p, g: ref.adagrad(p, g, 0.1, 0.0, 0.1, eps_in_sqrt=False, lr_decay=0.01, wd=0.05),
        ),
        "adagrad_pytorch_schedule": (
            adagrad(SCHEDULE, 0.0, 1e-10, eps_in_sqrt=False, lr_decay=0.01),
            lambda p, g: ref.adagrad(p, g, SCHEDULE, 0.0, 1e-10, eps_in_sqrt=False, lr_decay=0.01),
        ),
        "adadelta": (adadelta(1.0), lambda p, g: ref.adadelta(p, g, 1.0)),
        "adadelta_schedule_wd_mask": (
            adadelta(SCHEDULE, 0.95, 1e-5, 0.1, no_decay_on_biases),
            lambda p, g: ref.adadelta(p, g, SCHEDULE, 0.95, 1e-5, wd=0.1, mask=as_dict(mask)),
        ),
        "rprop": (rprop(0.01), lambda p, g: ref.rprop(p, g, 0.01)),
        "rprop_bounds": (rprop(1e-3, 0.3, 1.5, 1e-4, 0.02), lambda p, g: ref.rprop(p, g, 1e-3, 0.3, 1.5, 1e-4, 0.02)),
        # torch.optim.Rprop with an lr below its lower step-size bound: torch starts at the bound.
        "rprop_pytorch_clipped_start": (
            rprop(1e-5, 0.5, 1.2, 1e-3, 50.0, clip_initial_step_size=True),
            lambda p, g: ref.rprop(p, g, 1e-5, 0.5, 1.2, 1e-3, 50.0, clip_initial=True),
        ),
        "sign_sgd": (sign_sgd(1e-3), lambda p, g: ref.sign_sgd(p, g, 1e-3)),
        "sign_sgd_schedule": (sign_sgd(SCHEDULE), lambda p, g: ref.sign_sgd(p, g, SCHEDULE)),
        "signum": (signum(1e-3), lambda p, g: ref.signum(p, g, 1e-3)),
        "signum_schedule": (signum(SCHEDULE, 0.5), lambda p, g: ref.signum(p, g, SCHEDULE, 0.5)),
    }


@pytest.mark.parametrize("name", sorted(reference_cases()))
def test_matches_float64_reference(name, stream):
    ours, reference = reference_cases()[name]
    params = mixed_params()
    final = testing.run(ours, params, stream)
    expected = reference(as_dict(params), as_dict(stream))
    assert max_rel(final, expected) <= REF_RTOL, testing.compare_trees(as_dict(final), expected)


def test_references_tell_them_apart(stream):
    """The reference tolerance sees the wrong convention: each variant is far from its neighbour's reference."""
    params, g = as_dict(mixed_params()), as_dict(stream)
    final = testing.run(adagrad(0.1, 0.0, 0.1), mixed_params(), stream)  # eps inside the root
    assert max_rel(final, ref.adagrad(params, g, 0.1, 0.0, 0.1, eps_in_sqrt=False)) > REF_RTOL
    final = testing.run(rprop(0.01, optax_lag=True), mixed_params(), stream)
    assert max_rel(final, ref.rprop(params, g, 0.01)) > REF_RTOL
    final = testing.run(rprop(1e-5, 0.5, 1.2, 1e-3, 50.0), mixed_params(), stream)  # Optax's unclipped start
    assert max_rel(final, ref.rprop(params, g, 1e-5, 0.5, 1.2, 1e-3, 50.0, clip_initial=True)) > REF_RTOL
    final = testing.run(signum(1e-3, 0.5), mixed_params(), stream)
    assert max_rel(final, ref.signum(params, g, 1e-3, 0.9)) > REF_RTOL


# ---------------------------------------------------------------------------------------------- properties


STAGES = {
    "scale_by_rss": scale_by_rss,
    "scale_by_adadelta": scale_by_adadelta,
    "scale_by_rprop": lambda: scale_by_rprop(0.1),
    "add_noise": lambda: add_noise(0.1, 0.55, 0),
}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_integer_leaves_pass_through(name):
    tx = adamlab.chain(STAGES[name]())
    params = {"w": jnp.ones(3), "step": jnp.asarray(4, jnp.int32)}
    updates, _ = tx.update({"w": jnp.ones(3), "step": jnp.asarray(4, jnp.int32)}, tx.init(params))
    assert updates["step"].dtype == jnp.int32 and int(updates["step"]) == 4
    assert bool(jnp.all(updates["w"] != 0)) and bool(jnp.all(jnp.isfinite(updates["w"])))


@pytest.mark.parametrize("name", ["adagrad", "adadelta", "rprop", "signum"])
def test_complex_params_with_zero_imaginary_part_follow_the_real_run(name):
    """The sums are of ``|g|**2`` and Rprop's agreement is ``Re(g * conj(prev))``: on real values in complex
    leaves each follows the real run (within 1e-6: XLA may fuse the complex products differently)."""
    tx = {"adagrad": adagrad(0.1), "adadelta": adadelta(1.0), "rprop": rprop(0.01), "signum": signum(0.01)}[name]
    params = {"w": jax.random.normal(jax.random.key(0), (6,))}
    grads = testing.gradient_stream(params, 30, seed=2)
    real = leaf(testing.run(tx, params, grads))
    as_complex = jax.tree.map(lambda x: x.astype(jnp.complex64), (params, grads))
    out = leaf(testing.run(tx, *as_complex))
    assert out.dtype == np.complex64 and bool(np.all(np.imag(out) == 0))
    np.testing.assert_allclose(np.real(out), real, rtol=1e-6, atol=1e-7)


def test_adagrad_lr_decay_is_torchs_clr():
    """``lr / (1 + (t - 1) * lr_decay)``: with a zero accumulator and eps, the step is lr_t * sign(g) / sqrt(t)."""
    tx = adagrad(1.0, 0.0, 0.0, eps_in_sqrt=False, lr_decay=0.5)
    params = {"w": jnp.zeros(1)}
    state = tx.init(params)
    steps = []
    for _ in range(3):
        updates, state = tx.update({"w": jnp.ones(1)}, state, params)
        steps.append(float(updates["w"][0]))
    np.testing.assert_allclose(steps, [-1.0, -1 / 1.5 / np.sqrt(2), -1 / 2.0 / np.sqrt(3)], rtol=1e-6)


def test_rprop_clipped_start_is_the_bounded_learning_rate():
    params = {"w": jnp.zeros(1)}
    for clip, first in ((False, 1e-5), (True, 1e-3)):
        tx = rprop(1e-5, min_step_size=1e-3, clip_initial_step_size=clip)
        updates, _ = tx.update({"w": jnp.ones(1)}, tx.init(params), params)
        assert float(updates["w"][0]) == pytest.approx(-first)


# --------------------------------------------------------------------------------------------- gradient noise


def noise_steps(tx, params, steps):
    """The outputs of `steps` eager updates on zero updates (eager: one compile per op, shared by every test)."""
    state = tx.init(params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    out = []
    for _ in range(steps):
        u, state = tx.update(zeros, state)
        out.append(u)
    return out, state


def test_noise_has_mean_zero_and_variance_eta_over_t_to_the_gamma():
    n, eta, gamma = 40_000, 0.5, 0.55
    params = {"a": jnp.zeros(n), "b": jnp.zeros((200, 200))}
    out, state = noise_steps(adamlab.chain(add_noise(eta, gamma, 11)), params, 6)
    assert int(state[0].count) == 6
    for t, u in enumerate(out, start=1):
        var = eta / t**gamma
        for x in (np.asarray(u["a"], np.float64), np.asarray(u["b"], np.float64).ravel()):
            assert abs(x.mean()) < 5 * np.sqrt(var / n)
            assert abs(x.var() - var) < 5 * var * np.sqrt(2 / n)  # the sample variance's standard error
    # Independent across steps and across leaves.
    for x, y in ((out[0]["a"], out[1]["a"]), (out[0]["a"], out[0]["b"].ravel())):
        assert abs(np.corrcoef(np.asarray(x), np.asarray(y))[0, 1]) < 5 / np.sqrt(n)


def test_noise_ignores_which_other_leaves_are_float():
    """One key per leaf in tree order, integer leaves included: a float leaf's noise is the same either way."""
    with_int = noise_steps(add_noise(1.0, 0.55, 2), {"a": jnp.zeros(5), "n": jnp.zeros(3, jnp.int32)}, 2)[0]
    all_float = noise_steps(add_noise(1.0, 0.55, 2), {"a": jnp.zeros(5), "n": jnp.zeros(3)}, 2)[0]
    for x, y in zip(with_int, all_float):
        np.testing.assert_array_equal(x["a"], y["a"])
        np.testing.assert_array_equal(x["n"], jnp.zeros(3, jnp.int32))
    assert not np.array_equal(with_int[0]["a"], with_int[1]["a"])


def test_noise_keys_seed_and_eta_zero():
    params = {"w": jnp.zeros(4)}
    first = [noise_steps(add_noise(1.0, 0.5, k), params, 1)[0][0]["w"] for k in (3, jax.random.key(3))]
    first.append(noise_steps(add_noise(1.0, 0.5, jax.random.PRNGKey(3)), params, 1)[0][0]["w"])
    first.append(noise_steps(add_noise(1.0, 0.5, seed=3), params, 1)[0][0]["w"])
    first.append(noise_steps(add_noise(1.0, 0.5, jnp.int32(3)), params, 1)[0][0]["w"])  # an integer scalar array
    # a traced seed (one per vmapped run) draws what each int seed draws
    by_seed = jax.vmap(lambda k: noise_steps(add_noise(1.0, 0.5, k), params, 1)[0][0]["w"])(jnp.array([3, 4]))
    np.testing.assert_array_equal(by_seed[1], noise_steps(add_noise(1.0, 0.5, 4), params, 1)[0][0]["w"])
    first.append(by_seed[0])
    for x in first[1:]:
        np.testing.assert_array_equal(x, first[0])
    default = noise_steps(add_noise(1.0, 0.5), params, 1)[0][0]["w"]
    np.testing.assert_array_equal(default, noise_steps(add_noise(1.0, 0.5, 0), params, 1)[0][0]["w"])
    silent = noise_steps(add_noise(0.0, 0.5, 3), params, 3)[0]
    assert all(bool(jnp.all(u["w"] == 0)) for u in silent)


# ----------------------------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: adagrad(-0.1), "learning_rate"),
        (lambda: adagrad(0.1, -1.0), "initial_accumulator_value"),
        (lambda: adagrad(0.1, eps=-1.0), "eps"),
        (lambda: adagrad(0.1, lr_decay=-0.5), "lr_decay"),
        (lambda: adagrad(0.1, weight_decay=-0.5), "weight_decay"),
        (lambda: adadelta(-1.0), "learning_rate"),
        (lambda: adadelta(1.0, rho=1.5), "rho"),
        (lambda: adadelta(1.0, eps=0.0), "eps"),
        (lambda: adadelta(1.0, weight_decay=-0.1), "weight_decay"),
        (lambda: rprop(-0.01), "learning_rate"),
        (lambda: rprop(0.01, eta_minus=0.0), "eta_minus"),
        (lambda: rprop(0.01, eta_minus=1.5), "eta_minus"),
        (lambda: rprop(0.01, eta_plus=0.5), "eta_plus"),
        (lambda: rprop(0.01, min_step_size=-1.0), "min_step_size"),
        (lambda: rprop(0.01, min_step_size=1.0, max_step_size=0.5), "max_step_size"),
        (lambda: sign_sgd(-1e-3), "learning_rate"),
        (lambda: signum(1e-3, beta=1.0), "beta"),
        (lambda: signum(-1e-3), "learning_rate"),
        (lambda: add_noise(-0.1, 0.55), "eta"),
        (lambda: add_noise(0.1, float("nan")), "gamma"),
        (lambda: add_noise(0.1, 0.55, 1, seed=2), "seed"),
        (lambda: noisy_sgd(0.1, eta=-1.0), "eta"),
        (lambda: noisy_sgd(-0.1), "learning_rate"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_key_and_flags_raise_type_error():
    with pytest.raises(TypeError, match="key must be an int seed"):
        add_noise(0.1, 0.55, "zero")
    with pytest.raises(TypeError, match="seed must be an int seed"):
        add_noise(0.1, 0.55, seed=1.5)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="eps_in_sqrt"):
        adagrad(0.1, eps_in_sqrt="no")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="optax_lag"):
        rprop(0.1, optax_lag=1)  # pyright: ignore[reportArgumentType]
