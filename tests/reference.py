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
    """Adam; `l2` adds l2*p to the gradient (coupled), `decoupled_wd` gives AdamW's p - lr*(adam + wd*p); each of
    `lr`, `l2` and `decoupled_wd` may be a function of the step (0-based)."""

    def step(p, g, st, i, k):
        on = True if mask is None else mask[k]
        if l2 and on:
            g = g + _lr(l2, i) * p
        m = _set(st, 0, b1 * st[0] + (1 - b1) * g)
        v = _set(st, 1, b2 * st[1] + (1 - b2) * np.abs(g) ** 2)
        t = i + 1
        m_hat = m / (1 - b1**t) if bias_correction else m
        v_hat = v / (1 - b2**t) if bias_correction else v
        direction = m_hat / (np.sqrt(v_hat) + eps)
        if decoupled_wd and on:
            direction = direction + _lr(decoupled_wd, i) * p
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


def _value(x, step):
    """A hyperparameter that is a number or a function of the 0-based step."""
    return float(x(step)) if callable(x) else x


def amsgrad(params, grads, lr, b1=0.9, b2=0.999, eps=1e-8, convention="optax"):
    """AMSGrad (Reddi et al., 2018): Adam dividing by the running maximum of the second moment.

    `convention` "optax" keeps the maximum of the bias-corrected ``v_hat``; "pytorch"
    (``torch.optim.Adam(amsgrad=True)``) the maximum of the raw ``v``, with
    ``denom = sqrt(v_max) / sqrt(1 - b2**t) + eps`` and the step ``lr / (1 - b1**t) * m / denom``;
    "paper" keeps the maximum of ``v`` and corrects neither moment.
    """
    if convention not in ("optax", "pytorch", "paper"):
        raise ValueError(f"unknown convention {convention!r}")

    def step(p, g, st, i, k):
        m = _set(st, 0, b1 * st[0] + (1 - b1) * g)
        v = _set(st, 1, b2 * st[1] + (1 - b2) * np.abs(g) ** 2)
        t = i + 1
        if convention == "optax":
            v_max = _set(st, 2, np.maximum(st[2], v / (1 - b2**t)))
            return p - _lr(lr, i) * (m / (1 - b1**t)) / (np.sqrt(v_max) + eps)
        v_max = _set(st, 2, np.maximum(st[2], v))
        if convention == "paper":
            return p - _lr(lr, i) * m / (np.sqrt(v_max) + eps)
        denom = np.sqrt(v_max) / np.sqrt(1 - b2**t) + eps
        return p - _lr(lr, i) / (1 - b1**t) * m / denom

    return _run(params, grads, step, 3)


def ademamix(params, grads, lr, b1=0.9, b2=0.999, b3=0.9999, alpha=5.0, eps=1e-8, wd=0.0, mask=None):
    """AdEMAMix (Pagliardini et al., 2025): ``p <- p - lr * ((m1_hat + alpha * m2) / (sqrt(v_hat) + eps) + wd * p)``.

    ``m1`` is the fast EMA (b1, bias-corrected), ``m2`` the slow one (b3, not corrected). `b3` and `alpha` are
    numbers or functions of the 0-based step (the count of steps already taken, as Optax evaluates them).
    """

    def step(p, g, st, i, k):
        c_b3, c_alpha = _value(b3, i), _value(alpha, i)
        m1 = _set(st, 0, b1 * st[0] + (1 - b1) * g)
        m2 = _set(st, 1, c_b3 * st[1] + (1 - c_b3) * g)
        v = _set(st, 2, b2 * st[2] + (1 - b2) * np.abs(g) ** 2)
        t = i + 1
        direction = (m1 / (1 - b1**t) + c_alpha * m2) / (np.sqrt(v / (1 - b2**t)) + eps)
        if wd and (mask is None or mask[k]):
            direction = direction + wd * p
        return p - _lr(lr, i) * direction

    return _run(params, grads, step, 3)


def lion(params, grads, lr, b1=0.9, b2=0.99, wd=0.0):
    """Lion (Chen et al., 2023): ``p <- p - lr * (sign(b1 * m + (1 - b1) * g) + wd * p)``, then
    ``m <- b2 * m + (1 - b2) * g``."""

    def step(p, g, st, i, k):
        direction = np.sign(b1 * st[0] + (1 - b1) * g) + wd * p
        _set(st, 0, b2 * st[0] + (1 - b2) * g)
        return p - _lr(lr, i) * direction

    return _run(params, grads, step, 1)


def adam_atan2(params, grads, lr, b1=0.9, b2=0.999, a=1.27, b=1.0, wd=0.0):
    """Adam-atan2 (Everett et al., 2024): ``p <- p - lr * (a * arctan2(m_hat, b * sqrt(v_hat)) + wd * p)``."""

    def step(p, g, st, i, k):
        m = _set(st, 0, b1 * st[0] + (1 - b1) * g)
        v = _set(st, 1, b2 * st[1] + (1 - b2) * np.abs(g) ** 2)
        t = i + 1
        direction = a * np.arctan2(m / (1 - b1**t), b * np.sqrt(v / (1 - b2**t)))
        return p - _lr(lr, i) * (direction + wd * p)

    return _run(params, grads, step, 2)


def cautious_adamw(params, grads, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
    """C-AdamW (Liang et al., 2024): AdamW's direction ``u`` kept where it agrees in sign with the gradient,
    ``u * mask * n / (sum(mask) + 1)`` per tensor (``mask = u * g > 0``, n the tensor's size); then
    ``p <- p - lr * (that + wd * p)``, the decay unmasked."""

    def step(p, g, st, i, k):
        m = _set(st, 0, b1 * st[0] + (1 - b1) * g)
        v = _set(st, 1, b2 * st[1] + (1 - b2) * np.abs(g) ** 2)
        t = i + 1
        u = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        keep = (u * g > 0).astype(np.float64)
        u = u * keep * (keep.size / (keep.sum() + 1.0))
        return p - _lr(lr, i) * (u + wd * p)

    return _run(params, grads, step, 2)


def stable_adamw(params, grads, lr, b1=0.9, b2=0.99, eps=1e-6, wd=1e-4):
    """StableAdamW (Wortsman et al., 2023): AdamW whose rate, decay included, is ``lr / max(1, RMS_t)`` per
    tensor, ``RMS_t = sqrt(mean(g**2 / max(v_hat, eps**2)))``."""

    def step(p, g, st, i, k):
        m = _set(st, 0, b1 * st[0] + (1 - b1) * g)
        v = _set(st, 1, b2 * st[1] + (1 - b2) * np.abs(g) ** 2)
        t = i + 1
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        rms = np.sqrt(np.mean(np.abs(g) ** 2 / np.maximum(v_hat, eps**2)))
        eta = _lr(lr, i) / max(1.0, rms)
        return p - eta * (m_hat / (np.sqrt(v_hat) + eps) + wd * p)

    return _run(params, grads, step, 2)
