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
from adamlab.tree import has_gradient, per_precision

PyTree = Any
LearningRate = float | jax.Array | Callable[[jax.Array], jax.Array]

__all__ = [
    "effective_decay",
    "effective_step_size",
    "find_state",
    "learning_rate_at",
    "second_moment_hat",
    "step_count",
    "tree_quantiles",
    "update_weight_ratio",
]


def find_state(state: Any, state_type: type) -> Any:
    """Returns the one instance of ``state_type`` (e.g. :class:`adamlab.RmsState`) inside an optimizer state.

    Searches tuples and lists recursively (NamedTuple stage states are tuples too), so it finds the stage
    state in an adamlab chain's flat tuple and also inside wrappers such as
    ``optax.chain(..., adamlab.adamw(...))``. The search runs in Python on the state's structure, so it
    works on traced states under ``jax.jit``.

    Args:
      state: An optimizer state, as returned by ``tx.init`` or ``tx.update``: any nesting of tuples,
        lists and NamedTuples.
      state_type: The class to look for, e.g. :class:`adamlab.RmsState` (the state of
        :func:`adamlab.scale_by_rms`, which holds Adam's ``v``) or :class:`adamlab.EmaState`.

    Returns:
      The single node of ``state`` that is an instance of ``state_type``.

    Raises:
      ValueError: If ``state`` holds no instance of ``state_type``, or more than one.

    Example:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import adamlab
      >>> params = {"w": jnp.zeros(3)}
      >>> state = optax.chain(optax.clip(1.0), adamlab.adamw(1e-3)).init(params)
      >>> rms = adamlab.diagnostics.find_state(state, adamlab.RmsState)
      >>> print(type(rms).__name__, rms.second_moment["w"].shape)
      RmsState (3,)
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
    """Returns ``t``, the number of updates taken, read from the :class:`adamlab.RmsState` of an Adam-family state.

    Args:
      state: The optimizer state of a chain with exactly one :func:`adamlab.scale_by_rms` stage
        (:func:`adamlab.adam`, :func:`adamlab.adamw`, ...), possibly nested in other tuples.

    Returns:
      The int32 scalar step count ``t`` (0 before the first update).

    Raises:
      ValueError: If ``state`` holds no :class:`adamlab.RmsState`, or more than one.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> opt = adamlab.adamw(1e-3)
      >>> params = {"w": jnp.ones(2)}
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     _, state = opt.update({"w": jnp.ones(2)}, state, params)
      >>> print(adamlab.diagnostics.step_count(state))
      3
    """
    return find_state(state, RmsState).count


def learning_rate_at(state: Any, learning_rate: LearningRate) -> jax.Array:
    """Returns the learning rate of the last step: ``learning_rate`` itself, or ``schedule(t - 1)`` for a schedule.

    ::

        lr = learning_rate                        (a number)
        lr = learning_rate(max(t - 1, 0))         (a schedule; t = step_count(state))

    Args:
      state: The optimizer state of a chain with one :func:`adamlab.scale_by_rms` stage; only its step
        count is read, and only when ``learning_rate`` is a schedule.
      learning_rate: The learning rate the optimizer was built with: a number or scalar array (must be
        ``>= 0``), or a schedule ``step -> lr`` such as those of :mod:`adamlab.schedules`.

    Returns:
      The float32 scalar learning rate.

    Raises:
      ValueError: If ``learning_rate`` is a negative number.
      ValueError: If it is a schedule and ``state`` holds no single :class:`adamlab.RmsState`.
      TypeError: If a non-callable ``learning_rate`` is not a real scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> schedule = adamlab.schedules.linear_warmup(0.0, 1.0, 10)
      >>> opt = adamlab.adam(schedule)
      >>> params = {"w": jnp.ones(2)}
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     _, state = opt.update({"w": jnp.ones(2)}, state, params)
      >>> print(round(float(adamlab.diagnostics.learning_rate_at(state, schedule)), 4))  # schedule(2)
      0.2
    """
    if callable(learning_rate):
        last = jnp.maximum(step_count(state) - 1, 0)
        return jnp.asarray(learning_rate(last), jnp.float32)
    _checks.check_nonnegative("learning_rate", learning_rate)
    return jnp.asarray(learning_rate, jnp.float32)


def second_moment_hat(state: Any, *, b2: float = 0.999, bias_correction: bool = True) -> PyTree:
    """Returns Adam's bias-corrected second moment ``v_hat`` per weight, a tree like the params.

    ::

        v_hat = v_t / (1 - b2**max(t, 1))       (bias_correction=True)
        v_hat = v_t                             (bias_correction=False)

    ``v_t`` is the second moment stored in the state's :class:`adamlab.RmsState`. Before the first step
    ``v`` is zero and so is ``v_hat``. Non-float leaves keep their empty ``(0,)`` placeholder.

    Args:
      state: The optimizer state of a chain with exactly one :func:`adamlab.scale_by_rms` stage.
      b2: The second-moment decay the optimizer was built with, in ``[0, 1)`` (it is not stored in the
        state). Default 0.999, Adam's. Optax: ``b2``; PyTorch: ``betas[1]``.
      bias_correction: Whether to divide by ``1 - b2**t``. Default True; pass False for optimizers built
        without bias correction (RMSProp).

    Returns:
      A tree like the params whose leaves are ``v_hat`` in float32, or the moment's dtype when wider.

    Raises:
      ValueError: If ``b2`` is outside ``[0, 1)``, or ``state`` holds no single :class:`adamlab.RmsState`.
      TypeError: If ``b2`` is not a real scalar, or is a bfloat16/float16 array.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> opt = adamlab.adam(1e-3)
      >>> params = {"w": jnp.zeros(3)}
      >>> state = opt.init(params)
      >>> _, state = opt.update({"w": jnp.array([1.0, 2.0, 4.0])}, state, params)
      >>> print(jnp.round(adamlab.diagnostics.second_moment_hat(state)["w"], 3))  # g**2 after one step
      [ 1.  4. 16.]
    """
    _checks.check_decay("b2", b2)
    rms = find_state(state, RmsState)
    # max(t, 1): before the first step v is zero and the correction 1 - b2**0 would divide 0 by 0.
    bc = per_precision(lambda: bias_correction_term(b2, jnp.maximum(rms.count, 1)))

    def hat(v):
        v = v.astype(jnp.promote_types(v.dtype, jnp.float32))
        return v if not bias_correction or v.size == 0 else v / bc(v)

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
    """Returns the per-weight step size of the last update, a tree like the params.

    ::

        step size = lr / (sqrt(v_hat) + eps)      (eps_in_sqrt=False, Adam)
        step size = lr / sqrt(v_hat + eps)        (eps_in_sqrt=True, RMSProp's default)

    with ``v_hat`` from :func:`adamlab.diagnostics.second_moment_hat` and ``lr`` from
    :func:`adamlab.diagnostics.learning_rate_at`. The update of a weight is its step size times the
    (bias-corrected) first moment, so this is how far one unit of gradient moves that weight.

    Args:
      state: The optimizer state of a chain with exactly one :func:`adamlab.scale_by_rms` stage.
      learning_rate: The learning rate the optimizer was built with: a number ``>= 0`` or a schedule,
        read at the step just taken.
      b2: The optimizer's second-moment decay, in ``[0, 1)``. Default 0.999. Optax: ``b2``; PyTorch:
        ``betas[1]``.
      eps: The optimizer's ``eps``, ``>= 0``. Default 1e-8. Optax and PyTorch: ``eps``.
      bias_correction: Whether the optimizer bias-corrects ``v``. Default True.
      eps_in_sqrt: Whether ``eps`` goes inside the square root, as in :func:`adamlab.rmsprop`'s default
        (Optax's ``optax.rmsprop``, ``eps_in_sqrt=True``). Default False, as in Adam.

    Returns:
      A tree like the params of float32 (or wider) step sizes; non-float leaves keep their ``(0,)``
      placeholder.

    Raises:
      ValueError: If ``eps`` or a number ``learning_rate`` is negative, ``b2`` is outside ``[0, 1)``, or
        ``state`` holds no single :class:`adamlab.RmsState`.
      TypeError: If a hyperparameter is not a real scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> opt = adamlab.adam(1e-3)
      >>> params = {"w": jnp.zeros(3)}
      >>> state = opt.init(params)
      >>> _, state = opt.update({"w": jnp.array([1.0, 2.0, 4.0])}, state, params)
      >>> steps = adamlab.diagnostics.effective_step_size(state, 1e-3)
      >>> print(jnp.round(steps["w"] * 1e4, 3))  # lr / |g| after one step, in units of 1e-4
      [10.   5.   2.5]
    """
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
    """Returns the fraction of each weight the decay removes per step, a tree like ``params``.

    ::

        coupled=True  (Adam + L2, adam(weight_decay=wd)):  lr * wd / (sqrt(v_hat) + eps)
        coupled=False (AdamW):                             lr * wd   for every weight
        weights the mask excludes:                         0

    Under L2 a value near or above 1 marks a weight whose own gradient is negligible: ``v_hat`` is then set by
    ``(wd * p)**2``, Adam's step is about ``lr * sign(p)``, and the weight is held at ``|p| ~ lr``.
    Summarise the result with :func:`adamlab.diagnostics.tree_quantiles`.

    Args:
      state: The optimizer state of a chain with exactly one :func:`adamlab.scale_by_rms` stage; its
        moments must have the tree structure of ``params``.
      params: The current params (used for their shapes and for the mask).
      learning_rate: The optimizer's learning rate: a number ``>= 0`` or a schedule, read at the step just
        taken.
      weight_decay: The optimizer's weight decay ``wd``, ``>= 0``. Optax: ``weight_decay``; PyTorch:
        ``weight_decay``.
      coupled: Required, keyword-only. True for L2 decay added to the gradient before Adam's division
        (:func:`adamlab.adam` with ``weight_decay``, PyTorch's ``Adam(weight_decay=...)``); False for
        decoupled decay (:func:`adamlab.adamw`, ``optax.adamw``, ``torch.optim.AdamW``).
      mask: Which weights are decayed, as given to the optimizer: a tree of bools (or bool arrays
        selecting elements), a prefix of one, or a callable ``params -> mask`` such as
        :func:`adamlab.weight_decay_mask`. Default None: every weight. Optax: ``mask``.
      b2: The optimizer's second-moment decay, in ``[0, 1)`` (used when ``coupled``). Default 0.999.
      eps: The optimizer's ``eps``, ``>= 0`` (used when ``coupled``). Default 1e-8.
      bias_correction: Whether the optimizer bias-corrects ``v`` (used when ``coupled``). Default True.
      eps_in_sqrt: Whether ``eps`` goes inside the square root, as in RMSProp (used when ``coupled``).
        Default False.

    Returns:
      A tree like ``params`` of float32 (or wider) fractions; non-float leaves keep their ``(0,)``
      placeholder.

    Raises:
      ValueError: If ``weight_decay``, ``eps`` or a number ``learning_rate`` is negative, ``b2`` is outside
        ``[0, 1)``, ``state`` holds no single :class:`adamlab.RmsState`, or ``params`` does not match the
        state's moments or the ``mask``.
      TypeError: If a ``mask`` leaf is not a bool, or a hyperparameter is not a real scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> params = {"w": jnp.ones((2, 2)), "bias": jnp.zeros(2)}
      >>> grads = {"w": jnp.array([[1.0, 2.0], [4.0, 8.0]]), "bias": jnp.ones(2)}
      >>> mask = adamlab.weight_decay_mask  # decay the matrix, not the bias
      >>> opt = adamlab.adamw(1e-3, weight_decay=0.1, mask=mask)
      >>> state = opt.init(params)
      >>> _, state = opt.update(grads, state, params)
      >>> decay = adamlab.diagnostics.effective_decay(state, params, 1e-3, 0.1, coupled=False, mask=mask)
      >>> print(decay["w"], decay["bias"])  # lr * wd for every decayed weight
      [[0.0001 0.0001]
       [0.0001 0.0001]] [0. 0.]
    """
    _checks.check_nonnegative("weight_decay", weight_decay)
    rms = find_state(state, RmsState)
    _checks.check_same_tree(params, rms.second_moment, "effective_decay: params", "the optimizer state's moments")
    masks = jax.tree.map(lambda _: True, params) if mask is None else resolve_mask(mask, params)
    lr = learning_rate_at(state, learning_rate)
    if coupled:
        steps = effective_step_size(state, lr, b2=b2, eps=eps, bias_correction=bias_correction, eps_in_sqrt=eps_in_sqrt)
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
    """Returns ``rms(u) / rms(p)`` per leaf: how far one step moves a tensor, relative to its size.

    ::

        ratio = sqrt(mean(u**2)) / sqrt(mean(p**2))      one scalar per leaf

    About 1e-3 is the usual healthy value for matrices in LLM training; much larger means the learning rate
    is too high for that tensor. ``inf`` where the params are all zero but the update is not (a freshly
    zero-initialised bias), 0 where both are zero; non-float leaves give 0.

    Args:
      updates: The updates of one step, as returned by ``tx.update`` (before ``apply_updates``).
      params: The params the updates apply to, a tree of the same structure.

    Returns:
      A tree like ``params`` whose leaves are scalars: float32, or the leaf's dtype when wider.

    Raises:
      ValueError: If ``updates`` and ``params`` have different tree structures.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> params = {"w": jnp.full((2, 2), 2.0), "bias": jnp.zeros(2)}
      >>> updates = {"w": jnp.full((2, 2), -0.002), "bias": jnp.ones(2)}
      >>> ratios = adamlab.diagnostics.update_weight_ratio(updates, params)
      >>> print(round(float(ratios["w"]), 6), ratios["bias"])
      0.001 inf
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
    """Returns the quantiles ``q`` of all the values of a per-weight tree, over the weights ``mask`` selects.

    A jit-friendly summary for logging, e.g. the 5%, 50% and 95% points of
    :func:`adamlab.diagnostics.effective_decay` over the decayed weights. All selected values of all leaves
    are pooled (as float32) and ``jnp.nanquantile`` is taken with linear interpolation; zero-size leaves
    are skipped.

    Args:
      tree: A tree of arrays, e.g. the output of :func:`adamlab.diagnostics.effective_decay` or
        :func:`adamlab.diagnostics.effective_step_size`.
      q: The quantile or quantiles to compute, each in ``[0, 1]`` (0.5 is the median): a number or a
        sequence or array of them.
      mask: Which values to include: a tree of bools (bool-array leaves select elements), a prefix of one,
        or a callable ``tree -> mask``, as for the optimizer. Default None: every value.

    Returns:
      A float32 scalar for a scalar ``q``, else a float32 array shaped like ``q``.

    Raises:
      ValueError: If a value of ``q`` is outside ``[0, 1]`` (checked when ``q`` is not a ``jax.Array``),
        the mask does not match ``tree``, or the mask selects no values.
      TypeError: If a ``mask`` leaf is not a bool.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tree = {"a": jnp.arange(5.0), "b": jnp.arange(5.0, 11.0)}
      >>> print(adamlab.diagnostics.tree_quantiles(tree, [0.0, 0.5, 1.0]))
      [ 0.  5. 10.]
      >>> print(adamlab.diagnostics.tree_quantiles(tree, 0.5, mask={"a": True, "b": False}))
      2.0
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
