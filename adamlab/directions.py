"""Update directions beyond ``m / sqrt(v)``: the sign (Lion), the cautious mask (C-AdamW, C-Lion) and per-tensor
update clipping (StableAdamW).

Each is a stage placed after the moments, reading the update direction (and, for the cautious mask, the
gradient :func:`adamlab.chain` hands over); `adamlab.variants` builds the optimizers from them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import GradientTransformation, Transformation, init_empty, stage, stage_info
from adamlab.flat import leaf_totals
from adamlab.moments import RmsState, bias_correction_term
from adamlab.stage_builder import require_gradient
from adamlab.tree import abs_sq, leafwise, load, per_precision, upcast


def scale_by_sign() -> GradientTransformation:
    """``sign(u)``: every coordinate moves by the same amount, whatever the gradient's size (Lion).

    ::

        output = sign(u_t)        (+1, -1, or 0 where u_t = 0; u / |u| for complex u)

    Stateless. The direction of Lion: :func:`adamlab.lion` is ``chain(scale_by_ema(b2, output_decay=b1),
    scale_by_sign(), add_decoupled_weight_decay(wd), lr)``, and with no moment before it, it is signSGD. Its
    role is "direction": in a chain that has a moment stage, it must come after the first one
    (:func:`adamlab.chain` refuses it before). Computed in float32 (or wider); :func:`adamlab.chain` returns
    the updates in the dtype it received them in. Optax: `optax.scale_by_sign` (the same output).

    Returns:
      A `GradientTransformation` whose state is an :class:`adamlab.EmptyState`.

    References:
      Chen et al., *Symbolic Discovery of Optimization Algorithms*, NeurIPS 2023 (Lion). Bernstein et al.,
      *signSGD: Compressed Optimisation for Non-Convex Problems*, ICML 2018.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.scale_by_sign()
      >>> updates, state = tx.update({"w": jnp.array([0.3, -2.0, 0.0])}, tx.init({"w": jnp.zeros(3)}))
      >>> print(updates["w"])
      [ 1. -1.  0.]
      >>> state
      EmptyState()
    """

    def update(updates, state, params=None, **extra):
        del params, extra
        return leafwise(lambda u: jnp.sign(upcast(u)[0]), updates), state

    return stage("scale_by_sign", init_empty, update, role="direction")


def cautious_mask(eps: float = 1.0) -> GradientTransformation:
    """The cautious update (Liang et al., 2024): ``u * mask * n / (sum(mask) + eps)`` per tensor, with
    ``mask = (u * g > 0)`` where the direction agrees in sign with the gradient and `n` the tensor's size.

    ``eps > 0``. Place it where `u` is the direction before the learning rate (positive along the gradient), before any
    decoupled decay: `adamlab.cautious(tx)` finds that place. ``eps = 1`` is the reference implementation's.

    ::

        mask   = 1 where Re(u * conj(g)) > 0, else 0         (elementwise; u * g > 0 for real params)
        output = u * mask * n / (sum(mask) + eps)             (n, sum: per tensor)

    A coordinate where the update (momentum) points against the current gradient ``g`` is dropped, and the
    rest are scaled up so that the tensor's mean step size is about kept (``n / (sum(mask) + eps)``, at most
    ``n / eps``). ``g`` is the gradient :func:`adamlab.chain` hands to every stage. Stateless; role
    "direction": in a chain, after the first moment stage. :func:`adamlab.cautious` inserts it into an
    existing optimizer (C-AdamW, C-Lion). The sum and size are per tensor also on the flat layout
    (:func:`adamlab.flat.leaf_totals`). No Optax (0.2.8) or PyTorch counterpart.

    Args:
      eps: The constant added to the count of kept coordinates, ``> 0`` (0 would give ``0 * inf = NaN`` for a
        tensor where no sign agrees). Default 1.0, as the paper's reference implementation; a smaller value brings
        the rescaling closer to ``n / sum(mask)``, which grows large when few signs agree.

    Returns:
      A `GradientTransformation` whose state is an :class:`adamlab.EmptyState`. Its ``update`` needs the
      gradient: inside :func:`adamlab.chain` it gets it; called alone it needs
      ``update(updates, state, gradient=grads)``.

    Raises:
      ValueError: If `eps` is a number ``<= 0`` (or NaN); at update time, if no gradient is given.
      TypeError: If `eps` is not a real number or scalar array.

    References:
      Liang, Chen, Liu & Liu, *Cautious Optimizers: Improving Training with One Line of Code*, arXiv:2411.16085,
      2024.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.cautious_mask()
      >>> u = {"w": jnp.array([1.0, -1.0, 2.0, 3.0])}
      >>> g = {"w": jnp.ones(4)}
      >>> updates, _ = tx.update(u, tx.init(u), gradient=g)  # 3 of 4 signs agree: scale 4 / (3 + 1) = 1
      >>> print(updates["w"])
      [ 1. -0.  2.  3.]
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


def clip_by_rms_ratio(tx: Transformation, decay: float, eps: float = 1e-6) -> GradientTransformation:
    """Adafactor's update clipping, as StableAdamW uses it (Wortsman et al., NeurIPS 2023): `tx`'s output times
    ``1 / max(1, RMS_t)`` per tensor, ``RMS_t = sqrt(mean(g_t**2 / max(v_hat_t, eps**2)))``.

    ``v_hat`` is the bias-corrected second moment (decay `decay`) of the `scale_by_rms` stage inside `tx`: when
    the gradient outgrows what ``v`` remembers, the step shrinks instead of spiking. Everything `tx` outputs is
    clipped, a decoupled decay inside it included: the clip acts as a per-tensor learning rate. The mean is per
    tensor on the flat layout too (:func:`adamlab.flat.leaf_totals`).

    ::

        v_hat_t = v_t / (1 - decay**t)         v_t, t: the scale_by_rms stage's state after this update
        RMS_t   = sqrt(mean(|g_t|**2 / max(v_hat_t, eps**2)))      (mean over each tensor)
        output  = tx(u_t) / max(1, RMS_t)

    ``RMS_t`` is about 1 while the gradient matches its running average and exceeds 1 when a gradient spike
    arrives that ``v`` has not yet absorbed: only then is the step scaled down. :func:`adamlab.stable_adamw`
    places ``clip_by_rms_ratio(chain(scale_by_rms(b2, eps, bias_correction=True),
    add_decoupled_weight_decay(wd)), b2, eps)`` between the corrected first moment and the learning rate. The
    wrapper's state is `tx`'s state (its ``init`` is ``tx.init``); its role is "moment". ``v`` is read from the
    first :class:`adamlab.RmsState` in that state, and is bias-corrected here with `decay` whatever the stage's
    own ``bias_correction``. Optax applies the same clip only inside `optax.adafactor` (its
    ``clipping_threshold``, on Adafactor's factored update); PyTorch has none.

    Args:
      tx: The transformation to wrap: an adamlab chain (or a single stage) that contains a
        :func:`adamlab.scale_by_rms` stage; everything it outputs is clipped, so stages after that one (a
        decoupled decay, a learning rate if you put one inside) are clipped too.
        It is called with the same updates, params and gradient.
      decay: The decay of that ``scale_by_rms`` stage, in ``[0, 1)``, used for the bias correction
        ``1 - decay**t`` of its ``v``: pass the same value (it is not read from `tx`). StableAdamW: ``b2``.
      eps: The floor of ``v_hat`` is ``eps**2``, ``> 0``: a coordinate whose ``v_hat`` is below it counts as
        ``|g|**2 / eps**2``. Default 1e-6.

    Returns:
      A `GradientTransformation` with `tx`'s state. Its ``update`` needs the gradient: inside
      :func:`adamlab.chain` it gets it; called alone it needs ``update(updates, state, gradient=grads)``.

    Raises:
      ValueError: If `decay` is a number outside ``[0, 1)``; if `eps` is a number ``<= 0``; if `tx` has no
        ``scale_by_rms`` stage; at update time, if no gradient is given.
      TypeError: If `decay` or `eps` is not a real number or scalar array.

    References:
      Wortsman et al., *Stable and low-precision training for large-scale vision-language models*, NeurIPS 2023
      (StableAdamW). Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*, ICML 2018
      (update clipping).

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> rms = adamlab.chain(adamlab.scale_by_rms(0.99, bias_correction=True))
      >>> tx = adamlab.chain(adamlab.clip_by_rms_ratio(rms, 0.99))
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> for g in ([1.0, 1.0], [10.0, 1.0]):  # a spike in the first coordinate at step 2
      ...     updates, state = tx.update({"w": jnp.array(g)}, state)
      ...     print(jnp.round(updates["w"], 4))
      [1. 1.]
      [1.1518 0.8205]
    """
    _checks.check_decay("decay", decay)
    _checks.check_positive("eps", eps)
    if "scale_by_rms" not in [stage_info(s).name for s in (stage_info(tx).stages or (tx,))]:
        raise ValueError(
            "clip_by_rms_ratio: the transformation has no scale_by_rms stage whose second moment the "
            "clip could read; wrap the chain that divides by it"
        )

    def ratio(g, v, bc):
        g, v = upcast(g, load(v))  # an 8-bit second moment is read decoded
        return abs_sq(g) / jnp.maximum(v / bc(g), eps**2)

    def update(updates, state, params=None, *, gradient=None, **extra):
        require_gradient("clip_by_rms_ratio", updates, gradient, "adamlab.chain(..., clip_by_rms_ratio(...), ...)")
        out, state = tx.update(updates, state, params, gradient=gradient, **extra)
        rms = next(
            x for x in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, RmsState)) if isinstance(x, RmsState)
        )
        bc = per_precision(lambda: bias_correction_term(decay, rms.count))
        sums, sizes = leaf_totals(leafwise(lambda g, v: ratio(g, v, bc), gradient, rms.second_moment))
        clip = lambda u, s, n: upcast(u)[0] / jnp.maximum(1.0, jnp.sqrt(s / n))
        return leafwise(clip, out, sums, sizes), state

    return stage("clip_by_rms_ratio", tx.init, update, role="moment")


__all__ = ["cautious_mask", "clip_by_rms_ratio", "scale_by_sign"]
