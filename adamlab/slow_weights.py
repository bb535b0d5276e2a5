"""Lookahead (Zhang et al., 2019): k fast steps forward, then the slow weights move part of the way.

A fast optimizer trains the fast weights; every `sync_period` steps the slow weights take a step of
`slow_step_size` toward them and the fast weights restart from the slow ones::

    fast <- fast + fast_optimizer.update(g(fast))                 (every step)
    every sync_period-th step:  slow <- slow + slow_step_size * (fast - slow);  fast <- slow

The params are a :class:`LookaheadParams` pair ``(fast, slow)``: gradients are taken at ``params.fast``,
evaluation uses ``params.slow``. The same structure, field names and arithmetic as Optax's
``optax.lookahead`` / ``optax.LookaheadParams``, so an Optax training loop runs unchanged.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks
from adamlab.base import GradientTransformation, Transformation, _accepts_extra, stage
from adamlab.tree import has_gradient, per_precision, scalar, upcast


class LookaheadParams(NamedTuple):
    """The params of :func:`lookahead`: the fast weights (trained on) and the slow weights (evaluated).

    Compute gradients at ``fast`` and evaluate at ``slow``. `adamlab.apply_updates` (or
    ``optax.apply_updates``) adds :func:`lookahead`'s updates, a ``LookaheadParams`` too, to both. The
    counterpart of ``optax.LookaheadParams`` (same fields, same order, same ``init_synced``).

    Args:
        fast: The fast weights, a tree of arrays.
        slow: The slow weights, a tree like ``fast``.

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.slow_weights import LookaheadParams
        >>> params = LookaheadParams.init_synced({"w": jnp.ones(2)})
        >>> print(params.fast["w"], params.slow["w"])
        [1. 1.] [1. 1.]
    """

    fast: Any
    slow: Any

    @classmethod
    def init_synced(cls, params: Any) -> LookaheadParams:
        """Fast and slow weights both equal to `params` (the start of training)."""
        return cls(fast=params, slow=params)


class LookaheadState(NamedTuple):
    """State of :func:`lookahead`: the fast optimizer's state and the steps since the last synchronization.

    Args:
        fast_state: The fast optimizer's state.
        steps_since_sync: An int32 scalar in ``[0, sync_period)``, the fast steps taken since the slow weights
            last moved.

    The fields of ``optax.LookaheadState``.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> from adamlab.slow_weights import LookaheadParams, lookahead
        >>> state = lookahead(adamlab.sgd(0.1), 5, 0.5).init(LookaheadParams.init_synced({"w": jnp.ones(2)}))
        >>> print(state.fast_state, state.steps_since_sync)
        (EmptyState(),) 0
    """

    fast_state: Any
    steps_since_sync: jax.Array


def _check_sync_period(sync_period) -> None:
    if isinstance(sync_period, bool) or not isinstance(sync_period, (int, np.integer)):
        raise TypeError(f"sync_period must be an int >= 1, got {type(sync_period).__name__}")
    if sync_period < 1:
        raise ValueError(f"sync_period must be an int >= 1, got {sync_period!r}")


def _check_step_size(slow_step_size) -> None:
    v = _checks._value("slow_step_size", slow_step_size)
    if v is not None and not 0.0 <= v <= 1.0:
        raise ValueError(f"slow_step_size must be in [0, 1], got {slow_step_size!r}")


def lookahead(
    fast_optimizer: Transformation,
    sync_period: int,
    slow_step_size: float,
    reset_state: bool = False,
) -> GradientTransformation:
    """Lookahead around `fast_optimizer`: every `sync_period` steps, slow weights move toward the fast ones.

    With ``u`` the fast optimizer's update at ``params.fast`` and ``sync`` 1 on every `sync_period`-th step
    (0 otherwise)::

        d         = fast + u - slow                       (the fast weights after this step, minus the slow)
        slow_step = slow_step_size * sync * d
        fast_step = u - sync * (1 - slow_step_size) * d   (on a sync step: fast + fast_step = new slow)

    ``update`` returns the pair ``LookaheadParams(fast=fast_step, slow=slow_step)``, of the type of the params
    it was given (adamlab's or Optax's ``LookaheadParams``), to add with :func:`adamlab.apply_updates`
    unchanged: modifying it breaks the synchronization. With `reset_state`, the fast optimizer's state is
    replaced by ``fast_optimizer.init(params.fast)`` on every sync step (a select, where Optax blends the two
    states with 0/1 weights: the same values for finite states). Computed in float32 (or wider; the scalars
    in each leaf's precision), in Optax's order. Optax: ``optax.lookahead``, bit for bit.

    Args:
        fast_optimizer: The inner optimizer (adamlab's or Optax's), run on the fast weights. Extra keyword
            arguments of ``update`` are passed on when it accepts them. Optax: ``fast_optimizer``.
        sync_period: ``k``, the number of fast steps per synchronization, an int ``>= 1`` (1: every step).
            Optax: ``sync_period``; the paper's ``k`` (5 or 10 there).
        slow_step_size: ``alpha``, the fraction of the way the slow weights move, in ``[0, 1]`` (1: they jump
            to the fast weights). Optax: ``slow_step_size``; the paper's ``alpha`` (0.5 there).
        reset_state: Re-initialize the fast optimizer's state at every synchronization. Default False.
            Optax: ``reset_state``.

    Returns:
        A `GradientTransformation` whose state is a :class:`LookaheadState`. Its ``init`` takes a
        :class:`LookaheadParams` (or, as in Optax, the fast params alone); its ``update(grads, state, params)``
        needs ``params`` as a ``LookaheadParams`` and `grads` taken at ``params.fast``.

    Raises:
        ValueError: If `sync_period` is below 1 or `slow_step_size` outside ``[0, 1]``; in ``update``, if the
            params are not a ``(fast, slow)`` pair.
        TypeError: If `sync_period` is not an int, `slow_step_size` not a real number, `reset_state` not a
            bool, or `fast_optimizer` has no ``init`` and ``update``.

    References:
        Zhang, Lucas, Hinton & Ba, *Lookahead Optimizer: k steps forward, 1 step back*, NeurIPS 2019.

    Example:
        SGD on ``f(w) = w**2 / 2`` (gradient ``w``), synchronized every 2 steps, half way:

        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> from adamlab.slow_weights import LookaheadParams, lookahead
        >>> tx = lookahead(adamlab.sgd(0.5), sync_period=2, slow_step_size=0.5)
        >>> params = LookaheadParams.init_synced({"w": jnp.array([4.0])})
        >>> state = tx.init(params)
        >>> for _ in range(2):
        ...     updates, state = tx.update(params.fast, state, params)
        ...     params = adamlab.apply_updates(params, updates)
        ...     print(params.fast["w"], params.slow["w"], state.steps_since_sync)
        [2.] [4.] 1
        [2.5] [2.5] 0
    """
    if not (callable(getattr(fast_optimizer, "init", None)) and callable(getattr(fast_optimizer, "update", None))):
        raise TypeError(f"fast_optimizer must be a GradientTransformation, got {type(fast_optimizer).__name__}")
    _check_sync_period(sync_period)
    _check_step_size(slow_step_size)
    if not isinstance(reset_state, bool):
        raise TypeError(f"reset_state must be True or False, got {reset_state!r}")
    passes_extra = _accepts_extra(fast_optimizer.update)

    def init(params):
        fast = getattr(params, "fast", params)  # the fast params alone are accepted, as Optax does
        return LookaheadState(fast_optimizer.init(fast), jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, **extra):
        if params is None or not (hasattr(params, "fast") and hasattr(params, "slow")):
            raise ValueError(
                "lookahead needs the params as a pair: call update(grads, state, LookaheadParams(fast=..., "
                "slow=...)) with the gradient taken at params.fast"
            )
        kw = extra if passes_extra else {}
        steps, fast_state = fast_optimizer.update(updates, state.fast_state, params.fast, **kw)
        sync = state.steps_since_sync == (sync_period - 1)
        # Optax's factors: (alpha * sync) for the slow step, (sync * (1 - alpha)) for the fast one.
        factors = per_precision(lambda: (scalar(slow_step_size * sync), scalar(sync * (1 - slow_step_size))))

        def difference(u, f, s):
            if not has_gradient(u):
                return u
            u, f, s = upcast(u, f, s)
            return f + u - s

        diff = jax.tree.map(difference, steps, params.fast, params.slow)

        def slow_step(u, d):
            return (factors(d)[0] * d).astype(jnp.result_type(u)) if has_gradient(u) else u

        def fast_step(u, d):
            return (upcast(u)[0] - factors(d)[1] * d).astype(jnp.result_type(u)) if has_gradient(u) else u

        slow = jax.tree.map(slow_step, steps, diff)
        fast = jax.tree.map(fast_step, steps, diff)
        if reset_state:
            fresh = fast_optimizer.init(params.fast)
            fast_state = jax.tree.map(lambda now, new: jnp.where(sync, new, now), fast_state, fresh)
        count = (state.steps_since_sync + 1) % sync_period
        return type(params)(fast=fast, slow=slow), LookaheadState(fast_state, count)

    return stage("lookahead", init, update)


__all__ = ["LookaheadParams", "LookaheadState", "lookahead"]
