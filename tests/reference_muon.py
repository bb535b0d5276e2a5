"""An independent float64 NumPy reference of Muon (Jordan et al., 2024) as ``optax.contrib.muon`` defines it,
written without adamlab, Optax or JAX.

Matrices (2-D leaves) take the orthogonalized Nesterov momentum, every other leaf (N)AdamW. `muon` takes float32
initial params and a gradient stream (dicts of arrays, the stream with a leading step axis) and returns the final
params in float64. `lr` (and `adam_lr`, AdamW's, `lr` when None) is a number or a function of the 0-based step.
"""

from __future__ import annotations

import numpy as np

STANDARD = (3.4445, -4.7750, 2.0315)


def _lr(lr, step):
    return float(np.asarray(lr(step))) if callable(lr) else lr


def newton_schulz(g, coeffs=STANDARD, steps=5, eps=1e-8):
    """``X <- a X + b (X X^T) X + c (X X^T)^2 X`` from ``X = G / (||G||_F + eps)``, on the wide orientation."""
    x = np.asarray(g, np.float64)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (np.sqrt(np.sum(x * x)) + eps)
    a, b, c = coeffs
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + b * gram @ x + c * gram @ gram @ x
    return x.T if tall else x


def muon(
    params,
    grads,
    lr,
    beta=0.95,
    eps=1e-8,
    weight_decay=0.0,
    nesterov=True,
    adam_b1=0.9,
    adam_b2=0.999,
    adam_weight_decay=0.0,
    adam_lr=None,
):
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    steps = next(iter(grads.values())).shape[0]
    for i in range(steps):
        t = i + 1
        rate = _lr(lr, i)
        adam_rate = rate if adam_lr is None else _lr(adam_lr, i)
        for k in p:
            g = np.asarray(grads[k][i], np.float64)
            if p[k].ndim == 2:
                m[k] = beta * m[k] + (1 - beta) * g
                if nesterov:  # the look-ahead beta * m_t + (1 - beta) * g_t, each part bias-corrected
                    m_hat = beta * m[k] / (1 - beta ** (t + 1)) + (1 - beta) * g / (1 - beta**t)
                else:
                    m_hat = m[k] / (1 - beta**t)
                fan_in, fan_out = p[k].shape
                step = np.sqrt(max(1.0, fan_out / fan_in)) * newton_schulz(m_hat, eps=eps)
                p[k] = p[k] - rate * (step + weight_decay * p[k])
            else:
                m[k] = adam_b1 * m[k] + (1 - adam_b1) * g
                v[k] = adam_b2 * v[k] + (1 - adam_b2) * g * g
                if nesterov:  # NAdam's look-ahead
                    m_hat = adam_b1 * m[k] / (1 - adam_b1 ** (t + 1)) + (1 - adam_b1) * g / (1 - adam_b1**t)
                else:
                    m_hat = m[k] / (1 - adam_b1**t)
                v_hat = v[k] / (1 - adam_b2**t)
                p[k] = p[k] - adam_rate * (m_hat / (np.sqrt(v_hat) + eps) + adam_weight_decay * p[k])
    return p
