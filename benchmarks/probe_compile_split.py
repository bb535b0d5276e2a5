"""Probe: where a per-leaf optimizer step's compile time goes: tracing (Python), lowering, XLA's compile.

Each variant runs in a process of its own (the compile order moved in-process ratios by up to 0.25), ``--repeats``
times in rotation; the best of each stage is kept. ``jax.jit(step).trace(...)`` times the Python side (every
check and tree map adamlab does while tracing), ``.lower()`` the emission of StableHLO and ``.compile()`` XLA.

    python -m benchmarks.probe_compile_split [--leaves 1000] [--shape 64x64 | --tree gpt-d384] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_one(variant: str, leaves: int, shape: tuple[int, ...], tree: str | None) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    import adamlab
    from adamlab.step import update_step
    from benchmarks.step import SHAPES

    shapes = SHAPES[tree] if tree else [shape] * leaves
    params = {f"p{i:04d}": jnp.zeros(s, jnp.float32) for i, s in enumerate(shapes)}
    theirs = {"optax": lambda: optax.adamw(1e-3, weight_decay=0.1), "optax-adam": lambda: optax.adam(1e-3)}
    ours = {"tree": lambda: adamlab.adamw(1e-3, weight_decay=0.1), "adam": lambda: adamlab.adam(1e-3)}
    if variant in theirs:
        tx = theirs[variant]()

        def step(p, s, g):
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        step = jax.jit(step, donate_argnums=(0, 1))
    else:
        tx = ours[variant]()
        step = update_step(tx)
    state = tx.init(params)
    t0 = time.perf_counter()
    traced = step.trace(params, state, params)
    t1 = time.perf_counter()
    lowered = traced.lower()
    t2 = time.perf_counter()
    lowered.compile()
    t3 = time.perf_counter()
    return {"trace_s": t1 - t0, "lower_s": t2 - t1, "compile_s": t3 - t2, "eqns": len(traced.jaxpr.eqns)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leaves", type=int, default=1000)
    ap.add_argument("--shape", default="64x64")
    ap.add_argument("--tree", default=None, help="a shape list of benchmarks.step (e.g. gpt-d384) instead")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--variants", default="optax,tree,optax-adam,adam")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    shape = tuple(int(d) for d in args.shape.split("x"))
    if args.child:
        print(json.dumps(run_one(args.child, args.leaves, shape, args.tree)))
        return
    variants = args.variants.split(",")
    best: dict = {}
    for r in range(args.repeats):
        for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.probe_compile_split",
                "--leaves",
                str(args.leaves),
                "--shape",
                args.shape,
                *(["--tree", args.tree] if args.tree else []),
                "--child",
                v,
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout
            rec = json.loads(out.strip().splitlines()[-1])
            best[v] = {k: min(x, best.get(v, rec)[k]) for k, x in rec.items()}
    what = args.tree or f"{args.leaves} leaves of {args.shape}"
    print(f"{what}, best of {args.repeats} runs, one process each")
    print(f"{'variant':<12}{'trace s':>9}{'lower s':>9}{'compile s':>11}{'jaxpr eqns':>12}")
    for v, rec in best.items():
        print(f"{v:<12}{rec['trace_s']:>9.3f}{rec['lower_s']:>9.3f}{rec['compile_s']:>11.3f}{rec['eqns']:>12}")


if __name__ == "__main__":
    main()
