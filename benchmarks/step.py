"""Optimizer step benchmark: adamlab's per-leaf, pytree and flat paths against Optax, in one process or one per run.

An AdamW step in float32 must read params, grads and both moments and write params and both moments: 28 bytes
per parameter. The *floor* is that traffic over the copy bandwidth this script measures first (a donated
``x * 1.0001`` over one large buffer: read + write). For each named tree shape and each variant it reports the
compile time, the median step time (variants interleaved round by round, in rotating order, so that load from
other processes hits all of them alike), the executable's memory (arguments, outputs, temporaries, from
``compiled.memory_analysis()``; and the device's peak where the backend reports one), and the ratio of each
step time to Optax's and to the floor. Every step is jitted with params and state donated; grads are reused.

Variants: ``optax`` (``optax.adamw`` on the tree), ``pytree`` (``adamlab.flat.packed(adamlab.adamw(...))`` on the
tree), ``flat`` (``adamlab.adamw`` on the `Flat` buffers), and, on request, ``tree`` (``adamlab.adamw`` on the
tree, without packing: the path an Optax user takes first), ``adam`` / ``optax-adam`` (``adam`` of each library)
and ``adam-l2`` / ``optax-adam-l2`` (adamlab's ``adam(weight_decay=...)`` against Optax's
``chain(add_decayed_weights, adam)``), and the Adam family ``amsgrad``, ``nadam``, ``ademamix``, ``lion`` (each
against ``optax-<name>``), ``adam_atan2``, ``cautious_adamw`` and ``stable_adamw`` (against ``optax``, Optax's
AdamW: Optax has none of them), and ``tree-int8`` / ``flat-int8`` / ``pytree-int8``
(``adamw(state_dtype=jnp.int8)``, against ``tree`` / ``flat`` / ``pytree``: 8-bit moments against float32 ones).
Each variant's ``x optax`` is against its counterpart.

``--isolate`` runs every (shape, variant) in a process of its own, ``--runs`` times in rotating order, and
reports for each variant the best of its runs' median step times and of its compile times, and both as ratios
to its Optax counterpart. Use it to compare compile times, or step times across libraries: within one process
the order in which variants were compiled moved step-time ratios by up to 0.25.

    python -m benchmarks.step                                  # the backend's default shapes and scale
    python -m benchmarks.step --shapes gpt2-124m,many-2000x64k --scale 1 --json step.json
    python benchmarks/step.py --shapes tiny --variants optax,pytree,flat,tree
    python -m benchmarks.step --isolate --shapes gpt-d384,many-1000x4k,many-2000x8k --scale 1 --max-leaves 0 \
        --variants optax,tree,optax-adam,adam,optax-adam-l2,adam-l2,flat --runs 2

``--scale`` multiplies the first dimension of every leaf and ``--max-leaves`` keeps the first N leaves. The CPU
defaults (scale 0.125, at most 500 leaves, no ``gpt-1.3b``) keep a 2-core run near two minutes, most of it spent
compiling per-leaf programs; on a GPU the defaults are the real shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime

import jax
import jax.numpy as jnp
import numpy as np
import optax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, ROOT)

import adamlab  # noqa: E402
from adamlab import flat  # noqa: E402
from adamlab.step import update_step  # noqa: E402

BYTES_PER_PARAM = 28  # float32 AdamW: read p, g, m, v; write p, m, v
LR, WD = 1e-3, 0.1


def gpt_shapes(n_layer: int, d: int, vocab: int = 50304, ctx: int = 2048) -> list[tuple[int, ...]]:
    """Leaf shapes of a GPT: embeddings, final norm, and per layer two norms, QKV, projection and MLP."""
    s = [(vocab, d), (ctx, d), (d,), (d,)]
    for _ in range(n_layer):
        s += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
    return s


SHAPES = {
    "tiny": gpt_shapes(2, 64, vocab=512, ctx=64),
    "gpt-d384": gpt_shapes(12, 384),
    "many-1000x4k": [(64, 64)] * 1000,
    "four-1m": [(1024, 1024)] * 4,
    "many-2000x8k": [(32, 256)] * 2000,
    "gpt2-124m": gpt_shapes(12, 768),
    "gpt-1.3b": gpt_shapes(24, 2048),
    "many-2000x64k": [(256, 256)] * 2000,
}
DEFAULTS = {  # backend -> (shapes, scale, max leaves)
    "cpu": ("tiny,gpt2-124m,many-2000x64k", 0.125, 500),
    "gpu": ("tiny,gpt2-124m,many-2000x64k,gpt-1.3b", 1.0, None),
}
# The Adam family (issue 13): each against Optax's own where Optax has it; adam_atan2 and cautious against AdamW.
FAMILY = ("amsgrad", "nadam", "ademamix", "lion")


def _lookahead_adamw(lib):
    return lib.lookahead(lib.adamw(LR, weight_decay=WD), 5, 0.5)  # the paper's k = 5, alpha = 0.5


# The rest of Optax's first-order family (issue 22): name -> (adamlab's, Optax's), the same arguments on both sides:
# the library defaults, the script's LR, and its WD wherever both take a weight decay. noisy_sgd draws from the
# same key on both sides; lookahead wraps AdamW and steps LookaheadParams; schedule_free wraps Adam without
# momentum, as its paper does. rprop is adamlab's default (the paper's first step, Optax's lags one step behind).
NEW_FAMILY = {
    "adabelief": (lambda: adamlab.adabelief(LR), lambda: optax.adabelief(LR)),
    "adadelta": (lambda: adamlab.adadelta(LR, weight_decay=WD), lambda: optax.adadelta(LR, weight_decay=WD)),
    "adafactor": (
        lambda: adamlab.adafactor(LR, weight_decay_rate=WD),
        lambda: optax.adafactor(LR, weight_decay_rate=WD),
    ),
    "adagrad": (lambda: adamlab.adagrad(LR), lambda: optax.adagrad(LR)),
    "adamax": (lambda: adamlab.adamax(LR), lambda: optax.adamax(LR)),
    "adamaxw": (lambda: adamlab.adamaxw(LR, weight_decay=WD), lambda: optax.adamaxw(LR, weight_decay=WD)),
    "adan": (lambda: adamlab.adan(LR, weight_decay=WD), lambda: optax.adan(LR, weight_decay=WD)),
    "lamb": (lambda: adamlab.lamb(LR, weight_decay=WD), lambda: optax.lamb(LR, weight_decay=WD)),
    "lars": (lambda: adamlab.lars(LR, weight_decay=WD), lambda: optax.lars(LR, weight_decay=WD)),
    "novograd": (lambda: adamlab.novograd(LR, weight_decay=WD), lambda: optax.novograd(LR, weight_decay=WD)),
    "radam": (lambda: adamlab.radam(LR), lambda: optax.radam(LR)),
    "yogi": (lambda: adamlab.yogi(LR), lambda: optax.yogi(LR)),
    "rprop": (lambda: adamlab.rprop(LR), lambda: optax.rprop(LR)),
    "sign_sgd": (lambda: adamlab.sign_sgd(LR), lambda: optax.sign_sgd(LR)),
    "signum": (lambda: adamlab.signum(LR), lambda: optax.signum(LR)),
    "noisy_sgd": (lambda: adamlab.noisy_sgd(LR, key=0), lambda: optax.noisy_sgd(LR, key=0)),
    "optimistic_adam_v2": (lambda: adamlab.optimistic_adam_v2(LR), lambda: optax.optimistic_adam_v2(LR)),
    "lookahead": (lambda: _lookahead_adamw(adamlab), lambda: _lookahead_adamw(optax)),
    "adopt": (lambda: adamlab.adopt(LR), lambda: optax.contrib.adopt(LR)),
    "schedule_free": (
        lambda: adamlab.schedule_free(adamlab.adam(LR, b1=0.0), LR),
        lambda: optax.contrib.schedule_free(optax.adam(LR, b1=0.0), LR),
    ),
    "schedule_free_adamw": (
        lambda: adamlab.schedule_free_adamw(LR, weight_decay=WD),
        lambda: optax.contrib.schedule_free_adamw(LR, weight_decay=WD),
    ),
    "schedule_free_sgd": (
        lambda: adamlab.schedule_free_sgd(LR, weight_decay=WD),
        lambda: optax.contrib.schedule_free_sgd(LR, weight_decay=WD),
    ),
    "simplified_ademamix": (
        lambda: adamlab.simplified_ademamix(LR, weight_decay=WD),
        lambda: optax.contrib.simplified_ademamix(LR, weight_decay=WD),
    ),
    # default dimension numbers on both sides: Muon on every 2-D leaf, Adam on the rest
    "muon": (lambda: adamlab.muon(LR, weight_decay=WD), lambda: optax.contrib.muon(LR, weight_decay=WD)),
}
VARIANTS = (
    "optax",
    "pytree",
    "flat",
    "tree",
    "optax-adam",
    "adam",
    "optax-adam-l2",
    "adam-l2",
    *FAMILY,
    *(f"optax-{n}" for n in FAMILY),
    "adam_atan2",
    "cautious_adamw",
    "stable_adamw",
    "tree-int8",
    "flat-int8",
    "pytree-int8",
    *NEW_FAMILY,
    *(f"optax-{n}" for n in NEW_FAMILY),
)
BASELINE = {
    "adam": "optax-adam",
    "adam-l2": "optax-adam-l2",
    "optax-adam": "optax-adam",
    "optax-adam-l2": "optax-adam-l2",
    **{n: f"optax-{n}" for n in FAMILY},
    **{f"optax-{n}": f"optax-{n}" for n in FAMILY},
    **{n: f"optax-{n}" for n in NEW_FAMILY},
    **{f"optax-{n}": f"optax-{n}" for n in NEW_FAMILY},
    "tree-int8": "tree",
    "flat-int8": "flat",  # 8-bit moments against float32 ones, same path
    "pytree-int8": "pytree",
}  # every other variant is measured against "optax" (optax.adamw)


def scaled(shapes, scale: float) -> list[tuple[int, ...]]:
    return [(max(1, round(s[0] * scale)), *s[1:]) for s in shapes]


def make_tree(shapes, seed: int = 1) -> dict:
    keys = jax.random.split(jax.random.PRNGKey(seed), len(shapes))
    return {f"p{i:04d}": jax.random.normal(k, s, jnp.float32) * 0.02 for i, (k, s) in enumerate(zip(keys, shapes))}


def copy_bandwidth(n: int, reps: int = 20) -> float:
    """Bytes per second of a donated elementwise pass over `n` float32 (read + write), the best of `reps`.

    The best, not the median: the floor is what the memory can do, and on a shared machine a median
    measured at a busy moment gave a floor above the optimizer steps timed a minute later.
    """
    f = jax.jit(lambda a: a * 1.0001, donate_argnums=0)
    x = jnp.ones((n,), jnp.float32)
    x = f(x)
    x.block_until_ready()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        x = f(x)
        x.block_until_ready()
        ts.append(time.perf_counter() - t0)
    nbytes = x.nbytes
    del x
    return 2 * nbytes / float(np.min(ts))


def device_peak() -> int | None:
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # backends without memory statistics raise or return None
        return None
    return None if not stats else stats.get("peak_bytes_in_use")


def _fresh(tree):
    """A private copy of every array: no donated buffer may be another argument's (Optax's schedule-free init
    keeps the params themselves as ``z``, ``LookaheadParams.init_synced`` holds one tree twice)."""
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def _optax_step(tx):
    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    return jax.jit(step, donate_argnums=(0, 1))


def build_new_family(variant: str, params, grads):
    """(step, params, state, grads) for an issue-22 variant or its Optax counterpart."""
    name = variant.removeprefix("optax-")
    ours, theirs = NEW_FAMILY[name]
    lib = optax if variant.startswith("optax-") else adamlab
    tx = theirs() if lib is optax else ours()
    p = _fresh(params)
    if name == "lookahead":  # the step carries fast and slow weights; the gradients are taken at the fast ones
        p = lib.LookaheadParams(fast=p, slow=_fresh(params))
    step = _optax_step(tx) if lib is optax else update_step(tx)
    return step, p, _fresh(tx.init(p)), grads


def state_bytes(txs: dict, params) -> dict:
    """Bytes of ``tx.init(params)`` per parameter for each named transformation (shapes only: nothing is
    allocated)."""
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    out = {}
    for name, tx in txs.items():
        leaves = jax.tree.leaves(jax.eval_shape(tx.init, params))
        total = sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in leaves)
        out[name] = {"bytes": total, "bytes_per_param": total / n}
    return {"params": n, "state": out}


def demo_state_bytes() -> dict:
    """Adafactor's state against AdamW's on the demo's default model (both at lr 1e-3, the defaults otherwise)."""
    from adamlab.demo import model, train

    params = model.init_params(train.TrainConfig().model_config(), 0)
    res = state_bytes({"adafactor": adamlab.adafactor(1e-3), "adamw": adamlab.adamw(1e-3)}, params)
    s = res["state"]
    res["adafactor_over_adamw"] = s["adafactor"]["bytes"] / s["adamw"]["bytes"]
    return res


def build(variant: str, params, grads, args):
    """(step, params, state, grads) for one variant, the params a private copy (they will be donated)."""
    if variant.removeprefix("optax-") in NEW_FAMILY:
        return build_new_family(variant, params, grads)
    theirs = {
        "optax": lambda: optax.adamw(LR, weight_decay=WD),
        "optax-adam": lambda: optax.adam(LR),
        "optax-adam-l2": lambda: optax.chain(optax.add_decayed_weights(WD), optax.adam(LR)),
        "optax-amsgrad": lambda: optax.amsgrad(LR),
        "optax-nadam": lambda: optax.nadam(LR),
        "optax-ademamix": lambda: optax.contrib.ademamix(LR, weight_decay=WD),
        "optax-lion": lambda: optax.lion(LR, weight_decay=WD),
    }
    if variant in theirs:
        tx = theirs[variant]()

        def step(p, s, g):
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        return jax.jit(step, donate_argnums=(0, 1)), jax.tree.map(jnp.copy, params), tx.init(params), grads
    ours = {
        "tree": lambda: adamlab.adamw(LR, weight_decay=WD),
        "adam": lambda: adamlab.adam(LR),
        "adam-l2": lambda: adamlab.adam(LR, weight_decay=WD),
        "amsgrad": lambda: adamlab.amsgrad(LR),
        "nadam": lambda: adamlab.nadam(LR),
        "ademamix": lambda: adamlab.ademamix(LR, weight_decay=WD),
        "lion": lambda: adamlab.lion(LR, weight_decay=WD),
        "adam_atan2": lambda: adamlab.adam_atan2(LR, weight_decay=WD),
        "cautious_adamw": lambda: adamlab.cautious(adamlab.adamw(LR, weight_decay=WD)),
        "stable_adamw": lambda: adamlab.stable_adamw(LR, weight_decay=WD),
        "tree-int8": lambda: adamlab.adamw(LR, weight_decay=WD, state_dtype=jnp.int8),
    }
    if variant in ours:
        tx = ours[variant]()
        return update_step(tx), jax.tree.map(jnp.copy, params), tx.init(params), grads
    inner = adamlab.adamw(LR, weight_decay=WD, state_dtype=jnp.int8 if variant.endswith("-int8") else None)
    if variant in ("pytree", "pytree-int8"):
        tx = flat.packed(inner, solo_above=args.solo_above, bucket_bytes=args.bucket_bytes)
        return update_step(tx), jax.tree.map(jnp.copy, params), tx.init(params), grads
    if variant in ("flat", "flat-int8"):
        layout = flat.Layout.of(params, bucket_bytes=args.bucket_bytes)
        fp = layout.flatten(params)
        return update_step(inner), fp, inner.init(fp), layout.flatten(grads)
    raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


def run_shape(name: str, shapes, variants, bw: float, args) -> dict:
    params = make_tree(shapes)
    grads = jax.tree.map(lambda p: p * 0.5 + 1e-3, params)
    n = sum(int(np.prod(s)) for s in shapes)
    floor = BYTES_PER_PARAM * n / bw
    out = {"params_M": round(n / 1e6, 3), "leaves": len(shapes), "floor_ms": round(floor * 1e3, 4), "variants": {}}
    live = {}
    for v in variants:
        step, p, s, g = build(v, params, grads, args)
        t0 = time.perf_counter()
        compiled = step.lower(p, s, g).compile()
        compile_s = time.perf_counter() - t0
        mem = compiled.memory_analysis()
        p, s = compiled(p, s, g)  # warm-up
        jax.block_until_ready(p)
        rec = {"compile_s": round(compile_s, 3), "times": []}
        if mem is not None:
            rec["memory_MB"] = {
                "arguments": round(mem.argument_size_in_bytes / 1e6, 2),
                "outputs": round(mem.output_size_in_bytes / 1e6, 2),
                "aliased": round(mem.alias_size_in_bytes / 1e6, 2),
                "temporaries": round(mem.temp_size_in_bytes / 1e6, 2),
            }
        live[v] = [compiled, p, s, g]
        out["variants"][v] = rec
    for r in range(args.rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for v in order:
            compiled, p, s, g = live[v]
            for _ in range(args.steps):
                t0 = time.perf_counter()
                p, s = compiled(p, s, g)
                jax.block_until_ready(p)
                out["variants"][v]["times"].append(time.perf_counter() - t0)
            live[v][1:3] = [p, s]
    peak = device_peak()
    if peak is not None:
        out["device_peak_MB_so_far"] = round(peak / 1e6, 1)
    for rec in out["variants"].values():
        ts = np.asarray(rec.pop("times"))
        rec["step_ms"] = round(float(np.median(ts)) * 1e3, 3)
        rec["step_ms_min"] = round(float(ts.min()) * 1e3, 3)
        rec["x_floor"] = round(float(np.median(ts)) / floor, 2)
    add_ratios(out["variants"])
    del live
    return out


def add_ratios(recs: dict) -> None:
    """``x_optax`` (step) and ``compile_x_optax`` for every variant whose Optax counterpart was measured."""
    for v, rec in recs.items():
        base = recs.get(BASELINE.get(v, "optax"))
        if base is not None:
            rec["x_optax"] = round(rec["step_ms"] / base["step_ms"], 3)
            rec["compile_x_optax"] = round(rec["compile_s"] / base["compile_s"], 3)


def run_child(name: str, shapes, variant: str, args) -> dict:
    """One variant on one shape, alone in this process: compile time and the median of its step times."""
    params = make_tree(shapes)
    grads = jax.tree.map(lambda p: p * 0.5 + 1e-3, params)
    step, p, s, g = build(variant, params, grads, args)
    t0 = time.perf_counter()
    compiled = step.lower(p, s, g).compile()
    compile_s = time.perf_counter() - t0
    p, s = compiled(p, s, g)
    jax.block_until_ready(p)
    times = []
    for _ in range(args.steps * args.rounds):
        t0 = time.perf_counter()
        p, s = compiled(p, s, g)
        jax.block_until_ready(p)
        times.append(time.perf_counter() - t0)
    return {"compile_s": compile_s, "step_ms": float(np.median(times)) * 1e3}


def run_isolated(name: str, shapes, variants, bw: float, args, argv) -> dict:
    """Every variant in a process of its own, `args.runs` times in rotating order; the best run of each."""
    n = sum(int(np.prod(s)) for s in shapes)
    floor = BYTES_PER_PARAM * n / bw
    runs: dict = {v: [] for v in variants}
    for r in range(args.runs):
        for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
            cmd = [sys.executable, "-m", "benchmarks.step", *argv, "--child", f"{name}:{v}"]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{name} {v} failed:\n{done.stderr[-3000:]}")
            runs[v].append(json.loads(done.stdout.strip().splitlines()[-1]))
    recs = {}
    for v, rs in runs.items():
        step_ms = min(r["step_ms"] for r in rs)
        recs[v] = {
            "compile_s": round(min(r["compile_s"] for r in rs), 3),
            "step_ms": round(step_ms, 3),
            "x_floor": round(step_ms / 1e3 / floor, 2),
            "runs": [{k: round(x, 4) for k, x in r.items()} for r in rs],
        }
    add_ratios(recs)
    return {
        "params_M": round(n / 1e6, 3),
        "leaves": len(shapes),
        "floor_ms": round(floor * 1e3, 4),
        "runs": args.runs,
        "variants": recs,
    }


def main(argv=None) -> dict:
    backend = jax.default_backend()
    shapes_default, scale_default, leaves_default = DEFAULTS.get(backend, DEFAULTS["gpu"])
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--shapes", default=shapes_default, help=f"comma list of {', '.join(SHAPES)}")
    ap.add_argument("--scale", type=float, default=scale_default, help="multiplies the first dimension of each leaf")
    ap.add_argument(
        "--max-leaves",
        type=int,
        default=leaves_default,
        help="keep only the first N leaves of each shape (CPU default 500: per-leaf compiles are slow)",
    )
    ap.add_argument("--variants", default="optax,pytree,flat", help=f"comma list of {', '.join(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=3 if backend == "cpu" else 10, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3 if backend == "cpu" else 5)
    ap.add_argument("--solo-above", type=int, default=None, help="packed's solo_above (default: the backend's)")
    ap.add_argument("--bucket-bytes", type=int, default=flat.DEFAULT_BUCKET_BYTES)
    ap.add_argument("--copy-elems", type=int, default=(1 << 25) if backend == "cpu" else (1 << 29))
    ap.add_argument("--json", default=None, help="write the results to this file")
    ap.add_argument("--isolate", action="store_true", help="one process per shape, variant and run")
    ap.add_argument("--runs", type=int, default=2, help="with --isolate: runs of each variant (best one kept)")
    ap.add_argument(
        "--state-bytes",
        action="store_true",
        help="print the optimizer-state bytes per parameter of adafactor and adamw on the demo's model, and exit",
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # "shape:variant", internal to --isolate
    args = ap.parse_args(argv)
    if args.state_bytes:
        res = demo_state_bytes()
        for name, rec in res["state"].items():
            print(f"{name:<10}{rec['bytes']:>12,} bytes{rec['bytes_per_param']:>8.3f} per parameter")
        print(f"{res['params']:,} parameters; adafactor / adamw = {res['adafactor_over_adamw']:.4f}")
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(res, fh, indent=1)
        return res
    if args.child:
        name, variant = args.child.split(":")
        shapes = scaled(SHAPES[name], args.scale)[: args.max_leaves or None]
        print(json.dumps(run_child(name, shapes, variant, args)))
        return {}
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    names = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for s in names:
        if s not in SHAPES:
            ap.error(f"unknown shape {s!r}; choose from {', '.join(SHAPES)}")
    t_start = time.perf_counter()
    bw = copy_bandwidth(args.copy_elems)
    res = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "device": str(jax.devices()[0]),
        "device_kind": jax.devices()[0].device_kind,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "jax": jax.__version__,
        "optax": optax.__version__,
        "adamlab": adamlab.__version__,
        "scale": args.scale,
        "max_leaves": args.max_leaves,
        "solo_above": args.solo_above if args.solo_above is not None else flat.default_solo_above(),
        "bucket_bytes": args.bucket_bytes,
        "copy_bw_GBs": round(bw / 1e9, 2),
        "shapes": {},
    }
    print(
        f"{res['device_kind']} ({backend}), copy bandwidth {bw / 1e9:.1f} GB/s, scale {args.scale}, "
        f"max leaves {args.max_leaves}",
        flush=True,
    )
    w = max(14, *(len(v) + 1 for v in variants))
    print(
        f"{'shape':<15}{'variant':<{w}}{'params':>9}{'leaves':>7}{'compile s':>10}{'c x optax':>10}{'step ms':>10}"
        f"{'x optax':>8}{'x floor':>8}{'temp MB':>9}",
        flush=True,
    )
    for name in names:
        shapes = scaled(SHAPES[name], args.scale)[: args.max_leaves or None]
        if args.isolate:
            child_argv = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--isolate"]
            r = run_isolated(name, shapes, variants, bw, args, child_argv)
        else:
            r = run_shape(name, shapes, variants, bw, args)
        res["shapes"][name] = r
        for v, rec in r["variants"].items():
            temp = rec.get("memory_MB", {}).get("temporaries", float("nan"))
            print(
                f"{name:<15}{v:<{w}}{r['params_M']:>8.2f}M{r['leaves']:>7}{rec['compile_s']:>10.2f}"
                f"{rec.get('compile_x_optax', float('nan')):>10.2f}{rec['step_ms']:>10.3f}"
                f"{rec.get('x_optax', float('nan')):>8.2f}{rec['x_floor']:>8.2f}{temp:>9.1f}",
                flush=True,
            )
    res["wall_s"] = round(time.perf_counter() - t_start, 1)
    print(f"total {res['wall_s']} s", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return res


if __name__ == "__main__":
    main()
