"""Float64 NumPy references of Adam's relatives (`adamlab.adaptive`), written from the papers, without adamlab or
Optax.

Each function takes float32 initial params (a dict of arrays) and a gradient stream (a dict of arrays with a
leading step axis) and returns the final params in float64. `lr` (and a schedule-valued hyperparameter) is a
number or a function of the 0-based step. `wd` is decoupled weight decay, ``p <- p - lr * (step + wd * p)``, on
the leaves where `mask` (a dict of bools) is True. Where Optax departs from the paper (eps placement, bias
corrections, start values), the function says so and takes Optax's choice, so that it checks adamlab's formula
and not a convention.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _value(x: Any, step: int) -> float:
    return float(np.asarray(x(step))) if callable(x) else float(x)


def _run(params, grads, step_fn, n_state, start=0.0):
    """``p <- step_fn(p, g, state, i, key)`` over the stream, with `n_state` float64 moments per leaf (at `start`)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    state = {k: [np.full(np.shape(v), start, np.float64) for _ in range(n_state)] for k, v in p.items()}
    steps = next(iter(grads.values())).shape[0]
    for i in range(steps):
        for k in p:
            p[k] = step_fn(p[k], np.asarray(grads[k][i], np.float64), state[k], i, k)
    return p


def _decayed(p, direction, lr, wd, mask, i, k):
    on = wd and (mask is None or mask[k])
    return p - _value(lr, i) * (direction + (wd * p if on else 0.0))


def adamax(params, grads, lr, b1=0.9, b2=0.999, wd=0.0, mask=None):
    """Kingma & Ba (2015), Algorithm 2: ``u_t = max(b2 u_{t-1}, |g_t|)``, ``p -= lr / (1 - b1**t) * m_t / u_t``.

    The paper's form, without eps (Optax adds ``eps = 1e-8`` to ``|g|`` inside the maximum: a relative change
    of about ``1e-8 / |g|``)."""

    def step(p, g, st, i, k):
        st[0][...] = b1 * st[0] + (1 - b1) * g
        st[1][...] = np.maximum(b2 * st[1], np.abs(g))
        return _decayed(p, st[0] / (1 - b1 ** (i + 1)) / st[1], lr, wd, mask, i, k)

    return _run(params, grads, step, 2)


def adabelief(params, grads, lr, b1=0.9, b2=0.999, eps=1e-16):
    """Zhuang et al. (2020), Algorithm 2: ``s_t = b2 s_{t-1} + (1 - b2) (g_t - m_t)**2 + eps``, bias-corrected,
    ``p -= lr * m_hat / (sqrt(s_hat) + eps)``."""

    def step(p, g, st, i, k):
        t = i + 1
        st[0][...] = b1 * st[0] + (1 - b1) * g
        st[1][...] = b2 * st[1] + (1 - b2) * (g - st[0]) ** 2 + eps
        m_hat, s_hat = st[0] / (1 - b1**t), st[1] / (1 - b2**t)
        return p - _value(lr, i) * m_hat / (np.sqrt(s_hat) + eps)

    return _run(params, grads, step, 2)


def radam(params, grads, lr, b1=0.9, b2=0.999, threshold=5.0):
    """Liu et al. (2020), Algorithm 2: rectified Adam, momentum SGD ``p -= lr * m_hat`` while ``rho_t`` is below
    `threshold`.

    The paper takes the adaptive step for ``rho_t > 4`` and has no eps; Optax's threshold is 5 (``>=``) and it
    adds ``eps = 1e-8`` to ``sqrt(v_hat)``: the threshold is a parameter here, the eps left out."""
    rho_inf = 2 / (1 - b2) - 1

    def step(p, g, st, i, k):
        t = i + 1
        st[0][...] = b1 * st[0] + (1 - b1) * g
        st[1][...] = b2 * st[1] + (1 - b2) * g**2
        m_hat = st[0] / (1 - b1**t)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho < threshold:
            return p - _value(lr, i) * m_hat
        r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
        return p - _value(lr, i) * r * m_hat * np.sqrt((1 - b2**t) / st[1])

    return _run(params, grads, step, 2)


def yogi(params, grads, lr, b1=0.9, b2=0.999, eps=1e-3, initial=1e-6):
    """Zaheer et al. (2018), Algorithm 2: ``v_t = v_{t-1} - (1 - b2) sign(v_{t-1} - g_t**2) g_t**2``,
    ``p -= lr * m / (sqrt(v) + eps)``.

    With Optax's two additions to the paper: both moments start at `initial` (the paper's ``m_0`` is 0) and
    both are bias-corrected by ``1 - b**t`` before the division."""

    def step(p, g, st, i, k):
        t = i + 1
        st[0][...] = b1 * st[0] + (1 - b1) * g
        st[1][...] = st[1] - (1 - b2) * np.sign(st[1] - g**2) * g**2
        m_hat, v_hat = st[0] / (1 - b1**t), st[1] / (1 - b2**t)
        return p - _value(lr, i) * m_hat / (np.sqrt(v_hat) + eps)

    return _run(params, grads, step, 2, start=initial)


def adan(params, grads, lr, b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=1e-8, wd=0.0, mask=None):
    """Xie et al. (2022), Algorithm 1, in Optax's convention: each ``b`` is the decay (the paper's ``1 - beta``),
    the first step has no gradient difference, the three moments are bias-corrected (as the authors' code
    does), and the weight decay is added to the step rather than applied as the paper's ``1 / (1 + lr * wd)``."""

    def step(p, g, st, i, k):
        t = i + 1
        m, v, n, prev = st
        d = np.zeros_like(g) if i == 0 else g - prev
        m[...] = b1 * m + (1 - b1) * g
        v[...] = b2 * v + (1 - b2) * d
        n[...] = b3 * n + (1 - b3) * (g + (1 - b2) * d) ** 2
        prev[...] = g
        m_hat, v_hat, n_hat = m / (1 - b1**t), v / (1 - b2**t), n / (1 - b3**t)
        return _decayed(p, (m_hat + (1 - b2) * v_hat) / (np.sqrt(n_hat + eps_root) + eps), lr, wd, mask, i, k)

    return _run(params, grads, step, 4)


def adopt(params, grads, lr, b1=0.9, b2=0.9999, eps=1e-6, clip=True, nesterov=False):
    """Taniguchi et al. (2024), Algorithm 2: the first gradient only sets ``v_0 = g_0**2``; then
    ``m_t = b1 m_{t-1} + (1 - b1) clip(g_t / max(sqrt(v_{t-1}), eps), t**0.25)``, ``p -= lr * m_t``,
    ``v_t = b2 v_{t-1} + (1 - b2) g_t**2``. `nesterov` steps along ``b1 m_t + (1 - b1) x_t`` (Optax's option)."""

    def step(p, g, st, i, k):
        m, v = st
        if i == 0:
            v[...] = g**2
            return p
        x = g / np.maximum(np.sqrt(v), eps)
        x = np.clip(x, -(i**0.25), i**0.25) if clip else x
        m[...] = b1 * m + (1 - b1) * x
        v[...] = b2 * v + (1 - b2) * g**2
        return p - _value(lr, i) * (b1 * m + (1 - b1) * x if nesterov else m)

    return _run(params, grads, step, 2)


def simplified_ademamix(params, grads, lr, b1=0.99, b2=0.95, alpha: Any = 0.0, eps=1e-8, wd=0.0, mask=None):
    """Morwani et al. (2025), simplified AdEMAMix: ``m_t = b1 m_{t-1} + g_t``, ``n_t`` Adam's EMA of ``g**2``
    (bias-corrected), ``p -= lr * ((m_t + alpha_t g_t) / (sqrt(n_hat) + eps) + wd p)``."""

    def step(p, g, st, i, k):
        m, n = st
        m[...] = b1 * m + g
        n[...] = b2 * n + (1 - b2) * g**2
        n_hat = n / (1 - b2 ** (i + 1))
        return _decayed(p, (m + _value(alpha, i) * g) / (np.sqrt(n_hat) + eps), lr, wd, mask, i, k)

    return _run(params, grads, step, 2)


def optimistic_adam(params, grads, lr, alpha=1.0, beta=1.0, b1=0.9, b2=0.999, eps=1e-8, nesterov=True):
    """Daskalakis et al. (2018), optimistic Adam: ``p -= lr * ((alpha + beta) d_t - beta d_{t-1})`` with ``d_t``
    Adam's (NAdam's with `nesterov`) direction and ``d_0 = d_1``."""

    def step(p, g, st, i, k):
        m, v, prev = st
        t = i + 1
        m[...] = b1 * m + (1 - b1) * g
        v[...] = b2 * v + (1 - b2) * g**2
        if nesterov:
            m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        else:
            m_hat = m / (1 - b1**t)
        d = m_hat / (np.sqrt(v / (1 - b2**t)) + eps)
        last = d if i == 0 else prev.copy()
        prev[...] = d
        return p - _value(lr, i) * ((alpha + beta) * d - beta * last)

    return _run(params, grads, step, 3)
