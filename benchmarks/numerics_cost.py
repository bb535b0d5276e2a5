"""What the numerics cost per AdamW step: skip_nonfinite, bfloat16 state (nearest vs stochastic rounding), clipping.

One jitted, donated step per variant on the same float32 params (a few large matrices); variants are timed in
interleaved rounds, in rotating order, so that load from other processes hits all of them alike. Prints the
median step time and its ratio to plain ``adamw``.

    python benchmarks/numerics_cost.py                  # 4M params, 30 rounds
    python benchmarks/numerics_cost.py --params 16 --rounds 50
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import adamlab
from adamlab import numerics


def variants() -> dict:
    bf16 = jnp.bfloat16
    naive = adamlab.chain(
        adamlab.scale_by_ema(0.9, state_dtype=bf16),
        adamlab.bias_correct(0.9),
        adamlab.scale_by_rms(0.999, 1e-8, bias_correction=True, state_dtype=bf16, rounding="nearest"),
        adamlab.add_decoupled_weight_decay(1e-4),
        adamlab.scale_by_learning_rate(1e-3),
    )
    return {
        "adamw": adamlab.adamw(1e-3),
        "skip_nonfinite(adamw)": numerics.skip_nonfinite(adamlab.adamw(1e-3)),
        "clip+adamw": adamlab.chain(adamlab.clip_by_global_norm(1.0), adamlab.adamw(1e-3)),
        "adamw bf16 nearest": naive,
        "adamw bf16 stochastic": adamlab.adamw(1e-3, state_dtype=bf16),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=float, default=4, help="millions of parameters")
    p.add_argument("--rounds", type=int, default=30)
    args = p.parse_args(argv)
    n = int(args.params * 2**20)
    side = int(np.sqrt(n / 4))
    rng = np.random.default_rng(0)
    params = {f"w{i}": jnp.asarray(rng.normal(size=(side, side)), jnp.float32) for i in range(4)}
    grads = jax.tree.map(lambda x: 0.01 * x, params)

    steps, states, ps = {}, {}, {}
    for name, tx in variants().items():

        def step(p, s, g, tx=tx):
            u, s = tx.update(g, s, p)
            return adamlab.apply_updates(p, u), s

        steps[name] = jax.jit(step, donate_argnums=(0, 1))
        ps[name], states[name] = jax.tree.map(jnp.copy, params), tx.init(params)
        ps[name], states[name] = steps[name](ps[name], states[name], grads)  # compile
        jax.block_until_ready(ps[name])

    times = {name: [] for name in steps}
    names = list(steps)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            ps[name], states[name] = steps[name](ps[name], states[name], grads)
            jax.block_until_ready(ps[name])
            times[name].append(time.perf_counter() - t0)

    print(
        f"# {datetime.date.today()} {platform.node()} {jax.devices()[0].platform} x{os.cpu_count()} cores, "
        f"jax {jax.__version__}; {4 * side * side / 1e6:.1f}M float32 params, {args.rounds} interleaved rounds"
    )
    base = np.median(times["adamw"])
    for name in names:
        med = np.median(times[name])
        print(f"{name:>24}: {1000 * med:8.2f} ms  x{med / base:.2f}")


if __name__ == "__main__":
    main()
