"""Logging what the optimizer does to each weight from inside a jitted training loop (`adamlab.diagnostics`).

Trains the same MLP with Adam+L2 and with AdamW (same lr and wd) and logs, every few steps, the 5/50/95%
points of the per-weight effective decay and the update/weight RMS ratio of each matrix. Under AdamW the
decay is ``lr * wd`` for every weight; under Adam+L2 it is ``lr * wd / (sqrt(v_hat) + eps)``, spread over
orders of magnitude.

    python examples/log_diagnostics.py
"""

import os

import jax
import jax.numpy as jnp

import adamlab
from adamlab import diagnostics


def main(steps: int = 300, lr: float = 3e-3, wd: float = 0.05) -> dict:
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    x = jax.random.normal(k[0], (512, 8))
    y = jnp.sin(x[:, :3].sum(axis=1, keepdims=True))
    init = {
        "l1": {"w": jax.random.normal(k[1], (8, 64)) / jnp.sqrt(8), "bias": jnp.zeros(64)},
        "l2": {"w": jax.random.normal(k[2], (64, 64)) / 8, "bias": jnp.zeros(64)},
        "out": {"w": jax.random.normal(k[3], (64, 1)) / 8, "bias": jnp.zeros(1)},
    }

    def loss(p):
        h = jax.nn.gelu(x @ p["l1"]["w"] + p["l1"]["bias"])
        h = jax.nn.gelu(h @ p["l2"]["w"] + p["l2"]["bias"])
        return jnp.mean((h @ p["out"]["w"] + p["out"]["bias"] - y) ** 2)

    mask = adamlab.weight_decay_mask
    out = {}
    for name, opt, coupled in [
        ("Adam+L2", adamlab.adam(lr, weight_decay=wd, mask=mask), True),
        ("AdamW", adamlab.adamw(lr, weight_decay=wd, mask=mask), False),
    ]:

        @jax.jit
        def step(params, state, opt=opt, coupled=coupled):
            value, grads = jax.value_and_grad(loss)(params)
            updates, state = opt.update(grads, state, params)
            decay = diagnostics.effective_decay(state, params, lr, wd, coupled=coupled, mask=mask)
            logs = {
                "loss": value,
                "decay_q05_q50_q95": diagnostics.tree_quantiles(decay, [0.05, 0.5, 0.95], mask=mask),
                "update_ratio": {k: v["w"] for k, v in diagnostics.update_weight_ratio(updates, params).items()},
            }
            return adamlab.apply_updates(params, updates), state, logs

        params, state = init, opt.init(init)
        for i in range(steps):
            params, state, logs = step(params, state)
            if (i + 1) % max(1, steps // 3) == 0:
                q = [f"{v:.2e}" for v in logs["decay_q05_q50_q95"]]
                ratios = " ".join(f"{k} {float(v):.1e}" for k, v in logs["update_ratio"].items())
                print(
                    f"{name:8} step {i + 1:4d} loss {float(logs['loss']):.4f}  effective decay 5/50/95%: "
                    f"{' '.join(q)}  update/weight: {ratios}"
                )
        out[name] = {"loss": float(logs["loss"]), "decay_quantiles": [float(v) for v in logs["decay_q05_q50_q95"]]}
    return out


if __name__ == "__main__":
    main(int(os.environ.get("ADAMLAB_EXAMPLE_STEPS", 300)))
