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
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, Protocol

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from adamlab._checks import check_leaves, check_same_tree, path_str
from adamlab.tree import has_gradient

PyTree = Any  # any pytree (nested containers of arrays)
Params = PyTree  # the params: a pytree of arrays
Updates = PyTree  # updates: a pytree like the params (at the head of a chain, the gradient)
OptState = PyTree  # a transformation's state: any pytree (often a NamedTuple of trees like the params)
State = OptState  # the former name of OptState, kept for imports of adamlab.base.State
InitFn = Callable[..., OptState]  # init(params) -> state
UpdateFn = Callable[..., tuple[Updates, OptState]]  # update(updates, state, params=None, **extra)

if TYPE_CHECKING:
    # For type checkers only, a subclass of Optax's NamedTuple, so that Optax's functions (``optax.chain``,
    # ``optax.MultiSteps``, Flax's ``TrainState``) accept adamlab's transformations statically as they do at run
    # time. At run time it is a NamedTuple of its own (no Optax import, no change to ``isinstance``).
    from optax import GradientTransformationExtraArgs as _Transformation
else:
    _Transformation = NamedTuple


class Transformation(Protocol):
    """What adamlab's functions take as a transformation: any object with ``init`` and ``update``.

    adamlab's :class:`adamlab.GradientTransformation`, Optax's ``GradientTransformation`` and
    ``GradientTransformationExtraArgs``, and any other NamedTuple ``(init, update)`` fit.
    """

    @property
    def init(self) -> InitFn: ...

    @property
    def update(self) -> UpdateFn: ...


class GradientTransformation(_Transformation):
    """A pure gradient transformation: ``init(params)`` and ``update(updates, state, params, **extra)``.

    ::

        state = init(params)
        updates, state = update(updates, state, params=None, **extra)

    The same two-field structure as :class:`optax.GradientTransformation`, so either library's
    transformations run inside the other's chains. ``init`` builds the state from the params (their
    shapes and dtypes, not their values, for most stages); ``update`` maps incoming updates (at the
    head of a chain: the gradient) and the state to new updates and a new state. Both are pure: no
    side effects, so they can be traced by `jax.jit`, `jax.grad` or `jax.lax.scan`. adamlab's own
    stages also accept extra keyword arguments (``**extra``; see :func:`adamlab.chain` for the
    ``gradient`` one); use :func:`adamlab.stage_info` to read what adamlab knows about a stage.

    Args:
        init: ``init(params) -> state``: a function of the params (a pytree) returning the initial
            state (a pytree, often a NamedTuple such as :class:`adamlab.EmaState`).
        update: ``update(updates, state, params=None, **extra)``: a function of the updates (a tree
            like the params), the current state and optionally the params, returning
            ``(updates, state)``: the transformed updates and the next state.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> def negate(updates, state, params=None, **extra):
        ...     return jax.tree.map(lambda u: -u, updates), state
        >>> tx = adamlab.GradientTransformation(lambda params: adamlab.EmptyState(), negate)
        >>> updates, state = tx.update({"w": jnp.array([1.0, 2.0])}, tx.init({"w": jnp.zeros(2)}))
        >>> print(updates["w"])
        [-1. -2.]
    """

    # Redeclared over the static Optax base: users read Any-based trees (Params, Updates, OptState), not Optax's union.
    init: InitFn  # pyright: ignore[reportIncompatibleVariableOverride] a NamedTuple field over the static Optax base
    update: UpdateFn  # pyright: ignore[reportIncompatibleVariableOverride] a NamedTuple field over the static Optax base


class EmptyState(NamedTuple):
    """State of a stateless transformation: a NamedTuple with no fields (an empty pytree).

    Stateless stages such as :func:`adamlab.scale` and :func:`adamlab.clip_by_global_norm` return it
    from ``init`` and hand it back unchanged from ``update``. It holds no arrays, so it costs no memory
    and no checkpoint space. The counterpart of :class:`optax.EmptyState`.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> state = adamlab.scale(0.5).init({"w": jnp.zeros(3)})
        >>> print(state, jax.tree.leaves(state))
        EmptyState() []
    """


def init_empty(params) -> EmptyState:
    """``init`` of every stateless stage: ignores the params and returns an `EmptyState`.

    Args:
        params: The params (any pytree); unused.

    Returns:
        ``EmptyState()``.
    """
    del params
    return EmptyState()


class StageInfo(NamedTuple):
    """What :func:`adamlab.chain` knows about a stage: its name, its role, and, for a chain, its stages.

    adamlab attaches it to every transformation it builds; read it with :func:`adamlab.stage_info`.
    `chain` uses the roles to check the order of its stages when it is built (see :func:`adamlab.chain`)
    and the ``stages`` of a nested chain to flatten it.

    Args:
        name: The stage's name, a str: the name of the function that built it (``"scale_by_ema"``,
            ``"chain"``, ...), or the qualified name of a foreign ``update`` function.
        role: Where the stage may stand in a chain, a str: ``"moment"`` (it starts a moment: the chain
            fixes the gradient at its input), ``"gradient"`` (preprocessing only: it must come before
            every moment stage), ``"direction"`` (it must come after the first moment stage, when the
            chain has one) or ``"any"``.
        stages: For a chain, the tuple of its (flattened) stages, each a `GradientTransformation`;
            ``()`` for every other stage.

    Example:
        >>> import adamlab
        >>> print(adamlab.stage_info(adamlab.add_coupled_weight_decay(1e-4)))
        StageInfo(name='add_coupled_weight_decay', role='gradient', stages=())
    """

    name: str
    role: str  # "moment", "gradient", "direction" or "any"
    stages: tuple = ()


_INFO_ATTR = "__adamlab_stage__"


def stage(name: str, init: InitFn, update: UpdateFn, role: str = "any", stages: tuple = ()) -> GradientTransformation:
    """Builds a transformation and attaches its `StageInfo` to its ``update`` function.

    The info lives on ``update`` (as an attribute of the function object), so
    ``GradientTransformation(tx.init, tx.update)`` (as wrappers rebuild it) keeps it.

    Args:
        name: The stage's name, as `stage_info` will report it.
        init: The ``init(params) -> state`` function.
        update: The ``update(updates, state, params=None, **extra) -> (updates, state)`` function; it
            receives the attribute, so it must be a fresh function (not one shared by other stages).
        role: ``"moment"`` starts a moment (the chain fixes the gradient at its input), ``"gradient"``
            must come before every moment stage, ``"direction"`` must come after the first moment
            stage when the chain has one, ``"any"`` (the default) may stand anywhere.
        stages: For a chain, its stages (a sequence of transformations); default ``()``.

    Returns:
        ``GradientTransformation(init, update)``.
    """
    setattr(update, _INFO_ATTR, StageInfo(name, role, tuple(stages)))
    return GradientTransformation(init, update)


def stage_info(tx: Transformation) -> StageInfo:
    """The :class:`adamlab.StageInfo` of a transformation: its name, its role in a chain and its stages.

    A transformation adamlab did not build (an Optax one, say) has no info attached and gets
    ``StageInfo(<its update's qualified name>, "any")``: it may stand anywhere in a chain.

    Args:
        tx: Any `GradientTransformation` (adamlab's, Optax's or hand-made); an object without an
            ``update`` attribute gets the name of its type.

    Returns:
        A :class:`adamlab.StageInfo`. For a chain, ``name`` is ``"chain"``, ``role`` is ``"moment"``
        when the chain holds a moment stage (else ``"any"``), and ``stages`` its flattened stages.

    Example:
        >>> import adamlab
        >>> info = adamlab.stage_info(adamlab.chain(adamlab.clip_by_global_norm(1.0), adamlab.adam(1e-3)))
        >>> print(info.name, info.role, len(info.stages))
        chain moment 5
        >>> print(adamlab.stage_info(adamlab.scale(0.5)))
        StageInfo(name='scale', role='any', stages=())
    """
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
    """True when every leaf of `trees` is a concrete array: a call made outside any trace.

    Args:
        *trees: Pytrees (the arguments of a call). Python scalars and tracers among their leaves make
            the answer False, and so do trees without any leaf.

    Returns:
        A Python bool: True when there is at least one leaf and every leaf is a `jax.Array`, a NumPy
        array or a NumPy scalar that is not a `jax.core.Tracer`.
    """
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

    Args:
        fn: The function to wrap; it must be traceable by `jax.jit` with all of its arguments
            (positional and keyword) as traced pytrees.

    Returns:
        A function with `fn`'s signature and metadata (`functools.wraps`) that calls the cached
        ``jax.jit(fn)`` when `is_eager` holds for its arguments, and `fn` itself otherwise.
    """
    jitted = jax.jit(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return jitted(*args, **kwargs) if is_eager(args, kwargs) else fn(*args, **kwargs)

    return call


def identity() -> GradientTransformation:
    """Passes updates through unchanged: ``u -> u``, with an `EmptyState`.

    A placeholder stage: optimizers return it where an optional stage is switched off (``adam``
    without weight decay, say), and :func:`adamlab.chain` drops it, so it adds nothing to the
    chain's state. The counterpart of :func:`optax.identity`.

    Returns:
        A stateless `GradientTransformation` (its state is an :class:`adamlab.EmptyState`) whose
        ``update`` returns the updates and the state as they came.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.identity()
        >>> updates, state = tx.update({"w": jnp.array([1.0, -2.0])}, tx.init({"w": jnp.zeros(2)}))
        >>> print(updates["w"], state)
        [ 1. -2.] EmptyState()
        >>> print(len(adamlab.chain(adamlab.identity(), adamlab.scale(2.0)).init({"w": jnp.zeros(2)})))
        1
    """

    def update(updates, state, params=None, **extra):
        del params, extra
        return updates, state

    return stage("identity", init_empty, update)


_NAME_ATTR = "__adamlab_name__"


def _renamed(e: Exception, owner: str | None, stage_name: str | None = None) -> Exception | None:
    """A stage's error under the name of the optimizer the user called, or None to let it pass as it is.

    ``scale_by_ema: updates do not ...`` becomes ``adamw: updates do not ... (raised by its scale_by_ema
    stage)``. Only adamlab's own messages (exact ValueError or TypeError) are reworded.
    """
    message = str(e)
    if owner is None or type(e) not in (ValueError, TypeError) or message.startswith(f"{owner}:"):
        return None
    if stage_name is not None and message.startswith(f"{stage_name}:"):
        message = f"{message[len(stage_name) + 1 :].strip()} (raised by its {stage_name} stage)"
    return type(e)(f"{owner}: {message}").with_traceback(e.__traceback__)


def _warn_if_nothing_trains(who: str, params) -> None:
    leaves = jax.tree.leaves(params)
    if leaves and not any(has_gradient(x) for x in leaves):
        dtypes = sorted({str(getattr(x, "dtype", type(x).__name__)) for x in leaves})
        warnings.warn(
            f"{who}: the params have {len(leaves)} leaves and none is floating point ({', '.join(dtypes)}): "
            "nothing will be trained (integer and boolean leaves have no gradient)",
            UserWarning,
            stacklevel=3,
        )


def chain(*transformations: Transformation, name: str | None = None) -> GradientTransformation:
    """Applies transformations in order; state is the tuple of their states.

    ::

        u_0 = updates
        u_i, s_i = stage_i.update(u_{i-1}, s_i, params, gradient=g, **extra)    (i = 1 .. n)
        output: u_n cast leaf by leaf to the dtype of u_0;  state: (s_1, ..., s_n)

    Nested adamlab chains are flattened, so ``chain(clip, adam(...))`` has
    one flat tuple of stage states, and `identity` stages are dropped. Every stage receives the gradient as the
    extra argument ``gradient`` (see the module docstring); foreign stages
    whose ``update`` takes no ``**extra`` receive only ``(updates, state,
    params)``. The final updates come back in the dtype of the updates the
    chain received, leaf by leaf, so float32 moments never leak into
    bfloat16 updates.

    The gradient ``g`` is what enters the chain's first moment stage (``scale_by_ema``,
    ``scale_by_rms``, ``trace``; see :func:`adamlab.stage_info`): stages before it preprocess the
    gradient (clipping, coupled weight decay), stages after it act on the update direction. A chain
    nested in another receives the outer chain's ``gradient`` and passes it on. The order of the
    stages is checked in Python when the chain is built, from their roles.

    Compared with :func:`optax.chain`: the same ``init``/``update`` protocol, Optax transformations
    may be stages, and the chain may stand inside :func:`optax.chain`; but the state of nested chains
    is one flat tuple (Optax nests the tuples), and the output dtype follows the incoming updates.

    Args:
        *transformations: The stages, applied in the order given: adamlab or Optax transformations
            (any object with callable ``init`` and ``update``). None at all gives a chain that passes
            updates through with state ``()``.
        name: What the user calls this chain (``"adamw"`` for :func:`adamlab.adamw`). Errors raised by
            its stages, and by the stages of a named chain nested in an unnamed one, name it:
            ``adamw: updates do not have the tree structure of the params given to init: missing leaf at
            ['b'] ... (raised by its scale_by_ema stage)``. Default None: messages name the stage.
            Keyword-only; it does not change the state or the arithmetic.

    Returns:
        A `GradientTransformation` whose state is a tuple with one state per stage (after flattening
        nested chains and dropping `identity` stages). Its role is ``"moment"`` when a stage is a
        moment stage, else ``"any"``.

    Raises:
        TypeError: If an argument is not a transformation (has no callable ``init`` and ``update``);
            in ``init``/``update``, if a leaf of the params or updates is not a numeric array.
        UserWarning: In ``init``, once, if the params have leaves but none of them is floating point: such a
            chain trains nothing (integer and boolean leaves have no gradient).
        ValueError: If a ``"gradient"`` stage (such as :func:`adamlab.add_coupled_weight_decay`) stands
            after the first moment stage, or a ``"direction"`` stage (such as
            :func:`adamlab.add_decoupled_weight_decay`) before it; in ``update``, if the state is not a
            tuple with one entry per stage.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.chain(adamlab.clip_by_global_norm(1.0), adamlab.scale(-0.1))
        >>> state = tx.init({"w": jnp.zeros(2)})
        >>> updates, state = tx.update({"w": jnp.array([3.0, 4.0])}, state)
        >>> print(updates["w"], len(state))
        [-0.06 -0.08] 2
    """
    for i, tx in enumerate(transformations):
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise TypeError(
                f"chain: argument {i} is {type(tx).__name__}, not a GradientTransformation "
                "(an object with callable `init` and `update`)"
            )
    stages: list = []
    owners: list = []  # for each stage, the named chain (the optimizer the user called) it came from
    for tx in transformations:
        info = stage_info(tx)
        if info.name == "identity":  # a placeholder (e.g. adam without weight decay) needs no state
            continue
        inner = info.stages if info.name == "chain" else (tx,)
        stages.extend(inner)
        owners.extend([name or getattr(tx.update, _NAME_ATTR, None)] * len(inner))
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

    def reraise_named(e: Exception, at: int | None) -> NoReturn:
        """Re-raises `e` under the name of the optimizer that stage `at` came from (None: the chain's own checks)."""
        named = _renamed(e, name) if at is None or at >= len(stages) else _renamed(e, owners[at], infos[at].name)
        if named is None:
            raise e
        raise named from None

    def init(params):
        states: list = []
        try:
            check_leaves(params, "params")
            _warn_if_nothing_trains(name or "chain", params)
            for tx in stages:
                states.append(tx.init(params))
        except (ValueError, TypeError) as e:
            reraise_named(e, len(states))  # the stage that raised (0 also for the checks before the first)
        return tuple(states)

    def update(updates, state, params=None, **extra):
        at = None
        try:
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
            for at, (tx, s) in enumerate(zip(stages, state)):
                if gradient is None and at == fixed_at:
                    gradient = updates
                if extra_ok[at]:
                    kw = dict(extra) if gradient is None else dict(extra, gradient=gradient)
                    updates, s = tx.update(updates, s, params, **kw)
                else:
                    updates, s = tx.update(updates, s, params)
                new_state.append(s)
        except (ValueError, TypeError) as e:
            reraise_named(e, at)
        updates = jax.tree.map(lambda u, d: u if u.dtype == d else u.astype(d), updates, in_dtypes)
        return updates, tuple(new_state)

    chained = stage("chain", init, update, role="moment" if fixed_at is not None else "any", stages=tuple(stages))
    if name is not None:
        setattr(chained.update, _NAME_ATTR, name)  # read by an enclosing chain, to name errors
    return chained


def apply_updates(params: Params, updates: Updates) -> Params:
    """Returns ``params + updates`` leaf by leaf, each in its param's dtype.

    Leaves that are not floating point (integer counters, boolean flags) are
    returned unchanged: they have no gradient. A float param whose update is
    not a float array is an error (adding an integer "update" would be a
    silent wrong step). No params (None, JAX's empty tree) give None, as in Optax.

    ::

        p_new = (p + u).astype(p.dtype)     for floating-point (and complex) params p
        p_new = p                           for every other leaf

    The counterpart of :func:`optax.apply_updates`; in PyTorch, the in-place ``param.add_(update)``
    that ``optimizer.step()`` performs. Optimizers in adamlab return updates that already carry the
    minus sign (``-lr * direction``), so this addition is the descent step.

    Args:
        params: The params, any pytree of arrays (or None).
        updates: A tree like `params` (same structure and leaf shapes), as returned by a
            transformation's ``update``; a floating-point array at every floating-point param.

    Returns:
        A tree like `params`, each float leaf ``p + u`` in ``p``'s dtype, every other leaf unchanged;
        None when `params` is None.

    Raises:
        ValueError: If `updates` does not have the tree structure of `params`, or an update's shape
            differs from its param's.
        TypeError: If the update of a floating-point param is not a floating-point array.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> params = {"w": jnp.ones(2, jnp.bfloat16), "step": jnp.int32(3)}
        >>> updates = {"w": jnp.array([0.5, -0.5]), "step": jnp.zeros((), jnp.float32)}
        >>> new = adamlab.apply_updates(params, updates)
        >>> print(new["w"], new["w"].dtype, new["step"])
        [1.5 0.5] bfloat16 3
    """
    if params is None:
        return None
    split = getattr(type(updates), "__adamlab_apply__", None)
    if split is not None:  # updates still split over a mesh (`adamlab.sharding.zero1`) apply where they live
        return split(updates, params)
    check_same_tree(params, updates, "apply_updates: updates", "params")
    for (path, p), u in zip(jax.tree_util.tree_flatten_with_path(params)[0], jax.tree.leaves(updates)):
        if np.shape(p) != np.shape(u):
            raise ValueError(
                f"apply_updates: the update at {path_str(path)} has shape {np.shape(u)}, its param {np.shape(p)}"
            )
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
