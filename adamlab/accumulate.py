"""Gradient accumulation: k micro-batches, one optimizer step on their mean gradient.

``accumulate_gradients(tx, k)`` wraps any transformation. Each call to its
``update`` is one micro-step: the micro-batch gradient ``g_i`` is added to a
single accumulator (float32 by default)::

    a_i = a_{i-1} + g_i                  (a_0 = 0)

and on the k-th micro-step only, the wrapped transformation runs once on the
mean ``a_k / k`` and the accumulator is reset. The other micro-steps return
updates of ``-0.0`` (``p + (-0.0)`` is ``p`` bit for bit) and leave the
wrapped state untouched, so step counters and schedules advance once per real
step. The wrapped update sits in a `jax.lax.cond`: it is not executed on the
other micro-steps (under `jax.vmap`, where a cond becomes a select, it is).

State: one accumulator shaped like the params (sharded like them, since it is
made by ``jnp.zeros_like``), a micro-step counter, and the wrapped state.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks
from adamlab.base import GradientTransformation, Transformation, compiled_when_eager, stage, stage_info
from adamlab.tree import check_state_dtype, has_gradient, init_moment


class AccumulateState(NamedTuple):
    """State of :func:`adamlab.accumulate_gradients`: the micro-step counter, the gradient sum, the wrapped state.

    Args:
        micro_step: An int32 scalar in ``[0, every_k)``: the number of micro-batch gradients summed into
            `accumulator` since the last real step (0 right after ``init`` and after every k-th call).
        accumulator: Their sum, a tree like the params (like ``params.fast`` for a lookahead pair) in the
            accumulator dtype (float32 by default, float64 for float64 params), sharded like them; a ``(0,)``
            float32 placeholder at each non-float leaf. All zeros after every real step.
        inner_state: The wrapped transformation's state; it changes only on real steps (once per
            ``every_k`` calls).

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.accumulate_gradients(adamlab.sgd(0.1), every_k=4)
        >>> state = tx.init({"w": jnp.zeros(2)})
        >>> _, state = tx.update({"w": jnp.array([1.0, 2.0])}, state)
        >>> print(state.micro_step, state.accumulator["w"])
        1 [1. 2.]
    """

    micro_step: jax.Array  # int32 micro-batches summed into `accumulator` since the last real step, in [0, k)
    accumulator: Any  # their gradient sum, a tree like the params; (0,) placeholders for non-float leaves
    inner_state: Any  # the wrapped transformation's state, which moves once per k micro-steps


def _has_slot(g, a) -> bool:
    return has_gradient(g) and np.shape(a) == np.shape(g)


def _is_pair(params) -> bool:
    """A lookahead ``(fast, slow)`` pair, adamlab's or Optax's ``LookaheadParams``: its gradients are taken at
    ``fast`` and have that tree, not the pair's."""
    return isinstance(params, tuple) and getattr(params, "_fields", None) == ("fast", "slow")


def _in_dtype_of(out, updates):
    """`out` cast leaf by leaf to the dtypes of `updates` (a pair's halves each to them)."""
    cast = lambda o, g: o.astype(g.dtype) if has_gradient(g) else o
    if _is_pair(out) and not _is_pair(updates):
        return type(out)(*(jax.tree.map(cast, half, updates) for half in out))
    return jax.tree.map(cast, out, updates)


def accumulate_gradients(tx: Transformation, every_k: int, *, accumulator_dtype: Any = None) -> GradientTransformation:
    """Runs `tx` once every `every_k` calls, on the mean of the gradients of those calls.

    With micro-batch gradients ``g_1 .. g_k`` the k-th call returns
    ``tx.update((g_1 + ... + g_k) / k, ...)``, the sum taken in that order in
    the accumulator's dtype: the same bits as one step of `tx` on that mean.
    Calls 1 .. k-1 return ``-0.0`` updates. For a loss that is a mean over
    examples and micro-batches of equal size, the mean of the micro-batch
    gradients is the full batch's gradient (up to the order of the sums).

    `accumulator_dtype` defaults to float32 (float64 for float64 params); a
    narrower one (bfloat16) halves its memory and loses low-order bits of
    every sum. The wrapped transformation receives the mean in that dtype;
    the updates come back in the dtype of the incoming gradients.

    Composition: masks and schedules of `tx` apply to real steps (a schedule
    advances once per k micro-steps). ``accumulate_gradients(skip_nonfinite(tx), k)``
    drops a whole real step when any of its micro-batches was non-finite;
    ``skip_nonfinite(accumulate_gradients(tx, k))`` drops the bad micro-batch
    alone and waits for k finite ones.

    ::

        a_i = a_{i-1} + g_i          (a_0 = 0, in the accumulator dtype)
        calls i = 1 .. k-1:  output -0.0 (float leaves; other leaves pass through as given);
                             inner state unchanged, micro_step = i
        call k:              output, inner = tx.update(a_k / k, inner, params, **extra);
                             accumulator reset to 0, micro_step = 0

    What a non-final micro-step returns: ``-0.0`` in the shape and dtype of each incoming float leaf,
    so ``apply_updates`` leaves the params exactly as they were; the wrapped ``tx.update`` is not run
    (no moment, step count or schedule moves; under `jax.vmap` it runs and its result is discarded).
    The real step receives the params of that k-th call and its extra keywords; an enclosing chain's
    ``gradient`` (one micro-batch's) is dropped, so a chain inside `tx` fixes its own from the mean.
    The state is a plain pytree: it may be checkpointed in the middle of an accumulation cycle and
    resumed. The stage takes `tx`'s role in a chain. Around :func:`adamlab.lookahead`, whose params are a
    ``LookaheadParams(fast, slow)`` pair and whose gradients are taken at ``fast``, the accumulator is shaped
    like ``fast`` and the other micro-steps return a pair of ``-0.0`` updates: both weights stay put, and the
    slow weights' synchronization counts real steps.

    Optax: :class:`optax.MultiSteps` (``every_k_schedule=k``, via its ``gradient_transformation()``),
    which keeps a running mean (``use_grad_mean=True``) instead of a sum, returns ``+0.0`` updates
    and evaluates the inner update on every micro-step; PyTorch: calling ``loss.backward()`` on k
    micro-batches (each loss divided by k) before one ``optimizer.step()`` and ``optimizer.zero_grad()``.

    Args:
        tx: The transformation (usually a whole optimizer, such as ``adamw(...)``) to run once per
            `every_k` calls on the mean gradient.
        every_k: The number of micro-batches per real step, an int ``>= 1`` (Python or NumPy); 1 runs
            `tx` on every call. Optax: ``every_k_schedule`` of :class:`optax.MultiSteps` (an int only
            here).
        accumulator_dtype: Keyword-only. Storage dtype of the sum, a float dtype such as
            ``jnp.float32`` or ``jnp.bfloat16``. Default None: float32, or the param's dtype when wider
            (float64). Optax: ``accumulator_dtype``.

    Returns:
        A `GradientTransformation` whose state is an :class:`adamlab.AccumulateState`; its updates are
        in the dtype of the incoming gradients.

    Raises:
        TypeError: If `tx` is not a transformation, or `accumulator_dtype` is not a float dtype; in
            ``update``, if an update is not floating point where the param given to ``init`` is.
        ValueError: If `every_k` is not an int ``>= 1``; in ``update``, if the state is not an
            `AccumulateState`, or the updates' tree or shapes differ from the params given to ``init``.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.accumulate_gradients(adamlab.scale_by_learning_rate(0.1), every_k=2)
        >>> state = tx.init({"w": jnp.zeros(2)})
        >>> updates, state = tx.update({"w": jnp.array([1.0, 2.0])}, state)
        >>> print(updates["w"], state.micro_step)
        [-0. -0.] 1
        >>> updates, state = tx.update({"w": jnp.array([3.0, 4.0])}, state)
        >>> print(updates["w"], state.micro_step, state.accumulator["w"])
        [-0.2 -0.3] 0 [0. 0.]
    """
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(f"accumulate_gradients: tx is a {type(tx).__name__}, not a GradientTransformation")
    if isinstance(every_k, bool) or not isinstance(every_k, int | np.integer) or every_k < 1:
        raise ValueError(f"every_k must be an int >= 1, got {every_k!r}")
    every_k = int(every_k)
    acc_dtype = check_state_dtype(accumulator_dtype, name="accumulator_dtype", example="jnp.float32")

    def init(params):
        grads_like = params.fast if _is_pair(params) else params
        return AccumulateState(jnp.zeros((), jnp.int32), init_moment(grads_like, acc_dtype), tx.init(params))

    @compiled_when_eager  # its cond would be compiled afresh on every eager call
    def update(updates, state, params=None, **extra):
        if not isinstance(state, AccumulateState):
            raise ValueError(
                f"accumulate_gradients got a state of type {type(state).__name__}; pass the state "
                "its init/update returned"
            )
        _checks.check_same_tree(updates, state.accumulator, "accumulate_gradients: updates", "the params given to init")
        for (path, g), a in zip(jax.tree_util.tree_flatten_with_path(updates)[0], jax.tree.leaves(state.accumulator)):
            if np.size(a) and not has_gradient(g):
                raise TypeError(
                    f"accumulate_gradients: updates at {_checks.path_str(path)} are "
                    f"{getattr(g, 'dtype', type(g).__name__)}, but the param given to init is floating "
                    "point"
                )
        # An enclosing chain's gradient is this micro-batch's; the wrapped chain fixes its own from the mean.
        extra.pop("gradient", None)
        acc = jax.tree.map(lambda g, a: (a + g.astype(a.dtype)) if _has_slot(g, a) else a, updates, state.accumulator)
        last = state.micro_step == every_k - 1

        def step(operands):
            acc, inner = operands
            # XLA rewrites a division by a constant as a product with its reciprocal, and folds constants of the
            # step into it (lr * (a / k)); both round differently from a true division. Behind a barrier, k is an
            # opaque value and the mean reaches `tx` as the exactly rounded a / k, as if the mean were its input.
            k = jax.lax.optimization_barrier(jnp.asarray(every_k, jnp.float32))
            mean = jax.tree.map(lambda g, a: a / k.astype(a.dtype) if _has_slot(g, a) else g, updates, acc)
            mean = jax.lax.optimization_barrier(mean)
            out, inner = tx.update(mean, inner, params, **extra)
            out = _in_dtype_of(out, updates)
            # The new state must have the old one's types exactly (a cond needs both branches to agree).
            inner = jax.tree.map(lambda n, o: jnp.asarray(n, jnp.result_type(o)), inner, operands[1])
            return out, jax.tree.map(jnp.zeros_like, acc), inner

        def wait(operands):
            acc, inner = operands
            # Like g, sharding included: on a mesh of Explicit axes it is part of the type, which both branches share.
            out = jax.tree.map(lambda g: jax.lax.full_like(g, -0.0, g.dtype) if has_gradient(g) else g, updates)
            # lookahead's updates are a pair like its params: both halves stay put
            if params is not None and _is_pair(params):
                out = params._replace(fast=out, slow=out)
            return out, acc, inner

        out, acc, inner = jax.lax.cond(last, step, wait, (acc, state.inner_state))
        micro = jnp.where(last, 0, state.micro_step + 1).astype(jnp.int32)
        return out, AccumulateState(micro, acc, inner)

    return stage("accumulate_gradients", init, update, role=stage_info(tx).role)
