"""The transformation protocol, `chain` and `apply_updates`.

A `GradientTransformation` is a pair of pure functions::

    init(params) -> state
    update(updates, state, params=None, **extra) -> (updates, state)

It is the same structure as Optax's, so adamlab transformations run inside
`optax.chain`, Flax's `TrainState` and `nnx.Optimizer`, and Optax
transformations run inside `adamlab.chain`.

**The gradient channel.** Adam needs the second moment of the *gradient*
while the updates flowing through the chain are already the first moment.
`chain` therefore hands every stage the gradient as the extra keyword
argument ``gradient``. The gradient is what enters the chain's first *moment
stage* (`scale_by_ema`, `scale_by_rms`, `trace`): stages before it (clipping,
coupled weight decay, any Optax transformation) preprocess the gradient,
stages after it transform the update direction. This is exactly the meaning
`optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))` has.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adamlab._checks import check_leaves, check_same_tree, path_str

PyTree = Any
Params = PyTree
Updates = PyTree
State = PyTree
InitFn = Callable[[Params], State]
UpdateFn = Callable[..., tuple[Updates, State]]


class GradientTransformation(NamedTuple):
    """A pure gradient transformation: ``init(params)`` and ``update(updates, state, params, **extra)``."""

    init: InitFn
    update: UpdateFn


class EmptyState(NamedTuple):
    """State of a stateless transformation."""


def init_empty(params) -> EmptyState:
    """``init`` of every stateless stage."""
    del params
    return EmptyState()


class StageInfo(NamedTuple):
    """What `chain` knows about a stage: its name, its role, and, for a chain, its stages."""

    name: str
    role: str  # "moment", "gradient" (preprocessing only), "direction" or "any"
    stages: tuple = ()


_INFO_ATTR = "__adamlab_stage__"


def stage(name: str, init: InitFn, update: UpdateFn, role: str = "any", stages: tuple = ()) -> GradientTransformation:
    """Builds a transformation and attaches its `StageInfo` to its ``update`` function.

    role: ``"moment"`` starts a moment (the chain fixes the gradient at its
    input), ``"gradient"`` must come before every moment stage,
    ``"direction"`` must come after the first moment stage when the chain
    has one, ``"any"`` may stand anywhere. The info lives on ``update``, so
    ``GradientTransformation(tx.init, tx.update)`` (as wrappers rebuild it)
    keeps it.
    """
    setattr(update, _INFO_ATTR, StageInfo(name, role, tuple(stages)))
    return GradientTransformation(init, update)


def stage_info(tx: GradientTransformation) -> StageInfo:
    """The `StageInfo` of `tx`; a transformation adamlab did not build is ``StageInfo(<its update's name>, "any")``."""
    fn = getattr(tx, "update", None)
    info = getattr(fn, _INFO_ATTR, None)
    return info if isinstance(info, StageInfo) else StageInfo(getattr(fn, "__qualname__", type(tx).__name__), "any")


def _accepts_extra(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def is_eager(*trees) -> bool:
    """True when every leaf of `trees` is a concrete array: a call made outside any trace."""
    leaves = jax.tree.leaves(trees)
    return bool(leaves) and all(
        isinstance(x, (jax.Array, np.ndarray, np.generic)) and not isinstance(x, jax.core.Tracer) for x in leaves
    )


def compiled_when_eager(fn: Callable) -> Callable:
    """`fn`, run through one cached `jax.jit` when every argument is a concrete array (an eager call).

    For updates built on `jax.lax.cond`: called eagerly, a cond traces and
    compiles its branches afresh on every call. Under a trace (inside the
    user's `jax.jit`, `grad`, `scan`) `fn` is called as it is, so the
    compiled step is the same either way. Calls with a Python scalar among
    the arguments also run as they are, so that `fn`'s own checks see them.
    """
    jitted = jax.jit(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return jitted(*args, **kwargs) if is_eager(args, kwargs) else fn(*args, **kwargs)

    return call


def identity() -> GradientTransformation:
    """Passes updates through unchanged."""

    def update(updates, state, params=None, **extra):
        del params, extra
        return updates, state

    return stage("identity", init_empty, update)


def chain(*transformations: GradientTransformation) -> GradientTransformation:
    """Applies transformations in order; state is the tuple of their states.

    Nested adamlab chains are flattened, so ``chain(clip, adam(...))`` has
    one flat tuple of stage states, and `identity` stages are dropped. Every stage receives the gradient as the
    extra argument ``gradient`` (see the module docstring); foreign stages
    whose ``update`` takes no ``**extra`` receive only ``(updates, state,
    params)``. The final updates come back in the dtype of the updates the
    chain received, leaf by leaf, so float32 moments never leak into
    bfloat16 updates.
    """
    for i, tx in enumerate(transformations):
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise TypeError(
                f"chain: argument {i} is {type(tx).__name__}, not a GradientTransformation "
                "(an object with callable `init` and `update`)"
            )
    stages: list = []
    for tx in transformations:
        info = stage_info(tx)
        if info.name == "identity":  # a placeholder (e.g. adam without weight decay) needs no state
            continue
        stages.extend(info.stages if info.name == "chain" else [tx])
    infos = [stage_info(tx) for tx in stages]
    # The gradient is fixed at the input of the first moment stage: what enters it is what the moments average.
    fixed_at = next((i for i, s in enumerate(infos) if s.role == "moment"), None)
    if fixed_at is not None:
        for i, s in enumerate(infos):
            if s.role == "gradient" and i > fixed_at:
                raise ValueError(
                    f"chain: {s.name} (stage {i}) acts on the gradient but stands after the moment "
                    f"stage {infos[fixed_at].name} (stage {fixed_at}); move it before the "
                    "moments (or use add_decoupled_weight_decay for AdamW-style decay)"
                )
            if s.role == "direction" and i < fixed_at:
                raise ValueError(
                    f"chain: {s.name} (stage {i}) acts on the update direction but stands before the "
                    f"first moment stage {infos[fixed_at].name} (stage {fixed_at}); "
                    "move it after the moments (or use add_coupled_weight_decay for L2 on the gradient)"
                )
    extra_ok = [_accepts_extra(tx.update) for tx in stages]

    def init(params):
        check_leaves(params, "params")
        return tuple(tx.init(params) for tx in stages)

    def update(updates, state, params=None, **extra):
        check_leaves(updates, "updates")
        if not isinstance(state, tuple) or len(state) != len(stages):
            raise ValueError(
                f"chain of {len(stages)} stages got a state of type {type(state).__name__}"
                + (f" with {len(state)} entries" if isinstance(state, tuple) else "")
                + "; pass the state returned by this chain's init/update"
            )
        in_dtypes = jax.tree.map(lambda u: jnp.asarray(u).dtype, updates)
        gradient = extra.pop("gradient", None)  # fixed by an enclosing chain
        new_state = []
        for i, (tx, s) in enumerate(zip(stages, state)):
            if gradient is None and i == fixed_at:
                gradient = updates
            if extra_ok[i]:
                kw = dict(extra) if gradient is None else dict(extra, gradient=gradient)
                updates, s = tx.update(updates, s, params, **kw)
            else:
                updates, s = tx.update(updates, s, params)
            new_state.append(s)
        updates = jax.tree.map(lambda u, d: u if u.dtype == d else u.astype(d), updates, in_dtypes)
        return updates, tuple(new_state)

    return stage("chain", init, update, role="moment" if fixed_at is not None else "any", stages=tuple(stages))


def apply_updates(params: Params, updates: Updates) -> Params:
    """Returns ``params + updates`` leaf by leaf, each in its param's dtype.

    Leaves that are not floating point (integer counters, boolean flags) are
    returned unchanged: they have no gradient. A float param whose update is
    not a float array is an error (adding an integer "update" would be a
    silent wrong step). No params (None, JAX's empty tree) give None, as in Optax.
    """
    if params is None:
        return None
    check_same_tree(params, updates, "apply_updates: updates", "params")
    for (path, p), u in zip(jax.tree_util.tree_flatten_with_path(params)[0], jax.tree.leaves(updates)):
        if np.shape(p) != np.shape(u):
            raise ValueError(f"apply_updates: the update at {path_str(path)} has shape {np.shape(u)}, "
                             f"its param {np.shape(p)}")
        if jnp.issubdtype(jnp.asarray(p).dtype, jnp.inexact) and not (
            hasattr(u, "dtype") and jnp.issubdtype(u.dtype, jnp.inexact)
        ):
            raise TypeError(
                f"apply_updates: the update at {path_str(path)} is "
                f"{getattr(u, 'dtype', type(u).__name__)}, but its param is floating point"
            )

    def add(p, u):
        p = jnp.asarray(p)
        if not jnp.issubdtype(p.dtype, jnp.inexact):
            return p
        new = p + u
        return new if new.dtype == p.dtype else new.astype(p.dtype)

    return jax.tree.map(add, params, updates)
