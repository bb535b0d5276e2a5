"""Update directions beyond ``m / sqrt(v)``: the sign (Lion) and the cautious mask (C-AdamW, C-Lion).

Each is a stage placed after the moments, reading the update direction (and, for the cautious mask, the
gradient `adamlab.chain` hands over); `adamlab.variants` builds the optimizers from them.
"""

from __future__ import annotations

import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import GradientTransformation, init_empty, stage
from adamlab.flat import leaf_totals
from adamlab.stage_builder import require_gradient
from adamlab.tree import leafwise, upcast


def scale_by_sign() -> GradientTransformation:
    """``sign(u)``: every coordinate moves by the same amount, whatever the gradient's size (Lion)."""

    def update(updates, state, params=None, **extra):
        del params, extra
        return leafwise(lambda u: jnp.sign(upcast(u)[0]), updates), state

    return stage("scale_by_sign", init_empty, update, role="direction")


def cautious_mask(eps: float = 1.0) -> GradientTransformation:
    """The cautious update (Liang et al., 2024): ``u * mask * n / (sum(mask) + eps)`` per tensor, with
    ``mask = (u * g > 0)`` where the direction agrees in sign with the gradient and `n` the tensor's size.

    ``eps > 0``. Place it where `u` is the direction before the learning rate (positive along the gradient), before any
    decoupled decay: `adamlab.cautious(tx)` finds that place. ``eps = 1`` is the reference implementation's.
    """
    _checks.check_positive("eps", eps)  # 0 would make a tensor with no agreeing sign 0 * inf = NaN

    def agrees(u, g):
        u, g = upcast(u, g)
        return ((u * jnp.conj(g)).real > 0).astype(u.real.dtype)  # complex: the angle between them under 90°

    def update(updates, state, params=None, *, gradient=None, **extra):
        del params, extra
        require_gradient("cautious_mask", updates, gradient, "adamlab.chain(<moments>, cautious_mask(), ...)")
        kept = leafwise(agrees, updates, gradient)
        counts, sizes = leaf_totals(kept)  # per tensor, also on the flat layout
        return leafwise(lambda u, k, c, n: upcast(u)[0] * (k * (n / (c + eps))), updates, kept, counts, sizes), state

    return stage("cautious_mask", init_empty, update, role="direction")


__all__ = ["cautious_mask", "scale_by_sign"]
