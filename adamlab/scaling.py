"""Scaling the step: a constant factor, the learning rate (a number or a schedule) and global-norm clipping."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import EmptyState, GradientTransformation, stage
from adamlab.moments import compute_dtype, increment, is_float, leafwise

Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | jax.Array | Schedule


class ScheduleState(NamedTuple):
    count: jax.Array  # int32 steps taken; the schedule is evaluated at it before incrementing


def scale(factor: float) -> GradientTransformation:
    """``u * factor``."""

    def init(params):
        del params
        return EmptyState()

    def update(updates, state, params=None, **extra):
        del params, extra
        return leafwise(lambda u: u * jnp.asarray(factor, compute_dtype(u)), updates), state

    return stage("scale", init, update)


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
        out = leafwise(lambda u: u * (sign * lr).astype(compute_dtype(u)), updates)
        return out, ScheduleState(increment(state.count))

    return stage("scale_by_learning_rate", init, update)


def global_norm(tree) -> jax.Array:
    """``sqrt(sum of squares)`` over every float leaf, accumulated in float32."""
    leaves = [x for x in jax.tree.leaves(tree) if is_float(x)]
    return jnp.sqrt(sum((jnp.sum(jnp.square(x.astype(compute_dtype(x)))) for x in leaves), jnp.float32(0)))


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Rescales the whole tree to global norm `max_norm` when it is larger: ``u * min(1, max_norm / |u|)``.

    Placed before the moments it clips the gradient that every moment sees;
    placed after them it clips the update direction.
    """
    _checks.check_positive("max_norm", max_norm)

    def init(params):
        del params
        return EmptyState()

    def update(updates, state, params=None, **extra):
        del params, extra
        norm = global_norm(updates)
        keep = norm < max_norm
        out = leafwise(lambda u: jnp.where(keep, u, (u / norm.astype(u.dtype)) * max_norm).astype(u.dtype), updates)
        return out, state

    return stage("clip_by_global_norm", init, update)
