"""Numerics: skipping non-finite steps, saturating instead of overflowing, and stochastic rounding.

``skip_nonfinite(tx)`` wraps any transformation. On a step whose gradient
holds a NaN or an Inf it returns updates of ``-0.0`` (``p + (-0.0)`` is ``p``
bit for bit, ``-0.0`` params included, where ``+0.0`` would turn ``-0.0``
into ``+0.0``) and hands back the inner state it received, so params, moments,
step counters and schedules are exactly as they were. It counts skipped
steps, and after more than ``max_consecutive`` of them in a row it raises
`NonFiniteGradientError` (or, with ``on_limit="apply"``, lets the steps
through).

``stochastic_round(x, dtype, key)`` rounds each element of `x` to one of
its two neighbours in `dtype`, the upper one with probability
``(x - lo) / (hi - lo)``, so that ``E[round(x)] = x``: a decay too small to
move a bfloat16 number by one ulp still moves it on average.

"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks
from adamlab.base import GradientTransformation, Transformation, is_eager, stage, stage_info
from adamlab.tree import clip_finite, has_gradient, increment


class NonFiniteGradientError(FloatingPointError):
    """Raised by :func:`adamlab.skip_nonfinite` after more than ``max_consecutive`` non-finite steps in a row.

    A subclass of :class:`FloatingPointError`. Its message gives the number of non-finite steps in a row,
    the limit, and the paths of the leaves that held a NaN or an Inf on the last step. Raised as such by an
    eager update; under ``jax.jit`` it is raised in a host callback and reaches the caller wrapped in a
    ``jax.errors.JaxRuntimeError`` whose message contains it.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.skip_nonfinite(adamlab.sgd(0.1), max_consecutive=0)
      >>> params = {"w": jnp.ones(2)}
      >>> state = tx.init(params)
      >>> tx.update({"w": jnp.array([jnp.inf, 1.0])}, state, params)
      Traceback (most recent call last):
        ...
      adamlab.numerics.NonFiniteGradientError: skip_nonfinite: 1 step in a row had non-finite gradients ...
    """


class SkipNonfiniteState(NamedTuple):
    """The state of :func:`adamlab.skip_nonfinite`: the wrapped state and two counters of non-finite steps.

    Args:
      inner_state: The wrapped transformation's state, exactly as it was before a skipped step (skipped
        steps hand it back untouched).
      skipped: int32 scalar, the number of steps skipped in all (saturating at the int32 maximum). Steps
        let through by ``on_limit="apply"`` are not counted. Optax: ``total_notfinite`` of
        ``optax.ApplyIfFiniteState``.
      consecutive: int32 scalar, the number of non-finite steps in a row; 0 after a finite step. Optax:
        ``notfinite_count``.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.skip_nonfinite(adamlab.sgd(0.1))
      >>> params = {"w": jnp.ones(2)}
      >>> state = tx.init(params)
      >>> _, state = tx.update({"w": jnp.array([jnp.nan, 1.0])}, state, params)
      >>> print(type(state).__name__, state.skipped, state.consecutive)
      SkipNonfiniteState 1 1
    """

    inner_state: Any
    skipped: jax.Array
    consecutive: jax.Array


def all_finite(tree: Any) -> jax.Array:
    """Returns True when no float leaf of ``tree`` holds a NaN or an Inf.

    ::

        all_finite(tree) = all(isfinite(x).all() for x in float leaves of tree)    (True without float leaves)

    Integer and bool leaves are ignored (they cannot be non-finite). This is the test
    :func:`adamlab.skip_nonfinite` applies to each step's gradient, and is jit-friendly.

    Args:
      tree: A pytree of arrays (JAX or NumPy).

    Returns:
      A bool scalar ``jax.Array``.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> print(adamlab.numerics.all_finite({"a": jnp.ones(2), "b": jnp.array([1.0, jnp.inf])}))
      False
      >>> print(adamlab.numerics.all_finite({"step": jnp.arange(3)}))  # no float leaves
      True
    """
    flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if has_gradient(x)]
    return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)


def _nonfinite_paths(tree: Any, flags) -> list[str]:
    paths = [_checks.path_str(p) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0] if has_gradient(x)]
    return [p for p, ok in zip(paths, flags) if not ok]


def skip_nonfinite(
    tx: Transformation,
    max_consecutive: int | None = 10,
    *,
    on_limit: Literal["raise", "apply"] = "raise",
) -> GradientTransformation:
    """Wraps ``tx`` to skip steps whose gradient holds a NaN or an Inf, leaving params and moments exactly as they were.

    ::

        finite      = all_finite(updates)                 (and the chain's gradient, when it differs)
        consecutive = 0 if finite else consecutive + 1
        finite:                              updates, inner_state = tx.update(updates, inner_state, params)
        not finite, consecutive <= limit:    updates = -0.0 everywhere, inner_state unchanged, skipped += 1
        not finite, consecutive >  limit:    on_limit="raise": raise NonFiniteGradientError
                                             on_limit="apply": as if finite

    A step is *non-finite* when a float leaf of the incoming updates (or of
    the ``gradient`` an enclosing `adamlab.chain` hands over) holds a NaN or
    an Inf. Such a step returns updates of ``-0.0`` in each leaf's dtype and
    keeps the wrapped state as it was: moments, step counters and the
    schedule's step do not move. The first finite step afterwards is the
    step the unwrapped optimizer would have taken had the bad steps never
    happened, bit for bit.

    The state counts skipped steps (``skipped``) and non-finite steps in a
    row (``consecutive``). When ``consecutive`` exceeds `max_consecutive`:

    - ``on_limit="raise"``: raises `NonFiniteGradientError` naming the
      non-finite leaves. Eagerly this is an ordinary Python exception; under
      `jax.jit` it is raised from a host callback and surfaces as a
      ``JaxRuntimeError`` (a ``RuntimeError``) whose message contains it.
    - ``on_limit="apply"``: the non-finite steps are applied, as the
      unwrapped optimizer would, until a finite step resets the count.

    ``max_consecutive=None`` skips non-finite steps forever.

    Wrap the whole optimizer (``skip_nonfinite(adamlab.adamw(...))``), or one stage inside an
    :func:`adamlab.chain`; the wrapper takes the chain role of ``tx``. Differences from Optax's
    ``optax.apply_if_finite``: Optax gives up silently (as ``on_limit="apply"`` here) and returns ``+0.0``
    updates, which turn ``-0.0`` params into ``+0.0``; Optax's ``total_notfinite`` also counts the steps
    it let through. PyTorch's ``torch.amp.GradScaler`` likewise skips ``optimizer.step()`` on inf/NaN
    gradients (and lowers its loss scale), without a limit.

    Args:
      tx: The transformation to wrap: an adamlab :class:`adamlab.GradientTransformation` (a whole
        optimizer or one stage) or an ``optax.GradientTransformation``.
      max_consecutive: The number of non-finite steps in a row that are skipped before giving up, an int
        ``>= 0``, or None to skip forever. Default 10. With 0 the first non-finite step gives up. Optax:
        ``max_consecutive_errors`` of ``optax.apply_if_finite``.
      on_limit: What happens once more than ``max_consecutive`` steps in a row were non-finite:
        ``"raise"`` (the default) raises :class:`adamlab.NonFiniteGradientError`; ``"apply"`` applies
        the non-finite steps, as the unwrapped optimizer would (Optax's behaviour).

    Returns:
      A :class:`adamlab.GradientTransformation` whose state is a :class:`adamlab.SkipNonfiniteState`.

    Raises:
      TypeError: If ``tx`` has no callable ``init`` and ``update``.
      ValueError: If ``max_consecutive`` is not None or an int ``>= 0``, or ``on_limit`` is neither
        ``"raise"`` nor ``"apply"``; at update time, if the state is not a
        :class:`adamlab.SkipNonfiniteState`.
      NonFiniteGradientError: At update time, with ``on_limit="raise"``, when the limit is exceeded
        (under ``jax.jit``, wrapped in a ``JaxRuntimeError``).

    Example:
      A NaN gradient leaves the params unchanged and increments the counters; the next finite step
      is an ordinary SGD step:

      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.skip_nonfinite(adamlab.sgd(0.1), max_consecutive=2)
      >>> params = {"w": jnp.array([1.0, 2.0])}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.array([jnp.nan, 1.0])}, state, params)
      >>> params = adamlab.apply_updates(params, updates)
      >>> print(params["w"], state.skipped, state.consecutive)
      [1. 2.] 1 1
      >>> updates, state = tx.update({"w": jnp.array([1.0, 1.0])}, state, params)
      >>> params = adamlab.apply_updates(params, updates)
      >>> print(params["w"], state.skipped, state.consecutive)
      [0.9 1.9] 1 0
    """
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(f"skip_nonfinite: tx is {type(tx).__name__}, not a GradientTransformation")
    if max_consecutive is not None and (
        isinstance(max_consecutive, bool) or not isinstance(max_consecutive, (int, np.integer)) or max_consecutive < 0
    ):
        raise ValueError(f"max_consecutive must be an int >= 0 or None, got {max_consecutive!r}")
    if on_limit not in ("raise", "apply"):
        raise ValueError(f"on_limit must be 'raise' or 'apply', got {on_limit!r}")

    def init(params):
        return SkipNonfiniteState(tx.init(params), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    raising = on_limit == "raise" and max_consecutive is not None

    def step(updates, state, params, extra, in_callback: bool):
        checked = _checked(updates, extra)
        leaf_ok = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(checked) if has_gradient(x)]
        flags = jnp.stack(leaf_ok) if leaf_ok else jnp.zeros((0,), bool)
        finite = jnp.all(flags)
        consecutive = jnp.where(finite, jnp.zeros((), jnp.int32), increment(state.consecutive))
        over = jnp.asarray(False) if max_consecutive is None else consecutive > max_consecutive
        if raising and in_callback:
            # Inside a cond the host is called only on the step that gives up, not on every step. Partitioned: every
            # device calls it with its (replicated) copy, so under jax.distributed every process raises, not one.
            report = lambda *a: _raise_from_host(checked, max_consecutive, *a)
            jax.lax.cond(
                over, lambda: jax.debug.callback(report, over, consecutive, flags, partitioned=True), lambda: None
            )
        apply = finite | over if on_limit == "apply" else finite

        def take(_):
            return tx.update(updates, state.inner_state, params, **extra)

        def skip(_):
            # -0.0 is the additive identity for every float, -0.0 included; +0.0 is not (-0.0 + 0.0 == +0.0).
            # (Non-float leaves get 0: apply_updates leaves non-float params alone whatever their update.)
            # On a mesh of Explicit axes the sharding is part of the type, which both branches must share.
            zero = lambda u: jnp.full(
                u.shape, -0.0 if jnp.issubdtype(u.dtype, jnp.floating) else 0, u.dtype, out_sharding=u.sharding
            )
            return jax.tree.map(zero, jax.eval_shape(take, None)[0]), state.inner_state

        # A cond, not selects: the skipped branch costs nothing, and XLA need not keep the old state alive
        # beside the new one (with selects it copied every moment; see benchmarks/numerics_cost.py).
        out, kept = jax.lax.cond(apply, take, skip, None)
        skipped = jnp.where(apply, state.skipped, increment(state.skipped))
        return (out, SkipNonfiniteState(kept, skipped, consecutive)), (over, consecutive, flags)

    # Eagerly, one compiled program (a cond's branches would be compiled afresh on every call), and the error is
    # an ordinary exception raised here, before the caller sees any new state.
    eager_step = jax.jit(lambda updates, state, params, extra: step(updates, state, params, extra, False))

    def update(updates, state, params=None, **extra):
        if not isinstance(state, SkipNonfiniteState):
            raise ValueError(
                f"skip_nonfinite got a state of type {type(state).__name__}; pass the state its init/update returned"
            )
        if not is_eager(updates, state, params, extra):
            return step(updates, state, params, extra, True)[0]
        result, (over, consecutive, flags) = eager_step(updates, state, params, extra)
        if raising and bool(over):
            checked = _checked(updates, extra)
            raise NonFiniteGradientError(_message(checked, max_consecutive, over, consecutive, np.asarray(flags)))
        return result

    return stage("skip_nonfinite", init, update, role=stage_info(tx).role)


def _checked(updates, extra):
    """What skip_nonfinite checks: the updates, and the gradient an enclosing chain hands over when it differs."""
    gradient = extra.get("gradient")
    return updates if gradient is None or gradient is updates else (updates, gradient)


def _message(tree, max_consecutive: int | None, over, count, flags) -> str:
    # Under vmap the arguments carry a batch axis: report the first member that gave up.
    over, count = np.reshape(over, (-1,)), np.reshape(count, (-1,))
    row = int(np.argmax(over))
    flags = np.reshape(flags, (over.size, -1))[row]
    bad = _nonfinite_paths(tree, flags)
    n = int(count[row])
    return (
        f"skip_nonfinite: {n} step{'' if n == 1 else 's'} in a row had non-finite gradients (max_consecutive="
        f"{max_consecutive}); giving up. Leaves with NaN or Inf on the last step: {', '.join(bad) or 'none'}"
    )


def _raise_from_host(tree, max_consecutive: int | None, over, count, flags) -> None:
    if np.any(over):  # checked here too: under vmap the cond becomes a select and calls the host every step
        raise NonFiniteGradientError(_message(tree, max_consecutive, over, count, flags))


def _mix32(x: jax.Array) -> jax.Array:
    """A 32-bit integer hash with full avalanche (the "lowbias32" constants): each output bit flips with
    probability ~1/2 when any input bit flips."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def hash_bits(shape, seed, offset: int = 0) -> jax.Array:
    """Returns 32 pseudo-random bits per element of an array of ``shape``, counter-based.

    ::

        bits[i] = mix(i * 0x9E3779B9 + mix(seed) + offset)    i = flat index, uint32 arithmetic (wraps)
        mix     = the "lowbias32" integer hash (full avalanche)

    A handful of integer operations per element, against threefry's ~20 rounds: cheap enough to run on every
    element of a second moment at every step. The same ``(shape, seed)`` always gives the same bits, and
    nearby seeds give unrelated ones. Good for rounding decisions, not for cryptography, nor as a
    replacement for ``jax.random`` in general.

    Args:
      shape: The shape of the result, a tuple of ints (static).
      seed: An integer scalar (a Python int or an integer array, may be traced), taken modulo ``2**32``.
      offset: A Python int, taken modulo ``2**32``, added after the seed's mix: it tells apart streams of one
        seed (the moments of a step) that share that one mix of a traced seed. Default 0.

    Returns:
      A ``uint32`` array of shape ``shape``.

    Example:
      >>> import adamlab
      >>> bits = adamlab.numerics.hash_bits((2, 3), seed=7)
      >>> print(bits.shape, bits.dtype)
      (2, 3) uint32
      >>> print(bool((bits == adamlab.numerics.hash_bits((2, 3), seed=7)).all()))  # deterministic
      True
    """
    seed = _mix32(jnp.asarray(seed).astype(jnp.uint32))
    index = jax.lax.iota(jnp.uint32, int(np.prod(shape))).reshape(shape)
    return _mix32(index * jnp.uint32(0x9E3779B9) + (seed + jnp.uint32(offset % 2**32)))


def stochastic_round(x: jax.Array, dtype, key: jax.Array) -> jax.Array:
    """Rounds ``x`` to ``dtype`` at random, unbiased: ``E[stochastic_round(x)] == x``.

    ::

        lo <= x <= hi  the two neighbours of x in dtype
        result = hi  with probability (x - lo) / (hi - lo),   lo otherwise

    Values exactly representable come back unchanged. Finite values beyond the range of ``dtype``
    saturate at its largest finite value (a plain cast would give Inf); NaN and Inf are kept. The draw
    uses 24 random bits per element. When ``dtype`` is not narrower than ``x.dtype`` this is a plain
    cast. Stochastic rounding makes a small update that round-to-nearest would lose (less than half an
    ulp of a bfloat16 weight or moment) still move the value on average.

    Args:
      x: The float array to round.
      dtype: The float dtype to round to, e.g. ``jnp.bfloat16`` or ``jnp.float16``.
      key: The randomness: a ``jax.random`` key (``jax.random.key(0)`` or a raw ``jax.random.PRNGKey``),
        drawn from with ``jax.random.bits``; or an integer scalar seed, which draws from the cheaper
        counter-based :func:`adamlab.numerics.hash_bits` (what the moments use).

    Returns:
      An array of ``x``'s shape in ``dtype``.

    Raises:
      TypeError: If ``x`` or ``dtype`` is not a floating-point type.

    References:
      Gupta, Agrawal, Gopalakrishnan & Narayanan, *Deep Learning with Limited Numerical Precision*,
      ICML 2015.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> x = jnp.full((10000,), 1.0 + 2.0**-10)  # between the bfloat16 numbers 1 and 1 + 2**-7
      >>> print(x.astype(jnp.bfloat16)[0])  # round to nearest loses the increment
      1
      >>> sround = jax.jit(adamlab.numerics.stochastic_round, static_argnums=1)  # dtype is static
      >>> r = sround(x, jnp.bfloat16, jax.random.key(0))  # or an integer seed: sround(x, jnp.bfloat16, 0)
      >>> print(r.dtype, sorted(set(r.astype(jnp.float32).tolist())))
      bfloat16 [1.0, 1.0078125]
      >>> print(round(float(r.astype(jnp.float32).mean()), 3))  # close to 1 + 2**-10
      1.001

      Beyond the target's range, finite values saturate instead of overflowing to Inf:

      >>> print(sround(jnp.array([1e5, -1e5]), jnp.float16, 0).tolist())
      [65504.0, -65504.0]
    """
    is_seed = not jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key) and jnp.ndim(key) == 0
    shape = np.shape(x)
    return _round_with_bits(
        x, dtype, lambda: hash_bits(shape, key) if is_seed else jax.random.bits(key, shape, jnp.uint32)
    )


def _round_with_bits(x: jax.Array, dtype, bits) -> jax.Array:
    """`stochastic_round` with its random bits given: `bits` a function returning uint32 bits of ``x``'s shape
    (called only when ``dtype`` is narrower than ``x``'s). Internal: the moments pass bits that depend on the
    element's index, the step and the value, not on the leaf, so that leaves of one shape share their programs."""
    dtype = jnp.dtype(dtype)
    x = jnp.asarray(x)
    if not jnp.issubdtype(dtype, jnp.floating) or not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"stochastic_round rounds floats to a float dtype, got {x.dtype} -> {dtype}")
    if jnp.finfo(dtype).bits >= jnp.finfo(x.dtype).bits:
        return x.astype(dtype)
    x = clip_finite(x, dtype)
    near = x.astype(dtype)  # the nearest neighbour
    near_x = near.astype(x.dtype)
    gap = x - near_x  # exact: x and its nearest neighbour are within one ulp of the narrow dtype
    toward = jnp.where(gap > 0, jnp.asarray(jnp.inf, dtype), jnp.asarray(-jnp.inf, dtype))
    other = jnp.nextafter(near, toward)  # the neighbour on the other side of x
    p = jnp.abs(gap) / jnp.abs(other.astype(x.dtype) - near_x)
    u = (bits() >> 8).astype(jnp.float32) * np.float32(2.0**-24)  # uniform on [0, 1)
    return jnp.where((gap != 0) & (u < p), other, near)


__all__ = [
    "NonFiniteGradientError",
    "SkipNonfiniteState",
    "all_finite",
    "hash_bits",
    "skip_nonfinite",
    "stochastic_round",
]
