"""Parameter groups: a transformation on some leaves only, another per group, frozen leaves.

``masked(tx, mask)`` runs `tx` on the leaves whose mask is True and passes
the others through unchanged; ``partition({label: tx, ...}, labels)`` runs
each transformation on the leaves with its label (torch's ``param_groups``);
``set_to_zero()`` returns zero updates and ``freeze(mask)`` zeroes the
masked leaves' updates. The inner transformations see the tree with the
other leaves cut out (each replaced by an empty node), so their state holds
moments for their own leaves only: a frozen encoder or an embedding under
another optimizer costs no moment memory where it is not trained.

Masks and labels are trees like the params, prefixes of them (``{"encoder":
False, "head": True}``), or functions ``params -> tree``; each leaf gets one
bool (or label) as a whole. On the flat layout they apply to whole buckets:
build it grouped by the labels, ``flat.Layout.of(params, group=labels)``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks
from adamlab.base import GradientTransformation, Transformation, _accepts_extra, init_empty, stage, stage_info
from adamlab.flat import Flat
from adamlab.tree import has_gradient


class Cut:
    """An empty pytree node standing for a leaf a masked transformation does not see.

    `masked` and `partition` hand their inner transformations the tree with every unselected leaf
    replaced by ``Cut()``: a node without children, so ``jax.tree.map`` and the inner stages skip it and
    the inner state holds no moment there. All ``Cut`` instances are equal. It plays the role of Optax's
    ``MaskedNode``.

    Example:
        >>> import jax
        >>> from adamlab.groups import Cut
        >>> print(Cut(), jax.tree.leaves({"w": 1.0, "frozen": Cut()}))
        Cut() [1.0]
    """

    def __repr__(self) -> str:
        return "Cut()"

    def __eq__(self, other) -> bool:
        return isinstance(other, Cut)

    def __hash__(self) -> int:
        return hash(Cut)


jax.tree_util.register_pytree_node(Cut, lambda _: ((), None), lambda _, __: Cut())


class MaskedState(NamedTuple):
    """State of :func:`adamlab.masked`: the wrapped transformation's state over the selected leaves.

    Args:
        inner_state: The wrapped transformation's state, built by its ``init`` on the params with the
            unselected leaves replaced by `Cut` nodes: its moments (if any) are trees like the params
            with ``Cut()`` where the mask is False.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.masked(adamlab.scale_by_ema(0.9), {"w": True, "b": False})
        >>> print(tx.init({"w": jnp.zeros(2), "b": jnp.zeros(2)}))
        MaskedState(inner_state=EmaState(moment={'b': Cut(), 'w': Array([0., 0.], dtype=float32)}))
    """

    inner_state: Any  # the wrapped transformation's state over the selected leaves (Cut elsewhere)


class PartitionState(NamedTuple):
    """State of :func:`adamlab.partition`: one state per group.

    Args:
        inner_states: A dict ``{label: state}`` with the keys of ``transforms`` in their order; each
            state is that group's transformation's state over its own leaves (``Cut()`` at the
            others').

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.partition({"ema": adamlab.scale_by_ema(0.9), "none": adamlab.identity()},
        ...                        {"w": "ema", "b": "none"})
        >>> print(tx.init({"w": jnp.zeros(2), "b": jnp.zeros(2)}))
        PartitionState(inner_states={'ema': EmaState(moment={'b': Cut(), 'w': Array([0., 0.], dtype=float32)}),
                                     'none': EmptyState()})
    """

    inner_states: dict  # label -> that group's transformation's state over its own leaves


def _per_leaf(spec, tree, what: str) -> list:
    """One value per leaf of `tree` from a tree, a prefix of one, or a function ``tree -> tree``.

    On a `Flat`, one value per bucket: the spec is read over the layout's tree, and every leaf of a bucket must
    have the same value (build the layout grouped by it: ``Layout.of(params, group=labels)``).
    """
    if isinstance(tree, Flat):
        values = _per_leaf(spec, tree.layout.abstract(), what)
        out = []
        for j, b in enumerate(tree.layout.buckets):
            found = {values[i] for i in b.leaves}
            if len(found) > 1:
                raise ValueError(
                    f"{what} gives bucket {j} of the flat layout {len(found)} different values: "
                    f"build the layout grouped by them, flat.Layout.of(params, group=<the {what}>)"
                )
            out.append(found.pop() if found else values[0] if values else None)
        return out
    if _checks.is_function(spec):
        spec = spec(tree)
    full = _checks.broadcast_prefix(
        spec,
        tree,
        f"{what} does not match the params: it must have their tree structure or a prefix of it",
        is_leaf=lambda x: x is None,
    )
    values = jax.tree.leaves(full, is_leaf=lambda x: x is None)
    if len(values) != len(jax.tree.leaves(tree)):
        raise ValueError(f"{what} does not give one value per leaf of the params")
    return values


def _select(tree, keep: list) -> Any:  # a pytree (None stays None)
    if tree is None:
        return None
    leaves, treedef = jax.tree.flatten(tree)
    return jax.tree.unflatten(treedef, [x if k else Cut() for x, k in zip(leaves, keep)])


def _merge(tree, parts: list[tuple[Any, list]]):
    """`tree` with the leaves of each ``(subtree, keep)`` put back where `keep` is True."""
    leaves, treedef = jax.tree.flatten(tree)
    out = list(leaves)
    for sub, keep in parts:
        sub_leaves = treedef.flatten_up_to(sub)
        for i, k in enumerate(keep):
            if k:
                out[i] = sub_leaves[i]
    return jax.tree.unflatten(treedef, out)


def _check_tx(tx, who: str) -> None:
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(f"{who}: {type(tx).__name__} is not a GradientTransformation")


def _bools(mask, tree) -> list[bool]:
    values = _per_leaf(mask, tree, "mask")
    for v in values:
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(
                f"mask leaves must be Python bools (one per leaf), got {type(v).__name__}: a masked "
                "transformation sees whole leaves"
            )
    return [bool(v) for v in values]


def _run_on(tx, keep, updates, state, params, extra):
    if not _accepts_extra(tx.update):  # a foreign update without **extra gets what `chain` would give it
        return tx.update(_select(updates, keep), state, _select(params, keep))
    sub_extra = {k: _select(v, keep) if k == "gradient" else v for k, v in extra.items()}
    return tx.update(_select(updates, keep), state, _select(params, keep), **sub_extra)


def masked(tx: Transformation, mask) -> GradientTransformation:
    """`tx` on the leaves where `mask` is True; the other leaves' updates pass through unchanged.

    `tx`'s state covers the selected leaves only. `mask`: a tree of bools
    like the params, a prefix of one, or a function ``params -> tree``.

    ::

        u_out = tx.update(u restricted to mask)     where mask is True
        u_out = u                                   where mask is False

    `tx` sees the updates, the params and the ``gradient`` channel with the unselected leaves replaced by
    empty `Cut` nodes, so its state (moments, ...) is allocated for the selected leaves only. The mask
    is read from the params at ``init`` and from the updates at ``update``, leaf by leaf and in Python:
    it selects whole leaves (for element-wise masks of weight decay, see
    :func:`adamlab.add_decoupled_weight_decay`). The stage takes `tx`'s role in a chain. Optax:
    :func:`optax.masked`; PyTorch: giving `tx`'s settings to a param group of the selected params and
    leaving the others out of that optimizer.

    Args:
        tx: The transformation to run on the selected leaves (adamlab's or Optax's).
        mask: Which leaves `tx` transforms (True = transform): a tree of Python or NumPy bools like the
            params, a prefix of one (``{"encoder": False, "head": True}``), or a callable
            ``params -> such a tree``. One bool per leaf; bool arrays are refused. Optax: ``mask`` of
            :func:`optax.masked`.

    Returns:
        A `GradientTransformation` whose state is a `MaskedState` holding `tx`'s
        state over the selected leaves.

    Raises:
        TypeError: If `tx` is not a transformation; in ``init``/``update``, if a mask leaf is not a
            Python or NumPy bool.
        ValueError: In ``init``/``update``, if the mask's structure is neither the params' nor a
            prefix of it.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.masked(adamlab.scale(-1.0), {"w": True, "b": False})
        >>> params = {"w": jnp.ones(2), "b": jnp.ones(2)}
        >>> updates, state = tx.update({"w": jnp.ones(2), "b": jnp.ones(2)}, tx.init(params))
        >>> print(updates["w"], updates["b"])
        [-1. -1.] [1. 1.]
    """
    _check_tx(tx, "masked")

    def init(params):
        if not jax.tree.leaves(params):  # nothing to mask (or optax.tree.map_params's opaque placeholder)
            return MaskedState(tx.init(params))
        return MaskedState(tx.init(_select(params, _bools(mask, params))))

    def update(updates, state, params=None, **extra):
        keep = _bools(mask, updates)
        out, inner = _run_on(tx, keep, updates, state.inner_state, params, extra)
        return _merge(updates, [(out, keep)]), MaskedState(inner)

    return stage("masked", init, update, role=stage_info(tx).role)


def partition(transforms: Mapping[Hashable, Transformation], labels) -> GradientTransformation:
    """Each transformation of `transforms` on the leaves labelled with its key (parameter groups).

    `labels`: a tree of labels like the params, a prefix of one, or a
    function ``params -> tree``. Every label must name a transformation;
    every transformation's state covers its own leaves only.

    ::

        u_out[leaf] = transforms[labels[leaf]].update(u restricted to that label's leaves)[leaf]

    Each transformation sees the updates, params and ``gradient`` channel with the other groups'
    leaves replaced by empty `Cut` nodes, and keeps its own state (moments, step count, schedule) over
    its group only. Labels are read in Python, per leaf, at ``init`` from the params and at ``update``
    from the updates. A transformation whose label no leaf carries still gets a state (over an empty
    selection). On the flat layout labels apply to whole buckets: build it grouped by them,
    ``flat.Layout.of(params, group=labels)``. The stage has role ``"moment"`` when a group's
    transformation has one, else ``"any"``.

    Optax: :func:`optax.partition` (``param_labels``); PyTorch: ``param_groups``, except that each group
    may run a wholly different optimizer, not only other hyperparameters.

    Args:
        transforms: A non-empty mapping ``{label: transformation}``; labels are any hashable values
            (strings, usually). Optax: ``transforms`` of :func:`optax.partition`.
        labels: The label of every leaf: a tree of labels like the params, a prefix of one
            (``{"encoder": "frozen", "head": "adam"}``), or a callable ``params -> such a tree``. Every
            label must be a key of `transforms`. Optax: ``param_labels``.

    Returns:
        A `GradientTransformation` whose state is a `PartitionState` with one
        state per label.

    Raises:
        TypeError: If `transforms` is not a non-empty mapping, or one of its values is not a
            transformation.
        ValueError: In ``init``/``update``, if a label names no transformation, or the labels'
            structure is neither the params' nor a prefix of it (on a flat layout: if a bucket holds
            leaves of different labels).

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.partition({"adam": adamlab.adam(1e-3), "sgd": adamlab.sgd(0.1)},
        ...                        {"w": "adam", "b": "sgd"})
        >>> params = {"w": jnp.ones(2), "b": jnp.ones(2)}
        >>> updates, state = tx.update({"w": jnp.full(2, 0.5), "b": jnp.full(2, 0.5)}, tx.init(params), params)
        >>> print(updates["w"], updates["b"])
        [-0.001 -0.001] [-0.05 -0.05]
        >>> print(list(state.inner_states))
        ['adam', 'sgd']
    """
    if not isinstance(transforms, Mapping) or not transforms:
        raise TypeError("partition: transforms must be a non-empty dict {label: GradientTransformation}")
    for label, tx in transforms.items():
        _check_tx(tx, f"partition: transforms[{label!r}]")

    def groups(tree) -> dict:
        values = _per_leaf(labels, tree, "labels")
        unknown = sorted({repr(v) for v in values if v not in transforms})
        if unknown:
            raise ValueError(
                f"partition: labels {', '.join(unknown)} name no transformation; transforms has "
                f"{', '.join(map(repr, transforms))}"
            )
        return {label: [v == label for v in values] for label in transforms}

    def init(params):
        return PartitionState(
            {
                label: tx.init(_select(params, keep))
                for (label, tx), keep in zip(transforms.items(), groups(params).values())
            }
        )

    def update(updates, state, params=None, **extra):
        parts, inner = [], {}
        for (label, tx), keep in zip(transforms.items(), groups(updates).values()):
            out, inner[label] = _run_on(tx, keep, updates, state.inner_states[label], params, extra)
            parts.append((out, keep))
        return _merge(updates, parts), PartitionState(inner)

    roles = {stage_info(tx).role for tx in transforms.values()}
    return stage("partition", init, update, role="moment" if "moment" in roles else "any")


def set_to_zero() -> GradientTransformation:
    """Updates of ``-0.0``: ``p + (-0.0)`` is ``p`` bit for bit, ``-0.0`` included. For frozen params.

    ::

        u_out = -0.0 (same shape and dtype as u)     for float leaves; other leaves pass through

    Stateless. Usually a group of :func:`adamlab.partition` (``{"frozen": set_to_zero(), ...}``), where
    it keeps no moments for the frozen leaves. Optax: :func:`optax.set_to_zero`, which returns ``+0.0``
    (``p + 0.0`` turns a ``-0.0`` param into ``+0.0``); PyTorch: ``requires_grad_(False)`` or leaving the
    params out of the optimizer.

    Returns:
        A stateless `GradientTransformation` (state :class:`adamlab.EmptyState`).

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.set_to_zero()
        >>> updates, _ = tx.update({"w": jnp.array([1.0, 2.0])}, tx.init({"w": jnp.zeros(2)}))
        >>> print(updates["w"])
        [-0. -0.]
    """

    def update(updates, state, params=None, **extra):
        del params, extra
        zero = lambda u: jnp.full(jnp.shape(u), -0.0, u.dtype) if has_gradient(u) else u
        return jax.tree.map(zero, updates), state

    return stage("set_to_zero", init_empty, update)


def freeze(mask) -> GradientTransformation:
    """Zero updates where `mask` is True (``masked(set_to_zero(), mask)``).

    Put it last, ``chain(adamw(...), freeze(mask))``, so that weight decay
    does not move the frozen leaves either. The optimizer before it still
    keeps their moments; to keep none, give them a group of their own:
    ``partition({"frozen": set_to_zero(), "trained": adamw(...)}, labels)``.

    ::

        u_out = -0.0    where mask is True;    u_out = u    elsewhere

    Optax: ``optax.masked(optax.set_to_zero(), mask)``; PyTorch: ``p.requires_grad_(False)`` (which also
    skips the gradient computation, while here the gradient is still computed).

    Args:
        mask: Which leaves to freeze (True = frozen): a tree of Python or NumPy bools like the params,
            a prefix of one (``{"encoder": True, "head": False}``), or a callable ``params -> such a
            tree``; one bool per leaf.

    Returns:
        A `GradientTransformation` whose state is ``MaskedState(EmptyState())``.

    Raises:
        TypeError: In ``init``/``update``, if a mask leaf is not a Python or NumPy bool.
        ValueError: In ``init``/``update``, if the mask's structure is neither the params' nor a
            prefix of it.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> params = {"w": jnp.ones(2), "b": jnp.ones(2)}
        >>> tx = adamlab.chain(adamlab.adamw(0.1, weight_decay=0.1), adamlab.freeze({"w": False, "b": True}))
        >>> updates, _ = tx.update({"w": jnp.full(2, 0.5), "b": jnp.full(2, 0.5)}, tx.init(params), params)
        >>> new = adamlab.apply_updates(params, updates)
        >>> print(new["b"], new["w"])
        [1. 1.] [0.89 0.89]
    """
    return masked(set_to_zero(), mask)


__all__ = ["Cut", "MaskedState", "PartitionState", "freeze", "masked", "partition", "set_to_zero"]
