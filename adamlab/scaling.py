"""Scaling the step: a constant factor, the learning rate (a number or a schedule) and global-norm clipping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import GradientTransformation, compiled_when_eager, init_empty, stage
from adamlab.tree import abs_sq, has_gradient, increment, leafwise, per_precision, scalar, upcast

# A function of the step count (adamlab passes an int32 scalar array) returning the value (a scalar). Any on
# both sides, so that Optax's schedules (``optax.Schedule``) and any other ``step -> value`` callable fit, and
# adamlab's schedules fit where Optax takes one.
Schedule = Callable[[Any], Any]
# A constant (a number or a scalar array) or a schedule.
ScalarOrSchedule = float | jax.Array | Schedule


class ScheduleState(NamedTuple):
    """State of :func:`adamlab.scale_by_learning_rate` with a schedule: the number of steps taken.

    Args:
        count: An int32 scalar, the number of ``update`` calls so far (saturating at the int32 maximum);
            the schedule is evaluated at it before it is incremented, so the first step uses
            ``schedule(0)``. Optax's counterpart is ``ScaleByScheduleState.count``.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.scale_by_learning_rate(adamlab.schedules.constant(0.1))
        >>> print(tx.init({"w": jnp.zeros(2)}))
        ScheduleState(count=Array(0, dtype=int32))
    """

    # int32 steps taken; the schedule is evaluated at it before incrementing
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count


def scale(factor: float | jax.Array) -> GradientTransformation:
    """Multiplies every update by a constant: ``u * factor``.

    ::

        u_out = factor * u        (float leaves, computed in float32 or wider; other leaves pass through)

    Stateless. Inside :func:`adamlab.chain` the result is cast back to the incoming updates' dtype;
    called on its own it returns float32 (or wider) leaves. Optax: :func:`optax.scale`.

    Args:
        factor: The multiplier, a number or scalar array, any sign (``-lr`` gives a descent step). It is
            not checked. Optax: ``step_size`` of :func:`optax.scale`.

    Returns:
        A stateless `GradientTransformation` (state :class:`adamlab.EmptyState`).

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.scale(0.5)
        >>> updates, _ = tx.update({"w": jnp.array([2.0, -4.0])}, tx.init({"w": jnp.zeros(2)}))
        >>> print(updates["w"])
        [ 1. -2.]
    """

    def update(updates, state, params=None, **extra):
        del params, extra
        return leafwise(lambda u: upcast(u)[0] * factor, updates), state

    return stage("scale", init_empty, update)


def scale_by_learning_rate(learning_rate: ScalarOrSchedule, *, flip_sign: bool = True) -> GradientTransformation:
    """``-learning_rate * u`` (a descent step, to be added by `apply_updates`).

    `learning_rate` is a number or a schedule ``step -> lr`` (adamlab's or
    Optax's); the schedule is evaluated at the number of steps already taken,
    so the first step uses ``schedule(0)``.

    ::

        u_out = -lr * u                   (flip_sign=True; +lr * u with flip_sign=False)
        lr = learning_rate                or  learning_rate(count), count = steps already taken

    The last stage of every optimizer. A number gives a stateless :func:`adamlab.scale`; a schedule
    gives a stage that counts its steps in a :class:`adamlab.ScheduleState`. The product is computed in
    float32 (or wider); a schedule's value is rounded to each leaf's precision (float32 for float32 and
    narrower leaves, float64 for float64 ones), once per step. Optax: :func:`optax.scale_by_learning_rate`;
    PyTorch: the ``lr`` of every optimizer, with ``torch.optim.lr_scheduler`` for schedules.

    Args:
        learning_rate: The step size: a number or scalar array ``>= 0`` (e.g. ``1e-3``), or a schedule,
            a callable ``step -> lr`` such as :func:`adamlab.schedules.warmup_cosine_decay` or any Optax
            schedule, evaluated on an int32 step count and rounded to each leaf's precision (its values
            are not checked). Optax: ``learning_rate``; PyTorch: ``lr``.
        flip_sign: Keyword-only. True (the default) multiplies by ``-learning_rate``, for descent with
            :func:`adamlab.apply_updates`; False multiplies by ``+learning_rate`` (for ascent, or when a
            later stage flips the sign). Optax: ``flip_sign``.

    Returns:
        A `GradientTransformation`: stateless (:class:`adamlab.EmptyState`) for a number, with a
        :class:`adamlab.ScheduleState` for a schedule.

    Raises:
        ValueError: If a numeric `learning_rate` is negative, NaN or infinite.
        TypeError: If `learning_rate` is neither callable nor a real number or scalar array, or is a function
            that cannot be called with one argument (the step count); raised when the transformation is built.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.scale_by_learning_rate(adamlab.schedules.linear_warmup(0.0, 1.0, 2))
        >>> state = tx.init({"w": jnp.zeros(1)})
        >>> for _ in range(3):
        ...     updates, state = tx.update({"w": jnp.ones(1)}, state)
        ...     print(updates["w"])
        [-0.]
        [-0.5]
        [-1.]
        >>> print(state.count)
        3
    """
    sign = -1.0 if flip_sign else 1.0
    _checks.check_rate("learning_rate", learning_rate)
    if not callable(learning_rate):
        return scale(sign * learning_rate)

    def init(params):
        del params
        return ScheduleState(jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, **extra):
        del params, extra
        value = sign * jnp.asarray(learning_rate(state.count))
        lr = per_precision(lambda: scalar(value))
        out = leafwise(lambda u: upcast(u)[0] * lr(u), updates)
        return out, ScheduleState(increment(state.count))

    return stage("scale_by_learning_rate", init, update)


@jax.jit  # eagerly, one compiled program per tree structure (its cond would be compiled on every call)
def global_norm(tree) -> jax.Array:
    """``sqrt(sum of squares)`` over every float leaf, accumulated in float32.

    When the sum of squares overflows although the norm fits (a gradient of
    1e20 in float32), it is recomputed as ``2**e * sqrt(sum((x * 2**-e)**2))``
    with ``2**e`` the power of two just above ``max|x|``; it is Inf only when
    the norm itself exceeds the float32 range or the tree holds an Inf.

    ::

        global_norm(tree) = sqrt(sum over float leaves x of sum(|x|**2))

    Complex leaves contribute ``|x|**2``; integer and boolean leaves are ignored, and a tree without
    float leaves has norm 0. Compiled once per tree structure even when called eagerly. Optax:
    :func:`optax.global_norm` (``optax.tree.norm``); PyTorch: the ``total_norm`` that
    ``torch.nn.utils.clip_grad_norm_`` returns (for ``norm_type=2``).

    Args:
        tree: Any pytree of arrays (gradients, updates, params).

    Returns:
        A scalar `jax.Array`, float32 (float64 when the tree holds float64 leaves and 64-bit mode is
        on).

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> print(adamlab.global_norm({"a": jnp.array([3.0]), "b": jnp.array([4.0]), "step": jnp.int32(7)}))
        5.0
        >>> big = adamlab.global_norm({"big": jnp.full(4, 1e20)})  # the plain sum of squares overflows
        >>> print(round(float(big) / 1e20, 4))
        2.0
    """
    leaves = [x for x in jax.tree.leaves(tree) if has_gradient(x)]
    norm = _plain_norm(leaves)

    def rescaled():
        a, e, r = _norm_factors(leaves)
        return jnp.where(jnp.isfinite(a), _pow2_scale(r, e), a).astype(norm.dtype)

    return jax.lax.cond(jnp.isinf(norm), rescaled, lambda: norm) if leaves else norm


def _plain_norm(leaves) -> jax.Array:
    return jnp.sqrt(sum((jnp.sum(abs_sq(upcast(x)[0])) for x in leaves), jnp.float32(0)))


def _max_abs(leaves) -> jax.Array:
    return jnp.max(jnp.stack([upcast(jnp.max(jnp.abs(x), initial=0))[0] for x in leaves]))


def _pow2_scale(x: jax.Array, e: jax.Array) -> jax.Array:
    """``x * 2**e`` for |e| <= 256, in two exact steps: one factor of 2**-128 would be subnormal, flushed to 0."""
    half = e // 2
    real = jnp.finfo(x.dtype).dtype  # x may be complex; the factors are real
    return x * jnp.exp2(half.astype(real)) * jnp.exp2((e - half).astype(real))


def _norm_factors(leaves) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(a, e, r)``: ``a = max|x|`` and ``norm = r * 2**e`` where ``r = sqrt(sum((x * 2**-e)**2))`` cannot overflow."""
    a = _max_abs(leaves)
    e = jnp.frexp(jnp.where(jnp.isfinite(a), a, 1))[1]  # a = m * 2**e, m in [0.5, 1)
    r = jnp.sqrt(sum(jnp.sum(abs_sq(_pow2_scale(upcast(x)[0], -e))) for x in leaves))
    return a, e, r


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Rescales the whole tree to global norm `max_norm` when it is larger: ``u * min(1, max_norm / |u|)``.

    Placed before the moments it clips the gradient that every moment sees;
    placed after them it clips the update direction. When the sum of squares
    overflows float32 (a gradient of 1e20) the norm is recomputed on scaled
    values, so clipping stays exact for any finite tree whose norm is below
    ``max_norm * 2**126`` (8.5e37 for ``max_norm = 1``); beyond, the factor
    ``max_norm / norm`` underflows float32 and the result is 0.

    ::

        n = global_norm(u)
        u_out = u                        if n < max_norm
        u_out = (u / n) * max_norm       otherwise

    Stateless; float leaves only (others pass through), each result in its leaf's dtype. A NaN in the
    tree makes every output NaN. Its arithmetic on ordinary steps is Optax's, bit for bit. Optax:
    :func:`optax.clip_by_global_norm`; PyTorch: ``torch.nn.utils.clip_grad_norm_(params, max_norm)``,
    which divides by ``total_norm + 1e-6`` and works in place on ``.grad``.

    Args:
        max_norm: The largest global norm let through, a number or scalar array ``> 0``. Optax:
            ``max_norm``; PyTorch: ``max_norm``.

    Returns:
        A stateless `GradientTransformation` (state :class:`adamlab.EmptyState`).

    Raises:
        ValueError: If `max_norm` is not ``> 0`` (or is NaN).
        TypeError: If `max_norm` is not a real number or scalar array.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.clip_by_global_norm(1.0)
        >>> state = tx.init({"w": jnp.zeros(2)})
        >>> print(tx.update({"w": jnp.array([3.0, 4.0])}, state)[0]["w"])
        [0.6 0.8]
        >>> print(tx.update({"w": jnp.array([0.3, 0.4])}, state)[0]["w"])
        [0.3 0.4]
    """
    _checks.check_positive("max_norm", max_norm)

    @compiled_when_eager  # its cond would be compiled afresh on every eager call
    def update(updates, state, params=None, **extra):
        del params, extra
        leaves = [u for u in jax.tree.leaves(updates) if has_gradient(u)]
        norm = _plain_norm(leaves)  # Optax's arithmetic, for bit parity
        keep = norm < max_norm
        if not leaves:
            return updates, state
        # The sum of squares overflowed (norm == Inf) for a finite tree: divide by the norm's factors instead.
        # The cond returns scalars only: the factors cost a pass over the tree only on such a step, and no copy.
        a, e, r = jax.lax.cond(
            jnp.isinf(norm),
            lambda: _norm_factors(leaves),
            lambda: (jnp.zeros((), norm.dtype), jnp.zeros((), jnp.int32), jnp.ones((), norm.dtype)),
        )
        rescale = jnp.isinf(norm) & jnp.isfinite(a)
        # u * max_norm / (r * 2**e), in the plain formula's shape (u / d) * m, so that a normal step compiles to
        # what Optax's does (bit parity): d = 1, m = the factor. XLA folds the two scalars into one factor, so
        # the rescaled step is exact while that factor is a normal float32: for norms below max_norm * 2**126.
        d = jnp.where(rescale, jnp.ones((), norm.dtype), norm)
        m = jnp.where(rescale, _pow2_scale(max_norm / r, -e), max_norm)
        out = leafwise(
            lambda u: jnp.where(keep, u, (u / d.astype(u.dtype)) * m.astype(u.dtype)).astype(u.dtype), updates
        )
        return out, state

    return stage("clip_by_global_norm", init_empty, update)
