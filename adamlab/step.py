"""Jitted training steps with the params and the optimizer state donated.

Donation lets XLA write the new params and moments into the buffers of the
old ones, so a step holds params, grads and the moments once, with no
second copy (and, on the CPU, allocates no fresh memory per step). Both
helpers take pytree params or `adamlab.flat.Flat` buffers alike.

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
import jax.numpy as jnp

from adamlab.base import GradientTransformation, apply_updates
from adamlab.flat import Flat


def _check_tx(tx) -> None:
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(f"tx must be a GradientTransformation, got {type(tx).__name__}")


def update_step(tx: GradientTransformation, *, donate: bool = True) -> Callable:
    """``(params, state, grads) -> (params, state)``: ``params + tx.update(grads)``, jitted.

    With `donate` (the default) the params and state passed in are donated
    to the result; the grads are not (callers often log them).
    """
    _check_tx(tx)

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1) if donate else ())


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
    tx: GradientTransformation,
    *,
    donate: bool = True,
    has_aux: bool = False,
) -> Callable:
    """``(params, state, *args) -> (params, state, loss)``: one gradient step on ``loss_fn(params, *args)``, jitted.

    When `params` is a `Flat`, `loss_fn` receives the pytree of views
    (``params.unflatten()``), and the gradient is taken with respect to the
    buffers, so it arrives as one buffer per bucket. With `has_aux`,
    `loss_fn` returns ``(loss, aux)`` and the step returns
    ``(params, state, (loss, aux))``. Integer and bool leaves are not
    differentiated.
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

    return jax.jit(step, donate_argnums=(0, 1) if donate else ())
