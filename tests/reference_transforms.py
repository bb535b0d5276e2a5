"""A float64 NumPy reference of two clips, as their papers define them, followed by plain SGD; no adamlab, no Optax.

- Adaptive gradient clipping (Brock et al. 2021): each unit of the gradient is rescaled so that its norm is at
  most ``clipping * max(|unit of p|, eps)``; a unit is the whole tensor for scalars and vectors, the slice of
  one output for dense (rank 2), multi-head (rank 3) and convolution (rank 4, 5) kernels: the norm runs over
  every axis but the last (two last for rank 3).
- Block-RMS clipping: each tensor is rescaled to RMS ``threshold`` when its RMS is above it.

Each takes float32 initial params and a gradient stream (a dict of arrays with a leading step axis, as
``conftest.as_dict`` gives them) and returns the final params in float64 after ``p <- p - lr * clip(g)``.
"""

from __future__ import annotations

import numpy as np

# The axes a unit's norm runs over, by rank (the layer layouts: (in, out), (in, heads, out), HWIO, DHWIO).
_UNIT_AXES = {2: (0,), 3: (0,), 4: (0, 1, 2), 5: (0, 1, 2, 3)}


def _unit_norm(x: np.ndarray) -> np.ndarray:
    if np.count_nonzero(np.asarray(x.shape) != 1) <= 1:
        return np.full(x.shape, np.sqrt(np.sum(np.abs(x) ** 2)))
    return np.broadcast_to(np.sqrt(np.sum(np.abs(x) ** 2, axis=_UNIT_AXES[x.ndim], keepdims=True)), x.shape)


def agc(g: np.ndarray, p: np.ndarray, clipping: float, eps: float) -> np.ndarray:
    """One AGC clip of gradient `g` for params `p`, in float64."""
    g_norm, limit = _unit_norm(g), clipping * np.maximum(_unit_norm(p), eps)
    return np.where(g_norm > limit, g * limit / np.maximum(g_norm, 1e-6), g)


def block_rms(g: np.ndarray, threshold: float) -> np.ndarray:
    """One block-RMS clip of tensor `g`, in float64."""
    rms = np.sqrt(np.mean(np.abs(g) ** 2)) if g.size else 0.0
    return g * min(1.0, threshold / rms) if rms > 0 else g


def _sgd(params: dict, grads: dict, lr: float, clip_fn) -> dict:
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    steps = next(iter(grads.values())).shape[0]
    for i in range(steps):
        for k in p:
            p[k] = p[k] - lr * clip_fn(np.asarray(grads[k][i], np.float64), p[k])
    return p


def agc_sgd(params: dict, grads: dict, lr: float, clipping: float, eps: float = 1e-3) -> dict:
    """``p <- p - lr * agc(g, p)`` over the stream."""
    return _sgd(params, grads, lr, lambda g, p: agc(g, p, clipping, eps))


def block_rms_sgd(params: dict, grads: dict, lr: float, threshold: float) -> dict:
    """``p <- p - lr * block_rms(g)`` over the stream."""
    return _sgd(params, grads, lr, lambda g, p: block_rms(g, threshold))
