"""Layer-wise methods: steps rescaled per tensor, by a ratio of norms (LARS, LAMB) or a per-tensor moment (NovoGrad).

Names, positional arguments and defaults are Optax's; each optimizer is a chain of primitives::

    lars              = chain(add_coupled_weight_decay(wd, weight_decay_mask),
                              masked(scale_by_trust_ratio(trust_coefficient=tc, eps=eps), trust_ratio_mask),
                              lr, trace(momentum, nesterov))
    lamb              = chain(scale_by_ema(b1), bias_correct(b1), scale_by_rms(b2, eps, bias_correction=True),
                              add_decoupled_weight_decay(wd, mask), scale_by_trust_ratio(), lr)
    novograd          = chain(scale_by_novograd(b1, b2, eps, eps_root, wd), lr)
    scale_by_novograd = chain(scale_by_tensor_rms(b2, eps, eps_root), add_decoupled_weight_decay(wd), trace(b1))

(``lr`` stands for ``scale_by_learning_rate(learning_rate)``; a stage whose weight decay is a known 0 is left
out.) A "layer" is one leaf of the params: every norm here is taken over a whole tensor, in float32 or wider,
and integer and boolean leaves pass through.

**Storage.** ``state_dtype`` (adamlab's keyword, keyword-only) stores the per-element moments narrower, as in
:func:`adamlab.adamw`: LAMB's ``m`` and ``v``, LARS's and NovoGrad's momentum, in ``jnp.bfloat16`` or 8-bit
codes (``jnp.int8``), the arithmetic staying float32. NovoGrad's per-tensor ``v``, one number per tensor, stays
float32: narrowing it would save nothing and put its rounding into every element's step.

**The flat layout.** On :mod:`adamlab.flat` buffers a bucket holds many tensors. The per-tensor sums of
squares are then taken per leaf inside the bucket (:func:`adamlab.flat.leaf_totals`, one segment sum per
bucket), so `scale_by_trust_ratio` and `scale_by_tensor_rms` compute on a `Flat` what they compute on the
tree, to rounding: a segment sum adds in another order than a sum over the leaf. `scale_by_tensor_rms` then
keeps its per-tensor moment once per element of a shared bucket (a leaf in a bucket of its own keeps a
scalar). `normalize_by_update_norm` takes one norm over the whole tree, which is the same on both layouts.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks
from adamlab.base import GradientTransformation, chain, identity, init_empty, stage
from adamlab.decay import Mask, add_coupled_weight_decay, add_decoupled_weight_decay
from adamlab.flat import leaf_totals
from adamlab.groups import masked
from adamlab.moments import trace
from adamlab.optimizers import _adam_direction, _optional_decay
from adamlab.scaling import ScalarOrSchedule, global_norm, scale_by_learning_rate
from adamlab.stage_builder import require_gradient
from adamlab.tree import abs_sq, has_gradient, increment, leafwise, precision, upcast


def _square_sums(tree) -> Any:
    """Each float leaf's ``sum(|x|**2)`` in float32 or wider, spread as `leaf_totals` spreads it: a scalar per
    leaf of a pytree, a value per element (its own leaf's) in a bucket of several leaves of a `Flat`."""
    return leaf_totals(leafwise(lambda x: abs_sq(upcast(x)[0]), tree))[0]


def _safe_norm(square_sum: jax.Array, min_norm) -> jax.Array:
    """``max(sqrt(square_sum), min_norm)`` with Optax's comparison ``norm <= min_norm``.

    The root is taken of 1 where the norm is at most `min_norm`, so that its derivative (infinite at 0) never
    meets the zero cotangent of the discarded branch: differentiating through the step stays finite, as with
    ``optax.safe_norm``."""
    small = jnp.sqrt(jax.lax.stop_gradient(square_sum)) <= min_norm
    return jnp.where(small, min_norm, jnp.sqrt(jnp.where(small, 1.0, square_sum)))


def _needs_params(name: str, updates, params) -> bool:
    """False when there is nothing to do (no updates, or an empty tree); ValueError when params are missing."""
    if updates is None or not jax.tree.leaves(updates):
        return False
    if params is None:
        raise ValueError(f"{name} needs the params: call update(updates, state, params)")
    _checks.check_same_tree(updates, params, f"{name}: updates", "params", strict=True)
    return True


def scale_by_trust_ratio(
    min_norm: float = 0.0, trust_coefficient: float = 1.0, eps: float = 0.0
) -> GradientTransformation:
    """Rescales each tensor's update by its trust ratio ``trust_coefficient * ||p|| / (||u|| + eps)``.

    ::

        n_p = max(||p||, min_norm),   n_u = max(||u||, min_norm)        (2-norms over each whole leaf)
        u_out = u * trust_coefficient * n_p / (n_u + eps)
        u_out = u                               where n_p == 0 or n_u == 0

    Every tensor then moves by ``trust_coefficient * ||p||`` per unit learning rate (``eps = 0``), however
    large its update: the layer-wise adaptation of LARS and LAMB. A tensor whose params or update are zero
    (a bias initialised at 0, a leaf with no gradient) keeps its update unscaled, Optax's guard, so it is
    neither frozen nor divided by zero. Stateless; it needs the params. The norms are computed in float32 (or
    wider) per float leaf, on the flat layout per leaf within each bucket; integer and boolean leaves pass
    through. On float32 params it computes what ``optax.scale_by_trust_ratio`` does, bit for bit; its derivative
    at a zero norm is finite too (``optax.safe_norm``'s care, kept).

    Args:
        min_norm: The floor of both norms, a number ``>= 0``; default 0 (no floor). Optax: ``min_norm``.
        trust_coefficient: The multiplier of the ratio, a number ``>= 0``; default 1. LARS's ``eta``.
            Optax: ``trust_coefficient``.
        eps: Added to the update's norm in the denominator, ``>= 0``; default 0. Optax: ``eps``.

    Returns:
        A stateless `GradientTransformation` (state :class:`adamlab.EmptyState`) whose ``update`` needs the
        params: ``update(updates, state, params)``.

    Raises:
        ValueError: If an argument is a negative or non-finite number; in ``update``, if the params are
            missing or their tree or shapes differ from the updates'.
        TypeError: If an argument is not a real number or scalar array.

    References:
        You, Gitman & Ginsburg, *Large Batch Training of Convolutional Networks*, 2017 (LARS).

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> from adamlab.layerwise import scale_by_trust_ratio
        >>> tx = scale_by_trust_ratio()
        >>> params = {"w": jnp.array([3.0, 4.0]), "b": jnp.zeros(2)}
        >>> updates, _ = tx.update({"w": jnp.array([0.0, 0.1]), "b": jnp.ones(2)}, tx.init(params), params)
        >>> print(updates["w"], updates["b"])  # ||p|| = 5, ||u|| = 0.1: step of norm 5; b's ||p|| = 0: unscaled
        [0. 5.] [1. 1.]
    """
    _checks.check_nonnegative("min_norm", min_norm)
    _checks.check_nonnegative("trust_coefficient", trust_coefficient)
    _checks.check_nonnegative("eps", eps)

    def scaled(u, p_sq, u_sq):
        u = upcast(u)[0]
        p_norm, u_norm = _safe_norm(p_sq, min_norm), _safe_norm(u_sq, min_norm)
        zero = (p_norm == 0.0) | (u_norm == 0.0)
        # The guarded denominator keeps a zero norm's derivative finite; where it is not 0 it is Optax's.
        ratio = trust_coefficient * p_norm / jnp.where(zero, 1.0, u_norm + eps)
        return u * jnp.where(zero, 1.0, ratio)

    def update(updates, state, params=None, **extra):
        del extra
        if not _needs_params("scale_by_trust_ratio", updates, params):
            return updates, state
        return leafwise(scaled, updates, _square_sums(params), _square_sums(updates)), state

    return stage("scale_by_trust_ratio", init_empty, update)


def normalize_by_update_norm(scale_factor: float = 1.0, eps: float = 1e-6) -> GradientTransformation:
    """Divides the updates by their global norm: ``u * scale_factor / (||u|| + eps)``.

    ::

        u_out = u / ((||u|| + eps) / scale_factor)       ||u||: the 2-norm over every float leaf together

    The step's direction is kept, its length set to about `scale_factor` (normalized gradient descent with a
    negative factor, or in front of a learning rate). One norm for the whole tree, computed as
    :func:`adamlab.global_norm` does (float32 or wider, rescaled when the sum of squares overflows though the
    norm fits), so it is the same on the flat layout. Integer and boolean leaves pass through and do not
    count. Stateless. On ordinary steps it computes what ``optax.normalize_by_update_norm`` does, bit for bit.

    Args:
        scale_factor: The length of the output, a number other than 0 (negative flips the direction);
            default 1. Optax: ``scale_factor``.
        eps: Added to the norm, ``>= 0``; default 1e-6. It bounds the output of a tiny update (a zero update
            stays 0); with 0, a zero update gives NaN. Optax: ``eps``.

    Returns:
        A stateless `GradientTransformation` (state :class:`adamlab.EmptyState`).

    Raises:
        ValueError: If `scale_factor` is 0, NaN or infinite, or `eps` is a negative or non-finite number.
        TypeError: If an argument is not a real number or scalar array.

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.layerwise import normalize_by_update_norm
        >>> tx = normalize_by_update_norm(scale_factor=-2.0, eps=0.0)
        >>> updates, _ = tx.update({"a": jnp.array([3.0]), "b": jnp.array([4.0])}, tx.init(None))
        >>> print(updates["a"], updates["b"])
        [-1.2] [-1.6]
    """
    factor = _checks._value("scale_factor", scale_factor)
    if factor is not None and not (np.isfinite(factor) and factor != 0.0):
        raise ValueError(f"scale_factor must be finite and not 0, got {scale_factor!r}")
    _checks.check_nonnegative("eps", eps)

    def update(updates, state, params=None, **extra):
        del params, extra
        if updates is None or not [u for u in jax.tree.leaves(updates) if has_gradient(u)]:
            return updates, state
        norm = (global_norm(updates) + eps) / scale_factor  # Optax's order: the factor divides the norm
        return leafwise(lambda u: upcast(u)[0] / norm.astype(precision(u)), updates), state

    return stage("normalize_by_update_norm", init_empty, update)


class TensorRmsState(NamedTuple):
    """State of :func:`adamlab.layerwise.scale_by_tensor_rms`: NovoGrad's per-tensor second moment.

    Args:
        count: int32 scalar, the number of updates taken (saturating at ``2**31 - 1``); the first step
            sets the moment instead of averaging into it.
        second_moment: ``v_t``, the EMA of each tensor's ``||g||**2``: a tree like the params holding one
            real scalar per float leaf (float32, or float64 for float64 leaves), a ``(0,)`` placeholder for
            integer and boolean leaves; on a `Flat`, a value per element in a bucket of several leaves (its
            leaf's).

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.layerwise import scale_by_tensor_rms
        >>> print(scale_by_tensor_rms().init({"w": jnp.zeros((2, 3))}))
        TensorRmsState(count=Array(0, dtype=int32), second_moment={'w': Array(0., dtype=float32)})
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    second_moment: Any  # v, one scalar per tensor


def scale_by_tensor_rms(decay: float = 0.25, eps: float = 1e-8, eps_root: float = 0.0) -> GradientTransformation:
    """Divides each tensor's update by the root of an EMA of its gradient's squared norm (NovoGrad's moment).

    ::

        v_1 = ||g_1||**2,   v_t = decay * v_{t-1} + (1 - decay) * ||g_t||**2      (||.||: over the whole leaf)
        u_out = u_t / (sqrt(v_t + eps_root) + eps)

    Adam's second moment with one number per tensor instead of one per element: memory is one scalar per
    leaf, and every element of a tensor is divided by the same root. The first step sets ``v`` to the
    squared norm (no bias toward 0, so there is no bias correction). ``v`` follows the gradient (the
    ``gradient`` extra argument :func:`adamlab.chain` hands to every stage; in a chain where this is the first
    moment stage, the incoming updates); its role is "moment". Norms in float32 or wider, per leaf within each
    bucket on the flat layout; integer and boolean leaves pass through. ``||g||**2`` is computed as Optax's
    ``jnp.linalg.norm(g) ** 2``, the square of the root of the sum, as ``optax.novograd`` does: ``v`` is Optax's bit
    for bit.

    Args:
        decay: The EMA's decay ``b2`` in ``[0, 1)``; default 0.25 (NovoGrad's). Optax: ``b2`` of
            ``optax.scale_by_novograd``.
        eps: Added to the root, outside it, ``>= 0``; default 1e-8 (Optax's ``scale_by_novograd``). Optax:
            ``eps``.
        eps_root: Added under the root, ``>= 0``; default 0. Optax: ``eps_root``.

    Returns:
        A `GradientTransformation` whose state is a :class:`adamlab.layerwise.TensorRmsState`. Called
        outside an adamlab chain, its ``update`` needs ``gradient=grads``.

    Raises:
        ValueError: If `decay` is outside ``[0, 1)``, or `eps` or `eps_root` is a negative or non-finite
            number; in ``update``, if no gradient is given or the tree differs from the params'.
        TypeError: If an argument is not a real number or scalar array.

    References:
        Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive Moments for Training of Deep
        Networks*, 2019 (NovoGrad).

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> from adamlab.layerwise import scale_by_tensor_rms
        >>> tx = adamlab.chain(scale_by_tensor_rms(0.5, eps=0.0))
        >>> state = tx.init({"w": jnp.zeros(2)})
        >>> for g in ([3.0, 4.0], [0.0, 7.0]):  # v = 25, then 0.5 * 25 + 0.5 * 49 = 37
        ...     updates, state = tx.update({"w": jnp.array(g)}, state)
        ...     print(updates["w"].round(4), state[0].second_moment["w"])
        [0.6 0.8] 25.0
        [0.     1.1508] 37.0
    """
    _checks.check_decay("decay", decay)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("eps_root", eps_root)

    def init(params):
        _checks.check_leaves(params, "params")
        sums = jax.eval_shape(lambda p: leaf_totals(p)[0], params)  # the shapes only
        moment = jax.tree.map(
            lambda s, p: jnp.zeros(s.shape, precision(p)) if has_gradient(p) else jnp.zeros((0,), jnp.float32),
            sums,
            params,
        )
        return TensorRmsState(jnp.zeros((), jnp.int32), moment)

    def update(updates, state, params=None, *, gradient=None, **extra):
        del params, extra
        require_gradient("scale_by_tensor_rms", updates, gradient, "adamlab.chain(..., scale_by_tensor_rms(...))")
        for what, tree in (("updates", updates), ("gradient", gradient)):
            diff = _checks.first_difference(tree, state.second_moment, names=(f"the {what}", "the params"))
            if diff is not None:
                raise ValueError(
                    f"scale_by_tensor_rms: {what} do not have the tree structure of the params given to init: {diff}"
                )
        count = increment(state.count)
        first = count == 1

        def leaf(u, square_sum, v):
            norm_sq = jnp.square(jnp.sqrt(square_sum))  # Optax's ||g|| ** 2, for bit parity
            v = jnp.where(first, norm_sq, (1 - decay) * norm_sq + decay * v).astype(v.dtype)
            return upcast(u)[0] / (jnp.sqrt(v + eps_root) + eps), v

        sums = _square_sums(gradient)
        u_leaves, treedef = jax.tree.flatten(updates)
        outs, moments = [], []
        for u, s, v in zip(u_leaves, treedef.flatten_up_to(sums), treedef.flatten_up_to(state.second_moment)):
            out, v = leaf(u, s, v) if has_gradient(u) and v.size else (u, v)
            outs.append(out)
            moments.append(v)
        return jax.tree.unflatten(treedef, outs), TensorRmsState(count, jax.tree.unflatten(treedef, moments))

    return stage("scale_by_tensor_rms", init, update, role="moment")


def scale_by_novograd(
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mu_dtype=None,
    *,
    state_dtype=None,
) -> GradientTransformation:
    """NovoGrad's direction: momentum over the per-tensor-normalized gradient plus the decay.

    ::

        v_1 = ||g_1||**2,   v_t = b2 * v_{t-1} + (1 - b2) * ||g_t||**2              (per tensor)
        m_t = b1 * m_{t-1} + (g_t / (sqrt(v_t + eps_root) + eps) + weight_decay * p)   (m_0 = 0)
        output: m_t

    Built as ``chain(scale_by_tensor_rms(b2, eps, eps_root), add_decoupled_weight_decay(weight_decay),
    trace(b1, accumulator_dtype=mu_dtype))`` (the decay stage left out for a weight decay of 0; `state_dtype` where
    `mu_dtype` is None): the momentum sums without the ``1 - b1`` factor, as in the paper. It computes what
    ``optax.scale_by_novograd`` does, ``v`` bit for bit and ``m`` to float32 rounding (XLA may contract ``b1 * m +
    g / sqrt(v)`` into a fused multiply-add in one program and not in the other).

    Args:
        b1: The momentum ``b1`` in ``[0, 1)``; default 0.9. Optax: ``b1``.
        b2: The decay of the per-tensor second moment, in ``[0, 1)``; default 0.25. Optax: ``b2``.
        eps: Added to the root, outside it, ``>= 0``; default 1e-8 (``optax.novograd`` passes 1e-6).
            Optax: ``eps``.
        eps_root: Added under the root, ``>= 0``; default 0. Optax: ``eps_root``.
        weight_decay: The decay ``d >= 0`` added to the normalized gradient before the momentum, a number
            (Optax's type allows a schedule, which its arithmetic does not take); default 0. Optax:
            ``weight_decay``.
        mu_dtype: Storage dtype of ``m`` (see :func:`adamlab.trace`'s ``state_dtype``); overrides
            `state_dtype`. Default None: `state_dtype`'s choice. Optax: ``mu_dtype`` (whose None is the params'
            dtype).
        state_dtype: Keyword-only. Storage dtype of ``m`` where `mu_dtype` does not say otherwise: None
            (default: float32, or the param's dtype when wider), ``jnp.bfloat16`` (rounded to nearest), another
            float dtype, or ``jnp.int8`` (8-bit block-wise codes for leaves of at least 4096 elements, rounded
            stochastically). The per-tensor ``v`` stays float32 (or wider) either way: one number per tensor.
            The arithmetic is float32 or wider. adamlab's; no Optax or PyTorch equivalent.

    Returns:
        An adamlab chain whose state is a tuple: a :class:`adamlab.layerwise.TensorRmsState` (``v``),
        ``EmptyState()`` for the decay (only when it is not 0), and an :class:`adamlab.TraceState` (``m``; an
        :class:`adamlab.CountedTraceState` when 8-bit).

    Raises:
        ValueError: If `b1` or `b2` is outside ``[0, 1)``, or `eps`, `eps_root` or `weight_decay` is a
            negative or non-finite number.
        TypeError: If an argument is not a real number or scalar array, or `mu_dtype` or `state_dtype` is
            neither a float dtype nor ``jnp.int8``.

    References:
        Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive Moments for Training of Deep
        Networks*, 2019.

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.layerwise import scale_by_novograd
        >>> tx = scale_by_novograd(b1=0.5, eps=0.0)
        >>> state = tx.init({"w": jnp.zeros(2)})
        >>> for _ in range(2):  # a constant gradient: g / ||g||, then 0.5 * that + g / ||g||
        ...     updates, state = tx.update({"w": jnp.array([3.0, 4.0])}, state)
        ...     print(updates["w"])
        [0.6 0.8]
        [0.90000004 1.2       ]
    """
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    return chain(
        scale_by_tensor_rms(b2, eps, eps_root),
        _optional_decay(add_decoupled_weight_decay, weight_decay, None),
        trace(b1, accumulator_dtype=state_dtype if mu_dtype is None else mu_dtype),
        name="scale_by_novograd",
    )


def novograd(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    state_dtype=None,
) -> GradientTransformation:
    """NovoGrad (Ginsburg et al., 2019): momentum over gradients normalized by a per-tensor second moment.

    ::

        v_1 = ||g_1||**2,   v_t = b2 * v_{t-1} + (1 - b2) * ||g_t||**2              (per tensor)
        m_t = b1 * m_{t-1} + (g_t / (sqrt(v_t + eps_root) + eps) + weight_decay * p)   (m_0 = 0)
        p <- p - lr * m_t

    Half of Adam's memory: the second moment is one scalar per tensor. Built as
    ``chain(scale_by_novograd(b1, b2, eps, eps_root, weight_decay, state_dtype=state_dtype),
    scale_by_learning_rate(learning_rate))``;
    it computes what ``optax.novograd`` does, to float32 rounding (see :func:`adamlab.layerwise.scale_by_novograd`).

    Args:
        learning_rate: The step size ``lr``: a number ``>= 0``, or a schedule ``step -> lr`` evaluated at the
            number of steps already taken. No default. Optax: ``learning_rate``.
        b1: The momentum in ``[0, 1)``; default 0.9. Optax: ``b1``.
        b2: The decay of the per-tensor second moment, in ``[0, 1)``; default 0.25. Optax: ``b2``.
        eps: Added to the root, outside it, ``>= 0``; default 1e-6. Optax: ``eps``.
        eps_root: Added under the root, ``>= 0``; default 0. Optax: ``eps_root``.
        weight_decay: The decay ``>= 0`` inside the momentum, a number or a schedule ``count -> wd`` (Optax's
            novograd fails on a schedule); default 0. Optax: ``weight_decay``.
        state_dtype: Keyword-only. Storage dtype of the momentum ``m``: None (default: float32, or the param's
            dtype when wider), ``jnp.bfloat16`` (rounded to nearest), another float dtype, or ``jnp.int8``
            (8-bit block-wise codes for leaves of at least 4096 elements, rounded stochastically). The
            per-tensor ``v`` stays float32 (or wider): one number per tensor. The arithmetic is float32 or
            wider. adamlab's; no Optax or PyTorch equivalent.

    Returns:
        An adamlab chain: the state of :func:`adamlab.layerwise.scale_by_novograd`, then the learning rate's
        (``EmptyState()``, or a :class:`adamlab.ScheduleState` for a schedule).

    Raises:
        ValueError: If `b1` or `b2` is outside ``[0, 1)``, or `eps`, `eps_root`, `weight_decay` or
            `learning_rate` is a negative or non-finite number.
        TypeError: If an argument is not a real number or scalar array (or a schedule, for `learning_rate`),
            or `state_dtype` is neither a float dtype nor ``jnp.int8``.

    References:
        Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive Moments for Training of Deep
        Networks*, 2019. Li et al., *Jasper: An End-to-End Convolutional Neural Acoustic Model*, 2019.

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.layerwise import novograd
        >>> tx = novograd(0.1)
        >>> params = {"w": jnp.ones(2), "big": jnp.ones(2)}
        >>> grads = {"w": jnp.array([3.0, 4.0]), "big": jnp.array([300.0, 400.0])}
        >>> updates, state = tx.update(grads, tx.init(params), params)
        >>> print(updates["w"].round(4), updates["big"].round(4))  # the same step for either scale
        [-0.06 -0.08] [-0.06 -0.08]
    """
    return chain(
        scale_by_novograd(b1, b2, eps, eps_root, weight_decay, state_dtype=state_dtype),
        scale_by_learning_rate(learning_rate),
        name="novograd",
    )


def lamb(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Mask | None = None,
    *,
    state_dtype=None,
) -> GradientTransformation:
    """LAMB (You et al., 2020): AdamW's direction, rescaled per tensor by its trust ratio.

    ::

        m_hat = m_t / (1 - b1**t),   v_hat = v_t / (1 - b2**t)        (Adam's moments of g)
        r = m_hat / (sqrt(v_hat + eps_root) + eps) + weight_decay * p     (decay where mask is True)
        p <- p - lr * (||p|| / ||r||) * r                                (per tensor; 1 where a norm is 0)

    Built as ``chain(scale_by_ema(b1), bias_correct(b1), scale_by_rms(b2, eps, bias_correction=True,
    eps_root=eps_root), add_decoupled_weight_decay(weight_decay, mask), scale_by_trust_ratio(),
    scale_by_learning_rate(learning_rate))``, the decay left out for a weight decay of 0: Optax's stages in
    Optax's order, so it computes what ``optax.lamb`` does, bit for bit on float32 params.

    Args:
        learning_rate: The step size ``lr``: a number ``>= 0``, or a schedule ``step -> lr``. No default.
            Optax: ``learning_rate``.
        b1: Decay of the first moment, in ``[0, 1)``; default 0.9. Optax: ``b1``.
        b2: Decay of the second moment, in ``[0, 1)``; default 0.999. Optax: ``b2``.
        eps: Added to ``sqrt(v_hat)`` outside the root, ``>= 0``; default 1e-6. Optax: ``eps``.
        eps_root: Added to ``v_hat`` under the root, ``>= 0``; default 0. Optax: ``eps_root``.
        weight_decay: The decoupled decay ``>= 0`` added before the trust ratio, a number or a schedule
            ``count -> wd``; default 0. Optax: ``weight_decay``.
        mask: Where the decay applies: a bool tree like the params, a prefix of one, or a callable
            ``params -> such a tree`` (see :func:`adamlab.resolve_mask`). Default None: every float leaf.
            The trust ratio applies to every leaf either way. Optax: ``mask``.
        state_dtype: Keyword-only. Storage dtype of both moments, as :func:`adamlab.adamw`'s: None (default:
            float32, or the param's dtype when wider), ``jnp.bfloat16`` (``m`` rounded to nearest, ``v``
            stochastically) or ``jnp.int8`` (8-bit block-wise codes for leaves of at least 4096 elements,
            rounded stochastically); float16 cannot hold ``v``. The arithmetic and the norms of the trust ratio
            stay float32. adamlab's; no Optax or PyTorch equivalent.

    Returns:
        An adamlab chain whose state is a tuple: an :class:`adamlab.EmaState` (an
        :class:`adamlab.CountedEmaState` with 8-bit ``m``), a :class:`adamlab.CountState`, an
        :class:`adamlab.RmsState`, ``EmptyState()`` for the decay (only when it is not 0) and for the trust
        ratio, and the learning rate's state.

    Raises:
        ValueError: If `b1` or `b2` is outside ``[0, 1)``, or `eps`, `eps_root`, `weight_decay` or
            `learning_rate` is a negative or non-finite number; if `state_dtype` lacks float32's exponent
            range (float16); in ``init``, if `mask` does not fit the params; in ``update``, if the params are
            missing.
        TypeError: If an argument is not a real number or scalar array (or a schedule, for `learning_rate`),
            or `state_dtype` is neither a float dtype nor ``jnp.int8``.

    References:
        You et al., *Large Batch Optimization for Deep Learning: Training BERT in 76 minutes*, ICLR 2020.

    Example:
        The first step of every tensor has length ``lr * ||p||`` (Adam's first direction is ``sign(g)``):

        >>> import jax.numpy as jnp
        >>> from adamlab.layerwise import lamb
        >>> tx = lamb(0.1)
        >>> params = {"w": jnp.array([3.0, 4.0]), "b": jnp.zeros(2)}
        >>> updates, state = tx.update({"w": jnp.array([1.0, -1.0]), "b": jnp.ones(2)}, tx.init(params), params)
        >>> print(updates["w"].round(4), updates["b"].round(4))  # b has ||p|| = 0: Adam's step, unscaled
        [-0.3536  0.3536] [-0.1 -0.1]
    """
    return chain(
        *_adam_direction(b1, b2, eps, eps_root, state_dtype, state_dtype, False, False, None),
        _optional_decay(add_decoupled_weight_decay, weight_decay, mask),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
        name="lamb",
    )


def lars(
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Mask = True,
    trust_coefficient: float = 0.001,
    eps: float = 0.0,
    trust_ratio_mask: Mask = True,
    momentum: float = 0.9,
    nesterov: bool = False,
    *,
    state_dtype=None,
) -> GradientTransformation:
    """LARS (You et al., 2017): SGD with momentum whose step is rescaled per tensor by its trust ratio.

    ::

        d = g + weight_decay * p                                       (where weight_decay_mask is True)
        d <- d * trust_coefficient * ||p|| / (||d|| + eps)              (per tensor, where trust_ratio_mask;
                                                                        1 where a norm is 0)
        t_k = -lr * d + momentum * t_{k-1}                              (t_0 = 0)
        p <- p + t_k,   or  p + (-lr * d + momentum * t_k)  with nesterov

    Built as ``chain(add_coupled_weight_decay(weight_decay, weight_decay_mask),
    masked(scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps), trust_ratio_mask),
    scale_by_learning_rate(learning_rate), trace(momentum, nesterov))``: Optax's order, with the learning
    rate inside the momentum (so a scheduled rate scales each step as it enters the trace). The decay stage is
    left out for a weight decay of 0, the mask wrapper for a mask of True (the whole tree). It computes what
    ``optax.lars`` does, bit for bit on float32 params.

    Args:
        learning_rate: The step size ``lr``: a number ``>= 0``, or a schedule ``step -> lr``. No default.
            Optax: ``learning_rate``.
        weight_decay: The coupled (L2) decay ``>= 0`` added to the gradient, a number or a schedule
            ``count -> wd``; default 0. Optax: ``weight_decay``.
        weight_decay_mask: Where the decay applies: True (default, every leaf), a bool tree like the params,
            a prefix of one, or a callable ``params -> such a tree`` (see :func:`adamlab.resolve_mask`).
            Optax: ``weight_decay_mask``.
        trust_coefficient: LARS's ``eta``, the multiplier of the trust ratio, ``>= 0``; default 0.001. Optax:
            ``trust_coefficient``.
        eps: Added to the update's norm in the ratio's denominator, ``>= 0``; default 0. Optax: ``eps``.
        trust_ratio_mask: Which leaves are rescaled: True (default, every leaf), False (none), a bool tree
            like the params, a prefix of one, or a callable ``params -> such a tree`` (one bool per leaf, see
            :func:`adamlab.masked`). Biases and norms' scales are often left out. Optax: ``trust_ratio_mask``.
        momentum: The momentum in ``[0, 1]``; default 0.9. Optax: ``momentum``.
        nesterov: Nesterov's look-ahead; default False. Optax: ``nesterov``.
        state_dtype: Keyword-only. Storage dtype of the momentum trace (see :func:`adamlab.trace`): None
            (default: float32, or the param's dtype when wider), ``jnp.bfloat16`` (rounded to nearest), another
            float dtype, or ``jnp.int8`` (8-bit block-wise codes for leaves of at least 4096 elements, rounded
            stochastically). The arithmetic stays float32. adamlab's; no Optax or PyTorch equivalent.

    Returns:
        An adamlab chain whose state is a tuple: ``EmptyState()`` for the decay (only when it is not 0), the
        trust ratio's (``EmptyState()``, or a ``adamlab.groups.MaskedState`` with a mask), the learning rate's,
        and an :class:`adamlab.TraceState` (an :class:`adamlab.CountedTraceState` when 8-bit).

    Raises:
        ValueError: If `momentum` is outside ``[0, 1]``, or `weight_decay`, `trust_coefficient`, `eps` or
            `learning_rate` is a negative or non-finite number; in ``init``/``update``, if a mask does not fit
            the params; in ``update``, if the params are missing.
        TypeError: If an argument is not a real number or scalar array (or a schedule, for `learning_rate`),
            `nesterov` not a bool, a mask leaf not a bool, or `state_dtype` neither a float dtype nor
            ``jnp.int8``.

    References:
        You, Gitman & Ginsburg, *Large Batch Training of Convolutional Networks*, 2017.

    Example:
        Every tensor's first step has length ``lr * trust_coefficient * ||p||``, whatever its gradient:

        >>> import jax.numpy as jnp
        >>> from adamlab.layerwise import lars
        >>> tx = lars(1.0, trust_coefficient=0.1)
        >>> params = {"w": jnp.array([3.0, 4.0])}
        >>> for g in (1.0, 100.0):
        ...     updates, _ = tx.update({"w": jnp.array([g, 0.0])}, tx.init(params), params)
        ...     print(updates["w"])
        [-0.5 -0. ]
        [-0.5 -0. ]
    """
    _checks.check_decay("momentum", momentum, one_allowed=True)
    if not isinstance(nesterov, bool):
        raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
    decay_mask = None if weight_decay_mask is True else weight_decay_mask
    trust = scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps)
    if trust_ratio_mask is False:
        trust = identity()
    elif trust_ratio_mask is not True:
        trust = masked(trust, trust_ratio_mask)
    return chain(
        _optional_decay(add_coupled_weight_decay, weight_decay, decay_mask),
        trust,
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov, state_dtype=state_dtype),
        name="lars",
    )


__all__ = [
    "TensorRmsState",
    "lamb",
    "lars",
    "normalize_by_update_norm",
    "novograd",
    "scale_by_novograd",
    "scale_by_tensor_rms",
    "scale_by_trust_ratio",
]
