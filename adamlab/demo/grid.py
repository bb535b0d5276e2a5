"""The learning-rate x weight-decay grid: where the good region lies for Adam+L2, Optax's AdamW and the paper's.

Loshchilov & Hutter (ICLR 2019, Figures 1-2) found that with L2 the best weight decay moves with the learning
rate, while with decoupled decay the two can be tuned apart. Optax and PyTorch decay by ``lr_t * wd`` per step,
so sweeping their learning rate sweeps the decay too; the paper's Algorithm 2 decays by ``eta_t * wd``, where
``eta_t`` is the schedule multiplier (``adamw(alpha, weight_decay=wd, schedule=eta)``).

Every cell trains the same MLP from the same init on the same batches with the same warmup-cosine multiplier;
only (lr, wd) differ. The task is made to overfit (a small training set with noisy labels, many epochs), so that
weight decay matters. The hyperparameters are arrays, so `jax.vmap` trains all cells of an optimizer in one
compiled program.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import adamlab
from adamlab.demo import train


class GridConfig(NamedTuple):
    steps: int = 1500
    batch: int = 64
    train_size: int = 512
    val_size: int = 4096
    inputs: int = 16
    hidden: int = 128
    classes: int = 8
    label_noise: float = 0.3  # the fraction of training and validation labels drawn at random
    seed: int = 0
    warmup_fraction: float = 0.05
    final_fraction: float = 0.1  # the multiplier's cosine ends here
    margin: float = 0.02  # nats: cells whose loss is within this of the best count as "good"

    def multiplier(self) -> Callable:
        """eta_t: linear warmup from 0 to 1, then cosine to `final_fraction`."""
        return adamlab.schedules.warmup_cosine_decay(
            0.0, 1.0, max(1, int(self.warmup_fraction * self.steps)), self.steps, end_value=self.final_fraction
        )


class GridOptimizer(NamedTuple):
    label: str
    build: Callable  # (lr, wd, eta) -> transformation; lr and wd may be traced arrays
    wds: tuple  # default weight decays


def _decades(lo: int, hi: int) -> tuple:
    """Two values per decade from 10**lo to 10**hi (1, 3.16, 10, ...)."""
    return tuple(float(10.0 ** (e / 2)) for e in range(2 * lo, 2 * hi + 1))


def _mask(params):
    return adamlab.weight_decay_mask(params)


OPTIMIZERS: dict[str, GridOptimizer] = {
    "adam_l2": GridOptimizer(
        "Adam + L2 (g + wd·p)",
        lambda lr, wd, eta: adamlab.adam(lambda t: lr * eta(t), weight_decay=wd, mask=_mask),
        _decades(-4, 0),
    ),
    "adamw": GridOptimizer(
        "AdamW, Optax/PyTorch (shrink lr_t·wd)",
        lambda lr, wd, eta: adamlab.adamw(lambda t: lr * eta(t), weight_decay=wd, mask=_mask),
        _decades(-2, 2),
    ),
    "adamw_paper": GridOptimizer(
        "AdamW, paper (shrink η_t·wd)",
        lambda lr, wd, eta: adamlab.adamw(lr, weight_decay=wd, mask=_mask, schedule=eta),
        _decades(-5, -1),
    ),
}
DEFAULT_LRS = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)


def make_data(cfg: GridConfig) -> dict[str, np.ndarray]:
    """A random teacher network labels Gaussian inputs; `label_noise` of the labels are then redrawn at random."""
    rng = np.random.default_rng(cfg.seed + 1234)
    w1 = rng.normal(size=(cfg.inputs, 32)) / math.sqrt(cfg.inputs)
    w2 = rng.normal(size=(32, cfg.classes)) / math.sqrt(32)

    def split(n):
        x = rng.normal(size=(n, cfg.inputs))
        y = np.argmax(np.tanh(x @ w1) @ w2, axis=1)
        flip = rng.random(n) < cfg.label_noise
        y = np.where(flip, rng.integers(0, cfg.classes, n), y)
        return x.astype(np.float32), y.astype(np.int32)

    x, y = split(cfg.train_size)
    vx, vy = split(cfg.val_size)
    order = np.stack([rng.permutation(cfg.train_size)[: cfg.batch] for _ in range(cfg.steps)])
    return {"x": x, "y": y, "val_x": vx, "val_y": vy, "batches": order.astype(np.int32)}


def init_params(cfg: GridConfig) -> dict[str, jax.Array]:
    k = jax.random.split(jax.random.PRNGKey(cfg.seed), 3)
    dims = [cfg.inputs, cfg.hidden, cfg.hidden, cfg.classes]
    params = {}
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        params[f"w{i}"] = jax.random.normal(k[i], (a, b), jnp.float32) * math.sqrt(2.0 / a)
        params[f"bias{i}"] = jnp.zeros((b,), jnp.float32)
    return params


def loss_fn(params, x, y):
    h = x
    for i in range(3):
        h = h @ params[f"w{i}"] + params[f"bias{i}"]
        if i < 2:
            h = jax.nn.gelu(h)
    return jnp.mean(jax.nn.logsumexp(h, axis=-1) - jnp.take_along_axis(h, y[:, None], axis=-1)[:, 0])


def _trainer(opt: GridOptimizer, cfg: GridConfig, data: dict, chunk: int):
    """Compiled functions over a vector of cells: init, `chunk` steps, evaluation."""
    eta = cfg.multiplier()
    x, y, batches = jnp.asarray(data["x"]), jnp.asarray(data["y"]), jnp.asarray(data["batches"])

    def cell_init(lr, wd, params):
        return opt.build(lr, wd, eta).init(params)

    def cell_steps(lr, wd, params, state, start):
        tx = opt.build(lr, wd, eta)

        def step(carry, i):
            params, state = carry
            idx = batches[start + i]
            grads = jax.grad(loss_fn)(params, x[idx], y[idx])
            updates, state = tx.update(grads, state, params)
            return (adamlab.apply_updates(params, updates), state), None

        (params, state), _ = jax.lax.scan(step, (params, state), jnp.arange(chunk))
        return params, state

    def cell_eval(params):
        return (loss_fn(params, x, y), loss_fn(params, jnp.asarray(data["val_x"]), jnp.asarray(data["val_y"])))

    init = jax.jit(jax.vmap(cell_init, in_axes=(0, 0, None)))
    steps = jax.jit(jax.vmap(cell_steps, in_axes=(0, 0, 0, 0, None)))
    evaluate = jax.jit(jax.vmap(cell_eval))
    return init, steps, evaluate


def train_grid(name: str, lrs, wds, cfg: GridConfig, data: dict, progress: bool = True) -> dict[str, Any]:
    """Trains every (lr, wd) cell of optimizer `name`; returns the final train/val losses as [len(lrs), len(wds)]."""
    opt = OPTIMIZERS[name]
    lr_grid, wd_grid = np.meshgrid(np.asarray(lrs, np.float32), np.asarray(wds, np.float32), indexing="ij")
    lr_v, wd_v = jnp.asarray(lr_grid.ravel()), jnp.asarray(wd_grid.ravel())
    chunk = math.gcd(cfg.steps, 50)  # steps per compiled call: the progress bar moves between calls
    init, steps, evaluate = _trainer(opt, cfg, data, chunk)
    p0 = init_params(cfg)
    params = jax.tree.map(lambda p: jnp.broadcast_to(p, (lr_v.size, *p.shape)), p0)
    state = init(lr_v, wd_v, p0)
    bar = train._Progress(cfg.steps, f"{name} ({lr_v.size} cells)", progress)
    started = time.perf_counter()
    for start in range(0, cfg.steps, chunk):
        params, state = steps(lr_v, wd_v, params, state, start)
        jax.block_until_ready(params)
        bar.update(chunk)
    bar.close()
    train_loss, val_loss = (np.asarray(v, np.float64).reshape(lr_grid.shape) for v in evaluate(params))
    return {
        "label": opt.label,
        "lrs": [float(v) for v in lrs],
        "wds": [float(v) for v in wds],
        "train_loss": _listify(train_loss),
        "val_loss": _listify(val_loss),
        "seconds": time.perf_counter() - started,
        **summarize(val_loss, lrs, wds, cfg.margin),
    }


def summarize(val_loss: np.ndarray, lrs, wds, margin: float) -> dict[str, Any]:
    """The best cell, the cells within `margin` nats of it, and how the good region's best wd moves with lr."""
    finite = np.where(np.isfinite(val_loss), val_loss, np.inf)
    i, j = np.unravel_index(np.argmin(finite), finite.shape)
    best = float(finite[i, j])
    good = finite <= best + margin
    best_wd_per_lr = [float(wds[int(np.argmin(row))]) for row in finite]
    # How the best wd moves with lr, in decades per decade: 0 is an axis-aligned good region, -1 a diagonal
    # along lr * wd = const, +1 one along lr / wd = const.
    slope = (
        float(np.polyfit(np.log10(np.asarray(lrs, np.float64)), np.log10(best_wd_per_lr), 1)[0])
        if len(lrs) > 1
        else float("nan")
    )
    return {
        "best": {"lr": float(lrs[i]), "wd": float(wds[j]), "val_loss": best},
        "within_margin": int(good.sum()),
        "cells": int(good.size),
        "good": good.tolist(),
        "best_wd_per_lr": best_wd_per_lr,
        "slope": slope,
    }


def _listify(a: np.ndarray) -> list:
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in a]


def count_params(cfg: GridConfig) -> int:
    return sum(int(np.size(p)) for p in jax.tree.leaves(jax.eval_shape(lambda: init_params(cfg))))


def table(results: dict[str, dict], margin: float) -> str:
    """One row per optimizer: its best cell, how many cells lie within `margin` of it, and the good region's tilt."""
    head = [
        "optimizer",
        "best val loss",
        "at lr",
        "at wd",
        f"cells within {margin:g}",
        "best wd vs lr (slope)",
        "seconds",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in results.values():
        b = r["best"]
        lines.append(
            f"| {r['label']} | {b['val_loss']:.3f} | {b['lr']:.3g} | {b['wd']:.3g} | "
            f"{r['within_margin']} of {r['cells']} | {r['slope']:+.2f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)
