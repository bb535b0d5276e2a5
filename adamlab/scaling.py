"""Scaling the step: a constant factor, the learning rate (a number or a schedule) and global-norm clipping."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import GradientTransformation, compiled_when_eager, init_empty, stage
from adamlab.tree import abs_sq, has_gradient, increment, leafwise, upcast

Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | jax.Array | Schedule


class ScheduleState(NamedTuple):
    count: jax.Array  # int32 steps taken; the schedule is evaluated at it before incrementing


def scale(factor: float) -> GradientTransformation:
    """``u * factor``."""

    def update(updates, state, params=None, **extra):
        del params, extra
        return leafwise(lambda u: upcast(u)[0] * factor, updates), state

    return stage("scale", init_empty, update)


def scale_by_learning_rate(learning_rate: ScalarOrSchedule, *, flip_sign: bool = True) -> GradientTransformation:
    """``-learning_rate * u`` (a descent step, to be added by `apply_updates`).

    `learning_rate` is a number or a schedule ``step -> lr`` (adamlab's or
    Optax's); the schedule is evaluated at the number of steps already taken,
    so the first step uses ``schedule(0)``.
    """
    sign = -1.0 if flip_sign else 1.0
    if not callable(learning_rate):
        _checks.check_nonnegative("learning_rate", learning_rate)
        return scale(sign * learning_rate)

    def init(params):
        del params
        return ScheduleState(jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, **extra):
        del params, extra
        lr = jnp.asarray(learning_rate(state.count), jnp.float32)
        out = leafwise(lambda u: upcast(u)[0] * (sign * lr), updates)
        return out, ScheduleState(increment(state.count))

    return stage("scale_by_learning_rate", init, update)


@jax.jit  # eagerly, one compiled program per tree structure (its cond would be compiled on every call)
def global_norm(tree) -> jax.Array:
    """``sqrt(sum of squares)`` over every float leaf, accumulated in float32.

    When the sum of squares overflows although the norm fits (a gradient of
    1e20 in float32), it is recomputed as ``2**e * sqrt(sum((x * 2**-e)**2))``
    with ``2**e`` the power of two just above ``max|x|``; it is Inf only when
    the norm itself exceeds the float32 range or the tree holds an Inf.
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
            jnp.isinf(norm), lambda: _norm_factors(leaves),
            lambda: (jnp.zeros((), norm.dtype), jnp.zeros((), jnp.int32), jnp.ones((), norm.dtype)),
        )
        rescale = jnp.isinf(norm) & jnp.isfinite(a)
        # u * max_norm / (r * 2**e), in the plain formula's shape (u / d) * m, so that a normal step compiles to
        # what Optax's does (bit parity): d = 1, m = the factor. XLA folds the two scalars into one factor, so
        # the rescaled step is exact while that factor is a normal float32: for norms below max_norm * 2**126.
        d = jnp.where(rescale, jnp.ones((), norm.dtype), norm)
        m = jnp.where(rescale, _pow2_scale(max_norm / r, -e), max_norm)
        out = leafwise(lambda u: jnp.where(keep, u, (u / d.astype(u.dtype)) * m.astype(u.dtype)).astype(u.dtype),
                       updates)
        return out, state

    return stage("clip_by_global_norm", init_empty, update)
