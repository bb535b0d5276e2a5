"""The leaf rules every stage shares: which leaves have a gradient, what dtype arithmetic runs in, how state is stored.

- A leaf *has a gradient* when it is floating point or complex. Integer
  counters and boolean flags pass through every stage untouched, and a moment
  keeps an empty ``(0,)`` placeholder in their place.
- Arithmetic runs in float32 (complex64), or wider when a leaf is wider
  (`upcast`): low precision is for storage, never for the formula.
- A per-step scalar (a bias correction ``1 - b**t``, a schedule's value) is
  computed in the widest float enabled (float64 under ``jax_enable_x64``) and
  rounded to the precision of the leaves it multiplies (`per_precision`,
  `scalar`): float32 for float32, bfloat16 and float16 leaves, float64 for
  float64 ones, each leaf of a mixed tree in its own.
- A moment of squares (``|g|**2``) is real, also for complex params.
- A moment is stored in float32 (or its param's wider dtype) unless a
  ``state_dtype`` asks for less (`init_moment`, `store`). A ``state_dtype``
  sets the precision; whether a moment is complex follows its param:
  ``complex64`` stores a real param's moment in float32, ``float32`` a
  complex param's in complex64 (never dropping the imaginary part), and as
  no complex type is narrower than complex64, complex moments stay complex64
  under ``bfloat16``.
- Step counters are int32 and saturate at ``2**31 - 1`` (`increment`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks, quantize

INT32_MAX = int(np.iinfo(np.int32).max)
T = TypeVar("T")
# The precision per-step scalars are rounded to while `per_precision` builds them for one group of leaves.
_SCALAR_PRECISION: contextvars.ContextVar[np.dtype | None] = contextvars.ContextVar("scalar_precision", default=None)


def has_gradient(x: Any) -> bool:
    """Floating point or complex: a leaf that gets a gradient, a moment and an update."""
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)


@functools.cache
def _wide(dtype) -> np.dtype:
    return jnp.promote_types(dtype, jnp.float32)


def upcast(*leaves) -> tuple:
    """Each leaf in at least float32 (complex64 for complex leaves); a leaf already there is returned as it is."""
    return tuple(x if x.dtype == _wide(x.dtype) else x.astype(_wide(x.dtype)) for x in leaves)


def precision(x) -> np.dtype:
    """The real dtype a leaf computes in: float32 for float32, bfloat16 and float16 (and complex64) leaves,
    float64 for float64 (and complex128) ones."""
    return np.dtype(jnp.finfo(_wide(x.dtype)).dtype)


def widest_float() -> np.dtype:
    """float64 when ``jax_enable_x64`` is on, float32 otherwise: where per-step scalars are computed."""
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def scalar(x) -> jax.Array:
    """A per-step scalar rounded to the precision of the leaves being updated (see `per_precision`; float32 outside
    it). A Python number or a float64 value is rounded once, here, so a float32 leaf's arithmetic stays float32."""
    precision = _SCALAR_PRECISION.get() or np.dtype(jnp.float32)
    x = jnp.asarray(x)
    return x if x.dtype == precision else x.astype(precision)


def per_precision(make: Callable[[], T]) -> Callable[[Any], T]:
    """``leaf -> make()``, with ``make`` called once per precision among the leaves (not once per leaf).

    While ``make`` runs, `scalar` (and so `adamlab.moments.bias_correction_term`) rounds to the precision of the
    leaf asked for: a per-step scalar multiplies each leaf in that leaf's own precision. A tree of float32 leaves
    calls ``make`` once, as if there were no such rule.
    """
    made: dict[np.dtype, T] = {}

    def at(leaf) -> T:
        key = precision(leaf)
        if key not in made:
            with scalars_for(leaf):
                made[key] = make()
        return made[key]

    return at


@contextlib.contextmanager
def scalars_for(leaf):
    """Within it, `scalar` rounds to `leaf`'s precision (`moment_stage` runs each leaf's formula inside one)."""
    token = _SCALAR_PRECISION.set(precision(leaf))
    try:
        yield
    finally:
        _SCALAR_PRECISION.reset(token)


def abs_sq(x: jax.Array) -> jax.Array:
    """``|x|**2``, real: ``x * x`` for real `x`, ``(conj(x) * x).real`` for complex."""
    return (jnp.conj(x) * x).real if jnp.iscomplexobj(x) else jnp.square(x)


def increment(count: jax.Array) -> jax.Array:
    """``count + 1``, saturating at the int32 maximum instead of wrapping to a negative step."""
    return jax.lax.select(count < INT32_MAX, count + 1, count)


def leafwise(fn, updates, *trees):
    """``fn(u, *rest)`` on the float leaves of `updates`; the other leaves pass through."""
    return jax.tree.map(lambda u, *rest: fn(u, *rest) if has_gradient(u) else u, updates, *trees)


def check_state_dtype(
    state_dtype, *, second_moment: bool = False, name: str = "state_dtype", example: str = "jnp.bfloat16"
):
    """`state_dtype` as a dtype (or None), refusing what cannot hold a moment (`name` for the message)."""
    if state_dtype is None:
        return None
    if _is_dtype(state_dtype) and np.dtype(state_dtype) == quantize.INT8:
        return quantize.INT8  # block-wise 8-bit codes (adamlab.quantize), for any moment
    try:
        dtype = jnp.dtype(state_dtype)
    except TypeError:
        raise TypeError(f"{name} must be a float dtype such as {example}, got {state_dtype!r}") from None
    if jnp.issubdtype(dtype, jnp.complexfloating):
        dtype = jnp.finfo(dtype).dtype  # the precision; complex or not follows each param (see above)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{name} must be a float dtype such as {example}, got {dtype}")
    if second_moment and jnp.finfo(dtype).maxexp < jnp.finfo(jnp.float32).maxexp:
        raise ValueError(
            f"{name} {dtype} cannot hold a second moment: squared gradients overflow it above "
            f"{float(jnp.sqrt(jnp.finfo(dtype).max.astype(jnp.float32))):.3g} and underflow it below "
            f"{float(jnp.sqrt(jnp.finfo(dtype).smallest_subnormal.astype(jnp.float32))):.3g}; use jnp.bfloat16 "
            "(float32's range)"
        )
    return dtype


def _is_dtype(x) -> bool:
    try:
        np.dtype(x)
    except TypeError:
        return False
    return True


def init_moment(params, state_dtype=None, *, real: bool = False):
    """Zeros shaped like each float or complex leaf (keeping its sharding), float32 (complex64) unless
    `state_dtype` says otherwise; real for a moment of squares (`real`); a ``(0,)`` placeholder for every other
    leaf."""
    _checks.check_leaves(params, "params")

    def zeros(p):
        if not has_gradient(p):
            return jnp.zeros((0,), jnp.float32)
        if state_dtype == quantize.INT8:
            if quantize.quantizable(p):
                return quantize.zeros(p, signed=not real)
            return zeros_in(p, None)
        return zeros_in(p, state_dtype)

    def zeros_in(p, state_dtype):
        dtype = state_dtype or _wide(p.dtype)
        if jnp.issubdtype(p.dtype, jnp.complexfloating):
            dtype = jnp.finfo(dtype).dtype if real else jnp.promote_types(dtype, jnp.complex64)
        return jnp.zeros_like(p, dtype=dtype)

    return jax.tree.map(zeros, params)


def load(m):
    """A stored moment as an array: quantized ones decoded to float32, others as they are."""
    return quantize.decode(m) if quantize.is_quantized(m) else m


def logical(moment):
    """A moment tree with each quantized leaf seen as its codes (the moment's shape), for tree checks."""

    def one(m):
        if not quantize.is_quantized(m):
            return m
        return m.codes if m.code not in quantize.PACKED else jax.ShapeDtypeStruct(m.shape, jnp.uint8)

    return jax.tree.map(one, moment, is_leaf=quantize.is_quantized)


def fill(moment, value):
    """A moment tree with every non-placeholder leaf set to `value` (quantized leaves encoded)."""

    def one(m):
        if quantize.is_quantized(m):
            return quantize.encode(jnp.full(m.shape, value, jnp.float32), m.signed, m.code)
        return jnp.full_like(m, value) if m.size else m

    return jax.tree.map(one, moment, is_leaf=quantize.is_quantized)


def has_moment(u, m) -> bool:
    """Whether update leaf `u` has a moment in `m` (a placeholder stands for a leaf that was not float at init)."""
    return has_gradient(u) and np.shape(m) == np.shape(u)


def clip_finite(x: jax.Array, dtype) -> jax.Array:
    """`x` with finite values clipped to the finite range of `dtype` (NaN and Inf left alone), still in x's dtype.

    Rounding a float32 above ``finfo(bfloat16).max`` to bfloat16 gives Inf; clipping first gives the largest
    bfloat16. Free when `dtype` is not narrower than `x` (decided in Python).
    """
    big = float(jnp.finfo(dtype).max)
    if big >= float(jnp.finfo(x.dtype).max):
        return x
    return jnp.where(jnp.isfinite(x), jnp.clip(x, -big, big), x)


def store(new, old):
    """A freshly computed moment cast to the storage dtype of `old` (saturating, not overflowing, into a narrower
    one); placeholders stay."""
    if quantize.is_quantized(old):
        return quantize.encode(new, old.signed, old.code)
    if not (has_gradient(new) and old.size):
        return old
    return new if new.dtype == old.dtype else clip_finite(new, old.dtype).astype(old.dtype)
