"""Probe: what an AdamW step costs on the CPU by layout, before adamlab.flat existed.

Times, in one process and against a copy bandwidth measured here: Optax ``adamw`` per leaf, adamlab ``adamw``
per leaf, the same adamlab chain on one flat buffer, and two ways to keep pytree params while the state is flat
(concatenate grads and params every step and slice the updates back; or keep a flat master copy and slice the new
params out). Every step function is jitted with its params and state donated.

    python -m benchmarks.probe_cpu_layouts [--scale 0.25]
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


def gpt_shapes(n_layer, d, vocab=50304, ctx=1024):
    s = [(vocab, d), (ctx, d), (d,), (d,)]
    for _ in range(n_layer):
        s += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
    return s


def timed(f, args, carry, n):
    args = list(args)
    ts = []
    for i in range(n + 2):
        t0 = time.perf_counter()
        out = f(*args)
        jax.block_until_ready(out)
        if i >= 2:
            ts.append(time.perf_counter() - t0)
        for j, k in enumerate(carry):
            args[k] = out[j]
    return float(np.median(ts))


def run_case(name, shapes, bw, steps):
    tx_o = optax.adamw(1e-3, weight_decay=0.1)
    tx_a = adamlab.adamw(1e-3, weight_decay=0.1)
    sizes = [int(np.prod(s)) for s in shapes]
    n = sum(sizes)
    floor = 28 * n / bw
    offs = np.cumsum([0] + sizes)
    flat_p = jax.random.normal(jax.random.PRNGKey(0), (n,)) * 0.02
    flat_g = flat_p * 0.5 + 1e-3

    def split(f):
        return [f[offs[i] : offs[i + 1]].reshape(s) for i, s in enumerate(shapes)]

    def concat(t):
        return jnp.concatenate([x.ravel() for x in t])

    tree_p, tree_g = split(flat_p), split(flat_g)
    r = {"params_M": n / 1e6, "leaves": len(shapes), "floor_ms": floor * 1e3}

    def per_leaf(tx):
        def step(p, s, g):
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        return step

    def packed(p, s, g):  # tree in, tree out, flat state: concat g and p, slice u
        fp, fg = concat(p), concat(g)
        u, s = tx_a.update(fg, s, fp)
        return [a + b for a, b in zip(p, split(u))], s

    def master(fp, s, g):  # flat master params, tree grads in, tree params out
        fg = concat(g)
        u, s = tx_a.update(fg, s, fp)
        fp = fp + u
        return fp, s, split(fp)

    variants = {
        "optax_tree": (per_leaf(tx_o), (jax.tree.map(jnp.copy, tree_p), tx_o.init(tree_p), tree_g)),
        "adamlab_tree": (per_leaf(tx_a), (jax.tree.map(jnp.copy, tree_p), tx_a.init(tree_p), tree_g)),
        "adamlab_flat": (per_leaf(tx_a), (flat_p + 0, tx_a.init(flat_p), flat_g)),
        "packed_concat_slice": (packed, (jax.tree.map(jnp.copy, tree_p), tx_a.init(flat_p), tree_g)),
        "flat_master_slice_out": (master, (flat_p + 0, tx_a.init(flat_p), tree_g)),
    }
    for vname, (fn, args) in variants.items():
        f = jax.jit(fn, donate_argnums=(0, 1))
        t0 = time.perf_counter()
        comp = f.lower(*args).compile()
        tc = time.perf_counter() - t0
        t = timed(comp, args, (0, 1), steps)
        r[vname] = {"compile_s": round(tc, 2), "step_ms": round(t * 1e3, 2), "x_floor": round(t / floor, 2)}
        print(name, vname, r[vname], flush=True)
    base = r["optax_tree"]["step_ms"]
    for vname in variants:
        r[vname]["vs_optax"] = round(r[vname]["step_ms"] / base, 2)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the width of every leaf")
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    x = jnp.ones((1 << 25,), jnp.float32)
    bw = 2 * x.nbytes / timed(jax.jit(lambda a: (a * 1.0001,), donate_argnums=0), (x,), (0,), 10)
    del x
    print(f"copy bandwidth {bw / 1e9:.1f} GB/s (read + write)")
    w = lambda n: max(1, int(n * a.scale))
    cases = {
        "gpt2-124m": gpt_shapes(12, w(768), vocab=w(50304)),
        "many-2000x64k": [(w(256), 256)] * 2000,
    }
    res = {"copy_bw_GBs": bw / 1e9}
    for name, shapes in cases.items():
        res[name] = run_case(name, shapes, bw, a.steps)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
