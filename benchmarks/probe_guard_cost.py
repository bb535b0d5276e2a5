"""Probe: what the second moment's overflow guard costs a per-leaf AdamW step and its compile, against Optax.

Until 2026-11-30 every moment and the update carried overflow selects; this probe measured them at 1.18-1.29x
Optax's step and 3-4x its compile (benchmarks/RESULTS.md), and they went. The one guard left,
``saturate=True`` (`adamlab.moments._saturated`: one compare and one select per element of ``v``), is opt-in
because of what this probe measures. On a tree of many small leaves the step is bound by per-leaf kernels, so
their size shows. Each variant runs in a process of its own (within one process, the order in which variants
are compiled moved step times by up to 25%), repeated ``--repeats`` times in rotation:

- ``optax``: ``optax.adamw`` on the tree;
- ``adamlab``: ``adamlab.adamw`` on the tree (the default: no guard);
- ``saturate``: ``adamlab.adamw(..., saturate=True)``.

    python -m benchmarks.probe_guard_cost [--leaves 500] [--shape 32x256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

VARIANTS = ("optax", "adamlab", "saturate")


def run_one(variant: str, leaves: int, shape: tuple[int, ...], rounds: int) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    import adamlab
    from adamlab.step import update_step

    keys = jax.random.split(jax.random.PRNGKey(1), leaves)
    params = {f"p{i:04d}": jax.random.normal(k, shape, jnp.float32) * 0.02 for i, k in enumerate(keys)}
    grads = jax.tree.map(lambda x: x * 0.5 + 0.01, params)
    if variant == "optax":
        tx = optax.adamw(1e-3, weight_decay=0.1)

        def step(p, s, g):
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        step, state = jax.jit(step, donate_argnums=(0, 1)), tx.init(params)
    else:
        tx = adamlab.adamw(1e-3, weight_decay=0.1, saturate=variant == "saturate")
        step, state = update_step(tx), tx.init(params)
    params = jax.tree.map(jnp.copy, params)
    t0 = time.perf_counter()
    params, state = jax.block_until_ready(step(params, state, grads))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(5):
            params, state = step(params, state, grads)
        jax.block_until_ready(params)
        times.append((time.perf_counter() - t0) / 5)
    return {"compile_s": compile_s, "step_ms": float(np.median(times)) * 1e3}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaves", type=int, default=500)
    ap.add_argument("--shape", default="32x256")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split("x"))
    if args.variant:
        print(json.dumps(run_one(args.variant, args.leaves, shape, args.rounds)))
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    results = {v: [] for v in VARIANTS}
    for r in range(args.repeats):
        for v in VARIANTS[r % 3 :] + VARIANTS[: r % 3]:
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.probe_guard_cost",
                "--variant",
                v,
                "--leaves",
                str(args.leaves),
                "--shape",
                args.shape,
                "--rounds",
                str(args.rounds),
            ]
            out = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, check=True).stdout
            results[v].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{args.leaves} leaves of {shape}, one process per run, {args.repeats} runs each")
    for v, runs in results.items():
        steps = [r["step_ms"] for r in runs]
        comp = [r["compile_s"] for r in runs]
        ratio = [s / o["step_ms"] for s, o in zip(steps, results["optax"])]
        print(
            f"{v:10} step {min(steps):6.2f}–{max(steps):6.2f} ms (x optax {min(ratio):.2f}–{max(ratio):.2f})  "
            f"compile {min(comp):5.2f}–{max(comp):5.2f} s"
        )


if __name__ == "__main__":
    main()
