"""Float64 NumPy transcriptions of the papers' (and torch.optim's documented) Adagrad, Adadelta, Rprop, signSGD and
Signum, written without adamlab or Optax.

Each function takes the initial params and a gradient stream as dicts of arrays (the stream with a leading step
axis) and returns the final params in float64. `lr` is a number or a function of the 0-based step.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _at(lr: Any, step: int) -> float:
    value: Any = lr(step) if callable(lr) else lr
    return float(value)


def _loop(params, grads, step_fn, init):
    """Runs ``p = step_fn(p, g, state, i, key)`` over the stream, leaf by leaf; ``init(p)`` makes each leaf's
    state, a dict of float64 arrays."""
    out = {}
    for k, p0 in params.items():
        p = np.asarray(p0, np.float64).copy()
        state = init(p)
        stream = np.asarray(grads[k], np.float64)
        for i in range(stream.shape[0]):
            p = step_fn(p, stream[i], state, i, k)
        out[k] = p
    return out


def adagrad(params, grads, lr, initial_accumulator_value=0.1, eps=1e-7, eps_in_sqrt=True, lr_decay=0.0, wd=0.0):
    """Duchi et al. 2011: ``s += g**2; p -= lr_t * g / sqrt(s + eps)``; PyTorch's Adagrad with ``eps_in_sqrt=False``
    (``g / (sqrt(s) + eps)``), `lr_decay` (``lr_t = lr / (1 + t * lr_decay)``, t from 0) and L2 `wd`."""

    def step(p, g, st, i, k):
        g = g + wd * p
        st["s"] += g * g
        denom = np.sqrt(st["s"] + eps) if eps_in_sqrt else np.sqrt(st["s"]) + eps
        d = np.divide(g, denom, out=np.zeros_like(g), where=st["s"] > 0)
        return p - _at(lr, i) / (1 + i * lr_decay) * d

    return _loop(params, grads, step, lambda p: {"s": np.full_like(p, initial_accumulator_value)})


def adadelta(params, grads, lr: Any = 1.0, rho=0.9, eps=1e-6, wd=0.0, mask=None):
    """Zeiler 2012, Algorithm 1 (and torch.optim.Adadelta): RMS[dx]_{t-1} / RMS[g]_t * g, scaled by `lr`; L2 `wd`
    where `mask` (a dict of bools) is True."""

    def step(p, g, st, i, k):
        if mask is None or mask[k]:
            g = g + wd * p
        st["eg"] = rho * st["eg"] + (1 - rho) * g * g
        dx = np.sqrt(st["ex"] + eps) / np.sqrt(st["eg"] + eps) * g
        st["ex"] = rho * st["ex"] + (1 - rho) * dx * dx
        return p - _at(lr, i) * dx

    return _loop(params, grads, step, lambda p: {"eg": np.zeros_like(p), "ex": np.zeros_like(p)})


def rprop(params, grads, lr, eta_minus=0.5, eta_plus=1.2, min_step=1e-6, max_step=50.0, clip_initial=False):
    """Rprop without weight-backtracking (Igel & Hüsken 2003's Rprop-, as torch.optim.Rprop): grow the step
    while the gradient keeps its sign, shrink it and skip the step (forgetting the gradient) when it flips.
    `clip_initial`: the step sizes start clipped to the bounds (torch clamps on every step)."""

    def step(p, g, st, i, k):
        agree = g * st["prev"]
        size = st["size"]
        size[agree > 0] = np.minimum(size[agree > 0] * eta_plus, max_step)
        size[agree < 0] = np.maximum(size[agree < 0] * eta_minus, min_step)
        g = np.where(agree < 0, 0.0, g)
        st["prev"] = g
        return p - np.sign(g) * size

    def init(p):
        start = min(max(lr, min_step), max_step) if clip_initial else lr
        return {"size": np.full_like(p, start), "prev": np.zeros_like(p)}

    return _loop(params, grads, step, init)


def sign_sgd(params, grads, lr):
    """Bernstein et al. 2018, Algorithm 1: ``p -= lr * sign(g)``."""
    return _loop(params, grads, lambda p, g, st, i, k: p - _at(lr, i) * np.sign(g), lambda p: {})


def signum(params, grads, lr, beta=0.9):
    """Bernstein et al. 2018, Algorithm 3: ``m = beta * m + (1 - beta) * g; p -= lr * sign(m)``."""

    def step(p, g, st, i, k):
        st["m"] = beta * st["m"] + (1 - beta) * g
        return p - _at(lr, i) * np.sign(st["m"])

    return _loop(params, grads, step, lambda p: {"m": np.zeros_like(p)})
