"""A float64 NumPy reference of the layer-wise methods, from the papers' algorithms, without adamlab or Optax.

Each function takes float32 initial params and a gradient stream (dicts of arrays, the stream with a leading
step axis) and returns the final params in float64. `lr` is a number or a function of the 0-based step; a mask
is a dict of bools (True = apply). A "layer" is one leaf: every norm is over the whole leaf.
"""

from __future__ import annotations

import numpy as np


def _lr(lr, step):
    return float(np.asarray(lr(step))) if callable(lr) else lr


def _start(params):
    return {k: np.asarray(v, np.float64) for k, v in params.items()}


def _steps(grads):
    return next(iter(grads.values())).shape[0]


def _norm(x):
    return float(np.sqrt(np.sum(x * x)))


def _trust(p, u, coefficient=1.0, eps=0.0, min_norm=0.0):
    """``coefficient * ||p|| / (||u|| + eps)`` with both norms floored at `min_norm`; 1 where a norm is 0."""
    pn, un = max(_norm(p), min_norm), max(_norm(u), min_norm)
    return 1.0 if pn == 0.0 or un == 0.0 else coefficient * pn / (un + eps)


def trust_ratio_sgd(params, grads, lr, min_norm=0.0, coefficient=1.0, eps=0.0):
    """``p <- p - lr * trust(p, g) * g``, per leaf."""
    p = _start(params)
    for i in range(_steps(grads)):
        for k in p:
            g = np.asarray(grads[k][i], np.float64)
            p[k] = p[k] - _lr(lr, i) * _trust(p[k], g, coefficient, eps, min_norm) * g
    return p


def normalized_sgd(params, grads, scale_factor, eps):
    """``p <- p + scale_factor * g / (||g|| + eps)``, one norm over every leaf together."""
    p = _start(params)
    for i in range(_steps(grads)):
        g = {k: np.asarray(grads[k][i], np.float64) for k in p}
        total = np.sqrt(sum(np.sum(x * x) for x in g.values()))
        for k in p:
            p[k] = p[k] + scale_factor * g[k] / (total + eps)
    return p


def lamb(params, grads, lr, b1=0.9, b2=0.999, eps=1e-6, eps_root=0.0, weight_decay=0.0, mask=None):
    """You et al. 2020, Algorithm 2: Adam's bias-corrected ratio plus the decay, scaled by ``||p|| / ||r||``."""
    p = _start(params)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    for i in range(_steps(grads)):
        t = i + 1
        for k in p:
            g = np.asarray(grads[k][i], np.float64)
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            r = (m[k] / (1 - b1**t)) / (np.sqrt(v[k] / (1 - b2**t) + eps_root) + eps)
            if mask is None or mask[k]:
                r = r + weight_decay * p[k]
            p[k] = p[k] - _lr(lr, i) * _trust(p[k], r) * r
    return p


def lars(
    params,
    grads,
    lr,
    weight_decay=0.0,
    decay_mask=None,
    coefficient=0.001,
    eps=0.0,
    trust_mask=None,
    momentum=0.9,
    nesterov=False,
):
    """You et al. 2017, Algorithm 1, with Optax's placement of the rate: the momentum sums ``-lr * d``."""
    p = _start(params)
    buf = {k: np.zeros_like(x) for k, x in p.items()}
    for i in range(_steps(grads)):
        for k in p:
            d = np.asarray(grads[k][i], np.float64)
            if decay_mask is None or decay_mask[k]:
                d = d + weight_decay * p[k]
            if trust_mask is None or trust_mask[k]:
                d = d * _trust(p[k], d, coefficient, eps)
            step = -_lr(lr, i) * d
            buf[k] = step + momentum * buf[k]
            p[k] = p[k] + (step + momentum * buf[k] if nesterov else buf[k])
    return p


def novograd(params, grads, lr, b1=0.9, b2=0.25, eps=1e-6, eps_root=0.0, weight_decay=0.0):
    """Ginsburg et al. 2019, Algorithm 1: ``v_1 = ||g_1||**2``, ``m_t = b1 * m + (g / (sqrt(v) + eps) + d * w)``."""
    p = _start(params)
    m = {k: np.zeros_like(x) for k, x in p.items()}
    v = dict.fromkeys(p, 0.0)
    for i in range(_steps(grads)):
        for k in p:
            g = np.asarray(grads[k][i], np.float64)
            sq = float(np.sum(g * g))
            v[k] = sq if i == 0 else b2 * v[k] + (1 - b2) * sq
            m[k] = b1 * m[k] + (g / (np.sqrt(v[k] + eps_root) + eps) + weight_decay * p[k])
            p[k] = p[k] - _lr(lr, i) * m[k]
    return p
