"""Clipping by value, by block RMS and by the params' norms: Optax's ``clip``, ``clip_by_block_rms`` and
``adaptive_grad_clip``, under their names and with their arguments.

Each is a stateless stage of float leaves (integer and bool leaves pass through untouched) whose arithmetic on
float32 leaves is Optax's, operation for operation, so a chain holding one is Optax's bit for bit. Placed before
the moments they clip the gradient every moment sees; placed after them, the update direction.
:func:`adamlab.clip_by_global_norm` (in `adamlab.scaling`) is the fourth clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks
from adamlab.base import EmptyState, GradientTransformation, init_empty, stage
from adamlab.flat import Flat, leaf_totals
from adamlab.tree import abs_sq, has_gradient, leafwise, precision, upcast

__all__ = ["adaptive_grad_clip", "clip", "clip_by_block_rms", "unitwise_norm"]

# unitwise_clip's floor of the update's norm: it only keeps a zero unit from dividing by 0 (Optax's div_eps).
_DIV_EPS = 1e-6


def _in_precision(value, u: jax.Array) -> jax.Array:
    """A hyperparameter as a scalar of `u`'s real compute precision: a Python number becomes the constant
    Optax's weakly typed arithmetic makes of it, and a float32 array does not widen a float64 leaf's result."""
    return jnp.asarray(value, precision(u))


def _refuse_complex(name: str, updates) -> None:
    for path, u in jax.tree_util.tree_flatten_with_path(updates)[0]:
        if hasattr(u, "dtype") and jnp.issubdtype(u.dtype, jnp.complexfloating):
            raise TypeError(
                f"{name}: the updates at {_checks.path_str(path)} are complex ({u.dtype}); complex numbers have "
                "no order to clip by (Optax's jnp.clip refuses them too): clip the magnitude with "
                "clip_by_block_rms or clip_by_global_norm instead"
            )


def _require_params(name: str, updates, params) -> bool:
    """Raises when `params` is missing; False when there is nothing to do (an empty tree of updates)."""
    if params is None:
        if not jax.tree.leaves(updates):  # an empty tree: None is its params too, and nothing is clipped
            return False
        raise ValueError(f"{name} needs the params: call update(updates, state, params)")
    _checks.check_same_tree(updates, params, f"{name}: updates", "params", strict=True)
    return True


def clip(max_delta: float | jax.Array) -> GradientTransformation:
    """Clips every element to ``[-max_delta, max_delta]``.

    ::

        u_out = min(max(u, -max_delta), max_delta)          (elementwise)

    Stateless; float leaves only (integer and bool leaves pass through), computed in each leaf's own dtype
    (clipping is exact in any float format, so a bfloat16 leaf stays bfloat16 and is not rounded twice). NaN
    stays NaN. Complex leaves are refused, as by Optax: they have no order. Optax: :func:`optax.clip` (the
    same arithmetic, bit for bit); PyTorch: ``torch.nn.utils.clip_grad_value_(params, clip_value)``, which
    clips ``.grad`` in place.

    Args:
        max_delta: The largest magnitude let through, a number or scalar array ``>= 0`` (0 sends every update
            to 0). Optax: ``max_delta``; PyTorch: ``clip_value``.

    Returns:
        A stateless `GradientTransformation` (state :class:`adamlab.EmptyState`).

    Raises:
        ValueError: If `max_delta` is a number ``< 0``, NaN or beyond float32.
        TypeError: If `max_delta` is not a real number or scalar array; at update time, if a leaf of the
            updates is complex.

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.clipping import clip
        >>> tx = clip(1.0)
        >>> updates, state = tx.update({"w": jnp.array([-3.0, 0.5, 2.0])}, tx.init({"w": jnp.zeros(3)}))
        >>> print(updates["w"], state)
        [-1.   0.5  1. ] EmptyState()
    """
    _checks.check_nonnegative("max_delta", max_delta)

    def clip_leaf(u):
        m = jnp.asarray(max_delta, u.dtype)  # the leaf's own dtype: clipping is exact there
        return jnp.clip(u, -m, m)

    def update(updates, state, params=None, **extra):
        del params, extra
        _refuse_complex("clip", updates)
        return leafwise(clip_leaf, updates), state

    return stage("clip", init_empty, update)


def clip_by_block_rms(threshold: float | jax.Array) -> GradientTransformation:
    """Rescales every leaf (block) whose RMS exceeds `threshold` to RMS `threshold`.

    ::

        rms   = sqrt(mean(|u|**2))                 (over the leaf's elements)
        u_out = u / max(1, rms / threshold)

    A block is one leaf of the tree: a weight matrix, a bias vector. Stateless; float and complex leaves (the
    RMS of a complex leaf is real), computed in float32 or wider, each result cast back by
    :func:`adamlab.chain` to the dtype it received. On the flat layout (:class:`adamlab.flat.Flat`) the mean is
    still per leaf (:func:`adamlab.flat.leaf_totals`). A leaf of zeros passes unchanged. Optax:
    :func:`optax.clip_by_block_rms` (the same arithmetic, bit for bit on float32 leaves). PyTorch has none.

    Args:
        threshold: The largest RMS let through per leaf, a number or scalar array ``> 0``. Optax:
            ``threshold``.

    Returns:
        A stateless `GradientTransformation` (state :class:`adamlab.EmptyState`).

    Raises:
        ValueError: If `threshold` is a number ``<= 0`` (or NaN).
        TypeError: If `threshold` is not a real number or scalar array.

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.clipping import clip_by_block_rms
        >>> tx = clip_by_block_rms(1.0)
        >>> state = tx.init({"w": jnp.zeros(2), "b": jnp.zeros(2)})
        >>> updates, _ = tx.update({"w": jnp.array([4.0, -4.0]), "b": jnp.array([0.3, 0.4])}, state)
        >>> print(updates["w"], updates["b"])  # rms(w) = 4 is clipped to 1; rms(b) = 0.35 passes
        [ 1. -1.] [0.3 0.4]
    """
    _checks.check_positive("threshold", threshold)

    def update(updates, state, params=None, **extra):
        del params, extra
        squares = leafwise(lambda u: abs_sq(upcast(u)[0]), updates)
        sums, sizes = leaf_totals(squares)  # per leaf, on the flat layout too; sum / n is jnp.mean's arithmetic

        def clip_leaf(u, s, n):
            (u,) = upcast(u)
            rms = jnp.sqrt(s / n.astype(s.dtype))
            return u / jnp.maximum(1.0, rms / _in_precision(threshold, u))

        return leafwise(clip_leaf, updates, sums, sizes), state

    return stage("clip_by_block_rms", init_empty, update)


def _unit_axes(shape: tuple[int, ...], axis) -> tuple[int, ...] | None:
    """The axes a unit's norm sums over (None: all of them), Optax's rule by rank when `axis` is None."""
    if axis is not None:
        return axis
    if sum(d != 1 for d in shape) <= 1:  # scalars and vectors, also (1, n) or (n, 1, 1): one unit
        return None
    rank_axes = {2: (0,), 3: (0,), 4: (0, 1, 2), 5: (0, 1, 2, 3)}
    if len(shape) not in rank_axes:
        raise ValueError(
            f"adaptive_grad_clip has no default unit for a leaf of rank {len(shape)} (shape {shape}); the defaults "
            "cover ranks 1 to 5 (rank 2 and 3: axis 0; 4: axes 0-2; 5: axes 0-3): pass axis=..."
        )
    return rank_axes[len(shape)]


def unitwise_norm(x: jax.Array, axis: int | Sequence[int] | None = None) -> jax.Array:
    """The L2 norm of every unit of `x`, broadcast back to `x`'s shape: the norm AGC compares.

    ::

        norm = sqrt(sum(|x|**2 over the unit's axes))        broadcast to x.shape

    A unit is the slice of `x` its norm sums over. Without `axis` it follows the layer layout the rank implies
    (Optax's rule): a scalar or a vector (any shape with at most one axis longer than 1) is one unit; rank 2
    (a dense ``(in, out)`` kernel) and 3 (multi-head ``(in, heads, out)``) sum over axis 0, one unit per
    output; rank 4 (an ``HWIO`` convolution) over axes 0-2; rank 5 (``DHWIO``) over axes 0-3. Computed in
    `x`'s dtype (real for complex `x`). Optax: ``optax.transforms.unitwise_norm`` (the same arithmetic).

    Args:
        x: An array (float or complex).
        axis: The axis or axes to sum over, an int or a tuple of ints; default None: by rank, as above.

    Returns:
        An array of `x`'s shape (real), each element the norm of its unit.

    Raises:
        ValueError: If `axis` is None and `x` has rank 6 or more with more than one axis longer than 1.

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.clipping import unitwise_norm
        >>> print(unitwise_norm(jnp.array([[3.0, 1.0], [4.0, 0.0]])))  # one unit per column
        [[5. 1.]
         [5. 1.]]
    """
    axes = _unit_axes(np.shape(x), tuple(axis) if isinstance(axis, Sequence) else axis)
    return jnp.broadcast_to(jnp.sqrt(jnp.sum(abs_sq(x), axis=axes, keepdims=True)), np.shape(x))


def _check_axis(axis) -> None:
    if axis is None or (isinstance(axis, int) and not isinstance(axis, bool)):
        return
    if isinstance(axis, tuple) and axis and all(isinstance(a, int) and not isinstance(a, bool) for a in axis):
        return
    raise TypeError(f"axis must be None, an int or a non-empty tuple of ints, got {axis!r}")


def adaptive_grad_clip(
    clipping: float | jax.Array, eps: float | jax.Array = 1e-3, axis: int | tuple[int, ...] | None = None
) -> GradientTransformation:
    """Adaptive gradient clipping (AGC, Brock et al. 2021): each unit's update is rescaled to at most
    ``clipping`` times the norm of its params.

    ::

        n_u   = unitwise_norm(u)                    (per unit: see unitwise_norm)
        n_p   = unitwise_norm(p)
        limit = clipping * max(n_p, eps)
        u_out = u                                   where n_u < limit
        u_out = u * (limit / max(n_u, 1e-6))        otherwise

    The clip is relative: a unit (a kernel's output column, a bias vector) whose update is large next to its
    weights is scaled down, one whose weights are large is left alone; `eps` keeps zero-initialized params
    (biases) from clipping every update to 0. The paper places it on the gradient, before the moments, and
    leaves the last (classifier) layer unclipped (mask that leaf out with :func:`adamlab.masked`). Stateless;
    needs the params. Float and complex leaves (norms are real), computed in float32 or wider; integer and
    bool leaves pass through. Optax: :func:`optax.adaptive_grad_clip` (the same arithmetic, bit for bit on
    float32 leaves). PyTorch has none (``timm.utils.adaptive_clip_grad`` is the common one).

    Args:
        clipping: The largest ratio of a unit's update norm to its params' norm, a number or scalar array
            ``> 0`` (the paper's lambda; 0.01 for large batches). Optax: ``clipping``.
        eps: The floor of the params' norm, ``>= 0``, so that a unit of zero params still gets updates of
            norm ``clipping * eps``. Default 1e-3, Optax's and the paper's. Optax: ``eps``.
        axis: The axis or axes a unit's norm sums over, for every leaf: an int or a tuple of ints. Default
            None: Optax's rule by rank (see :func:`adamlab.clipping.unitwise_norm`), which covers ranks 1-5.
            Optax: ``axis``.

    Returns:
        A stateless `GradientTransformation` (state :class:`adamlab.EmptyState`) whose ``update`` needs the
        params: ``update(updates, state, params)``.

    Raises:
        ValueError: If `clipping` is a number ``<= 0``, or `eps` one ``< 0`` (or NaN); at init and update time,
            if `axis` is None and a float leaf has rank 6 or more; at update time, if the params are missing or
            do not have the updates' tree and shapes.
        TypeError: If `clipping` or `eps` is not a real number or scalar array, or `axis` is not an int or a
            tuple of ints; at update time, for a :class:`adamlab.flat.Flat` (units need the leaves' shapes).

    References:
        Brock, De, Smith & Simonyan, *High-Performance Large-Scale Image Recognition Without Normalization*,
        ICML 2021 (arXiv:2102.06171).

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.clipping import adaptive_grad_clip
        >>> tx = adaptive_grad_clip(0.1)
        >>> params = {"w": jnp.array([3.0, 4.0])}  # norm 5: updates of norm up to 0.5 pass
        >>> updates, _ = tx.update({"w": jnp.array([0.6, 0.8])}, tx.init(params), params)
        >>> print(updates["w"])
        [0.3 0.4]
    """
    _checks.check_positive("clipping", clipping)
    _checks.check_nonnegative("eps", eps)
    _check_axis(axis)

    def check_ranks(tree) -> None:
        for path, p in jax.tree_util.tree_flatten_with_path(tree)[0]:
            if has_gradient(p):
                try:
                    _unit_axes(np.shape(p), axis)
                except ValueError as e:
                    raise ValueError(f"{e} (the leaf at {_checks.path_str(path)})") from None

    def init(params):
        if axis is None:
            check_ranks(params)  # fail at init, not in the middle of training
        return EmptyState()

    def clip_leaf(u, p):
        u, p = upcast(u, p)
        g_norm, p_norm = unitwise_norm(u, axis), unitwise_norm(p, axis)
        limit = _in_precision(clipping, u) * jnp.maximum(p_norm, _in_precision(eps, u))
        clipped = u * (limit / jnp.maximum(g_norm, _in_precision(_DIV_EPS, u)))
        return jnp.where(g_norm < limit, u, clipped)

    def update(updates, state, params=None, **extra):
        del extra
        if isinstance(updates, Flat) or isinstance(params, Flat):
            raise TypeError(
                "adaptive_grad_clip needs each leaf's shape to find its units; a Flat buffer has lost them: keep "
                "the params a pytree for this stage"
            )
        if not _require_params("adaptive_grad_clip", updates, params):
            return updates, state
        if axis is None:
            check_ranks(updates)
        return leafwise(clip_leaf, updates, params), state

    return stage("adaptive_grad_clip", init, update)
