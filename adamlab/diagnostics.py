"""What an adaptive optimizer does to each weight, read off its state: the quantities people log in LLM runs.

For Adam-family chains (`adamlab.adam`, `adamlab.adamw`, or any chain with one `scale_by_rms`)::

    v_hat           = v_t / (1 - b2**t)                          second_moment_hat
    step size       = lr / (sqrt(v_hat) + eps)                     effective_step_size
    decay, coupled  = lr * wd / (sqrt(v_hat) + eps)   (Adam + L2)  effective_decay(coupled=True)
    decay, AdamW    = lr * wd                                       effective_decay(coupled=False)
    update/weight   = rms(u) / rms(p)   per leaf                   update_weight_ratio

``t`` is the number of steps taken and ``lr`` the learning rate of the step just taken (``schedule(t - 1)``
when it is a schedule), so every quantity describes the last update. The *effective decay* is the fraction
of a weight removed per step by the decay term: AdamW subtracts ``lr * wd * p``; Adam with L2 adds
``wd * p`` to the gradient, so after the division by ``sqrt(v_hat) + eps`` it subtracts
``lr * wd * p / (sqrt(v_hat) + eps)`` (taking the first moment of the slowly varying ``wd * p`` as
``wd * p``). Weights with a large gradient history are barely decayed under L2.

Everything is pure and jit-friendly: the state is searched by type while tracing (its tuple structure is
static), and the results are pytrees like the params, or scalars. ``b2`` and ``eps`` are not stored in the
state, so pass the values the optimizer was built with (the defaults are Adam's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks
from adamlab.decay import resolve_mask
from adamlab.moments import RmsState, bias_correction_term
from adamlab.tree import has_gradient

PyTree = Any
LearningRate = float | jax.Array | Callable[[jax.Array], jax.Array]


def find_state(state: Any, state_type: type) -> Any:
    """The one instance of `state_type` (e.g. `RmsState`) inside an optimizer state.

    Searches tuples and lists recursively, so it finds the stage state in an adamlab chain's flat tuple and
    also inside wrappers such as ``optax.chain(..., adamlab.adamw(...))``. Raises ValueError when there
    is none or more than one.
    """
    found: list = []

    def walk(node: Any) -> None:
        if isinstance(node, state_type):
            found.append(node)
        elif isinstance(node, (tuple, list)):  # NamedTuple stage states are tuples too
            for child in node:
                walk(child)

    walk(state)
    if len(found) != 1:
        raise ValueError(
            f"state: expected exactly one {state_type.__name__} in the optimizer state, found {len(found)}; "
            f"pass the state of a chain with a single {_stage_name(state_type)} stage (e.g. adamlab.adamw)"
        )
    return found[0]


def _stage_name(state_type: type) -> str:
    return "scale_by_rms" if state_type is RmsState else state_type.__name__


def step_count(state: Any) -> jax.Array:
    """``t``, the number of updates taken, from the `RmsState` of an Adam-family state (int32)."""
    return find_state(state, RmsState).count


def learning_rate_at(state: Any, learning_rate: LearningRate) -> jax.Array:
    """The learning rate of the last step: `learning_rate` itself, or ``schedule(t - 1)`` for a schedule."""
    if callable(learning_rate):
        last = jnp.maximum(step_count(state) - 1, 0)
        return jnp.asarray(learning_rate(last), jnp.float32)
    _checks.check_nonnegative("learning_rate", learning_rate)
    return jnp.asarray(learning_rate, jnp.float32)


def second_moment_hat(state: Any, *, b2: float = 0.999, bias_correction: bool = True) -> PyTree:
    """``v_hat = v_t / (1 - b2**t)`` per weight (``v_t`` when `bias_correction` is False), float32 or wider.

    Non-float leaves keep their empty ``(0,)`` placeholder.
    """
    _checks.check_decay("b2", b2)
    rms = find_state(state, RmsState)
    # max(t, 1): before the first step v is zero and the correction 1 - b2**0 would divide 0 by 0.
    bc = bias_correction_term(b2, jnp.maximum(rms.count, 1)) if bias_correction else None

    def hat(v):
        v = v.astype(jnp.promote_types(v.dtype, jnp.float32))
        return v if bc is None or v.size == 0 else v / bc

    return jax.tree.map(hat, rms.second_moment)


def _denominator(v_hat: jax.Array, eps: float, eps_in_sqrt: bool) -> jax.Array:
    return jnp.sqrt(v_hat + eps) if eps_in_sqrt else jnp.sqrt(v_hat) + eps


def effective_step_size(
    state: Any,
    learning_rate: LearningRate,
    *,
    b2: float = 0.999,
    eps: float = 1e-8,
    bias_correction: bool = True,
    eps_in_sqrt: bool = False,
) -> PyTree:
    """Per-weight step size of the last update: ``lr / (sqrt(v_hat) + eps)`` (``lr / sqrt(v_hat + eps)``
    with `eps_in_sqrt`, as RMSProp's default). A tree like the params."""
    _checks.check_nonnegative("eps", eps)
    lr = learning_rate_at(state, learning_rate)
    v_hat = second_moment_hat(state, b2=b2, bias_correction=bias_correction)
    return jax.tree.map(lambda v: v if v.size == 0 else lr / _denominator(v, eps, eps_in_sqrt), v_hat)


def effective_decay(
    state: Any,
    params: PyTree,
    learning_rate: LearningRate,
    weight_decay: float,
    *,
    coupled: bool,
    mask: Any = None,
    b2: float = 0.999,
    eps: float = 1e-8,
    bias_correction: bool = True,
    eps_in_sqrt: bool = False,
) -> PyTree:
    """Fraction of each weight the decay removes per step, a tree like `params`.

    ``coupled=True`` (Adam + L2, ``adam(weight_decay=wd)``): ``lr * wd / (sqrt(v_hat) + eps)``.
    ``coupled=False`` (AdamW): ``lr * wd`` for every weight. Weights the `mask` excludes (a bool tree, a
    prefix of one, a callable ``params -> mask``, as for the optimizer) get 0.

    Under L2 a value near or above 1 marks a weight whose own gradient is negligible: ``v_hat`` is then set by
    ``(wd * p)**2``, Adam's step is about ``lr * sign(p)``, and the weight is held at ``|p| ~ lr``.
    """
    _checks.check_nonnegative("weight_decay", weight_decay)
    rms = find_state(state, RmsState)
    _checks.check_same_tree(params, rms.second_moment, "effective_decay: params", "the optimizer state's moments")
    masks = jax.tree.map(lambda _: True, params) if mask is None else resolve_mask(mask, params)
    lr = learning_rate_at(state, learning_rate)
    if coupled:
        steps = effective_step_size(
            state, lr, b2=b2, eps=eps, bias_correction=bias_correction, eps_in_sqrt=eps_in_sqrt
        )
        per_weight = jax.tree.map(lambda s: s * weight_decay, steps)
    else:
        per_weight = jax.tree.map(
            lambda p, v: v if v.size == 0 else jnp.full(jnp.shape(p), lr * weight_decay, v.dtype),
            params,
            rms.second_moment,
        )

    def apply_mask(d, m):
        if d.size == 0:
            return d
        return jnp.where(jnp.asarray(m), d, jnp.zeros((), d.dtype))

    return jax.tree.map(apply_mask, per_weight, masks)


def update_weight_ratio(updates: PyTree, params: PyTree) -> PyTree:
    """``rms(u) / rms(p)`` per leaf (a scalar per leaf): how far one step moves a tensor, relative to its size.

    About 1e-3 is the usual healthy value for matrices in LLM training; much larger means the learning rate
    is too high for that tensor. ``inf`` where the params are all zero but the update is not (a freshly
    zero-initialised bias), 0 where both are zero; non-float leaves give 0.
    """
    _checks.check_same_tree(updates, params, "update_weight_ratio: updates", "params")

    def ratio(u, p):
        if not has_gradient(jnp.asarray(p)):
            return jnp.zeros((), jnp.float32)
        dt = jnp.promote_types(jnp.result_type(u, p), jnp.float32)
        ru = jnp.sqrt(jnp.mean(jnp.square(jnp.asarray(u, dt))))
        rp = jnp.sqrt(jnp.mean(jnp.square(jnp.asarray(p, dt))))
        return jnp.where(rp > 0, ru / jnp.where(rp > 0, rp, 1), jnp.where(ru > 0, jnp.inf, 0.0)).astype(dt)

    return jax.tree.map(ratio, updates, params)


def tree_quantiles(tree: PyTree, q: Sequence[float] | float, *, mask: Any = None) -> jax.Array:
    """Quantiles `q` (each in [0, 1]) of all the values of a per-weight tree, over the weights `mask` selects.

    A jit-friendly summary for logging, e.g. the 5%, 50% and 95% points of `effective_decay` over the
    decayed weights. `mask` is a bool tree (bool-array leaves select elements), a prefix of one or a
    callable, as for the optimizer. Returns a scalar for a scalar `q`, else an array like `q`.
    """
    for value in np.ravel(q) if not isinstance(q, jax.Array) else ():
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q!r}")
    masks = jax.tree.map(lambda _: True, tree) if mask is None else resolve_mask(mask, tree)
    values = []
    for x, m in zip(jax.tree.leaves(tree), jax.tree.leaves(masks)):
        static = isinstance(m, (bool, np.bool_))
        if jnp.size(x) == 0 or (static and not m):
            continue
        flat = jnp.ravel(x).astype(jnp.float32)
        # An element mask is traced data: excluded values become NaN, which nanquantile skips.
        values.append(flat if static else jnp.where(jnp.ravel(jnp.broadcast_to(m, jnp.shape(x))), flat, jnp.nan))
    if not values:
        raise ValueError("tree_quantiles: the mask selects no values")
    return jnp.nanquantile(jnp.concatenate(values), jnp.asarray(q, jnp.float32))
