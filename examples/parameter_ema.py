"""Evaluation weights from a parameter EMA: ``theta_ema = decay * theta_ema + (1 - decay) * theta``.

Adam at a constant learning rate on small noisy minibatches keeps jittering around the optimum; the average
of the last ~``1 / (1 - decay)`` iterates sits closer to it. The EMA lives beside the optimizer, not in its
chain, and costs one extra copy of the weights.

    python examples/parameter_ema.py
"""

import os

import jax
import jax.numpy as jnp

import adamlab


def main(steps: int = 600, decay: float = 0.98) -> dict:
    kw, kx, kn = jax.random.split(jax.random.PRNGKey(0), 3)
    true_w = jax.random.normal(kw, (16, 1))
    x = jax.random.normal(kx, (4096, 16))
    y = x @ true_w + 0.5 * jax.random.normal(kn, (4096, 1))
    params = {"w": jnp.zeros((16, 1)), "bias": jnp.zeros(1)}

    def loss(params, xb, yb):
        return jnp.mean((xb @ params["w"] + params["bias"] - yb) ** 2)

    opt = adamlab.adam(0.05)
    ema = adamlab.parameter_ema(decay, bias_correction=True)  # no pull toward the zero initialisation
    opt_state, ema_state = opt.init(params), ema.init(params)

    @jax.jit
    def step(params, opt_state, ema_state, key):
        idx = jax.random.randint(key, (8,), 0, x.shape[0])  # tiny batches: noisy gradients
        grads = jax.grad(loss)(params, x[idx], y[idx])
        updates, opt_state = opt.update(grads, opt_state, params)
        params = adamlab.apply_updates(params, updates)
        eval_params, ema_state = ema.update(params, ema_state)
        return params, opt_state, ema_state, eval_params

    for key in jax.random.split(jax.random.PRNGKey(1), steps):
        params, opt_state, ema_state, eval_params = step(params, opt_state, ema_state, key)

    last, averaged = float(loss(params, x, y)), float(loss(eval_params, x, y))
    solution = jnp.linalg.lstsq(jnp.c_[x, jnp.ones(len(x))], y)[0]
    best = float(loss({"w": solution[:16], "bias": solution[16]}, x, y))
    print(f"full-data loss: last iterate {last:.4f}, EMA({decay}) weights {averaged:.4f}, least squares {best:.4f}")
    return {"last_iterate_loss": last, "ema_loss": averaged, "least_squares_loss": best}


if __name__ == "__main__":
    main(int(os.environ.get("ADAMLAB_EXAMPLE_STEPS", 600)))
