"""Gradient surgery and constraints: gradient centralization, NaN zeroing and non-negative params, Optax's
``centralize``, ``zero_nans`` and ``keep_params_nonnegative`` under their names.

Each acts on float leaves only (integer and bool leaves pass through untouched), with Optax's arithmetic, so a
chain holding one is Optax's bit for bit on float32 leaves.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import GradientTransformation, init_empty, stage
from adamlab.flat import Flat
from adamlab.tree import has_gradient, leafwise, upcast

__all__ = ["ZeroNansState", "centralize", "keep_params_nonnegative", "zero_nans"]


def centralize() -> GradientTransformation:
    """Gradient centralization (Yong et al., 2020): every leaf of rank 2 or more minus its mean over all axes
    but the first.

    ::

        u_out[i, ...] = u[i, ...] - mean(u[i, ...])        for a leaf of rank >= 2 (mean over axes 1, 2, ...)
        u_out         = u                                  for scalars and vectors

    Each slice along the leading axis is made zero-mean, which projects the gradient of a weight matrix onto
    the hyperplane of zero-mean slices; biases and scalars are left alone. Note that the kept axis is the
    first: for a dense ``(in, out)`` kernel each input row is centred over the outputs, which is Optax's
    convention (the paper, with PyTorch's ``(out, in)`` layout, centres each output's weights). Stateless; float
    and complex leaves, computed in float32 or wider. Place it before the moments, on the gradient. Optax:
    :func:`optax.centralize` (the same arithmetic, bit for bit on float32 leaves). PyTorch has none.

    Returns:
        A stateless `GradientTransformation` (state :class:`adamlab.EmptyState`).

    Raises:
        TypeError: At update time, for a :class:`adamlab.flat.Flat` (the mean needs each leaf's shape).

    References:
        Yong, Huang, Hua & Zhang, *Gradient Centralization: A New Optimization Technique for Deep Neural
        Networks*, ECCV 2020 (arXiv:2004.01461).

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.gradients import centralize
        >>> tx = centralize()
        >>> g = {"w": jnp.array([[1.0, 2.0, 3.0], [4.0, 6.0, 8.0]]), "b": jnp.array([1.0, 2.0])}
        >>> updates, state = tx.update(g, tx.init(g))
        >>> print(updates["w"], updates["b"], state)
        [[-1.  0.  1.]
         [-2.  0.  2.]] [1. 2.] EmptyState()
    """

    def subtract_mean(u):
        (u,) = upcast(u)
        if u.ndim < 2:
            return u
        return u - u.mean(tuple(range(1, u.ndim)), keepdims=True)

    def update(updates, state, params=None, **extra):
        del params, extra
        if isinstance(updates, Flat):
            raise TypeError(
                "centralize needs each leaf's shape to take its mean; a Flat buffer has lost them: keep the "
                "params a pytree for this stage"
            )
        return leafwise(subtract_mean, updates), state

    return stage("centralize", init_empty, update)


class ZeroNansState(NamedTuple):
    """State of :func:`adamlab.gradients.zero_nans`: which leaves held a NaN at the last update.

    The same name and field as Optax's ``optax.ZeroNansState``.

    Args:
        found_nan: A tree like the params of bool scalars: True where the leaf's last update held at least one
            NaN (which was zeroed); always False for integer and bool leaves. All False after ``init``.

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.gradients import zero_nans
        >>> zero_nans().init({"w": jnp.zeros(2)})
        ZeroNansState(found_nan={'w': Array(False, dtype=bool)})
    """

    found_nan: Any


def zero_nans() -> GradientTransformation:
    """Replaces every NaN by 0 and records, per leaf, whether there was one.

    ::

        u_out     = 0 where isnan(u), else u                (elementwise; Inf passes)
        found_nan = any(isnan(u))                           (per leaf, the new state)

    A weight whose gradient is NaN then takes no step from it (before the moments, the moments see 0), while
    the rest of the tree trains on. The state is written by each update, not used by it: it tells the caller
    where NaNs arrived at the last step. A complex element is NaN when either part is. To skip a whole step
    on a non-finite gradient instead, wrap the optimizer in :func:`adamlab.skip_nonfinite`. Float leaves only
    (others pass through, their flag False), in their own dtype. On a :class:`adamlab.flat.Flat` the flag is
    per buffer. Optax: :func:`optax.zero_nans` (the same output and state, bit for bit). PyTorch: like
    ``torch.nan_to_num(grad, nan=0.0, posinf=inf, neginf=-inf)``, without the flags.

    Returns:
        A `GradientTransformation` whose state is a :class:`adamlab.gradients.ZeroNansState`.

    Raises:
        ValueError: At update time, if the updates do not have the tree structure of the params given to
            ``init``.

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.gradients import zero_nans
        >>> tx = zero_nans()
        >>> state = tx.init({"w": jnp.zeros(3), "b": jnp.zeros(1)})
        >>> updates, state = tx.update({"w": jnp.array([1.0, jnp.nan, jnp.inf]), "b": jnp.ones(1)}, state)
        >>> print(updates["w"], state.found_nan["w"], state.found_nan["b"])
        [ 1.  0. inf] True False
    """

    def init(params):
        _checks.check_leaves(params, "params")
        return ZeroNansState(found_nan=jax.tree.map(lambda p: jnp.array(False, dtype=jnp.bool_), params))

    def found(u):
        return jnp.any(jnp.isnan(u)) if has_gradient(u) else jnp.array(False, dtype=jnp.bool_)

    def update(updates, state, params=None, **extra):
        del params, extra
        diff = _checks.first_difference(updates, state.found_nan, names=("the updates", "the params"))
        if diff is not None:
            raise ValueError(f"zero_nans: the updates do not have the tree structure of the params: {diff}")
        new_state = ZeroNansState(found_nan=jax.tree.map(found, updates))
        return leafwise(lambda u: jnp.where(jnp.isnan(u), jnp.zeros_like(u), u), updates), new_state

    return stage("zero_nans", init, update)


def keep_params_nonnegative() -> GradientTransformation:
    """Shortens every update that would take a param below 0 so that it lands on 0 exactly.

    ::

        u_out = -p          where p + u < 0
        u_out = u           otherwise

    After :func:`adamlab.apply_updates` every param is then ``>= 0`` (a projection onto the non-negative
    orthant, as for variances, rates or NMF factors). It is meant as the last stage, after the learning
    rate, where ``u`` is the step itself. A param that is already negative is sent to 0 by its next update.
    The test is made in float32 or wider (for a bfloat16 param, on the sum that `apply_updates` rounds, so
    the rounded param is not negative either). Stateless; needs the params; real float leaves only (complex
    ones have no sign and are refused), integer and bool leaves pass through. Optax:
    :func:`optax.keep_params_nonnegative` (the same arithmetic, bit for bit on float32 leaves). PyTorch has
    none (``p.data.clamp_(min=0)`` after the step is the usual spelling).

    Returns:
        A stateless `GradientTransformation` (state :class:`adamlab.EmptyState`) whose ``update`` needs the
        params: ``update(updates, state, params)``.

    Raises:
        ValueError: At update time, if the params are missing or do not have the updates' tree and shapes.
        TypeError: At update time, if a leaf is complex.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> from adamlab.gradients import keep_params_nonnegative
        >>> tx = adamlab.chain(adamlab.sgd(1.0), keep_params_nonnegative())
        >>> params = {"w": jnp.array([1.0, 1.0, 0.5])}
        >>> updates, _ = tx.update({"w": jnp.array([0.5, 3.0, -1.0])}, tx.init(params), params)
        >>> print(adamlab.apply_updates(params, updates)["w"])
        [0.5 0.  1.5]
    """

    def keep(u, p):
        u, p = upcast(u, p)
        return jnp.where((p + u) < 0.0, -p, u)

    def update(updates, state, params=None, **extra):
        del extra
        if params is None:
            if not jax.tree.leaves(updates):  # an empty tree: None is its params too, and nothing moves
                return updates, state
            raise ValueError("keep_params_nonnegative needs the params: call update(updates, state, params)")
        _checks.check_same_tree(updates, params, "keep_params_nonnegative: updates", "params", strict=True)
        for path, u in jax.tree_util.tree_flatten_with_path(updates)[0]:
            if hasattr(u, "dtype") and jnp.issubdtype(u.dtype, jnp.complexfloating):
                raise TypeError(
                    f"keep_params_nonnegative: the updates at {_checks.path_str(path)} are complex ({u.dtype}); "
                    "a complex param has no sign to keep"
                )
        return leafwise(keep, updates, params), state

    return stage("keep_params_nonnegative", init_empty, update)
