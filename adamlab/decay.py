"""Weight decay, coupled (L2 on the gradient) and decoupled (AdamW), and the masks that choose where it applies.

Coupled: ``g <- g + wd * p`` before the moments. The decay then passes
through Adam's scaling, so a weight's effective decay per step is
``lr * wd / (sqrt(v_hat) + eps)``: weights with a large gradient history are
barely decayed. This is ``torch.optim.Adam(weight_decay=wd)``.

Decoupled: ``u <- u + wd * p`` after the adaptive scaling, so every weight
shrinks by the same ``lr * wd`` per step (Loshchilov & Hutter, "Decoupled
Weight Decay Regularization", 2019). This is AdamW.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from adamlab import _checks
from adamlab.base import EmptyState, GradientTransformation, stage
from adamlab.scaling import ScalarOrSchedule, ScheduleState
from adamlab.tree import has_gradient, increment, per_precision, scalar, upcast

Mask = Any  # a bool pytree, a prefix of one, or a callable params -> such a tree


def resolve_mask(mask: Mask, params: Any) -> Any:
    """Returns a tree shaped like `params` whose leaves are bools or bool arrays (True = decay).

    `mask` may be a tree of bools (or bool arrays, selecting elements, as the
    flat layout uses), a prefix of such a tree (``{"encoder": False,
    "head": True}`` covers every leaf under each key), or a callable
    ``params -> mask``.

    This is how :func:`adamlab.add_decoupled_weight_decay` and :func:`adamlab.add_coupled_weight_decay`
    read their ``mask`` (the convention of Optax's ``mask`` arguments: True = apply). A container that
    defines ``__adamlab_resolve_mask__`` (such as :class:`adamlab.flat.Flat`) maps the mask onto its
    own buffers instead.

    Args:
        mask: A pytree of bools like `params`, a prefix of one, or a callable ``params -> such a
            tree``. Leaves are Python or NumPy bools (one per leaf) or bool arrays shaped like their
            param (one per element).
        params: The params (any pytree) the mask is read against.

    Returns:
        A tree with the structure of `params` whose leaves are bools or bool arrays (True = decay).

    Raises:
        TypeError: If a mask leaf is neither a bool nor a bool array.
        ValueError: If the mask's structure is neither that of `params` nor a prefix of it, or a bool
            array's shape differs from its param's.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> params = {"encoder": {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}, "head": jnp.zeros(3)}
        >>> print(adamlab.resolve_mask({"encoder": False, "head": True}, params))
        {'encoder': {'b': False, 'w': False}, 'head': True}
    """
    resolve = getattr(type(params), "__adamlab_resolve_mask__", None)
    if resolve is not None:  # a container such as adamlab.flat.Flat maps a mask over its leaves onto its buffers
        return resolve(params, mask)
    if _checks.is_function(mask):
        mask = mask(params)
    for path, m in jax.tree_util.tree_flatten_with_path(mask)[0]:
        if not _is_bool_leaf(m):
            raise TypeError(
                f"mask leaf at {_checks.path_str(path)} is {type(m).__name__}"
                f"{'(' + str(m.dtype) + ')' if hasattr(m, 'dtype') else ''}; mask leaves must be bools "
                "(or bool arrays shaped like their param)"
            )
    resolved = _checks.broadcast_prefix(
        mask, params, "mask does not match the params: it must have their tree structure or a prefix of it"
    )
    for (path, m), p in zip(jax.tree_util.tree_flatten_with_path(resolved)[0], jax.tree.leaves(params)):
        if np.ndim(m) and np.shape(m) != np.shape(p):  # a 0-d mask (np.bool_) covers the whole leaf
            raise ValueError(
                f"mask at {_checks.path_str(path)} is a bool array of shape {np.shape(m)}, its param has shape "
                f"{np.shape(p)}: an array mask selects elements and must have its param's shape"
            )
    return resolved


def _weight_decay(name: str, role: str, weight_decay, mask: Mask) -> GradientTransformation:
    _checks.check_rate("weight_decay", weight_decay)
    scheduled = callable(weight_decay)  # decided here: a constant rate keeps an empty state and no count

    def init(params):
        if mask is not None:
            resolve_mask(mask, params)  # fail at init, not in the middle of training
        return ScheduleState(jnp.zeros((), jnp.int32)) if scheduled else EmptyState()

    def update(updates, state, params=None, **extra):
        del extra
        next_state = ScheduleState(increment(state.count)) if scheduled else state
        if updates is None:  # no updates (None is JAX's empty tree): nothing to decay, as in Optax
            return None, next_state
        if params is None:
            if not jax.tree.leaves(updates):  # an empty tree: None is its params too, and nothing decays
                return updates, next_state
            raise ValueError(f"{name} needs the params: call update(updates, state, params)")
        _checks.check_same_tree(updates, params, f"{name}: updates", "params", strict=True)
        masks = jax.tree.map(lambda _: True, params) if mask is None else resolve_mask(mask, params)
        if scheduled:
            value = jnp.asarray(weight_decay(state.count))
            rate = per_precision(lambda: scalar(value))
        else:
            rate = lambda _: weight_decay  # noqa: E731

        def decay(u, p, m):
            if m is False or (isinstance(m, np.bool_) and not m):
                return u
            u, p = upcast(u, p)
            decayed = u + rate(u) * p
            return decayed if m is True or isinstance(m, np.bool_) else jnp.where(m, decayed, u)

        out = jax.tree.map(lambda u, p, m: decay(u, p, m) if has_gradient(u) else u, updates, params, masks)
        return out, next_state

    return stage(name, init, update, role=role)


def add_decoupled_weight_decay(weight_decay: ScalarOrSchedule, mask: Mask | None = None) -> GradientTransformation:
    """Decoupled decay: ``u + weight_decay * p``, placed after the adaptive scaling (AdamW).

    Followed by ``scale_by_learning_rate(lr)`` it gives ``p <- p - lr * (u + wd * p)``:
    every weight shrinks by the same factor ``1 - lr * wd`` per step.
    Masked-out leaves (mask False) are not decayed.

    ::

        u <- u + weight_decay * p        (where mask is True; float leaves only)

    Its role is ``"direction"``: in a :func:`adamlab.chain` it must stand after the first moment stage
    (``scale_by_ema``, ``scale_by_rms``, ...), and the chain raises when it does not. The decay is
    computed in float32 (or wider) and the chain casts the result back to the updates' dtype.
    Optax: :func:`optax.add_decayed_weights`; PyTorch: the
    ``weight_decay`` of ``torch.optim.AdamW``, whose step is ``p <- p - lr * wd * p`` besides the Adam
    step.

    Args:
        weight_decay: The decay rate ``wd``: a number or scalar array ``>= 0``, or a schedule
            ``count -> wd`` evaluated at the number of steps already taken (the state then counts them in
            a :class:`adamlab.ScheduleState`, as Optax's ``WeightDecaySchedule``). To scale the decay with
            the learning rate's schedule instead, see ``adamw(..., schedule=...)``. 0 gives no decay. Optax:
            ``weight_decay`` of :func:`optax.add_decayed_weights`; PyTorch: ``weight_decay`` of
            ``torch.optim.AdamW``.
        mask: Where to decay (True = decay): a bool tree like the params, a prefix of one, a callable
            ``params -> such a tree`` (for example :func:`adamlab.weight_decay_mask`), or bool arrays
            shaped like their params to select elements; see :func:`adamlab.resolve_mask`. Default
            None: every float leaf. Optax: ``mask``; PyTorch: putting the no-decay params in a
            param group with ``weight_decay=0``.

    Returns:
        A `GradientTransformation` (state :class:`adamlab.EmptyState`, or :class:`adamlab.ScheduleState`
        for a scheduled rate) whose ``update`` needs the params: ``update(updates, state, params)``.

    Raises:
        ValueError: If `weight_decay` is negative, NaN or infinite; in ``init``/``update``, if the
            mask does not fit the params (see :func:`adamlab.resolve_mask`); in ``update``, if the params
            are missing (None for non-empty updates) or their tree or shapes differ from the updates'.
        TypeError: If `weight_decay` is neither a number, a scalar array nor a function of the step; in
            ``init``/``update``, if a mask leaf is not a bool.

    References:
        Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.add_decoupled_weight_decay(0.1, mask={"w": True, "b": False})
        >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.ones(2)}
        >>> updates, _ = tx.update({"w": jnp.zeros(2), "b": jnp.zeros(2)}, tx.init(params), params)
        >>> print(updates["w"], updates["b"])
        [ 0.1 -0.2] [0. 0.]
    """
    return _weight_decay("add_decoupled_weight_decay", "direction", weight_decay, mask)


def add_coupled_weight_decay(weight_decay: ScalarOrSchedule, mask: Mask | None = None) -> GradientTransformation:
    """Coupled (L2) decay: ``g + weight_decay * p``, placed before the moments (Adam with L2).

    Equivalent to adding ``wd/2 * |p|**2`` to the loss; inside Adam the decay
    is divided by ``sqrt(v_hat) + eps`` like the rest of the gradient.
    Masked-out leaves (mask False) are not decayed.

    ::

        g <- g + weight_decay * p        (where mask is True; float leaves only)

    Its role is ``"gradient"``: in a :func:`adamlab.chain` it must stand before every moment stage, so
    that the moments average the decayed gradient; the chain raises when it does not. The decay is
    computed in float32 (or wider) and the chain casts the result back to the updates' dtype.
    Optax: :func:`optax.add_decayed_weights` placed before the moments (as in ``optax.chain(
    optax.add_decayed_weights(wd), optax.scale_by_adam(), ...)``); PyTorch: the ``weight_decay`` of
    ``torch.optim.Adam`` and ``torch.optim.SGD``.

    Args:
        weight_decay: The L2 coefficient ``wd``: a number or scalar array ``>= 0``, or a schedule
            ``count -> wd`` evaluated at the number of steps already taken; 0 gives no decay. Optax: ``weight_decay`` of
            :func:`optax.add_decayed_weights`; PyTorch: ``weight_decay`` of ``torch.optim.Adam``/``SGD``.
        mask: Where to decay (True = decay): a bool tree like the params, a prefix of one, a callable
            ``params -> such a tree`` (for example :func:`adamlab.weight_decay_mask`), or bool arrays
            shaped like their params to select elements; see :func:`adamlab.resolve_mask`. Default
            None: every float leaf. Optax: ``mask``.

    Returns:
        A `GradientTransformation` (state :class:`adamlab.EmptyState`, or :class:`adamlab.ScheduleState`
        for a scheduled rate) whose ``update`` needs the params: ``update(updates, state, params)``.

    Raises:
        ValueError: If `weight_decay` is negative, NaN or infinite; in ``init``/``update``, if the
            mask does not fit the params (see :func:`adamlab.resolve_mask`); in ``update``, if the params
            are missing (None for non-empty updates) or their tree or shapes differ from the updates'.
        TypeError: If `weight_decay` is neither a number, a scalar array nor a function of the step; in
            ``init``/``update``, if a mask leaf is not a bool.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.add_coupled_weight_decay(0.01)
        >>> params = {"w": jnp.array([1.0, -2.0])}
        >>> grads, _ = tx.update({"w": jnp.array([0.5, 0.5])}, tx.init(params), params)
        >>> print(grads["w"])
        [0.51 0.48]
    """
    return _weight_decay("add_coupled_weight_decay", "gradient", weight_decay, mask)


def decay_timescale(learning_rate, weight_decay):
    """The EMA timescale of AdamW's weights, in steps: ``tau = 1 / (learning_rate * weight_decay)``.

    ::

        tau = 1 / (lr * wd)                                        (steps)

    With a constant rate, ``p <- p - lr * (u + wd * p)`` is ``p <- b * p + (1 - b) * (-u / wd)`` with
    ``b = 1 - lr * wd``: the weights are an EMA of ``-u / wd`` whose :func:`adamlab.effective_window` is
    ``1 / (1 - b)``. For the paper's form (``adamw(..., schedule=eta)``) pass the multiplier as the rate:
    ``1 / wd`` at ``eta = 1``. Numbers and arrays (NumPy or JAX) alike; the inverse is
    :func:`adamlab.weight_decay_for_timescale`.

    Wang & Aitchison find that the optimal timescale, measured in epochs (``tau * batch_size /
    dataset_size``), stays roughly constant as models and datasets grow: keep ``tau`` fixed in epochs
    rather than keeping ``weight_decay`` fixed when the learning rate or the run length changes.

    Args:
        learning_rate: The learning rate ``lr`` (the peak rate, or the schedule's multiplier ``eta``),
            a number or an array of numbers, each ``> 0`` and finite; in PyTorch ``lr``, in Optax
            ``learning_rate``.
        weight_decay: The decoupled decay ``wd`` (as in :func:`adamlab.adamw`, ``torch.optim.AdamW``,
            :func:`optax.adamw`), a number or an array of numbers, each ``> 0`` and finite. Arrays
            broadcast against `learning_rate`.

    Returns:
        ``1 / (learning_rate * weight_decay)``: a float, or an array (NumPy or JAX, as given) of the
        broadcast shape.

    Raises:
        TypeError: If an argument is a bool or not made of numbers.
        ValueError: If a value is ``<= 0``, NaN or infinite (traced values are not checked).

    References:
        Wang & Aitchison, *How to set AdamW's weight decay as you scale model and dataset size*,
        ICML 2025.

    Example:
        >>> import numpy as np
        >>> import adamlab
        >>> print(round(adamlab.decay_timescale(1e-3, 0.1)))
        10000
        >>> print(np.round(adamlab.decay_timescale(np.array([1e-3, 3e-4]), 0.1)))
        [10000. 33333.]
    """
    _check_positive_values("learning_rate", learning_rate)
    _check_positive_values("weight_decay", weight_decay)
    return 1.0 / (learning_rate * weight_decay)


def weight_decay_for_timescale(timescale, learning_rate):
    """The decoupled weight decay whose EMA timescale is `timescale` steps: ``1 / (timescale * learning_rate)``.

    ::

        wd = 1 / (tau * lr)

    The inverse of :func:`adamlab.decay_timescale`. A window of E epochs of N examples at batch size B
    is ``timescale = E * N / B`` steps; Wang & Aitchison recommend choosing the timescale in epochs and
    deriving ``weight_decay`` from it, so that it follows changes of the learning rate, the batch size
    and the dataset size.

    Args:
        timescale: The EMA timescale ``tau`` in steps, a number or an array of numbers, each ``> 0``
            and finite.
        learning_rate: The learning rate ``lr`` (the peak rate, or the schedule's multiplier), a number
            or an array of numbers, each ``> 0`` and finite. Arrays broadcast against `timescale`.

    Returns:
        ``1 / (timescale * learning_rate)``, the ``weight_decay`` to pass to :func:`adamlab.adamw` (or
        ``torch.optim.AdamW``, :func:`optax.adamw`): a float, or an array of the broadcast shape.

    Raises:
        TypeError: If an argument is a bool or not made of numbers.
        ValueError: If a value is ``<= 0``, NaN or infinite (traced values are not checked).

    References:
        Wang & Aitchison, *How to set AdamW's weight decay as you scale model and dataset size*,
        ICML 2025.

    Example:
        >>> import adamlab
        >>> steps = 1 * 1_000_000 / 500        # one epoch of 1M examples at batch size 500
        >>> print(round(adamlab.weight_decay_for_timescale(steps, 1e-3), 4))
        0.5
        >>> print(round(adamlab.decay_timescale(1e-3, 0.5)))
        2000
    """
    _check_positive_values("timescale", timescale)
    _check_positive_values("learning_rate", learning_rate)
    return 1.0 / (timescale * learning_rate)


def _is_bool_leaf(m: Any) -> bool:
    """A mask leaf: a Python or NumPy bool, or a bool array."""
    return isinstance(m, (bool, np.bool_)) or (hasattr(m, "dtype") and m.dtype == jnp.bool_)


def _check_positive_values(name: str, value) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    values = np.asarray(value)
    if values.dtype.kind not in "iuf" or isinstance(value, bool):
        raise TypeError(f"{name} must be a number or an array of numbers, got {type(value).__name__}")
    if not (np.all(np.isfinite(values)) and np.all(values > 0)):
        raise ValueError(f"{name} must be > 0 and finite (a timescale needs a nonzero decay), got {value!r}")


_NO_DECAY_NAMES = ("bias", "scale", "norm", "ln_", "layernorm", "embedding_norm")


def weight_decay_mask(params: Any) -> Any:
    """The usual LLM rule: decay matrices, not biases, norms' scales or any leaf with fewer than 2 dims.

    A leaf is decayed when it has ``ndim >= 2`` and no key on its path names
    a bias or a norm (``bias``, ``b``, ``scale``, or containing ``norm``/``ln_``).
    Pass it as ``mask=weight_decay_mask``.

    Precisely: every key on the leaf's path (dict keys, attribute names and sequence indices, lowercased)
    is compared with the rule; a key equal to ``"b"``, or containing ``"bias"``, ``"scale"``, ``"norm"``
    or ``"ln_"``, excludes the leaf. Embedding tables (2-D) are decayed. This is the rule of the usual
    PyTorch recipe of two param groups (``weight_decay=0`` for biases and norms), and of the
    ``mask`` people pass to :func:`optax.adamw`.

    Args:
        params: The params, any pytree of arrays (Flax/Equinox key names work as they are).

    Returns:
        A tree like `params` of Python bools: True where the leaf is decayed.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> params = {"dense": {"kernel": jnp.zeros((2, 3)), "bias": jnp.zeros(3)},
        ...           "ln_f": {"scale": jnp.zeros(3)}, "embed": jnp.zeros((5, 2))}
        >>> print(adamlab.weight_decay_mask(params))
        {'dense': {'bias': False, 'kernel': True}, 'embed': True, 'ln_f': {'scale': False}}
    """

    def keep(path, p) -> bool:
        names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", "")))).lower() for k in path]
        if any(n == "b" or any(t in n for t in _NO_DECAY_NAMES) for n in names):
            return False
        return bool(np.ndim(p) >= 2)

    return jax.tree_util.tree_map_with_path(keep, params)
