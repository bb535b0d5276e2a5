"""The demo's figures (matplotlib, written as PNG without a display)."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

DPI = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works on machines without a display
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"font.size": 10, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}
    )
    return plt


def _smooth(values: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` steps (shorter at the start), so noisy minibatch losses read as a curve."""
    x = np.asarray(values, np.float64)
    cum = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return (cum[idx] - cum[lo]) / (idx - lo)


def _style(spec) -> dict[str, Any]:
    if spec.name == "optax_adamw":  # drawn over adamlab's AdamW: identical curves show as a dotted green line
        return {"color": spec.color, "linestyle": (0, (1, 3)), "linewidth": 2.0, "zorder": 5}
    if spec.name == "adam":  # a wide pale band underneath: AdamW with a small lr*wd can hide it completely
        return {"color": spec.color, "linewidth": 4.0, "alpha": 0.45, "zorder": 1}
    return {"color": spec.color, "linewidth": 1.6}


def losses(results, path: pathlib.Path, title: str) -> None:
    """Train loss (minibatch, smoothed) per step, and train and validation loss at the evaluations."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    steps = max(r.history["step"][-1] for r in results)
    window = max(1, steps // 30)
    for r in results:
        h, st = r.history, _style(r.spec)
        ax1.plot(h["step"], _smooth(h["train_loss"], window), label=r.spec.label, **st)
        ax2.plot(h["eval_step"], h["val_loss"], marker="o", markersize=3, label=f"{r.spec.label} validation", **st)
    lows = [min(r.history["val_loss"]) for r in results]
    for ax in (ax1, ax2):
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy (nats / character)")
        ax.set_ylim(min(lows) - 0.15, min(lows) + 1.6)  # the start (ln 96 = 4.56) would flatten the interesting part
    ax1.set_title(f"training loss (minibatch, mean of {window} steps)")
    ax2.set_title("validation loss (every 10th 1000-character chunk)")
    ax1.legend(loc="upper right", fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def weights(results, path: pathlib.Path, title: str) -> None:
    """Global weight norm, and the median update-to-weight RMS ratio of the decayed matrices, per step."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    steps = max(r.history["step"][-1] for r in results)
    for r in results:
        h, st = r.history, _style(r.spec)
        ax1.plot(h["eval_step"], h["weight_norm"], marker="o", markersize=3, label=r.spec.label, **st)
        ratio = np.asarray(h["update_ratio"])
        moving = ratio > 0  # the warmup's first step has lr = 0: nothing moves, and log scale cannot show 0
        ax2.plot(np.asarray(h["step"])[moving], _smooth(ratio[moving], max(1, steps // 50)), label=r.spec.label, **st)
    ax1.set_title("global weight norm ‖θ‖")
    ax1.set_xlabel("step")
    ax1.legend(fontsize=9)
    ax2.set_yscale("log")
    ax2.set_title("update/weight RMS ratio, median over matrices")
    ax2.set_xlabel("step")
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _group(path: str) -> str:
    """A tensor's kind, for the per-kind panel: ``['blocks'][2]['mlp']['fc']`` -> ``mlp.fc``."""
    keys = [k.strip("[]'\"") for k in path.replace("][", "]|[").split("|")]
    keys = [k for k in keys if not k.isdigit()]
    return ".".join(keys[-2:]) if keys[0] == "blocks" else ".".join(keys)


def effective_decay(
    decays: dict[str, dict[str, np.ndarray]],
    labels: dict[str, str],
    colors: dict[str, str],
    lr: float,
    weight_decay: float,
    path: pathlib.Path,
    title: str,
) -> None:
    """Histogram (log x) of every decayed weight's effective decay per step, and the median per kind of tensor.

    `decays` maps a run name to ``{tensor path: per-weight decays}``.
    """
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(12, 4.6), constrained_layout=True, gridspec_kw={"width_ratios": [1.35, 1]}
    )
    nominal = lr * weight_decay
    values = {name: np.concatenate(list(d.values())) for name, d in decays.items()}
    positive = np.concatenate([v[v > 0] for v in values.values()] + [np.asarray([nominal])])
    lo, hi = np.log10(positive.min()) - 0.2, np.log10(positive.max()) + 0.2
    bins = np.logspace(lo, hi, 80)
    for name, v in values.items():
        n = len(v)
        if np.ptp(v) == 0:  # AdamW: one value for every weight, a single bar
            ax1.bar(
                v[0],
                n,
                width=v[0] * 0.12,
                color=colors[name],
                alpha=0.9,
                label=f"{labels[name]}: lr·wd = {v[0]:.2g} for all {n:,} weights",
            )
        else:
            spread = np.log10(np.percentile(v, 99) / np.percentile(v, 1))
            ax1.hist(
                v,
                bins=bins,
                color=colors[name],
                alpha=0.7,
                label=f"{labels[name]}: lr·wd/(√v̂+ε), median {np.median(v):.2g},\n"
                f"1st–99th percentile span {spread:.1f} decades",
            )
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("effective decay per step (fraction of the weight removed)")
    ax1.set_ylabel("number of weights")
    ax1.set_title("every decayed weight, last step")
    ax1.legend(fontsize=8.5, loc="upper left")

    names = list(decays)
    groups = sorted({_group(p) for d in decays.values() for p in d}, key=lambda g: (g.count("."), g))
    x = np.arange(len(groups))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        med = []
        for g in groups:
            vs = [v for p, v in decays[name].items() if _group(p) == g]
            med.append(np.median(np.concatenate(vs)) if vs else np.nan)
        ax2.bar(x + (i - (len(names) - 1) / 2) * width, med, width, color=colors[name], alpha=0.8, label=labels[name])
    ax2.axhline(nominal, color="k", linewidth=0.8, linestyle="--")
    ax2.set_yscale("log")
    ax2.set_ylim(bottom=nominal / 4)  # bars start at the axis: leave room below lr*wd so AdamW's show
    ax2.set_xticks(x, groups, rotation=30, ha="right", fontsize=9)
    ax2.set_title("median per kind of tensor (dashed: lr·wd)")
    ax2.legend(fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def trajectories(surfaces: list[dict[str, Any]], path: pathlib.Path) -> None:
    """Contours of each 2-D surface with every optimizer's path from the same start."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(surfaces), figsize=(6 * len(surfaces), 5), constrained_layout=True)
    for ax, s in zip(np.atleast_1d(axes), surfaces):
        ax.grid(False)
        (x0, x1), (y0, y1) = s["xlim"], s["ylim"]
        xs, ys = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
        zs = s["f"](xs, ys)
        shade = np.log10(zs - zs.min() + 1e-3)  # log levels: the valley floor is what the paths follow
        ax.contourf(xs, ys, shade, levels=25, cmap="Blues_r", alpha=0.35)
        ax.contour(xs, ys, shade, levels=25, colors="k", linewidths=0.3, alpha=0.35)
        for name, (pts, color) in s["paths"].items():
            ax.plot(pts[:, 0], pts[:, 1], "-", color=color, linewidth=1.6, label=name, alpha=0.9)
            ax.plot(pts[-1, 0], pts[-1, 1], "o", color=color, markersize=6, markeredgecolor="k")
        ax.plot(*s["start"], "k^", markersize=8)
        ax.plot(*s["minimum"], "k*", markersize=12)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_title(s["title"], fontsize=10)
        ax.legend(fontsize=8.5, loc=s.get("legend", "upper right"))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def grid_heatmaps(results: dict[str, dict], cfg, path: pathlib.Path) -> None:
    """One heatmap per optimizer of the final validation loss over (wd, lr), the best cell starred and the cells
    within the margin outlined; one colour scale for all panels."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    names = list(results)
    fig, axes = plt.subplots(
        1, len(names), figsize=(5.4 * len(names), 5.0), squeeze=False, dpi=DPI, layout="constrained"
    )
    best = min(r["best"]["val_loss"] for r in results.values())
    vmin, vmax = best, best + 0.6
    image = None
    for ax, name in zip(axes[0], names):
        r = results[name]
        loss = np.array([[np.nan if v is None else v for v in row] for row in r["val_loss"]], np.float64)
        image = ax.imshow(
            np.clip(loss, vmin, vmax), origin="lower", cmap="viridis_r", vmin=vmin, vmax=vmax, aspect="auto"
        )
        ax.grid(False)
        for (i, j), v in np.ndenumerate(loss):
            ax.text(
                j,
                i,
                "div" if not np.isfinite(v) else f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if np.isfinite(v) and v > vmin + 0.6 * (vmax - vmin) else "black",
            )
            if r["good"][i][j]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
        bi, bj = r["lrs"].index(r["best"]["lr"]), r["wds"].index(r["best"]["wd"])
        ax.plot(bj, bi, marker="*", markersize=16, color="red", markeredgecolor="white")
        ax.set_xticks(range(len(r["wds"])), [f"{w:.0e}" for w in r["wds"]], rotation=60, fontsize=8)
        ax.set_yticks(range(len(r["lrs"])), [f"{v:g}" for v in r["lrs"]], fontsize=8)
        ax.set_xlabel("weight decay wd")
        ax.set_ylabel("base learning rate α" if name == "adamw_paper" else "peak learning rate")
        ax.set_title(
            f"{r['label']}\nbest {r['best']['val_loss']:.3f}; {r['within_margin']} cells within "
            f"{cfg.margin:g} nats; slope {r['slope']:+.2f}",
            fontsize=9,
        )
    if image is not None:  # None only without panels
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.85, label="final validation loss (nats)")
    fig.suptitle(
        f"lr x wd grid: {cfg.steps} steps, same data, init and warmup-cosine multiplier in every cell "
        "(★ best, red outline: within the margin)",
        fontsize=10,
    )
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
