"""A jit-compiled training loop: a one-hidden-layer MLP fits y = sin(x0 + x1) with AdamW.

python examples/mlp_regression.py            # 500 steps
ADAMLAB_EXAMPLE_STEPS=50 python examples/mlp_regression.py
"""

import os

import jax
import jax.numpy as jnp

import adamlab


def main(steps: int = 500) -> dict:
    kx, k1, k2 = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.uniform(kx, (512, 2), minval=-2, maxval=2)
    y = jnp.sin(x[:, :1] + x[:, 1:])
    params = {
        "hidden": {"w": jax.random.normal(k1, (2, 64)) * 0.5, "bias": jnp.zeros(64)},
        "out": {"w": jax.random.normal(k2, (64, 1)) * 0.1, "bias": jnp.zeros(1)},
    }

    def loss(params):
        h = jnp.tanh(x @ params["hidden"]["w"] + params["hidden"]["bias"])
        return jnp.mean((h @ params["out"]["w"] + params["out"]["bias"] - y) ** 2)

    schedule = adamlab.schedules.warmup_cosine_decay(0.0, 1e-2, steps // 10, steps)
    opt = adamlab.adamw(schedule, weight_decay=1e-4, mask=adamlab.weight_decay_mask)  # no decay on biases
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        return adamlab.apply_updates(params, updates), state, value

    first = None
    for i in range(steps):
        params, state, value = step(params, state)
        first = float(value) if first is None else first
        if (i + 1) % max(1, steps // 5) == 0:
            print(f"step {i + 1:4d}  loss {float(value):.5f}")
    return {"first_loss": first, "final_loss": float(loss(params))}


if __name__ == "__main__":
    print(main(int(os.environ.get("ADAMLAB_EXAMPLE_STEPS", 500))))
