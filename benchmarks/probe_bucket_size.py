"""Probe: does the bucket size of the flat layout change the step time? (AdamW, float32, params and state donated.)

One tree of equal leaves is packed with several ``bucket_bytes``; the same chain runs on each packing, variants
interleaved round by round. Also times Optax's ``adamw`` on the tree, and reports each executable's temporary
memory (``compiled.memory_analysis()``).

    python -m benchmarks.probe_bucket_size [--leaves 64] [--size 262144]
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamlab
from adamlab import flat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--leaves", type=int, default=64)
    ap.add_argument("--size", type=int, default=262144)
    ap.add_argument("--caps-mb", default="1,4,16,64,1024")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    a = ap.parse_args()
    params = [jax.random.normal(jax.random.PRNGKey(i), (a.size,)) for i in range(a.leaves)]
    grads = [p * 0.5 for p in params]
    tx, tx_o = adamlab.adamw(1e-3, weight_decay=0.1), optax.adamw(1e-3, weight_decay=0.1)

    def step(t):
        def f(p, s, g):
            u, s = t.update(g, s, p)
            return adamlab.apply_updates(p, u), s

        return f

    cases = {"optax_tree": (step(tx_o), [jnp.copy(x) for x in params], tx_o.init(params), grads)}
    for mb in [int(c) for c in a.caps_mb.split(",")]:
        layout = flat.Layout.of(params, bucket_bytes=mb << 20, group=None)
        fp = layout.flatten(params)
        cases[f"flat_{mb}MB_{len(layout.buckets)}b"] = (step(tx), fp, tx.init(fp), layout.flatten(grads))
    comp, carry, times, res = {}, {}, {}, {}
    for k, (f, p, s, g) in cases.items():
        c = jax.jit(f, donate_argnums=(0, 1)).lower(p, s, g).compile()
        res[k] = {"temp_MB": round(c.memory_analysis().temp_size_in_bytes / 1e6, 3)}
        comp[k], carry[k], times[k] = c, c(p, s, g), []
    for _ in range(a.rounds):
        for k, c in comp.items():
            p, s = carry[k]
            g = cases[k][3]
            for _ in range(a.steps):
                t0 = time.perf_counter()
                p, s = c(p, s, g)
                jax.block_until_ready(p)
                times[k].append(time.perf_counter() - t0)
            carry[k] = (p, s)
    for k in comp:
        res[k]["step_ms"] = round(float(np.median(times[k])) * 1e3, 2)
    print(json.dumps({"backend": jax.default_backend(), "leaves": a.leaves, "size": a.size, **res}, indent=1))


if __name__ == "__main__":
    main()
