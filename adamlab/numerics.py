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
from adamlab.base import GradientTransformation, is_eager, stage, stage_info
from adamlab.tree import clip_finite, has_gradient, increment


class NonFiniteGradientError(FloatingPointError):
    """Raised by `skip_nonfinite` after more than ``max_consecutive`` non-finite steps in a row."""


class SkipNonfiniteState(NamedTuple):
    inner_state: Any  # the wrapped transformation's state, untouched by skipped steps
    skipped: jax.Array  # int32 steps skipped in all (saturating)
    consecutive: jax.Array  # int32 non-finite steps in a row, 0 after a finite step


def all_finite(tree: Any) -> jax.Array:
    """True when no float leaf of `tree` holds a NaN or an Inf (True for a tree without float leaves)."""
    flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if has_gradient(x)]
    return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)


def _nonfinite_paths(tree: Any, flags) -> list[str]:
    paths = [_checks.path_str(p) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0] if has_gradient(x)]
    return [p for p, ok in zip(paths, flags) if not ok]


def skip_nonfinite(
    tx: GradientTransformation,
    max_consecutive: int | None = 10,
    *,
    on_limit: Literal["raise", "apply"] = "raise",
) -> GradientTransformation:
    """Skips steps whose gradient holds a NaN or an Inf, leaving params and every moment exactly as they were.

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
            # Inside a cond the host is called only on the step that gives up, not on every step.
            report = lambda *a: _raise_from_host(checked, max_consecutive, *a)
            jax.lax.cond(over, lambda: jax.debug.callback(report, over, consecutive, flags), lambda: None)
        apply = finite | over if on_limit == "apply" else finite

        def take(_):
            return tx.update(updates, state.inner_state, params, **extra)

        def skip(_):
            # -0.0 is the additive identity for every float, -0.0 included; +0.0 is not (-0.0 + 0.0 == +0.0).
            # (Non-float leaves get 0: apply_updates leaves non-float params alone whatever their update.)
            zero = lambda u: jnp.full(u.shape, -0.0 if jnp.issubdtype(u.dtype, jnp.floating) else 0, u.dtype)
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


def _message(tree, max_consecutive: int, over, count, flags) -> str:
    # Under vmap the arguments carry a batch axis: report the first member that gave up.
    over, count = np.reshape(over, (-1,)), np.reshape(count, (-1,))
    row = int(np.argmax(over))
    flags = np.reshape(flags, (over.size, -1))[row]
    bad = _nonfinite_paths(tree, flags)
    return (
        f"skip_nonfinite: {int(count[row])} steps in a row had non-finite gradients (max_consecutive="
        f"{max_consecutive}); giving up. Leaves with NaN or Inf on the last step: {', '.join(bad) or 'none'}"
    )


def _raise_from_host(tree, max_consecutive: int, over, count, flags) -> None:
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


def hash_bits(shape, seed) -> jax.Array:
    """32 pseudo-random bits per element: ``mix(mix(seed) + index * golden ratio)``, counter-based.

    A handful of integer operations per element, against threefry's ~20 rounds: cheap enough to run on every
    element of a second moment at every step. Good for rounding decisions, not for cryptography.
    """
    seed = _mix32(jnp.asarray(seed).astype(jnp.uint32))
    index = jax.lax.iota(jnp.uint32, int(np.prod(shape))).reshape(shape)
    return _mix32(index * jnp.uint32(0x9E3779B9) + seed)


def stochastic_round(x: jax.Array, dtype, key: jax.Array) -> jax.Array:
    """Rounds `x` to `dtype` at random, unbiased: ``E[stochastic_round(x)] == x``.

    With ``lo <= x <= hi`` the two neighbours of `x` in `dtype`, the result is
    `hi` with probability ``(x - lo) / (hi - lo)`` and `lo` otherwise (values
    exactly representable come back unchanged). Finite values beyond the
    range of `dtype` saturate at its largest finite value; NaN and Inf are
    kept. `key` is a `jax.random` key, or an integer scalar seed, which draws
    from the cheaper counter-based `hash_bits` (what the moments use); the
    draw uses 24 random bits per element. When `dtype` is not narrower than
    ``x.dtype`` this is a plain cast.
    """
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
    is_seed = not jax.dtypes.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key) and jnp.ndim(key) == 0
    bits = hash_bits(x.shape, key) if is_seed else jax.random.bits(key, x.shape, jnp.uint32)
    u = (bits >> 8).astype(jnp.float32) * np.float32(2.0**-24)  # uniform on [0, 1)
    return jnp.where((gap != 0) & (u < p), other, near)


__all__ = [
    "NonFiniteGradientError",
    "SkipNonfiniteState",
    "all_finite",
    "hash_bits",
    "skip_nonfinite",
    "stochastic_round",
]
