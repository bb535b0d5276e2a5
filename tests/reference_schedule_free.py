"""A float64 NumPy reference of schedule-free AdamW (Defazio et al., 2024, Algorithm 1), written without adamlab or
Optax, with Optax's conventions where they are choices.

Three sequences per leaf, all kept explicitly (the optimizers under test store ``z`` only and recover ``x``)::

    y_t      = (1 - b1) * z_t + b1 * x_t                      (the params; the gradient g_t is taken here)
    v_t      = b2 * v_{t-1} + (1 - b2) * g_t**2,  v_hat = v_t / (1 - b2**t)
    z_{t+1}  = z_t - gamma_t * (g_t / (sqrt(v_hat) + eps) + wd * y_t)
    c_{t+1}  = lr_max_t**p / sum_{i <= t} lr_max_i**p          (lr_max_t = max_{i <= t} lr'_i)
    x_{t+1}  = (1 - c_{t+1}) * x_t + c_{t+1} * z_{t+1}

Warmup (Optax's convention, a choice the paper leaves open): with ``gamma(k) = lr * min(1, k / warmup_steps)``,
the step of ``z`` at step ``t`` (1-based) uses ``gamma(t - 1)`` (so the first step does not move ``z``) while the
averaging weight uses ``lr'_t = gamma(t)``, one step ahead. ``convention="pytorch"`` uses ``gamma(t)`` for both,
as the authors' PyTorch implementation (``AdamWScheduleFree``) does.
"""

from __future__ import annotations

import numpy as np


def _gamma(lr, warmup_steps, k):
    if warmup_steps is None:
        return lr
    return lr * min(1.0, k / warmup_steps)


def schedule_free_adamw(
    params, grads, lr, warmup_steps=None, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, weight_lr_power=2.0, convention="optax"
):
    """Final ``(y, x)``: the params trained on and the averaged params to evaluate, float64 dicts."""
    z = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x = {k: v.copy() for k, v in z.items()}
    y = {k: v.copy() for k, v in z.items()}
    v = {k: np.zeros_like(p) for k, p in z.items()}
    lr_max, weight_sum = 0.0, 0.0
    steps = next(iter(grads.values())).shape[0]
    for t in range(1, steps + 1):
        lr_max = max(lr_max, _gamma(lr, warmup_steps, t))
        weight = lr_max**weight_lr_power
        weight_sum += weight
        c = weight / weight_sum if weight_sum > 0 else 0.0
        gamma = _gamma(lr, warmup_steps, t - 1 if convention == "optax" else t)
        for k in z:
            g = np.asarray(grads[k][t - 1], np.float64)
            v[k] = b2 * v[k] + (1 - b2) * g**2
            v_hat = v[k] / (1 - b2**t)
            z[k] = z[k] - gamma * (g / (np.sqrt(v_hat) + eps) + wd * y[k])
            x[k] = (1 - c) * x[k] + c * z[k]
            y[k] = (1 - b1) * z[k] + b1 * x[k]
    return y, x
