"""PyTorch's conventions as keyword-only switches: their defaults change nothing, bad values are refused early."""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamlab
from adamlab import testing

from . import cases

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.zeros(3)}


@pytest.mark.parametrize(
    "default, explicit",
    [
        (lambda: adamlab.sgd(1e-2, momentum=0.9), lambda: adamlab.sgd(1e-2, momentum=0.9, dampening=0.0)),
        (lambda: adamlab.nadam(1e-3), lambda: adamlab.nadam(1e-3, momentum_decay=math.inf)),
        (lambda: adamlab.sgd(1e-2, momentum=0.9, nesterov=True), lambda: adamlab.sgd(1e-2, 0.9, True, dampening=0)),
        (lambda: adamlab.adamw(1e-3), lambda: adamlab.adamw(1e-3, maximize=False)),
        (
            lambda: adamlab.rmsprop(1e-3, momentum=0.9),
            lambda: adamlab.rmsprop(1e-3, momentum=0.9, lr_before_momentum=True),
        ),
        (
            lambda: adamlab.radam(1e-3),
            lambda: adamlab.radam(
                1e-3, eps_before_bias_correction=False, weight_decay=None, decoupled_weight_decay=False, maximize=False
            ),
        ),
        (lambda: adamlab.radam(1e-3), lambda: adamlab.radam(1e-3, weight_decay=0.0, decoupled_weight_decay=True)),
        (lambda: adamlab.adamax(1e-3), lambda: adamlab.adamax(1e-3, weight_decay=None, maximize=False)),
    ],
)
def test_the_defaults_are_todays_chains(default, explicit):
    a, b = default(), explicit()
    assert jax.tree.structure(a.init(PARAMS)) == jax.tree.structure(b.init(PARAMS))
    stream = testing.gradient_stream(PARAMS, 20, seed=3)
    assert testing.compare(a, b, PARAMS, grads=stream).max_rel == 0.0


def test_maximize_is_descent_on_the_negated_gradient():
    """Op by op bit for bit (negation is exact); under jit to rounding, as XLA simplifies the two programs
    differently (it folds the ``-1`` into neighbouring products)."""
    stream = testing.gradient_stream(PARAMS, 30, seed=4)
    negated = jax.tree.map(lambda g: -g, stream)
    makers = (adamlab.sgd, adamlab.adam, adamlab.adamw, adamlab.nadam, adamlab.nadamw, adamlab.rmsprop, adamlab.amsgrad)
    makers += (adamlab.adagrad, adamlab.adadelta, adamlab.rprop, adamlab.adamax, adamlab.radam)
    for make in makers:
        up = testing.run(make(1e-2, maximize=True), PARAMS, stream, jit=False)
        testing.assert_bitwise_equal(up, testing.run(make(1e-2), PARAMS, negated, jit=False))
        up = testing.run(make(1e-2, maximize=True), PARAMS, stream)
        down = testing.run(make(1e-2), PARAMS, negated)
        assert testing.compare_trees(up, down) and max(e.max_rel for e in testing.compare_trees(up, down)) < 1e-6
        assert not np.allclose(np.asarray(up["w"]), np.asarray(testing.run(make(1e-2), PARAMS, stream)["w"]))


def test_sgd_dampening_holds_back_a_share_after_the_first_step():
    tx = adamlab.sgd(1.0, momentum=0.5, dampening=0.25)
    state = tx.init({"w": jnp.zeros(1)})
    steps = []
    for _ in range(3):
        u, state = tx.update({"w": jnp.ones(1)}, state)
        steps.append(float(-u["w"][0]))
    assert steps == [1.0, 0.5 * 1.0 + 0.75, 0.5 * 1.25 + 0.75]


def test_nadam_momentum_schedule_state_counts_the_product():
    tx = adamlab.nadam(1e-3, momentum_decay=4e-3)
    state = tx.init(PARAMS)
    for _ in range(3):
        _, state = tx.update(jax.tree.map(jnp.ones_like, PARAMS), state, PARAMS)
    sched = state[1]
    assert isinstance(sched, adamlab.MomentumScheduleState) and int(sched.count) == 3
    expected = math.prod(0.9 * (1 - 0.5 * 0.96 ** (t * 4e-3)) for t in (1, 2, 3))
    assert float(sched.momentum_product) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: adamlab.sgd(1e-2, dampening=0.5), ValueError, "dampening=0.5 damps the momentum"),
        (lambda: adamlab.sgd(1e-2, momentum=0.9, nesterov=True, dampening=0.1), ValueError, "Nesterov"),
        (lambda: adamlab.sgd(1e-2, momentum=0.9, dampening=1.5), ValueError, r"dampening must be in \[0, 1\]"),
        (lambda: adamlab.trace(0.9, dampening=-0.1), ValueError, "dampening"),
        (lambda: adamlab.adam(1e-3, momentum_decay=4e-3), ValueError, "nesterov=True"),
        (lambda: adamlab.nadam(1e-3, momentum_decay=0.0), ValueError, "momentum_decay must be > 0"),
        (lambda: adamlab.nadam(1e-3, momentum_decay=float("nan")), ValueError, "momentum_decay"),
        (lambda: adamlab.bias_correct(0.9, momentum_decay=4e-3), ValueError, "nesterov=True"),
        (lambda: adamlab.adamw(1e-3, maximize=1), TypeError, "maximize must be True or False"),
        (lambda: adamlab.sgd(1e-2, maximize="yes"), TypeError, "maximize"),
        (lambda: adamlab.radam(1e-3, decoupled_weight_decay=1), TypeError, "decoupled_weight_decay must be True"),
        (lambda: adamlab.radam(1e-3, eps_before_bias_correction=0), TypeError, "eps_before_bias_correction"),
        (lambda: adamlab.scale_by_radam(eps_before_bias_correction="yes"), TypeError, "eps_before_bias_correction"),
        (lambda: adamlab.radam(1e-3, weight_decay=-1e-2, decoupled_weight_decay=True), ValueError, "weight_decay"),
        (lambda: adamlab.radam(1e-3, maximize=1), TypeError, "maximize"),
        (lambda: adamlab.adamax(1e-3, weight_decay=-1e-2), ValueError, "weight_decay"),
        (lambda: adamlab.adamax(1e-3, maximize=None), TypeError, "maximize"),
    ],
)
def test_bad_switches_are_refused_when_the_optimizer_is_built(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_every_case_in_float32_stays_within_float32_rounding_of_the_reference():
    """Without x64 the same calls run in float32: 200 steps drift from the float64 transcription by float32's
    rounding, far below the 1e-2 that a wrong convention costs (``test_each_torch_convention_is_needed``)."""
    params, grads = cases.make_problem(seed=1, steps=200)
    for case in cases.CASES:
        tx = case.build()
        p = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
        stream = {k: jnp.asarray(np.stack([g[k] for g in grads]), jnp.float32) for k in params}
        out = testing.run(tx, p, stream)
        ref = case.run_reference(params, grads)
        err = max(float(np.max(np.abs(np.asarray(out[k], np.float64) - ref[k])) / np.max(np.abs(ref[k]))) for k in ref)
        assert err < 1e-5, (case.name, err)


def test_the_switches_survive_optax_inject_hyperparams():
    """inject_hyperparams turns every number among the arguments into an array (the defaults included) and keeps
    bools static: the defaults (None, False) build today's chains, and a switch given as a number works."""
    import optax

    stream = testing.gradient_stream(PARAMS, 10, seed=5)
    for name in ("adam", "adamw", "nadam", "nadamw", "sgd", "rmsprop", "amsgrad", "adamax"):
        make = getattr(adamlab, name)
        kwargs = {"momentum": 0.9, "nesterov": True} if name == "sgd" else {}
        wrapped = optax.inject_hyperparams(make)(learning_rate=1e-2, **kwargs)
        inner = wrapped.init(PARAMS).inner_state
        assert jax.tree.structure(inner) == jax.tree.structure(make(1e-2, **kwargs).init(PARAMS)), name
        # traced b1, b2 give a float32 pow XLA does not fold as it folds a constant's: 7e-6 on step 1, as before
        assert testing.compare(wrapped, make(1e-2, **kwargs), PARAMS, grads=stream).max_rel <= 1e-5, name
    torch_nadam = optax.inject_hyperparams(adamlab.nadam)(learning_rate=1e-2, momentum_decay=4e-3)
    report = testing.compare(torch_nadam, adamlab.nadam(1e-2, momentum_decay=4e-3), PARAMS, grads=stream)
    assert report.max_rel <= 1e-5
    torch_radam: dict[str, Any] = dict(eps_before_bias_correction=True, weight_decay=1e-2, decoupled_weight_decay=True)
    for kwargs in ({}, torch_radam):
        wrapped = optax.inject_hyperparams(adamlab.radam)(learning_rate=1e-2, **kwargs)
        state: Any = wrapped.init(PARAMS)
        inner = state.inner_state
        assert jax.tree.structure(inner) == jax.tree.structure(adamlab.radam(1e-2, **kwargs).init(PARAMS))
        # rho_t = rho_inf - 2 t b2**t / (1 - b2**t) cancels (1999 - 1993 on step 6): from a traced float32 b2
        # it is 1e-4 off, and so is r_t, with or without the switches
        report = testing.compare(wrapped, adamlab.radam(1e-2, **kwargs), PARAMS, grads=stream)
        assert report.max_rel <= 1e-3, kwargs
    damped = optax.inject_hyperparams(adamlab.sgd)(learning_rate=1e-2, momentum=0.9, dampening=0.5)
    report = testing.compare(damped, adamlab.sgd(1e-2, momentum=0.9, dampening=0.5), PARAMS, grads=stream)
    assert report.max_rel <= 1e-6
