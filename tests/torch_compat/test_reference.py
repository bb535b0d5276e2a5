"""The float64 transcriptions of torch.optim hold to what can be checked without torch.

Where torch's algorithm and Optax's coincide (Adam, AdamW, SGD with momentum and Nesterov, RMSprop with
eps outside the root and a constant lr), the reference must equal Optax under x64 to float64 rounding; where
torch has a convention of its own (SGD's undamped first momentum step, NAdam's momentum schedule,
``maximize``), it is checked against its closed form. ``benchmarks/torch_parity.py`` checks the same cases
against torch itself where torch is installed.
"""

import jax
import numpy as np
import optax
import pytest

from . import cases, reference

STEPS = 100


def _optax_run(tx, params, grads):
    with jax.enable_x64(True):
        p = jax.tree.map(jax.numpy.asarray, params)
        state = tx.init(p)
        for g in grads:
            u, state = tx.update(jax.tree.map(jax.numpy.asarray, g), state, p)
            p = optax.apply_updates(p, u)
        return jax.tree.map(np.asarray, p)


def _max_rel(a, b):
    return max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(b[k]))) for k in a)


COINCIDE = {
    "adam": (lambda: optax.adam(1e-3), dict(lr=1e-3), reference.adam),
    "adam_l2": (
        lambda: optax.chain(optax.add_decayed_weights(1e-2), optax.adam(1e-3)),
        dict(lr=1e-3, weight_decay=1e-2),
        reference.adam,
    ),
    "adamw": (lambda: optax.adamw(1e-3, weight_decay=0.1), dict(lr=1e-3, weight_decay=0.1), reference.adamw),
    "sgd_nesterov": (
        lambda: optax.sgd(1e-2, momentum=0.9, nesterov=True),
        dict(lr=1e-2, momentum=0.9, nesterov=True),
        reference.sgd,
    ),
    "rmsprop_centered_momentum": (
        lambda: optax.rmsprop(1e-3, decay=0.99, eps=1e-8, centered=True, momentum=0.9, eps_in_sqrt=False),
        dict(lr=1e-3, centered=True, momentum=0.9),
        reference.rmsprop,
    ),
    "adadelta": (lambda: optax.adadelta(1.0), dict(), reference.adadelta),
    "adamax": (lambda: optax.adamax(2e-3), dict(), reference.adamax),
    # with eps = 0 torch's placement of eps is Optax's, and rho_t never equals the threshold 5
    "radam_eps0": (lambda: optax.radam(1e-3, eps=0.0), dict(eps=0.0), reference.radam),
}


@pytest.mark.parametrize("name", sorted(COINCIDE))
def test_equals_optax_in_float64_where_the_algorithms_coincide(name):
    make_tx, kwargs, ref = COINCIDE[name]
    params, grads = cases.make_problem(steps=STEPS)
    assert _max_rel(ref(params, grads, **kwargs), _optax_run(make_tx(), params, grads)) < 1e-13


def test_sgd_first_momentum_step_is_undamped():
    params, grads = cases.make_problem(steps=3)
    out = reference.sgd(params, grads, lr=0.1, momentum=0.9, dampening=0.5)
    buf = grads[0]["w"]  # torch: the buffer starts as the first gradient, not (1 - dampening) * it
    for g in grads[1:]:
        buf = 0.9 * buf + 0.5 * g["w"]
    expected = params["w"] - 0.1 * (grads[0]["w"] + (0.9 * grads[0]["w"] + 0.5 * grads[1]["w"]) + buf)
    np.testing.assert_allclose(out["w"], expected, rtol=1e-14)


def test_nadam_momentum_schedule():
    assert reference.nadam_mu(1) == pytest.approx(0.9 * (1 - 0.5 * 0.96**0.004), rel=1e-15)
    assert reference.nadam_mu(2) > reference.nadam_mu(1)  # momentum warms up toward beta1


@pytest.mark.parametrize("fn", [reference.adam, reference.sgd])
def test_maximize_is_descent_on_the_negated_gradient(fn):
    params, grads = cases.make_problem(steps=20)
    negated = [{k: -v for k, v in g.items()} for g in grads]
    kwargs = dict(lr=1e-2, momentum=0.9) if fn is reference.sgd else dict(lr=1e-2)
    up = fn(params, grads, maximize=True, **kwargs)
    down = fn(params, negated, **kwargs)
    assert all(np.array_equal(up[k], down[k]) for k in up)


def test_adagrad_lr_decay_divides_the_later_steps():
    params, grads = cases.make_problem(steps=2)
    out = reference.adagrad(params, grads, lr=0.1, lr_decay=0.5)
    g1, g2 = grads[0]["b"], grads[1]["b"]
    s1, s2 = g1**2, g1**2 + g2**2
    expected = params["b"] - 0.1 * g1 / (np.sqrt(s1) + 1e-10) - 0.1 / 1.5 * g2 / (np.sqrt(s2) + 1e-10)
    np.testing.assert_allclose(out["b"], expected, rtol=1e-14)


def test_rprop_clips_the_initial_step_size_and_skips_the_step_after_a_flip():
    params = {"w": np.zeros(1)}
    grads = [{"w": np.array([1.0])}, {"w": np.array([2.0])}, {"w": np.array([-1.0])}, {"w": np.array([-1.0])}]
    out = [reference.rprop(params, grads[:n], lr=1.0, step_sizes=(1e-6, 0.1))["w"][0] for n in range(1, 5)]
    # 0.1 at once (lr clipped), kept at the bound, no step on the flip (size 0.05), then +0.05 (size kept)
    np.testing.assert_allclose(out, [-0.1, -0.2, -0.2, -0.15], rtol=1e-15)


def test_radam_is_plain_momentum_until_rho_t_exceeds_5():
    assert reference.radam_rho(5) < 5.0 < reference.radam_rho(6)
    params, grads = cases.make_problem(steps=5)
    out = reference.radam(params, grads, lr=0.1, betas=(0.0, 0.999))  # b1 = 0: the step is -lr * g
    expected = params["w"] - 0.1 * sum(g["w"] for g in grads)
    np.testing.assert_allclose(out["w"], expected, rtol=1e-14)


def test_every_case_runs_to_finite_float64_params():
    params, grads = cases.make_problem(steps=STEPS)
    for case in cases.CASES:
        out = case.run_reference(params, grads)
        assert all(v.dtype == np.float64 and np.all(np.isfinite(v)) for v in out.values()), case.name
