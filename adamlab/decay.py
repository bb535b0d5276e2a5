"""Weight decay, coupled (L2 on the gradient) and decoupled (AdamW), and the masks that choose where it applies.

Coupled: ``g <- g + wd * p`` before the moments. The decay then passes
through Adam's scaling, so a weight's effective decay per step is
``lr * wd / (sqrt(v_hat) + eps)``: weights with a large gradient history are
barely decayed. This is ``torch.optim.Adam(weight_decay=wd)``.

Decoupled: ``u <- u + wd * p`` after the adaptive scaling, so every weight
shrinks by the same ``lr * wd`` per step (Loshchilov & Hutter, "Decoupled
Weight Decay Regularization", 2019). This is AdamW.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks
from adamlab.base import EmptyState, GradientTransformation, stage
from adamlab.tree import has_gradient, upcast

Mask = Any  # a bool pytree, a prefix of one, or a callable params -> such a tree


def resolve_mask(mask: Mask, params: Any) -> Any:
    """Returns a tree shaped like `params` whose leaves are bools or bool arrays (True = decay).

    `mask` may be a tree of bools (or bool arrays, selecting elements, as the
    flat layout uses), a prefix of such a tree (``{"encoder": False,
    "head": True}`` covers every leaf under each key), or a callable
    ``params -> mask``.
    """
    resolve = getattr(type(params), "__adamlab_resolve_mask__", None)
    if resolve is not None:  # a container such as adamlab.flat.Flat maps a mask over its leaves onto its buffers
        return resolve(params, mask)
    if _checks.is_function(mask):
        mask = mask(params)
    for path, m in jax.tree_util.tree_flatten_with_path(mask)[0]:
        ok = isinstance(m, (bool, np.bool_)) or (hasattr(m, "dtype") and m.dtype == jnp.bool_)
        if not ok:
            raise TypeError(
                f"mask leaf at {_checks.path_str(path)} is {type(m).__name__}"
                f"{'(' + str(m.dtype) + ')' if hasattr(m, 'dtype') else ''}; mask leaves must be bools "
                "(or bool arrays shaped like their param)"
            )
    resolved = _checks.broadcast_prefix(
        mask, params, "mask does not match the params: it must have their tree structure or a prefix of it")
    for (path, m), p in zip(jax.tree_util.tree_flatten_with_path(resolved)[0], jax.tree.leaves(params)):
        if np.ndim(m) and np.shape(m) != np.shape(p):  # a 0-d mask (np.bool_) covers the whole leaf
            raise ValueError(
                f"mask at {_checks.path_str(path)} is a bool array of shape {np.shape(m)}, its param has shape "
                f"{np.shape(p)}: an array mask selects elements and must have its param's shape"
            )
    return resolved


def _weight_decay(name: str, role: str, weight_decay, mask: Mask) -> GradientTransformation:
    _checks.check_nonnegative("weight_decay", weight_decay)

    def init(params):
        if mask is not None:
            resolve_mask(mask, params)  # fail at init, not in the middle of training
        return EmptyState()

    def update(updates, state, params=None, **extra):
        del extra
        if updates is None:  # no updates (None is JAX's empty tree): nothing to decay, as in Optax
            return None, state
        if params is None:
            if not jax.tree.leaves(updates):  # an empty tree: None is its params too, and nothing decays
                return updates, state
            raise ValueError(f"{name} needs the params: call update(updates, state, params)")
        _checks.check_same_tree(updates, params, f"{name}: updates", "params", strict=True)
        masks = jax.tree.map(lambda _: True, params) if mask is None else resolve_mask(mask, params)

        def decay(u, p, m):
            if m is False or (isinstance(m, np.bool_) and not m):
                return u
            u, p = upcast(u, p)
            decayed = u + weight_decay * p
            return decayed if m is True or isinstance(m, np.bool_) else jnp.where(m, decayed, u)

        out = jax.tree.map(lambda u, p, m: decay(u, p, m) if has_gradient(u) else u, updates, params, masks)
        return out, state

    return stage(name, init, update, role=role)


def add_decoupled_weight_decay(weight_decay: float, mask: Mask | None = None) -> GradientTransformation:
    """Decoupled decay: ``u + weight_decay * p``, placed after the adaptive scaling (AdamW).

    Followed by ``scale_by_learning_rate(lr)`` it gives ``p <- p - lr * (u + wd * p)``:
    every weight shrinks by the same factor ``1 - lr * wd`` per step.
    Masked-out leaves (mask False) are not decayed.
    """
    return _weight_decay("add_decoupled_weight_decay", "direction", weight_decay, mask)


def add_coupled_weight_decay(weight_decay: float, mask: Mask | None = None) -> GradientTransformation:
    """Coupled (L2) decay: ``g + weight_decay * p``, placed before the moments (Adam with L2).

    Equivalent to adding ``wd/2 * |p|**2`` to the loss; inside Adam the decay
    is divided by ``sqrt(v_hat) + eps`` like the rest of the gradient.
    Masked-out leaves (mask False) are not decayed.
    """
    return _weight_decay("add_coupled_weight_decay", "gradient", weight_decay, mask)


def decay_timescale(learning_rate, weight_decay):
    """``1 / (learning_rate * weight_decay)``: the window, in steps, of the EMA that decoupled decay makes of the
    weights (Wang & Aitchison, "How to set AdamW's weight decay as you scale model and dataset size", ICML 2025).

    With a constant rate, ``p <- p - lr * (u + wd * p)`` is ``p <- b * p + (1 - b) * (-u / wd)`` with
    ``b = 1 - lr * wd``: the weights are an EMA of ``-u / wd`` whose `effective_window` is ``1 / (1 - b)``. For
    the paper's form (``adamw(..., schedule=eta)``) pass the multiplier as the rate: ``1 / wd`` at ``eta = 1``.
    Numbers and arrays (NumPy or JAX) alike; the inverse is `weight_decay_for_timescale`.
    """
    _check_positive_values("learning_rate", learning_rate)
    _check_positive_values("weight_decay", weight_decay)
    return 1.0 / (learning_rate * weight_decay)


def weight_decay_for_timescale(timescale, learning_rate):
    """``1 / (timescale * learning_rate)``: the decay whose EMA window (`decay_timescale`) is `timescale` steps.

    A window of E epochs of N examples at batch size B is ``timescale = E * N / B`` steps.
    """
    _check_positive_values("timescale", timescale)
    _check_positive_values("learning_rate", learning_rate)
    return 1.0 / (timescale * learning_rate)


def _check_positive_values(name: str, value) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    values = np.asarray(value)
    if values.dtype.kind not in "iuf" or isinstance(value, bool):
        raise TypeError(f"{name} must be a number or an array of numbers, got {type(value).__name__}")
    if not (np.all(np.isfinite(values)) and np.all(values > 0)):
        raise ValueError(f"{name} must be > 0 and finite (a timescale needs a nonzero decay), got {value!r}")


_NO_DECAY_NAMES = ("bias", "scale", "norm", "ln_", "layernorm", "embedding_norm")


def weight_decay_mask(params: Any) -> Any:
    """The usual LLM rule: decay matrices, not biases, norms' scales or any leaf with fewer than 2 dims.

    A leaf is decayed when it has ``ndim >= 2`` and no key on its path names
    a bias or a norm (``bias``, ``b``, ``scale``, or containing ``norm``/``ln_``).
    Pass it as ``mask=weight_decay_mask``.
    """

    def keep(path, p) -> bool:
        names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", "")))).lower() for k in path]
        if any(n == "b" or any(t in n for t in _NO_DECAY_NAMES) for n in names):
            return False
        return bool(np.ndim(p) >= 2)

    return jax.tree_util.tree_map_with_path(keep, params)

