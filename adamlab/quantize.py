"""8-bit moments: block-wise quantized storage (``state_dtype=jnp.int8``).

A moment of a large leaf is stored as one 8-bit code per element and one float32 scale per block (Dettmers et al.,
"8-bit Optimizers via Block-wise Quantization", ICLR 2022): the moment is the code's magnitude, in [0, 1], times
its block's scale, with the sign in the 8th bit for first moments. A block is a run of the leaf's last axis
(`block_of`: 256 or 128 elements where they divide it, else the whole last axis up to 1024, else a smaller
divisor), so that blocks never straddle rows and the codes (the leaf's shape) and scales (its shape with the last
axis counted in blocks) are sharded like the leaf by the same mesh axes. A leaf whose last axis has no such
divisor is read as one row, in blocks of 256 with a short last one. 1 byte + 4/256 bytes an element: about 1.02
bytes where float32 takes 4. On a mesh of ``Explicit`` axes the codes keep the leaf's sharding; the blocks and
scales of a leaf read as one row are replicated, and a last axis split into fewer blocks than it has devices
splits each block instead (its scales are then not split along it).

The code (`CODES`). The default, "analytic", is a small float read straight off the float32 bit pattern: with
``a = (1 - 2**-K) * |x| / scale`` and ``z = a + 2**-K``, the code is the exponent and top 3 mantissa bits of
``z``, rebased so that code 0 is ``z = 2**-K`` (``a = 0``): 8 codes a binade over ``K`` = 15 binades for a
signed moment (sign + 4 exponent + 3 mantissa bits, 121 magnitudes: 4.5 decades) and 31 for an unsigned one (5 +
3 bits, 249 magnitudes: 9.3 decades). The offset spaces the lowest binade's codes evenly from 0, so small values
round to their neighbours, not to 0 (the smallest positive magnitude is ``2**-(K+3)``: a second moment 1e-9 of
its block's largest decodes within 7%). Encoding is a multiply, an add, a bitcast, an add and a shift;
decoding a shift, a bitcast, a subtract and a multiply: no table, no lookup. Two Dettmers tables stay available by
name for comparison, "dynamic" (decades 1e-7 ... 1, more entries in the larger ones: finer near the block's
largest, about 7 decades for ``v``) and "log" (``2**(-k/8)``); a state moves between codes with `recode`, and the
optimizer keeps each moment's code. "log4" (experimental) is the float code with no mantissa bits in 4 bits an
element: octave steps over 7 binades (signed) or 15, two codes a byte (rows 2i and 2i + 1 of the first axis, so
that a row-split leaf pairs rows on one device); ``recode(state, "log4")`` moves the leaves whose first axis is
even to it. It does not hold the demo model's loss or the stress problem (`benchmarks/RESULTS.md`).

The scale. Where a moment is an EMA, ``new = b * old + (1 - b) * x`` (`scale_by_ema`, `scale_by_rms` and every
optimizer built on them), its block scales are the running bound ``s <- b * s + (1 - b) * max|x|``
(`running_bound`), read from the gradient (one block reduction of ``|g|`` serves both of Adam's moments) and at
least the new moment's largest magnitude by induction; other moments (`adamlab.moment_stage` without a
``recurrence``) take the new moment's block maximum. A looser scale costs range at the bottom, not precision:
the code is a float, its relative step the same in every binade.

The arithmetic never sees the codes: a moment stage decodes to float32, applies its formula and encodes the result
(`adamlab.moment_stage` does both, for every primitive). Encoding rounds stochastically by default, unbiased, with
bits keyed by the step count (so runs are reproducible): one 32-bit hash of the element's index and the step
serves both of Adam's moments (16 bits each), XORed with the bits of the value being rounded so that leaves of
one shape draw different bits from one compiled program. Rounded to nearest, a moment that moves by less than
half a step of its code per step keeps its code, and since the block's scale moves with its largest element, a
quiet element's ``v`` then rises with it instead of decaying (10x too large after 300 steps in
``tests/test_quantize.py``), and Lion's slow ``m`` stops following the gradient. A second moment that is not 0 never
rounds to 0: a ``v`` too small for its block decodes as the smallest magnitude times the scale, an overestimate, so
``m / sqrt(v)`` can only shrink, never blow up to ``m / eps``. `benchmarks/int8_state.py` and
`benchmarks/RESULTS.md` measure the codes on the demo model.

Leaves with fewer than `MIN_SIZE` elements keep float32 moments (biases, norms' scales: little memory, much
influence), as do complex leaves (no 8-bit complex code) and leaves of integer or bool params.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from adamlab import _checks

BLOCK = 256
MIN_BLOCK = 32
MIN_SIZE = 4096
INT8 = np.dtype(np.int8)


@functools.cache
def _log_magnitudes(n: int) -> np.ndarray:
    # 0 and the powers 2**(-k/8), k = 0 .. n-2: 8 an octave.
    return np.sort(np.concatenate([[0.0], 2.0 ** (-np.arange(n - 1) / 8.0)])).astype(np.float32)


@functools.cache
def _dynamic_magnitudes(n: int) -> np.ndarray:
    # Dettmers' dynamic map: decade i (10**(i-7) to 10**(i-6), i = 0..6) holds 2**i entries (128-entry table) or
    # 2**(i+1) (256), the midpoints of a linear split of [0.1, 1] times 10**(i-6); then 0 and 1. For 128 entries the
    # smallest midpoint (5.5e-7) gives way to 1.
    vals = [0.0, 1.0]
    for i in range(7):
        edges = np.linspace(0.1, 1.0, (2**i if n == 128 else 2 ** (i + 1)) + 1)
        vals.extend((edges[:-1] + edges[1:]) / 2 * 10.0 ** (i - 6))
    vals = np.sort(np.asarray(vals))
    if len(vals) > n:
        vals = np.delete(vals, 1)
    return vals.astype(np.float32)


@functools.cache
def _float_table(code: str, signed: bool) -> np.ndarray:
    # Every magnitude of a float code, codes 0 .. K << M (analytic: 121 signed, 249 unsigned), from its decoder.
    k, m = FLOAT_CODES[code][signed]
    bits = (np.arange((k << m) + 1, dtype=np.uint32) + np.uint32((127 - k) << m)) << np.uint32(23 - m)
    return ((bits.view(np.float32) - np.float32(2.0**-k)) / np.float32(1 - 2.0**-k)).astype(np.float32)


# The float codes, read off the float32 bit pattern: (binades K, mantissa bits M) for signed and unsigned moments.
# "log4" (experimental) is 4 bits an element, two codes a byte: octave steps over 7 binades (signed: the 4th bit is
# the sign) or 15 (unsigned).
FLOAT_CODES = {"analytic": {True: (15, 3), False: (31, 3)}, "log4": {True: (7, 0), False: (15, 0)}}
PACKED = frozenset({"log4"})  # codes packed two a byte, pairs of rows along the first axis

CODES = {
    "analytic": lambda n: _float_table("analytic", n == 128),
    "log": _log_magnitudes,
    "dynamic": _dynamic_magnitudes,
    "log4": lambda n: _float_table("log4", n == 128),
}
DEFAULT_CODE = "analytic"


def magnitudes(signed: bool, code: str | None = None) -> np.ndarray:
    """The sorted magnitudes a code stands for, from 0 to 1: for the tables 128 for a signed code (its 8th bit is
    the sign) and 256 for an unsigned one; for "analytic" 121 (signed) and 249 (unsigned); for "log4" 8 and 16."""
    return CODES[code or DEFAULT_CODE](128 if signed else 256)


def table(signed: bool, code: str | None = None) -> np.ndarray:
    """Every value a code stands for, sorted: ``-m ... 0 ... m`` over the magnitudes `m` (255 distinct values,
    signed) or the 256 magnitudes (unsigned)."""
    mags = magnitudes(signed, code)
    return np.concatenate([-mags[:0:-1], mags]) if signed else mags


@functools.cache
def _bucket_index(signed: bool, code: str) -> np.ndarray:
    """For every float32 in [0, 1], bucketed by its top 16 bits: the largest magnitude index whose value is at most
    the bucket's smallest float. No bucket holds more than one magnitude (checked here), so one comparison with the
    next magnitude finds an element's lower neighbour exactly, where a binary search over the table costs ~10x."""
    mags = magnitudes(signed, code)
    starts = (np.arange(_ONE_BUCKET + 1, dtype=np.uint32) << 16).view(np.float32)
    lower = np.clip(np.searchsorted(mags, starts, side="right") - 1, 0, len(mags) - 2).astype(np.int32)
    inside = np.bincount(np.searchsorted(starts, mags[1:], side="right"), minlength=len(starts) + 1)
    assert inside.max() <= 1, "a magnitude table finer than the float32 buckets"
    return lower


_ONE_BUCKET = int(np.float32(1.0).view(np.uint32) >> 16)  # 1.0's bucket: normalized magnitudes never exceed it


class Quantized:
    """A moment stored in 8 bits: `codes` (uint8, the moment's shape) and `scales` (float32, one per block).

    A pytree node (children: codes, scales; static: whether signed, and the code), so moments stored this
    way pass through `jax.jit`, checkpoints and shardings like any state. `shape` is the moment's shape.
    """

    __slots__ = ("codes", "scales", "signed", "code")

    def __init__(self, codes, scales, signed: bool, code: str):
        self.codes, self.scales, self.signed, self.code = codes, scales, signed, code

    @property
    def shape(self) -> tuple:
        shape = tuple(np.shape(self.codes))
        return (2 * shape[0], *shape[1:]) if self.code in PACKED else shape

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def dtype(self):
        return INT8  # what `state_dtype` asked for; the codes themselves are uint8

    def __repr__(self):
        kind = "signed" if self.signed else "unsigned"
        return f"Quantized({kind} {self.code}, codes={self.codes!r}, scales={self.scales!r})"


jax.tree_util.register_pytree_node(
    Quantized, lambda q: ((q.codes, q.scales), (q.signed, q.code)), lambda aux, ch: Quantized(*ch, *aux)
)


def is_quantized(x) -> bool:
    return isinstance(x, Quantized)


def quantizable(p) -> bool:
    """Whether a moment of param leaf `p` is stored in 8 bits: real floating point with at least MIN_SIZE elements."""
    return hasattr(p, "dtype") and jnp.issubdtype(p.dtype, jnp.floating) and np.size(p) >= MIN_SIZE


@functools.cache
def block_of(shape: tuple) -> int:
    """The block length for a leaf of `shape`, along its last axis: 256 or 128 where they divide it; else the whole
    last axis when it holds `MIN_BLOCK` to 1024 elements (one block a row); else 64 or 32 where they divide it, or
    the largest divisor from 256 down to `MIN_BLOCK`; else 0 (the leaf is read as one row in blocks of 256, the
    last one short). Powers of two first: a block of another length (192 for a last axis of 384) makes each
    element's block index a division, and the codec 5x slower on the CPU (`benchmarks/RESULTS.md`)."""
    last = shape[-1] if shape else 1
    if last % 256 == 0 or last % 128 == 0:
        return 256 if last % 256 == 0 else 128
    if MIN_BLOCK <= last <= 4 * BLOCK:
        return last
    return next((b for b in (64, 32, *range(BLOCK, MIN_BLOCK - 1, -1)) if last % b == 0), 0)


def _explicit_sharding(x: jax.Array) -> NamedSharding | None:
    """The sharding in `x`'s type on a mesh of ``Explicit`` axes (set or not), else None (the compiler places it)."""
    sharding = jax.typeof(x).sharding
    return sharding if _checks.explicit_axes(sharding.mesh) else None


def _block_sharding(sharding: NamedSharding, shape: tuple, b: int) -> NamedSharding:
    """The sharding of blocks of `b` of a leaf of `shape` and `sharding`: the mesh axes of its last axis split it
    into whole blocks where they divide the block count, else each block (its absmax then reduced across them)."""
    spec = (*sharding.spec, *(None,) * (len(shape) - len(sharding.spec)))
    last = spec[-1]
    names = () if last is None else (last,) if isinstance(last, str) else tuple(last)
    n = math.prod(sharding.mesh.shape[a] for a in names)
    if (shape[-1] // b) % n == 0:
        return NamedSharding(sharding.mesh, P(*spec[:-1], last, None))
    return NamedSharding(sharding.mesh, P(*spec[:-1], None, last if b % n == 0 else None))


def scales_sharding(sharding: NamedSharding, shape: tuple) -> NamedSharding:
    """Where the scales of a leaf of `shape` (blocks along its last axis) go when the leaf has `sharding`: its
    blocks' sharding without the axis within a block (whole along the last axis when it holds too few blocks)."""
    spec = _block_sharding(sharding, shape, block_of(shape)).spec
    return NamedSharding(sharding.mesh, P(*spec[:-1]), memory_kind=sharding.memory_kind)


def _blocks(x: jax.Array) -> jax.Array:
    """`x` as (..., blocks, block length): the last axis split, or (for block_of 0) the whole leaf padded."""
    b = block_of(tuple(x.shape))
    explicit = _explicit_sharding(x)
    if b:
        out = None if explicit is None else _block_sharding(explicit, tuple(x.shape), b)
        return jnp.reshape(x, (*x.shape[:-1], x.shape[-1] // b, b), out_sharding=out)
    # Rows of 256 cut across the leaf's shards, so on an explicit mesh the padded leaf is gathered whole.
    flat = jnp.reshape(x, -1, out_sharding=None if explicit is None else NamedSharding(explicit.mesh, P()))
    pad = (-flat.size) % BLOCK
    return jnp.pad(flat, (0, pad)).reshape(-1, BLOCK) if pad else flat.reshape(-1, BLOCK)


def _unblocks(blocks: jax.Array, shape: tuple, sharding: NamedSharding | None = None) -> jax.Array:
    """`_blocks` undone: the leaf of `shape`, sharded by `sharding` (None: as the compiler places it)."""
    if block_of(shape):
        return jnp.reshape(blocks, shape, out_sharding=sharding)
    return jnp.reshape(blocks.reshape(-1)[: int(np.prod(shape))], shape, out_sharding=sharding)


def _take(table: jax.Array, idx: jax.Array) -> jax.Array:
    """``table[idx]``; on an explicit mesh sharded like `idx`, which a gather from a replicated table is not told."""
    sharding = _explicit_sharding(idx)
    return jnp.take(table, idx) if sharding is None else table.at[idx].get(mode="fill", out_sharding=sharding)


def binades(signed: bool) -> int:
    """The binades below a block's scale that the "analytic" code spans.

    Args:
      signed: True for a first moment (sign + 4 exponent bits), False for a second moment (5 exponent bits).

    Returns:
      ``K``: 15 (signed) or 31 (unsigned).

    Example:
      >>> from adamlab import quantize
      >>> quantize.binades(True), quantize.binades(False)
      (15, 31)
    """
    return FLOAT_CODES["analytic"][signed][0]


def _analytic_codes(a: jax.Array, signed: bool, r, code: str = "analytic") -> jax.Array:
    """The float code of magnitudes ``a = |x| * (1 - 2**-K) / scale`` (in [0, 1 - 2**-K]):
    ``((bits(a + 2**-K) + r) >> (23 - M)) - (127 - K) << M``, at most ``K << M`` (uint32). `r` is ``2**22 >> M``
    (nearest) or 23 - M random bits (stochastic), given here as 23 bits."""
    k, m = FLOAT_CODES[code][signed]
    z = jax.lax.bitcast_convert_type(a + np.float32(2.0**-k), jnp.uint32)
    return jnp.minimum(((z + (r >> m)) >> (23 - m)) - jnp.uint32((127 - k) << m), jnp.uint32(k << m))


def _analytic_span(signed: bool, code: str = "analytic") -> np.float32:
    # A float code's magnitudes run from 0 to 1 - 2**-K (its largest bit pattern, 1.0, less the offset); a block's
    # scale maps to the top, so that the largest code decodes as the scale itself.
    return np.float32(1 - 2.0 ** -FLOAT_CODES[code][signed][0])


def _analytic_magnitudes(codes: jax.Array, signed: bool, code: str = "analytic") -> jax.Array:
    """The magnitudes times ``1 - 2**-K`` (in [0, 1 - 2**-K]) of float codes (uint32, sign bit cleared): a
    shift, a bitcast, a subtract."""
    k, m = FLOAT_CODES[code][signed]
    return jax.lax.bitcast_convert_type((codes + jnp.uint32((127 - k) << m)) << (23 - m), jnp.float32) - np.float32(
        2.0**-k
    )


def encode(
    x: jax.Array,
    signed: bool,
    code: str | None = None,
    bits: jax.Array | None = None,
    scales: jax.Array | None = None,
) -> Quantized:
    """`x` (float) as 8-bit codes and one float32 scale per block.

    The scale is the block's largest magnitude (absmax), or `scales` when given: a bound at least as large, such
    as the running bound of an EMA (`adamlab.moment_stage`'s `recurrence`); magnitudes above it are stored as the
    largest code. Each element is stored as

    - "analytic" (the default): with ``a = (1 - 2**-K) * |x| / scale`` (`binades` ``K``),
      ``code = ((bits(a + 2**-K) + r) >> 20) - (127 - K) * 8``, clamped to ``8 * K``, where ``bits`` is the float32
      bit pattern and ``r = 2**19`` (nearest) or the top 20 of `bits` (stochastic, unbiased: the bit pattern is
      linear in ``a`` within a binade). The offset ``2**-K`` spaces the smallest magnitudes evenly, like float
      subnormals, and the factor ``1 - 2**-K`` puts the scale on the top code;
    - a table ("dynamic", "log"): with ``a = |x| / scale``, the nearest magnitude, or one of the two around ``a``
      at random, the upper with probability ``(a - lo) / (hi - lo)``, given `bits` (uint32 random bits shaped like
      `x`).

    The sign goes in the 8th bit (signed). For an unsigned code a positive value never becomes 0. NaN and Inf make
    their block's scale NaN/Inf (the moment decodes as non-finite, as it was)."""
    code = code or DEFAULT_CODE
    x = jnp.asarray(x, jnp.float32)
    view, spread, back = _elementwise(x)
    scales = block_max(x) if scales is None else jnp.asarray(scales, jnp.float32)
    safe = jnp.where(scales > 0, scales, 1.0)
    xs = view(x)
    if code in FLOAT_CODES:
        a = jnp.abs(xs) * spread(_analytic_span(signed, code) / safe)
        r = jnp.uint32(1 << 22) if bits is None else view(bits) >> 9
        idx = _analytic_codes(a, signed, r, code)
    else:
        a = jnp.abs(xs / spread(safe))
        idx = _table_index(a, signed, code, None if bits is None else view(bits))
    if signed:
        idx = jnp.where(xs < 0, idx | _sign_bit(code), idx)
    else:
        idx = jnp.where(a > 0, jnp.maximum(idx, 1), idx)
    codes = back(idx.astype(jnp.uint8))
    return Quantized(_pack(codes) if code in PACKED else codes, scales, signed, code)


def _sign_bit(code: str) -> int:
    return 0x8 if code in PACKED else 0x80


def packable(shape: tuple) -> bool:
    """Whether a leaf of `shape` can take the experimental 4-bit code "log4".

    Codes go two a byte, rows 2i and 2i + 1 of the first axis in one byte, so the first axis must be even (and a
    row pair then stays on one device of a split).

    Args:
      shape: The leaf's shape.

    Returns:
      True where the shape has a first axis of even length.

    Example:
      >>> from adamlab import quantize
      >>> quantize.packable((64, 128)), quantize.packable((33, 128))
      (True, False)
    """
    return len(shape) > 0 and shape[0] % 2 == 0


def _pack(codes: jax.Array) -> jax.Array:
    return codes[0::2] | (codes[1::2] << 4)


def _unpack(packed: jax.Array) -> jax.Array:
    both = jnp.stack([packed & 0xF, packed >> 4], axis=1)
    return both.reshape((2 * packed.shape[0], *packed.shape[1:]))


def _elementwise(x: jax.Array):
    """How an elementwise computation meets per-block values on a leaf like `x`: ``(view, spread, back)``, where
    ``view(y)`` is a leaf-shaped array in the layout the computation runs in, ``spread(s)`` brings block values
    (the scales' shape) to that layout, and ``back(z)`` returns a result to the leaf's shape. Where the last axis
    splits into blocks and no ``Explicit`` mesh axis is set, the computation keeps the leaf's shape and each block
    value is repeated over its block; otherwise it runs on `_blocks` (rows of one block)."""
    shape, b, sharding = tuple(x.shape), block_of(tuple(x.shape)), _explicit_sharding(x)
    if b and sharding is None:
        return (
            (lambda y: y),
            (lambda s: jnp.reshape(jnp.broadcast_to(s[..., None], (*s.shape, b)), shape)),
            (lambda z: z),
        )
    return _blocks, (lambda s: s[..., None]), (lambda z: _unblocks(z, shape, sharding))


def _table_index(a: jax.Array, signed: bool, code: str, bits: jax.Array | None) -> jax.Array:
    """The index of `a` (in [0, 1]) in the magnitude table of `code`: nearest, or stochastic given `bits` (uint32,
    laid out like `a`)."""
    mags = jnp.asarray(magnitudes(signed, code))
    top = mags.shape[0] - 1
    bucket = jnp.minimum(jax.lax.bitcast_convert_type(a, jnp.uint32) >> 16, _ONE_BUCKET).astype(jnp.int32)
    lo = _take(jnp.asarray(_bucket_index(signed, code)), bucket)
    lo = lo + (_take(mags, lo + 1) <= a)  # the bucket's one magnitude, if it holds one below |x|
    hi = jnp.minimum(lo + 1, top)
    m_lo, m_hi = _take(mags, lo), _take(mags, hi)
    if bits is None:
        return jnp.where(m_hi - a < a - m_lo, hi, lo)
    u = (bits >> 8).astype(jnp.float32) * np.float32(2.0**-24)
    return jnp.where(u * (m_hi - m_lo) < a - m_lo, hi, lo)


def decode(q: Quantized) -> jax.Array:
    """The float32 moment an 8-bit one stands for.

    Each element is its code's magnitude times its block's scale, negated where the sign bit is set (signed).

    Args:
      q: A `Quantized` moment (e.g. ``state[0].moment["w"]`` of ``adamw(state_dtype=jnp.int8)``).

    Returns:
      A float32 array of the moment's shape, sharded like its codes.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab import quantize
      >>> q = quantize.encode(jnp.array([[0.5, -2.0] * 64]), signed=True)
      >>> print(quantize.decode(q)[0, :2])
      [ 0.5 -2. ]
    """
    scales, sign = q.scales, _sign_bit(q.code)
    leaf_codes = _unpack(q.codes) if q.code in PACKED else q.codes
    if q.code in FLOAT_CODES:
        codes = leaf_codes.astype(jnp.uint32)
        vals = _analytic_magnitudes(codes & (sign - 1) if q.signed else codes, q.signed, q.code)
        scales = scales / _analytic_span(q.signed, q.code)
    else:
        codes = leaf_codes.astype(jnp.int32)
        vals = _take(jnp.asarray(magnitudes(q.signed, q.code)), codes & 0x7F if q.signed else codes)
    if q.signed:
        vals = jnp.where(codes >= sign, -vals, vals)
    view, spread, back = _elementwise(leaf_codes)
    return back(view(vals) * spread(scales))


def block_max(x: jax.Array) -> jax.Array:
    """The largest magnitude of each block of `x`, the block scales an 8-bit moment of `x` takes.

    Args:
      x: A float array, blocked along its last axis as `block_of` says.

    Returns:
      A float32 array shaped like a `Quantized` leaf's scales; NaN where the block holds one.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab import quantize
      >>> print(quantize.block_max(jnp.array([[1.0, -3.0] * 64])))
      [[3.]]
    """
    blocks = _blocks(jnp.asarray(x, jnp.float32))
    # max(max x, -min x), not max |x|: two plain reductions run 2x faster than one over a computed |x| on XLA's
    # CPU backend (benchmarks/RESULTS.md); + 0.0 turns the -0.0 of an all-zero block into 0.0.
    return jnp.maximum(jnp.max(blocks, axis=-1), -jnp.min(blocks, axis=-1)) + 0.0


def running_bound(scales: jax.Array, a, c, x: jax.Array, top=None) -> jax.Array:
    """The block scales of ``new = a * old + c * x`` from those of `old`, without a pass over `new`.

    ``|a| * scales + |c| * block_max(x)`` bounds ``|new|`` over each block (by induction, as ``|old| <= scales``).

    Args:
      scales: The old moment's block scales.
      a: The recurrence's decay (a scalar).
      c: The recurrence's input weight (a scalar).
      x: The input, or the array it is made from when `top` is given.
      top: None, or the function that turns ``block_max(x)`` into the input's block maximum (``lambda t: t * t``
        for an input ``x**2``). Default None.

    Returns:
      The new block scales (float32), held at float32's largest value where finite terms overflow.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab import quantize
      >>> print(quantize.running_bound(jnp.array([[2.0]]), 0.9, 0.1, jnp.array([[1.0, -4.0] * 64])))
      [[2.2]]
    """
    peak = block_max(x)
    input_peak = peak if top is None else top(peak)
    terms = jnp.abs(a) * scales, jnp.abs(c) * input_peak
    bound = terms[0] + terms[1]
    big = np.float32(np.finfo(np.float32).max)
    return jnp.where(jnp.isfinite(scales) & jnp.isfinite(peak), jnp.minimum(bound, big), bound)


def recode(tree, code: str):
    """Re-encodes every 8-bit moment of a state in another code.

    Each `Quantized` leaf is decoded in its own code and encoded again in `code` (rounded to nearest, block
    absmax scales); other leaves pass through. The optimizer keeps each moment's code from then on, so
    ``recode(tx.init(params), "dynamic")`` trains in Dettmers' table instead of the default.

    Args:
      tree: A state (or any pytree) holding `Quantized` leaves. Leaves that are not arrays (the
        ``jax.ShapeDtypeStruct`` templates of `jax.eval_shape`, `adamlab.sharding.state_shardings`) are relabelled,
        so that a checkpoint template can be put in a saved state's code.
      code: One of `CODES`: ``"analytic"`` (the default), ``"dynamic"`` or ``"log"``.

    Returns:
      `tree` with every `Quantized` leaf in `code`.

    Raises:
      ValueError: If `code` is not one of `CODES`.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> from adamlab import quantize
      >>> tx = adamlab.adamw(1e-3, state_dtype=jnp.int8)
      >>> state = quantize.recode(tx.init({"w": jnp.zeros((64, 128))}), "dynamic")
      >>> print(state[0].moment["w"].code, state[2].second_moment["w"].code)
      dynamic dynamic
    """

    def one(q):
        if not is_quantized(q) or q.code == code or (code in PACKED and not packable(q.shape)):
            return q
        if not isinstance(q.codes, jax.Array | np.ndarray):
            shape = q.shape if code not in PACKED else (q.shape[0] // 2, *q.shape[1:])
            codes = q.codes if shape == tuple(np.shape(q.codes)) else jax.ShapeDtypeStruct(shape, jnp.uint8)
            return Quantized(codes, q.scales, q.signed, code)
        return encode(decode(q), q.signed, code)

    _check_code(code)
    return jax.tree.map(one, tree, is_leaf=is_quantized)


def _check_code(code: str) -> None:
    if code not in CODES:
        raise ValueError(f"unknown 8-bit code {code!r}: use one of {', '.join(map(repr, CODES))}")


def zeros(p, signed: bool, code: str | None = None) -> Quantized:
    """The quantized zero moment of param leaf `p`, its codes sharded like `p` (made from ``zeros_like(p)``)."""
    return encode(jnp.zeros_like(p, dtype=jnp.float32), signed, code)


__all__ = [
    "BLOCK",
    "CODES",
    "MIN_BLOCK",
    "MIN_SIZE",
    "Quantized",
    "binades",
    "block_max",
    "block_of",
    "decode",
    "encode",
    "is_quantized",
    "magnitudes",
    "packable",
    "quantizable",
    "recode",
    "running_bound",
    "table",
]
