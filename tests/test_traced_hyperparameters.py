"""Every hyperparameter may be an array, traced included: `jax.vmap` over a vector of hyperparameters trains one
cell per value (what `python -m adamlab.demo grid` does), and each cell equals the transformation built with that
value as a Python number, to float32 rounding of the hyperparameter itself (``1 - b2`` from a float32 array
0.999 is 1.3e-5 off ``1 - 0.999`` taken in Python). Also what `optax.inject_hyperparams` relies on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamlab

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
