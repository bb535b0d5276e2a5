"""An independent float64 (complex128) NumPy reference of the textbook formulas, written without adamlab or Optax.

For complex params the second moment is the EMA of ``|g|**2``.

Each function takes float32 initial params and a gradient stream (a dict of
arrays with a leading step axis) and returns the final params in float64.
`lr` is a number or a function of the 0-based step.
"""

from __future__ import annotations

import numpy as np


def _lr(lr, step):
    return float(lr(step)) if callable(lr) else lr


def _wide(x):
    """float64, or complex128 for complex values."""
    return np.asarray(x, np.complex128 if np.iscomplexobj(x) else np.float64)


def _run(params, grads, step_fn, n_state):
    p = {k: _wide(v) for k, v in params.items()}
    state = [{k: np.zeros_like(v) for k, v in p.items()} for _ in range(n_state)]
    steps = next(iter(grads.values())).shape[0]
    for i in range(steps):
        for k in p:
            g = _wide(grads[k][i])
            p[k] = step_fn(p[k], g, [s[k] for s in state], i, k)
    return p


def _set(state_list, index, value):
    state_list[index][...] = value
    return value


def sgd(params, grads, lr, momentum=None, nesterov=False):
    def step(p, g, st, i, k):
        if momentum is None:
            return p - _lr(lr, i) * g
        t = _set(st, 0, g + momentum * st[0])
        d = g + momentum * t if nesterov else t
        return p - _lr(lr, i) * d

    return _run(params, grads, step, 1)


def ema(params, grads, decay, debias):
    """The EMA of the gradient stream itself (params only give the tree): m_t, or m_t / (1 - decay**t)."""
    out = {}
    for k in params:
        m = np.zeros(np.shape(params[k]), np.float64)
        g_all = np.asarray(grads[k], np.float64)
        for i in range(g_all.shape[0]):
            m = decay * m + (1 - decay) * g_all[i]
        t = g_all.shape[0]
        out[k] = m / (1 - decay**t) if debias else m
    return out


def rmsprop(params, grads, lr, decay=0.9, eps=1e-8, eps_in_sqrt=True, momentum=None):
    def step(p, g, st, i, k):
        v = _set(st, 0, decay * st[0] + (1 - decay) * np.abs(g) ** 2)
        d = g / np.sqrt(v + eps) if eps_in_sqrt else g / (np.sqrt(v) + eps)
        d = _lr(lr, i) * d
        if momentum is not None:
            d = _set(st, 1, d + momentum * st[1])
        return p - d

    return _run(params, grads, step, 2)


def adam(params, grads, lr, b1=0.9, b2=0.999, eps=1e-8, l2=0.0, decoupled_wd=0.0, mask=None, bias_correction=True):
    """Adam; `l2` adds l2*p to the gradient (coupled), `decoupled_wd` gives AdamW's p - lr*(adam + wd*p)."""

    def step(p, g, st, i, k):
        on = True if mask is None else mask[k]
        if l2 and on:
            g = g + l2 * p
        m = _set(st, 0, b1 * st[0] + (1 - b1) * g)
        v = _set(st, 1, b2 * st[1] + (1 - b2) * np.abs(g) ** 2)
        t = i + 1
        m_hat = m / (1 - b1**t) if bias_correction else m
        v_hat = v / (1 - b2**t) if bias_correction else v
        direction = m_hat / (np.sqrt(v_hat) + eps)
        if decoupled_wd and on:
            direction = direction + decoupled_wd * p
        return p - _lr(lr, i) * direction

    return _run(params, grads, step, 2)


def adamw_paper(params, grads, alpha, eta, weight_decay, b1=0.9, b2=0.999, eps=1e-8, mask=None):
    """Loshchilov & Hutter's Algorithm 2 (AdamW): ``p <- p - eta_t * (alpha * m_hat / (sqrt(v_hat) + eps) + wd * p)``.

    `eta` is the schedule multiplier, a function of the 0-based step; the base rate `alpha` does not touch the decay.
    """

    def step(p, g, st, i, k):
        m = _set(st, 0, b1 * st[0] + (1 - b1) * g)
        v = _set(st, 1, b2 * st[1] + (1 - b2) * np.abs(g) ** 2)
        t = i + 1
        adam = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        decay = weight_decay * p if mask is None or mask[k] else 0.0
        return p - float(eta(i)) * (alpha * adam + decay)

    return _run(params, grads, step, 2)
