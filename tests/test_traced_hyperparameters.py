"""Every hyperparameter may be an array, traced included: `jax.vmap` over a vector of hyperparameters trains one
cell per value (what `python -m adamlab.demo grid` does), and each cell equals the transformation built with that
value as a Python number, to float32 rounding of the hyperparameter itself (``1 - b2`` from a float32 array
0.999 is 1.3e-5 off ``1 - 0.999`` taken in Python). Also what `optax.inject_hyperparams` relies on."""

import family
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_adaptive
from conftest import as_dict

import adamlab
from adamlab import testing

SETTINGS = 3
STEPS = 5
ETA = adamlab.schedules.warmup_cosine_decay(0.0, 1.0, 2, 10)

# name -> (build(**hyperparameters), {hyperparameter: the values of the three settings})
CASES = {
    "scale_by_ema+bias_correct": (
        lambda decay: adamlab.chain(adamlab.scale_by_ema(decay), adamlab.bias_correct(decay)),
        {"decay": [0.0, 0.5, 0.9]},
    ),
    "scale_by_rms": (
        lambda decay, eps, initial_scale: adamlab.chain(adamlab.scale_by_rms(decay, eps, initial_scale)),
        {"decay": [0.5, 0.9, 0.999], "eps": [1e-8, 1e-3, 0.0], "initial_scale": [0.0, 1.0, 0.5]},
    ),
    "trace": (lambda decay: adamlab.trace(decay, nesterov=True), {"decay": [0.0, 0.9, 1.0]}),
    "scale": (lambda factor: adamlab.scale(factor), {"factor": [0.5, -2.0, 0.0]}),
    "scale_by_learning_rate": (lambda lr: adamlab.scale_by_learning_rate(lr), {"lr": [1e-3, 0.1, 0.0]}),
    "scale_by_learning_rate(schedule)": (
        lambda lr: adamlab.scale_by_learning_rate(lambda t: lr * ETA(t)),
        {"lr": [1e-3, 0.1, 1.0]},
    ),
    "add_coupled_weight_decay": (lambda wd: adamlab.add_coupled_weight_decay(wd), {"wd": [0.0, 0.1, 2.0]}),
    "add_decoupled_weight_decay": (
        lambda wd: adamlab.add_decoupled_weight_decay(wd, mask=adamlab.weight_decay_mask),
        {"wd": [0.0, 0.1, 2.0]},
    ),
    "clip_by_global_norm": (lambda max_norm: adamlab.clip_by_global_norm(max_norm), {"max_norm": [0.1, 1.0, 100.0]}),
    "sgd": (lambda lr, momentum: adamlab.sgd(lr, momentum), {"lr": [1e-2, 0.1, 1.0], "momentum": [0.0, 0.5, 0.9]}),
    "rmsprop": (
        lambda lr, decay, eps, momentum: adamlab.rmsprop(lr, decay, eps, momentum=momentum, centered=True),
        {"lr": [1e-3, 1e-2, 0.1], "decay": [0.5, 0.9, 0.99], "eps": [1e-8, 1e-4, 1e-2], "momentum": [0.0, 0.5, 0.9]},
    ),
    "adam": (
        lambda lr, b1, b2, eps, weight_decay: adamlab.adam(lr, b1, b2, eps, weight_decay=weight_decay),
        {
            "lr": [1e-3, 1e-2, 0.1],
            "b1": [0.0, 0.9, 0.95],
            "b2": [0.9, 0.99, 0.999],
            "eps": [1e-8, 1e-3, 0.0],
            "weight_decay": [0.0, 0.1, 1.0],
        },
    ),
    "adamw": (
        lambda lr, weight_decay: adamlab.adamw(lambda t: lr * ETA(t), weight_decay=weight_decay),
        {"lr": [1e-3, 1e-2, 0.1], "weight_decay": [0.0, 1e-2, 1.0]},
    ),
    "adamw(schedule=eta)": (
        lambda lr, weight_decay: adamlab.adamw(lr, weight_decay=weight_decay, schedule=ETA),
        {"lr": [1e-3, 1e-2, 0.1], "weight_decay": [0.0, 1e-2, 1.0]},
    ),
}


LR = {"lr": [1e-3, 1e-2, 0.1]}
B1 = {"b1": [0.0, 0.9, 0.95]}
B2 = {"b2": [0.9, 0.99, 0.999]}
WD = {"wd": [0.0, 0.01, 0.1]}

# The issue-22 family (tests/family.py), by its names: the learning rate, the decays and every other number each
# takes (Python ints stay ints: adafactor's decay_offset). test_every_family_member_has_its_hyperparameters_traced
# holds this table to the registry. lookahead's sync_period and the other numbers that fix the structure:
# test_structural_hyperparameters_refuse_a_traced_value_by_name.
FAMILY_CASES = {
    "adabelief": (
        lambda lr, b1, b2, eps, eps_root: adamlab.adabelief(lr, b1, b2, eps, eps_root),
        {**LR, **B1, **B2, "eps": [1e-16, 1e-8, 1e-3], "eps_root": [1e-16, 0.0, 1e-8]},
    ),
    "adadelta": (
        lambda lr, rho, eps, wd: adamlab.adadelta(lr, rho, eps, wd),
        {"lr": [0.1, 0.5, 1.0], "rho": [0.5, 0.9, 0.95], "eps": [1e-6, 1e-4, 1e-2], **WD},
    ),
    "adafactor": (
        lambda lr, decay_rate, decay_offset, clipping_threshold, momentum, eps, wd: adamlab.adafactor(
            lr,
            min_dim_size_to_factor=2,  # the (4, 3) matrix is factored
            decay_rate=decay_rate,
            decay_offset=decay_offset,
            clipping_threshold=clipping_threshold,
            momentum=momentum,
            eps=eps,
            weight_decay_rate=wd,
        ),
        {
            **LR,
            "decay_rate": [0.5, 0.8, 0.9],
            "decay_offset": [0, -3, 5],
            "clipping_threshold": [1.0, 0.01, 100.0],
            "momentum": [0.0, 0.5, 0.9],
            "eps": [1e-30, 1e-10, 1e-3],
            "wd": [0.0, 1e-3, 1e-2],
        },
    ),
    "adagrad": (
        lambda lr, iav, eps, lr_decay, wd: adamlab.adagrad(lr, iav, eps, lr_decay=lr_decay, weight_decay=wd),
        {**LR, "iav": [0.1, 0.0, 1.0], "eps": [1e-7, 1e-3, 1e-10], "lr_decay": [0.0, 0.01, 0.1], **WD},
    ),
    "adamax": (lambda lr, b1, b2, eps: adamlab.adamax(lr, b1, b2, eps), {**LR, **B1, **B2, "eps": [1e-8, 1e-3, 0.1]}),
    "adamaxw": (lambda lr, b1, b2, wd: adamlab.adamaxw(lr, b1, b2, weight_decay=wd), {**LR, **B1, **B2, **WD}),
    "adan": (
        lambda lr, b1, b2, b3, eps, wd: adamlab.adan(lr, b1, b2, b3, eps, weight_decay=wd),
        {
            **LR,
            "b1": [0.0, 0.9, 0.98],
            "b2": [0.5, 0.92, 0.99],
            "b3": [0.9, 0.99, 0.999],
            "eps": [1e-8, 1e-3, 0.1],
            **WD,
        },
    ),
    "lamb": (
        lambda lr, b1, b2, eps, wd: adamlab.lamb(lr, b1, b2, eps, weight_decay=wd),
        {**LR, **B1, **B2, "eps": [1e-6, 1e-3, 0.1], **WD},
    ),
    "lars": (
        lambda lr, wd, tc, eps, momentum: adamlab.lars(lr, wd, True, tc, eps, True, momentum),
        {**LR, **WD, "tc": [1e-3, 1e-2, 0.1], "eps": [0.0, 1e-3, 0.1], "momentum": [0.0, 0.5, 0.9]},
    ),
    "novograd": (
        lambda lr, b1, b2, eps, wd: adamlab.novograd(lr, b1, b2, eps, weight_decay=wd),
        {**LR, **B1, "b2": [0.25, 0.5, 0.9], "eps": [1e-6, 1e-3, 0.1], **WD},
    ),
    "radam": (  # thresholds about rho_5 = 4.996: the last of the five steps is rectified in one setting only
        lambda lr, b1, b2, eps, threshold: adamlab.radam(lr, b1, b2, eps, threshold=threshold),
        {**LR, **B1, **B2, "eps": [1e-8, 1e-3, 0.1], "threshold": [5.0, 4.5, 6.0]},
    ),
    "yogi": (
        lambda lr, b1, b2, eps, iav: adamlab.yogi(lr, b1, b2, eps, initial_accumulator_value=iav),
        {**LR, **B1, **B2, "eps": [1e-3, 1e-6, 0.1], "iav": [1e-6, 0.0, 0.5]},
    ),
    "rprop": (
        lambda lr, eta_minus, eta_plus, low, high: adamlab.rprop(lr, eta_minus, eta_plus, low, high),
        {
            **LR,
            "eta_minus": [0.5, 0.3, 0.7],
            "eta_plus": [1.2, 1.5, 1.1],
            "low": [1e-6, 1e-4, 1e-3],
            "high": [50.0, 0.05, 1.0],
        },
    ),
    "sign_sgd": (lambda lr: adamlab.sign_sgd(lr), LR),
    "signum": (lambda lr, beta: adamlab.signum(lr, beta), {**LR, "beta": [0.0, 0.5, 0.9]}),
    "noisy_sgd": (
        lambda lr, eta, gamma: adamlab.noisy_sgd(lr, eta, gamma, key=0),
        {**LR, "eta": [0.01, 0.1, 0.0], "gamma": [0.55, 0.0, 1.0]},
    ),
    "optimistic_adam_v2": (
        lambda lr, alpha, beta, b1, b2: adamlab.optimistic_adam_v2(lr, alpha=alpha, beta=beta, b1=b1, b2=b2),
        {**LR, "alpha": [1.0, 0.5, 2.0], "beta": [1.0, 0.3, 0.0], **B1, **B2},
    ),
    "adopt": (
        lambda lr, b1, b2, eps: adamlab.adopt(lr, b1, b2, eps),
        {**LR, **B1, "b2": [0.9, 0.99, 0.9999], "eps": [1e-6, 1e-3, 0.1]},
    ),
    "simplified_ademamix": (
        lambda lr, b1, b2, alpha, eps, wd: adamlab.simplified_ademamix(lr, b1, b2, alpha, eps, weight_decay=wd),
        {
            **LR,
            "b1": [0.9, 0.99, 0.5],
            "b2": [0.9, 0.95, 0.999],
            "alpha": [0.0, 2.0, 5.0],
            "eps": [1e-8, 1e-3, 0.1],
            **WD,
        },
    ),
    "schedule_free_adamw": (
        lambda lr, b1, b2, eps, wd, power: adamlab.schedule_free_adamw(lr, 3, b1, b2, eps, wd, power),
        {**LR, "b1": [0.5, 0.9, 0.95], **B2, "eps": [1e-8, 1e-3, 0.1], **WD, "power": [2.0, 1.0, 0.0]},
    ),
    "schedule_free_sgd": (
        lambda lr, b1, wd, power: adamlab.schedule_free_sgd(lr, 3, b1, wd, power),
        {**LR, "b1": [0.5, 0.9, 0.95], **WD, "power": [2.0, 1.0, 0.0]},
    ),
    "muon": (
        lambda lr, beta, eps, wd, adam_b1, adam_b2, rms: adamlab.muon(
            lr, beta=beta, eps=eps, weight_decay=wd, adam_b1=adam_b1, adam_b2=adam_b2, consistent_rms=rms
        ),
        {
            **LR,
            "beta": [0.0, 0.9, 0.95],
            "eps": [1e-8, 1e-3, 0.1],
            **WD,
            "adam_b1": [0.0, 0.9, 0.95],
            **{"adam_b2": B2["b2"]},
            "rms": [0.2, 0.5, 1.0],
        },
    ),
    "lookahead_adamw": (
        lambda lr, wd, step: adamlab.lookahead(adamlab.adamw(lr, weight_decay=wd), 2, step),
        {**LR, **WD, "step": [0.5, 0.1, 1.0]},
    ),
}


def _params():
    k = jax.random.split(jax.random.PRNGKey(0), 2)
    return {"w": jax.random.normal(k[0], (4, 3)), "bias": jax.random.normal(k[1], (3,))}


def _run(tx, params, grads):
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update(g, state, params)
        params = adamlab.apply_updates(params, updates)
    return params


@pytest.mark.parametrize("name", list(CASES))
def test_vmap_over_hyperparameters_equals_each_number(name):
    build, values = CASES[name]
    params = _params()
    grads = [jax.tree.map(lambda p, i=i: jnp.sin(p * (i + 1.0)) + 0.1 * i, params) for i in range(STEPS)]
    arrays = {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}
    cells = jax.jit(jax.vmap(lambda h: _run(build(**h), params, grads)))(arrays)
    finals = []
    for s in range(SETTINGS):
        expected = _run(build(**{k: v[s] for k, v in values.items()}), params, grads)
        for key in params:
            np.testing.assert_allclose(cells[key][s], expected[key], rtol=1e-4, atol=1e-6, err_msg=f"{name}, {s}")
        finals.append(expected["w"])
    assert not np.allclose(finals[0], finals[1])  # the settings differ, so a cell that ignored its value would fail


def _arrays(values):
    """One array per hyperparameter: int32 where the numbers are Python ints, float32 otherwise."""
    ints = lambda v: all(isinstance(x, int) and not isinstance(x, bool) for x in v)
    return {k: jnp.asarray(v, jnp.int32 if ints(v) else jnp.float32) for k, v in values.items()}


def _stream(params):
    return jax.tree.map(lambda p: jnp.stack([jnp.sin(p * (i + 1.0)) + 0.1 * i for i in range(STEPS)]), params)


@pytest.mark.parametrize("name", list(FAMILY_CASES))
def test_vmap_over_the_hyperparameters_of_each_family_member_equals_each_number(name):
    build, values = FAMILY_CASES[name]
    params = family.initial_params(name, _params())
    grads = _stream(_params())
    cells = jax.jit(jax.vmap(lambda h: testing.run(build(**h), params, grads)))(_arrays(values))
    # The three runs with the numbers in one program (each number is a constant of its own run).
    settings = [{k: v[s] for k, v in values.items()} for s in range(SETTINGS)]
    expected = jax.jit(lambda: [testing.run(build(**h), params, grads) for h in settings])()
    for s, run in enumerate(expected):
        for path, leaf in jax.tree_util.tree_flatten_with_path(run)[0]:
            cell = jax.tree_util.tree_flatten_with_path(cells)[0]
            got = dict(cell)[path][s]
            np.testing.assert_allclose(got, leaf, rtol=1e-4, atol=1e-6, err_msg=f"{name}, {s}, {path}")
    first, second = (jax.tree.leaves(run) for run in expected[:2])
    assert not all(np.allclose(a, b) for a, b in zip(first, second))  # a cell that ignored its value would fail


def test_every_family_member_has_its_hyperparameters_traced():
    assert set(FAMILY_CASES) == set(family.FAMILY)


# Numbers that decide the structure when the optimizer is built (a loop's length, which leaves are factored, a
# schedule's length) refuse an array, traced or not, with a TypeError naming them.
STRUCTURAL = {
    "adafactor.min_dim_size_to_factor": (
        lambda v: adamlab.adafactor(1e-2, min_dim_size_to_factor=v),
        "min_dim_size_to_factor",
    ),
    "muon.ns_steps": (lambda v: adamlab.muon(1e-2, ns_steps=v), "ns_steps"),
    "lookahead.sync_period": (lambda v: adamlab.lookahead(adamlab.adamw(1e-2), v, 0.5), "sync_period"),
    "schedule_free_adamw.warmup_steps": (lambda v: adamlab.schedule_free_adamw(1e-2, v), "warmup_steps"),
    "schedule_free_sgd.warmup_steps": (lambda v: adamlab.schedule_free_sgd(1e-2, v), "warmup_steps"),
}  # noisy_sgd's key takes a traced integer seed (tests/test_accumulators.py)


@pytest.mark.parametrize("name", list(STRUCTURAL))
def test_structural_hyperparameters_refuse_a_traced_value_by_name(name):
    build, argument = STRUCTURAL[name]
    params = {"w": jnp.ones((4, 3))}
    with pytest.raises(TypeError, match=argument):
        jax.vmap(lambda v: jax.tree.leaves(build(v).init(params)))(jnp.asarray([2, 3, 4], jnp.int32))
    build(2).init(params)  # the same number as a Python int is taken


def test_radam_with_an_array_b2_is_within_float32_rounding_of_the_float64_reference():
    """``rho_t`` for an array b2 avoids the cancellation of ``rho_inf - 2 t b2**t / (1 - b2**t)`` (which alone put
    the params 3e-5 off for 0.9999 here); with a number, Optax's arithmetic puts them 1e-2 off (see radam)."""
    params = _params()
    steps = 30
    grads = jax.tree.map(lambda p: jnp.stack([jnp.sin(p * (i + 1.0)) + 0.1 * i for i in range(steps)]), params)
    b2s = [0.999, 0.9995, 0.9999]
    build = lambda b2: adamlab.radam(1e-2, 0.9, b2, eps=0.0)  # the reference has no eps
    cells = jax.jit(jax.vmap(lambda b2: testing.run(build(b2), params, grads)))(jnp.asarray(b2s, jnp.float32))
    number = as_dict(jax.jit(lambda: testing.run(build(0.9999), params, grads))())
    for s, b2 in enumerate(b2s):
        # The reference at the cell's own b2: the float32 rounding of the number.
        expected = reference_adaptive.radam(as_dict(params), as_dict(grads), 1e-2, b2=float(np.float32(b2)))
        cell = as_dict(jax.tree.map(lambda x, s=s: x[s], cells))
        worst = max(float(np.max(np.abs(cell[k] - expected[k])) / np.max(np.abs(expected[k]))) for k in expected)
        assert worst <= 1e-6, (b2, worst)
    # Where a number's rho_t stands (so the tolerance above could fail): Optax's, as `optax.radam` computes it.
    worst = max(float(np.max(np.abs(number[k] - expected[k])) / np.max(np.abs(expected[k]))) for k in expected)
    assert worst > 1e-3, worst
