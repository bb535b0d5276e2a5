"""Update directions beyond ``m / sqrt(v)``: the sign (Lion), the cautious mask (C-AdamW, C-Lion) and per-tensor
update clipping (StableAdamW).

Each is a stage placed after the moments, reading the update direction (and, for the cautious mask, the
gradient `adamlab.chain` hands over); `adamlab.variants` builds the optimizers from them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import GradientTransformation, init_empty, stage, stage_info
from adamlab.flat import leaf_totals
from adamlab.moments import RmsState, bias_correction_term
from adamlab.stage_builder import require_gradient
from adamlab.tree import abs_sq, leafwise, upcast


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


def clip_by_rms_ratio(tx: GradientTransformation, decay: float, eps: float = 1e-6) -> GradientTransformation:
    """Adafactor's update clipping, as StableAdamW uses it (Wortsman et al., NeurIPS 2023): `tx`'s output times
    ``1 / max(1, RMS_t)`` per tensor, ``RMS_t = sqrt(mean(g_t**2 / max(v_hat_t, eps**2)))``.

    ``v_hat`` is the bias-corrected second moment (decay `decay`) of the `scale_by_rms` stage inside `tx`: when
    the gradient outgrows what ``v`` remembers, the step shrinks instead of spiking. Everything `tx` outputs is
    clipped, a decoupled decay inside it included: the clip acts as a per-tensor learning rate. The mean is per
    tensor on the flat layout too (`flat.leaf_totals`).
    """
    _checks.check_decay("decay", decay)
    _checks.check_positive("eps", eps)
    if "scale_by_rms" not in [stage_info(s).name for s in (stage_info(tx).stages or (tx,))]:
        raise ValueError("clip_by_rms_ratio: the transformation has no scale_by_rms stage whose second moment the "
                         "clip could read; wrap the chain that divides by it")

    def ratio(g, v, bc):
        g, v = upcast(g, v)
        return abs_sq(g) / jnp.maximum(v / bc, eps**2)

    def update(updates, state, params=None, *, gradient=None, **extra):
        require_gradient("clip_by_rms_ratio", updates, gradient, "adamlab.chain(..., clip_by_rms_ratio(...), ...)")
        out, state = tx.update(updates, state, params, gradient=gradient, **extra)
        rms = next(x for x in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, RmsState))
                   if isinstance(x, RmsState))
        bc = bias_correction_term(decay, rms.count)
        sums, sizes = leaf_totals(leafwise(lambda g, v: ratio(g, v, bc), gradient, rms.second_moment))
        clip = lambda u, s, n: upcast(u)[0] / jnp.maximum(1.0, jnp.sqrt(s / n))
        return leafwise(clip, out, sums, sizes), state

    return stage("clip_by_rms_ratio", tx.init, update, role="moment")


__all__ = ["cautious_mask", "clip_by_rms_ratio", "scale_by_sign"]
