"""Eager (un-jitted) calls: per-call time of adamlab's transformations against Optax's, after the first call.

A student or a notebook calls ``tx.update`` without ``jax.jit``. Each case below times ``calls`` such calls
after ``warmup`` ones, on the tiny GPT tree of ``benchmarks.step`` (28 leaves), with fresh gradient values every
call, and counts the backend compilations those timed calls caused (0 is the goal: a ``lax.cond`` called
eagerly compiles its branches afresh on every call). Each (case, library) runs in a process of its own,
``--runs`` times; the best run's median is kept.

    python -m benchmarks.eager [--runs 2] [--json eager.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = ("clip_by_global_norm", "global_norm", "accumulate_gradients", "skip_nonfinite", "adamw", "adam")


def _transform(case: str, lib: str):
    """``(fn(grads, state, params) -> anything, init(params) -> state)`` for one case in one library."""
    import optax

    import adamlab

    if case == "global_norm":
        norm = optax.global_norm if lib == "optax" else adamlab.global_norm
        return (lambda g, s, p: norm(g)), (lambda p: None)
    make = {
        ("clip_by_global_norm", "optax"): lambda: optax.clip_by_global_norm(1.0),
        ("clip_by_global_norm", "adamlab"): lambda: adamlab.clip_by_global_norm(1.0),
        ("accumulate_gradients", "optax"): lambda: optax.MultiSteps(optax.adamw(1e-3), 4),
        ("accumulate_gradients", "adamlab"): lambda: adamlab.accumulate_gradients(adamlab.adamw(1e-3), 4),
        ("skip_nonfinite", "optax"): lambda: optax.apply_if_finite(optax.adamw(1e-3), 10),
        ("skip_nonfinite", "adamlab"): lambda: adamlab.skip_nonfinite(adamlab.adamw(1e-3)),
        ("adamw", "optax"): lambda: optax.adamw(1e-3),
        ("adamw", "adamlab"): lambda: adamlab.adamw(1e-3),
        ("adam", "optax"): lambda: optax.adam(1e-3),
        ("adam", "adamlab"): lambda: adamlab.adam(1e-3),
    }[case, lib]
    tx = make()
    return (lambda g, s, p: tx.update(g, s, p)), tx.init


def run_child(case: str, lib: str, warmup: int, calls: int) -> dict:
    import jax
    import numpy as np

    from benchmarks.step import SHAPES, make_tree

    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: (
            compiles.append(event) if event == "/jax/core/compile/backend_compile_duration" else None
        )
    )
    params = make_tree(SHAPES["tiny"])
    grads = [jax.tree.map(lambda p, i=i: p * (0.5 + i), params) for i in range(warmup + calls)]
    jax.block_until_ready(grads)
    fn, init = _transform(case, lib)
    state = init(params)
    for g in grads[:warmup]:
        out = fn(g, state, params)
        state = out[1] if isinstance(out, tuple) else state
    jax.block_until_ready(state)
    before = len(compiles)
    times = []
    for g in grads[warmup:]:
        t0 = time.perf_counter()
        out = fn(g, state, params)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t0)
        state = out[1] if isinstance(out, tuple) else state
    return {"ms": float(np.median(times)) * 1e3, "compiles": len(compiles) - before}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # "case:lib"
    args = ap.parse_args(argv)
    if args.child:
        case, lib = args.child.split(":")
        print(json.dumps(run_child(case, lib, args.warmup, args.calls)))
        return {}
    cases = [c for c in args.cases.split(",") if c]
    res: dict = {}
    print(f"{'case':<22}{'optax ms':>10}{'adamlab ms':>12}{'x optax':>9}{'compiles (optax/adamlab)':>27}", flush=True)
    for case in cases:
        best: dict = {}
        for r in range(args.runs):
            for lib in ("optax", "adamlab") if r % 2 == 0 else ("adamlab", "optax"):
                cmd = [
                    sys.executable,
                    "-m",
                    "benchmarks.eager",
                    "--warmup",
                    str(args.warmup),
                    "--calls",
                    str(args.calls),
                    "--child",
                    f"{case}:{lib}",
                ]
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"{case} {lib} failed:\n{done.stderr[-3000:]}")
                rec = json.loads(done.stdout.strip().splitlines()[-1])
                if lib not in best or rec["ms"] < best[lib]["ms"]:
                    best[lib] = rec
        ratio = best["adamlab"]["ms"] / best["optax"]["ms"]
        res[case] = {
            "optax_ms": round(best["optax"]["ms"], 3),
            "adamlab_ms": round(best["adamlab"]["ms"], 3),
            "x_optax": round(ratio, 2),
            "compiles": [best["optax"]["compiles"], best["adamlab"]["compiles"]],
        }
        print(
            f"{case:<22}{best['optax']['ms']:>10.3f}{best['adamlab']['ms']:>12.3f}{ratio:>9.2f}"
            f"{best['optax']['compiles']:>14}/{best['adamlab']['compiles']}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return res


if __name__ == "__main__":
    main()
