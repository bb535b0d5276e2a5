"""A float64 NumPy reference of Adafactor (Shazeer & Stern 2018, Algorithms 4 and 5), with Optax's options.

Written from the paper, not from adamlab: the factored second moment keeps the paper's row and column *sums*
``R`` and ``C`` and estimates ``V_hat = R C / sum(R)``; adamlab (like Optax) keeps means, which give the same
estimate. Per leaf ``X`` with gradient ``G`` at step ``t = 1, 2, ...``::

    beta  = 1 - (t - offset)**-c
    R     = beta * R + (1 - beta) * sum(G**2 + eps1, axis=d0)      (the leaf without its largest axis d0)
    C     = beta * C + (1 - beta) * sum(G**2 + eps1, axis=d1)      (without its second largest axis d1)
    V_hat = R C / sum(R over d1)          factored leaves;   V = beta * V + (1 - beta) * (G**2 + eps1) otherwise
    U     = G / sqrt(V_hat)
    U     = U / max(1, RMS(U) / d)                     update clipping (d = clipping_threshold)
    U     = rho(t - 1) * U                             the relative step size, a schedule of the steps taken
    U     = max(eps2, RMS(X)) * U                      multiply_by_parameter_scale (eps2 = 1e-3)
    M     = b1 * M + (1 - b1) * U;  U = M             momentum (no bias correction)
    U     = U + wd(t - 1) * X                          weight decay, masked
    X     = X - U

The paper's own step size is ``rho(t - 1) = min(1e-2, 1 / sqrt(t))``. Integer leaves are left as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _value(x: Any, step: int) -> float:
    value: Any = x(step) if callable(x) else x
    return float(value)


def _axes(shape, min_dim):
    if len(shape) < 2:
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < min_dim:
        return None
    return int(order[-2]), int(order[-1])


def _rms(x):
    return np.sqrt(np.mean(np.square(x)))


def adafactor(
    params,
    grads,
    learning_rate=None,
    *,
    min_dim_size_to_factor=128,
    decay_rate=0.8,
    decay_offset=0,
    multiply_by_parameter_scale=True,
    clipping_threshold=1.0,
    momentum=None,
    weight_decay_rate=None,
    eps=1e-30,
    factored=True,
    mask=None,
):
    """Runs Adafactor over the gradient stream; returns the final params (a dict of float64 arrays).

    `params` and `grads` are ``{path: array}`` dicts (``conftest.as_dict``), each gradient with a leading step
    axis; `learning_rate` and `weight_decay_rate` are numbers or functions of the steps taken; `mask` is a
    ``{path: bool}`` dict for the weight decay.
    """
    out = {}
    for path, p in params.items():
        if not np.issubdtype(np.asarray(p).dtype, np.floating):
            out[path] = np.asarray(p)
            continue
        x = np.asarray(p, np.float64)
        gs = np.asarray(grads[path], np.float64)
        axes = _axes(x.shape, min_dim_size_to_factor) if factored else None
        if axes is None:
            v = np.zeros_like(x)
        else:
            d1, d0 = axes
            r = np.zeros(np.delete(np.array(x.shape), d0))
            c = np.zeros(np.delete(np.array(x.shape), d1))
        m = np.zeros_like(x)
        for i, g in enumerate(gs):
            t = i + 1
            beta = 1.0 - float(t - decay_offset) ** (-decay_rate)
            g2 = g * g + eps
            if axes is None:
                v = beta * v + (1 - beta) * g2
                v_hat = v
            else:
                d1, d0 = axes
                r = beta * r + (1 - beta) * g2.sum(axis=d0)
                c = beta * c + (1 - beta) * g2.sum(axis=d1)
                r_total = r.sum(axis=d1 - 1 if d1 > d0 else d1, keepdims=True)
                v_hat = np.expand_dims(r / r_total, d0) * np.expand_dims(c, d1)
            u = g / np.sqrt(v_hat)
            if clipping_threshold is not None:
                u = u / max(1.0, _rms(u) / clipping_threshold)
            if learning_rate is not None:
                u = _value(learning_rate, i) * u
            if multiply_by_parameter_scale:
                u = max(1e-3, _rms(x)) * u
            if momentum is not None:
                m = momentum * m + (1 - momentum) * u
                u = m
            if weight_decay_rate is not None and (mask is None or mask[path]):
                u = u + _value(weight_decay_rate, i) * x
            x = x - u
        out[path] = x
    return out
