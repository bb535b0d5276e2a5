"""The demo: Adam, Adam+L2 and AdamW (and SGD, RMSProp, Optax's AdamW) training one small language model.

    python -m adamlab.demo                       # train the six, print the table, write plots + JSON
    python -m adamlab.demo --optimizers adamw,amsgrad,nadamw,ademamix,lion,adam_atan2,cautious_adamw
    python -m adamlab.demo --steps 600 --d-model 256 --optimizers adam_l2,adamw
    python -m adamlab.demo trajectories          # optimizer paths on a ravine and on Rosenbrock's function
    python -m adamlab.demo grid                  # lr x wd grid: Adam+L2, Optax's AdamW, the paper's AdamW

Everything lands in the output folder (``--out``, default ``demo_out``): ``results.json`` (the table, the
configuration, every curve), ``table.md``, and ``losses.png``, ``weights.png``, ``effective_decay.png`` (or
``trajectories.png``; ``grid.json`` and ``grid.png`` for the grid). Plots need matplotlib and progress bars
tqdm (``pip install 'adamlab[demo]'``); without them the demo still trains and writes the JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from adamlab.demo import data, model, train

DEFAULT_OUT = "demo_out"


def _machine() -> dict[str, Any]:
    """Where a run was measured, for its summary."""
    return {
        "platform": platform.platform(),
        "device": str(jax.devices()[0]),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
    }


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _optimizer_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in train.OPTIMIZERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown optimizer(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(train.OPTIMIZERS)}"
        )
    return names


def _train_parser() -> argparse.ArgumentParser:
    d = train.TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m adamlab.demo",
        description="Train one small character-level transformer on CPython's help text with several optimizers "
        "(same model, data order, seed and schedule) and show how Adam+L2 and AdamW differ. "
        "Subcommand 'trajectories' draws optimizer paths on 2-D surfaces instead; 'grid' trains a learning-rate "
        "x weight-decay grid.",
    )
    p.add_argument("--steps", type=_positive_int, default=d.steps, help=f"training steps per optimizer ({d.steps})")
    p.add_argument("--batch", type=_positive_int, default=d.batch, help=f"sequences per step ({d.batch})")
    p.add_argument("--context", type=_positive_int, default=d.context, help=f"characters per sequence ({d.context})")
    p.add_argument("--d-model", type=_positive_int, default=d.d_model, help=f"model width ({d.d_model})")
    p.add_argument("--layers", type=_positive_int, default=d.layers, help=f"transformer blocks ({d.layers})")
    p.add_argument("--heads", type=_positive_int, default=d.heads, help=f"attention heads ({d.heads})")
    p.add_argument(
        "--weight-decay",
        type=float,
        default=d.weight_decay,
        help=f"wd of Adam+L2 and of AdamW, on matrices only ({d.weight_decay})",
    )
    p.add_argument(
        "--optimizers",
        type=_optimizer_list,
        default=list(train.DEFAULT),
        help="comma-separated, from: "
        + ", ".join(train.OPTIMIZERS)
        + " (default: "
        + ",".join(train.DEFAULT)
        + "; optax_adamw when Optax is installed)",
    )
    p.add_argument(
        "--lr",
        action="append",
        default=[],
        metavar="NAME=LR",
        help="override an optimizer's peak learning rate, e.g. --lr adam=1e-3 (repeatable)",
    )
    p.add_argument("--eval-every", type=int, default=d.eval_every, help="steps between evaluations (0: ~10 per run)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"init and data-order seed ({d.seed})")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder ({DEFAULT_OUT})")
    p.add_argument("--no-plots", action="store_true", help="write the JSON and table only")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _trajectories_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m adamlab.demo trajectories",
        description="Draw SGD, momentum, RMSProp and Adam paths on a ravine and on "
        "Rosenbrock's function (trajectories.png and trajectories.json).",
    )
    p.add_argument("--steps", type=_positive_int, default=150, help="steps on the ravine (4x on Rosenbrock) (150)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder ({DEFAULT_OUT})")
    return p


def _float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or not all(v > 0 and np.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _grid_parser() -> argparse.ArgumentParser:
    from adamlab.demo import grid

    d = grid.GridConfig()
    p = argparse.ArgumentParser(
        prog="python -m adamlab.demo grid",
        description="Train a small MLP on a learning-rate x weight-decay grid with Adam+L2, AdamW as Optax and "
        "PyTorch define it (decay lr_t*wd) and the paper's AdamW (decay eta_t*wd): the same data, init and "
        "warmup-cosine multiplier in every cell. Draws one heatmap of the final validation loss per optimizer "
        "(grid.png) and writes grid.json.",
    )
    p.add_argument(
        "--lrs",
        type=_float_list,
        default=list(grid.DEFAULT_LRS),
        help="learning rates (alpha for the paper's AdamW), comma-separated "
        f"({','.join(f'{v:g}' for v in grid.DEFAULT_LRS)})",
    )
    p.add_argument(
        "--wds",
        action="append",
        default=[],
        metavar="[NAME=]WDS",
        help="weight decays, comma-separated, for every optimizer or for NAME only (repeatable); "
        "defaults: " + "; ".join(f"{n} {o.wds[0]:g}..{o.wds[-1]:g}" for n, o in grid.OPTIMIZERS.items()),
    )
    p.add_argument(
        "--optimizers",
        default=",".join(grid.OPTIMIZERS),
        help=f"comma-separated, from: {', '.join(grid.OPTIMIZERS)} (all)",
    )
    p.add_argument("--steps", type=_positive_int, default=d.steps, help=f"training steps per cell ({d.steps})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"data, init and batch-order seed ({d.seed})")
    p.add_argument(
        "--margin",
        type=float,
        default=d.margin,
        help=f"nats: cells within this of an optimizer's best count as good ({d.margin})",
    )
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder ({DEFAULT_OUT})")
    p.add_argument("--no-plots", action="store_true", help="write the JSON only")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _grid_wds(items: list[str], names: list[str]) -> dict[str, list[float]]:
    from adamlab.demo import grid

    wds = {n: list(grid.OPTIMIZERS[n].wds) for n in names}
    for item in items:
        name, sep, values = item.rpartition("=")
        if sep and name not in grid.OPTIMIZERS:
            raise SystemExit(f"--wds {item!r}: {name!r} is not one of {', '.join(grid.OPTIMIZERS)}")
        try:
            parsed = _float_list(values)
        except argparse.ArgumentTypeError as e:
            raise SystemExit(f"--wds {item!r}: {e}") from None
        for n in [name] if sep else names:
            if n in wds:
                wds[n] = parsed
    return wds


def run_grid(argv: Sequence[str]) -> dict[str, Any]:
    from adamlab.demo import grid

    args = _grid_parser().parse_args(argv)
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    unknown = [n for n in names if n not in grid.OPTIMIZERS]
    if unknown or not names:
        raise SystemExit(
            f"--optimizers: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(grid.OPTIMIZERS)}"
        )
    wds = _grid_wds(args.wds, names)
    cfg = grid.GridConfig(steps=args.steps, seed=args.seed, margin=args.margin)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = grid.make_data(cfg)
    cells = sum(len(args.lrs) * len(wds[n]) for n in names)
    print(
        f"adamlab demo grid: {cells} runs of a {grid.count_params(cfg):,}-parameter MLP, {cfg.steps} steps of "
        f"{cfg.batch} from {cfg.train_size} training examples ({cfg.label_noise:.0%} noisy labels), validation on "
        f"{cfg.val_size}; one compiled program per optimizer (jax.vmap over the cells); "
        f"device: {jax.devices()[0].platform}",
        flush=True,
    )
    started = time.perf_counter()
    results = {n: grid.train_grid(n, args.lrs, wds[n], cfg, data, progress=not args.no_progress) for n in names}
    print("\n" + grid.table(results, cfg.margin))
    summary = {
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": cfg._asdict(),
        "parameters": grid.count_params(cfg),
        "results": results,
    }
    wrote = ["grid.json"]
    if not args.no_plots and _have_matplotlib():
        from adamlab.demo import plots

        plots.grid_heatmaps(results, cfg, out / "grid.png")
        wrote.append("grid.png")
    summary["wall_s"] = time.perf_counter() - started
    (out / "grid.json").write_text(json.dumps(summary, indent=1))
    print(f"\nwrote {', '.join(wrote)} to {out}/ in {summary['wall_s']:.0f} s")
    return summary


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: skipping the plots (pip install 'adamlab[demo]')", file=sys.stderr)
        return False
    return True


def _lr_overrides(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in train.OPTIMIZERS:
            raise SystemExit(f"--lr expects NAME=LR with NAME one of {', '.join(train.OPTIMIZERS)}, got {item!r}")
        try:
            out[name] = float(value)
        except ValueError:
            raise SystemExit(f"--lr {item!r}: {value!r} is not a number") from None
        if not out[name] > 0:
            raise SystemExit(f"--lr {item!r}: the learning rate must be > 0")
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table, readable as plain text too."""
    head = ["optimizer", "peak lr", "wd", "train loss", "val loss", "gap", "‖θ‖", "ms/step", "steps/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['peak_lr']:g} | {r['weight_decay']:g} | {r['train_loss']:.3f} | "
            f"{r['val_loss']:.3f} | {r['gap']:+.3f} | {r['weight_norm']:.1f} | {r['step_ms']:.0f} | "
            f"{r['steps_per_s']:.1f} |"
        )
    return "\n".join(lines)


def _decay_stats(values: np.ndarray) -> dict[str, float]:
    q = np.percentile(values, [1, 50, 99])
    return {
        "weights": int(values.size),
        "p1": float(q[0]),
        "median": float(q[1]),
        "p99": float(q[2]),
        "min": float(values.min()),
        "max": float(values.max()),
        "decades_p1_p99": float(np.log10(q[2] / q[0])) if q[0] > 0 else float("inf"),
    }


def run_training(argv: Sequence[str]) -> dict[str, Any]:
    args = _train_parser().parse_args(argv)
    cfg = train.TrainConfig(
        steps=args.steps,
        batch=args.batch,
        context=args.context,
        d_model=args.d_model,
        layers=args.layers,
        heads=args.heads,
        seed=args.seed,
        weight_decay=args.weight_decay,
        eval_every=args.eval_every,
    )
    try:
        cfg.validate()
    except ValueError as e:
        raise SystemExit(f"adamlab.demo: {e}") from None
    overrides = _lr_overrides(args.lr)
    names = [n for n in args.optimizers if train.available(n)]
    for n in sorted(set(args.optimizers) - set(names)):
        print(f"skipping {n}: {train.OPTIMIZERS[n].requires} is not installed", file=sys.stderr)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    corpus = data.train_val_split()
    n_params = model.count_params(model.init_params(cfg.model_config(), cfg.seed))
    print(
        f"adamlab demo: {n_params / 1e6:.2f}M-parameter transformer ({cfg.layers} layers, width {cfg.d_model}, "
        f"{cfg.heads} heads, context {cfg.context}) on {len(corpus[0]):,} training / {len(corpus[1]):,} validation "
        f"characters of CPython's help text; {cfg.steps} steps of {cfg.batch}x{cfg.context} characters; "
        f"device: {jax.devices()[0].platform}",
        flush=True,
    )

    started = time.perf_counter()
    results = []
    for n in names:
        spec = train.OPTIMIZERS[n]
        if n in overrides:
            spec = spec._replace(peak_lr=overrides[n])
        results.append(train.train(spec, cfg, corpus, progress=not args.no_progress))
    by_name = {r.spec.name: r for r in results}

    rows = []
    for r in results:
        h = r.history
        rows.append(
            {
                "name": r.spec.name,
                "label": r.spec.label,
                "peak_lr": r.spec.peak_lr,
                "weight_decay": cfg.weight_decay if r.spec.decay != "none" else 0.0,
                "decay": r.spec.decay,
                "train_loss": h["eval_train_loss"][-1],
                "val_loss": h["val_loss"][-1],
                "gap": h["val_loss"][-1] - h["eval_train_loss"][-1],
                "weight_norm": h["weight_norm"][-1],
                "step_ms": r.step_ms,
                "steps_per_s": 1000 / r.step_ms,
                "compile_s": r.compile_s,
            }
        )
    table = _table(rows)
    print("\n" + table)

    summary: dict[str, Any] = {
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": cfg._asdict(),
        "parameters": n_params,
        "b1": train.B1,
        "b2": train.B2,
        "eps": train.EPS,
        "table": rows,
        "histories": {r.spec.name: r.history for r in results},
    }
    if "adamw" in by_name and "optax_adamw" in by_name:
        dev = train.max_param_deviation(by_name["adamw"].params, by_name["optax_adamw"].params)
        summary["adamw_vs_optax"] = dev
        print(
            f"\nadamlab AdamW vs Optax AdamW after {cfg.steps} steps: max |Δθ| = {dev['max_abs']:.3g} "
            f"(max relative {dev['max_rel']:.3g})"
        )

    decays = {n: train.effective_decays(by_name[n], cfg) for n in ("adam_l2", "adamw") if n in by_name}
    if decays:
        summary["effective_decay"] = {n: _decay_stats(np.concatenate(list(d.values()))) for n, d in decays.items()}
        for n, s in summary["effective_decay"].items():
            print(
                f"effective decay per step, {train.OPTIMIZERS[n].label:>8}: median {s['median']:.3g}, "
                f"1st-99th percentile {s['p1']:.3g} .. {s['p99']:.3g} ({s['decades_p1_p99']:.1f} decades)"
            )

    wrote = ["results.json", "table.md"]
    if not args.no_plots and _have_matplotlib():
        from adamlab.demo import plots

        title = (
            f"{n_params / 1e6:.2f}M-param char transformer, {cfg.steps} steps, same data, seed and "
            f"warmup-cosine schedule"
        )
        plots.losses(results, out / "losses.png", title)
        plots.weights(results, out / "weights.png", title)
        wrote += ["losses.png", "weights.png"]
        if decays:
            spec = train.OPTIMIZERS[next(iter(decays))]
            lr_last = float(cfg.schedule(spec.peak_lr)(cfg.steps - 1))
            plots.effective_decay(
                decays,
                {n: train.OPTIMIZERS[n].label for n in decays},
                {n: train.OPTIMIZERS[n].color for n in decays},
                lr_last,
                cfg.weight_decay,
                out / "effective_decay.png",
                f"Effective weight decay per step, wd = {cfg.weight_decay:g}, lr = {lr_last:.2g} at the last step: "
                "Adam+L2 divides the decay by √v̂+ε, AdamW does not",
            )
            wrote.append("effective_decay.png")
    summary["wall_s"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    (out / "table.md").write_text(table + "\n")
    print(f"\nwrote {', '.join(wrote)} to {out}/ in {summary['wall_s']:.0f} s")
    return summary


def run_trajectories(argv: Sequence[str]) -> dict[str, Any]:
    args = _trajectories_parser().parse_args(argv)
    from adamlab.demo import trajectories

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    surfaces = trajectories.surfaces(args.steps)
    finals = trajectories.final_values(surfaces)
    for title, values in finals.items():
        print(title)
        for label, v in values.items():
            print(f"  {label:<28} final f = {v:.3g}")
    (out / "trajectories.json").write_text(json.dumps(finals, indent=1))
    wrote = ["trajectories.json"]
    if _have_matplotlib():
        from adamlab.demo import plots

        plots.trajectories(surfaces, out / "trajectories.png")
        wrote.append("trajectories.png")
    print(f"wrote {', '.join(wrote)} to {out}/")
    return finals


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m adamlab.demo`` and ``adamlab-demo``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "trajectories":
        run_trajectories(argv[1:])
    elif argv and argv[0] == "grid":
        run_grid(argv[1:])
    else:
        run_training(argv[1:] if argv and argv[0] == "train" else argv)
