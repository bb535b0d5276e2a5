"""Probe: from what leaf size is packing small leaves into one buffer no longer worth its copies?

For trees of 256 equal float32 leaves of several sizes, times (jitted, params and state donated, variants
interleaved round by round so that load from other processes hits all of them alike):

- ``optax``: ``optax.adamw`` per leaf;
- ``per_leaf``: ``adamlab.flat.packed(adamw, solo_above=1)``: every leaf in a bucket of its own, no copies;
- ``packed_apply``: every leaf packed; updates split back and added per leaf (``apply_updates``);
- ``packed_split_params``: every leaf packed; ``p + u`` computed in the bucket, the new params split out.

The crossover of ``per_leaf`` and the packed variants sets ``adamlab.flat.default_solo_above`` for the backend.

    python -m benchmarks.probe_pack_threshold [--sizes 1024,4096,16384,65536] [--leaves 256]
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


def make_variants(tx_o, tx_a):
    def optax_step(p, s, g):
        u, s = tx_o.update(g, s, p)
        return optax.apply_updates(p, u), s

    def packed_step(ptx):
        def step(p, s, g):
            u, s = ptx.update(g, s, p)
            return adamlab.apply_updates(p, u), s

        return step

    def split_params_step(p, s, g):
        layout = flat.layout_for(g, solo_above=1 << 62)
        fp, fg = layout.flatten(p), layout.flatten(g)
        u, s = tx_a.update(fg, s, fp)
        return adamlab.apply_updates(fp, u).unflatten(), s

    every = flat.packed(tx_a, solo_above=1 << 62)
    return {
        "optax": (optax_step, tx_o.init),
        "per_leaf": (packed_step(flat.packed(tx_a, solo_above=1)), flat.packed(tx_a, solo_above=1).init),
        "packed_apply": (packed_step(every), every.init),
        "packed_split_params": (split_params_step, every.init),
    }


def measure(size, leaves, steps, rounds):
    ks = jax.random.split(jax.random.PRNGKey(0), leaves)
    params = [jax.random.normal(k, (size,)) for k in ks]
    grads = [p * 0.5 for p in params]
    variants = make_variants(optax.adamw(1e-3, weight_decay=0.1), adamlab.adamw(1e-3, weight_decay=0.1))
    compiled, carry, out = {}, {}, {}
    for name, (fn, init) in variants.items():
        p = [jnp.copy(x) for x in params]
        s = init(p)
        t0 = time.perf_counter()
        compiled[name] = jax.jit(fn, donate_argnums=(0, 1)).lower(p, s, grads).compile()
        out[name] = {"compile_s": round(time.perf_counter() - t0, 2), "times": []}
        carry[name] = compiled[name](p, s, grads)  # one warm-up step
    for _ in range(rounds):
        for name, c in compiled.items():
            p, s = carry[name]
            for _ in range(steps):
                t0 = time.perf_counter()
                p, s = c(p, s, grads)
                jax.block_until_ready(p)
                out[name]["times"].append(time.perf_counter() - t0)
            carry[name] = (p, s)
    base = float(np.median(out["optax"]["times"]))
    for r in out.values():
        t = float(np.median(r.pop("times")))
        r.update(step_ms=round(t * 1e3, 3), us_per_leaf=round(t * 1e6 / leaves, 2), vs_optax=round(t / base, 2))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1024,4096,16384,65536,262144")
    ap.add_argument("--leaves", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    res = {"backend": jax.default_backend(), "device": str(jax.devices()[0]), "leaves": a.leaves}
    for size in [int(s) for s in a.sizes.split(",")]:
        res[size] = measure(size, a.leaves, a.steps, a.rounds)
        print(size, json.dumps(res[size]), flush=True)


if __name__ == "__main__":
    main()
