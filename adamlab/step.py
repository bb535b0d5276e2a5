"""Jitted training steps with the params and the optimizer state donated.

Donation lets XLA write the new params and moments into the buffers of the
old ones, so a step holds params, grads and the moments once, with no
second copy (and, on the CPU, allocates no fresh memory per step). Both
helpers take pytree params or :class:`adamlab.flat.Flat` buffers alike::

    step = adamlab.step.update_step(adamlab.adamw(1e-3))
    params, state = step(params, state, grads)      # params and state are consumed

    train = adamlab.step.train_step(loss_fn, adamlab.adamw(1e-3))
    params, state, loss = train(params, state, batch)

After a donated call the arrays passed in are deleted: keep only what the
step returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.core
import jax.numpy as jnp

from adamlab.base import Transformation, apply_updates
from adamlab.flat import Flat

__all__ = ["train_step", "update_step"]


def _check_tx(tx) -> None:
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(f"tx must be a GradientTransformation, got {type(tx).__name__}")


def update_step(tx: Transformation, *, donate: bool = True) -> Callable:
    """Builds a jitted ``(params, state, grads) -> (params, state)`` step that applies ``tx`` to given gradients.

    ::

        updates, state = tx.update(grads, state, params)
        params = apply_updates(params, updates)          # params + updates, float leaves only

    Use it when the gradients come from elsewhere (a custom backward pass,
    accumulation over micro-batches, a gradient all-reduce); when you have a
    loss function, :func:`adamlab.step.train_step` also takes the gradient.
    The returned function is ``jax.jit(step, donate_argnums=(0, 1))``: the
    params and state passed in are donated, so XLA writes the new ones into
    their buffers; the grads are not donated (callers often log them).
    It is the same as Optax's usual ``optax.apply_updates`` loop written by
    hand under ``jax.jit(..., donate_argnums=...)``.

    On a mesh, the new params and state keep the shardings of the params
    and state of the first call (``out_shardings`` pinned to them): the
    compiler cannot move a replicated leaf onto a split, and every later
    step reuses the one compiled program.

    Args:
      tx: The optimizer: any object with ``init`` and ``update`` methods, an
        adamlab :class:`adamlab.GradientTransformation` or an
        ``optax.GradientTransformation``. It is called as
        ``tx.update(grads, state, params)``.
      donate: Whether to donate the params and the optimizer state (arguments
        0 and 1) to the result. Default True: after a call, the arrays passed
        in are deleted and only the returned ones may be used. Set False to
        keep the inputs alive (e.g. to compare before and after), at the cost
        of a second copy of params and state during the step.

    Returns:
      A jitted function ``step(params, state, grads) -> (params, state)``.
      ``params`` is a pytree or a :class:`adamlab.flat.Flat`; ``grads`` has
      the structure of ``params``; ``state`` is what ``tx.init(params)``
      returned.

    Raises:
      TypeError: If ``tx`` has no callable ``init`` and ``update``.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.sgd(0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = tx.init(params)
      >>> step = adamlab.step.update_step(tx)
      >>> old = params["w"]
      >>> params, state = step(params, state, {"w": jnp.array([1.0, 1.0])})
      >>> print(params["w"])
      [ 0.9 -2.1]
      >>> old.is_deleted()  # donated: its buffer now holds the new params
      True
    """
    _check_tx(tx)

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply_updates(params, updates), state

    return _ShardingKeepingStep(step, donate, extra_outputs=0)


class _ShardingKeepingStep:
    """``jax.jit(step)`` whose new params and state keep the shardings of the params and state it was first given.

    Left to the compiler, an output's sharding may differ from its input's (a replicated bias coming back
    split): the next call then sees other input shardings and compiles again, and the state drifts over the
    mesh. Pinning ``out_shardings`` to the inputs' keeps one program for every step. Inputs on one device
    (or traced, inside an enclosing jit) need no pinning and get the plain jitted step. Like a jitted
    function, it can be called, or lowered (``.lower(params, state, ...)``).
    """

    def __init__(self, step: Callable, donate: bool, extra_outputs: int):
        self._step, self._donate, self._extra = step, (0, 1) if donate else (), extra_outputs
        self._plain = jax.jit(step, donate_argnums=self._donate)
        self._pinned: Callable | None = None

    def _jitted(self, params, state):
        if self._pinned is not None:
            return self._pinned
        leaves = jax.tree.leaves((params, state))
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            return self._plain
        if not any(isinstance(x, jax.Array) and len(x.sharding.device_set) > 1 for x in leaves):
            self._pinned = self._plain
        else:
            keep = lambda x: x.sharding if isinstance(x, jax.Array) else None
            out = (jax.tree.map(keep, params), jax.tree.map(keep, state), *[None] * self._extra)
            self._pinned = jax.jit(self._step, donate_argnums=self._donate, out_shardings=out)
        return self._pinned

    def __call__(self, params, state, *args, **kwargs):
        return self._jitted(params, state)(params, state, *args, **kwargs)

    def lower(self, params, state, *args, **kwargs):
        return self._jitted(params, state).lower(params, state, *args, **kwargs)


def _value_and_grad(fn, params, has_aux):
    # Differentiates only the floating-point leaves (buckets): integer and bool leaves get zero "grads",
    # which every adamlab transformation passes through and `apply_updates` ignores.
    leaves, treedef = jax.tree.flatten(params)
    is_float = [jnp.issubdtype(jnp.result_type(x), jnp.inexact) for x in leaves]

    def on_floats(float_leaves):
        it = iter(float_leaves)
        return fn(jax.tree.unflatten(treedef, [next(it) if f else x for x, f in zip(leaves, is_float)]))

    value, float_grads = jax.value_and_grad(on_floats, has_aux=has_aux)([x for x, f in zip(leaves, is_float) if f])
    it = iter(float_grads)
    grads = jax.tree.unflatten(treedef, [next(it) if f else jnp.zeros_like(x) for x, f in zip(leaves, is_float)])
    return value, grads


def train_step(
    loss_fn: Callable[..., Any],
    tx: Transformation,
    *,
    donate: bool = True,
    has_aux: bool = False,
) -> Callable:
    """Builds a jitted ``(params, state, *args) -> (params, state, loss)`` step: one gradient step on ``loss_fn``.

    ::

        loss, grads = jax.value_and_grad(loss_fn)(params, *args, **kwargs)
        updates, state = tx.update(grads, state, params)
        params = apply_updates(params, updates)

    What is jitted is that whole step: the forward and backward pass of
    ``loss_fn``, the optimizer update and the addition of the updates, one
    XLA program. With ``donate`` the params and the optimizer state
    (arguments 0 and 1) are donated to it, so the new params and moments are
    written into the old buffers; the batch arguments are never donated.
    On a mesh, the new params and state keep the shardings of the first
    call's params and state, so every step reuses one compiled program (see
    :func:`update_step`).

    When ``params`` is a :class:`adamlab.flat.Flat`, ``loss_fn`` receives the
    pytree of views (``params.unflatten()``), and the gradient is taken with
    respect to the buffers, so it arrives as one buffer per bucket. Integer
    and bool leaves are not differentiated: they get zero gradients, which
    every adamlab transformation passes through and ``apply_updates``
    ignores (``jax.grad`` would refuse them).

    Args:
      loss_fn: The objective, called as ``loss_fn(params, *args, **kwargs)``
        with the positional and keyword arguments the step receives after
        ``state`` (typically a batch). It returns a scalar loss, or
        ``(loss, aux)`` with ``has_aux``. Must be traceable by ``jax.jit``.
      tx: The optimizer: any object with ``init`` and ``update`` methods, an
        adamlab :class:`adamlab.GradientTransformation` or an
        ``optax.GradientTransformation``. It is called as
        ``tx.update(grads, state, params)``, so transformations that need the
        params (weight decay) get them.
      donate: Whether to donate the params and the optimizer state to the
        result. Default True: after a call, the params and state passed in
        are deleted; keep only what the step returns. Set False to keep them
        alive, at the cost of a second copy during the step.
      has_aux: Whether ``loss_fn`` returns ``(loss, aux)`` rather than the
        loss alone, as in ``jax.value_and_grad``. Default False. With it the
        step returns ``(params, state, (loss, aux))``.

    Returns:
      A jitted function ``step(params, state, *args, **kwargs)`` returning
      ``(params, state, loss)``, or ``(params, state, (loss, aux))`` with
      ``has_aux``. ``loss`` is the loss at the params *before* the update.

    Raises:
      TypeError: If ``tx`` has no callable ``init`` and ``update``, or
        ``loss_fn`` is not callable.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> def loss_fn(p, x, y):
      ...     return jnp.mean((x @ p["w"] - y) ** 2)
      >>> tx = adamlab.sgd(0.1)
      >>> params = {"w": jnp.zeros(2)}
      >>> state = tx.init(params)
      >>> train = adamlab.step.train_step(loss_fn, tx)
      >>> x, y = jnp.eye(2), jnp.array([1.0, 2.0])
      >>> for _ in range(3):
      ...     params, state, loss = train(params, state, x, y)
      >>> print(round(float(loss), 4), params["w"])
      1.6402 [0.271 0.542]

      With ``has_aux``, the auxiliary output comes back beside the loss:

      >>> aux_fn = lambda p, x, y: (loss_fn(p, x, y), {"w_sum": p["w"].sum()})
      >>> train = adamlab.step.train_step(aux_fn, tx, has_aux=True)
      >>> params, state, (loss, aux) = train(params, state, x, y)
      >>> print(round(float(loss), 4), round(float(aux["w_sum"]), 4))
      1.3286 0.813
    """
    _check_tx(tx)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")

    def step(params, state, *args, **kwargs):
        def objective(p):
            return loss_fn(p.unflatten() if isinstance(p, Flat) else p, *args, **kwargs)

        value, grads = _value_and_grad(objective, params, has_aux)
        updates, state = tx.update(grads, state, params)
        return apply_updates(params, updates), state, value

    return _ShardingKeepingStep(step, donate, extra_outputs=1)
