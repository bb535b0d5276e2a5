"""The flat layout: params and optimizer state in a few contiguous buffers instead of one array per leaf.

An optimizer step is pure memory traffic, and on an accelerator a tree of
many leaves spends its time launching small kernels, not moving bytes. The
flat layout packs the leaves of a tree into *buckets*: one 1-D buffer per
group of leaves with the same dtype (and the same weight-decay group, so a
mask is one bool per bucket rather than one per element), split where a
buffer would exceed ``bucket_bytes``. A :class:`Layout` is the index
``(path, shape, dtype, bucket, offset, size)`` of every leaf (a
:class:`LeafSlot` each) and of every bucket (a :class:`BucketInfo` each); a
:class:`Flat` is the tuple of buffers and carries its layout::

    flat = adamlab.flat.flatten(params)             # params -> Flat (one copy)
    opt = adamlab.adamw(1e-3, mask=adamlab.weight_decay_mask)
    state = opt.init(flat)                          # moments are Flats too

    def loss_fn(flat, batch):
        return model_loss(flat.unflatten(), batch)  # views, rebuilt inside jit
    grads = jax.grad(loss_fn)(flat, batch)          # a Flat: one gradient buffer per bucket
    updates, state = opt.update(grads, state, flat)
    flat = adamlab.apply_updates(flat, updates)

    params = flat.unflatten()                       # back to the pytree, exactly
    tree_state = adamlab.flat.state_to_tree(state)  # the state a pytree run would have

An elementwise transformation runs on the buckets unchanged; the arithmetic
per element is the same as on the pytree, and under `jax.jit` params and
state are bit-identical to the pytree path's (``tests/test_flat.py``, 100
steps). Two exceptions, both by design: global reductions
(`clip_by_global_norm`) sum in another order and agree to rounding, and
stochastic rounding of bfloat16 moments draws its random bits per buffer,
not per leaf. A statistic per tensor (LAMB's trust ratio, NovoGrad's
second moment, a block RMS) is taken per leaf within each bucket with
:func:`leaf_totals`, and agrees to rounding; what needs a leaf's shape
(Adafactor's factored moments, Muon's orthogonalization) is refused where
a bucket packs the leaf (:func:`require_leaf_shapes`) and runs unchanged on
a leaf in a bucket of its own (``solo_above``), which keeps its shape.

:func:`unflatten` uses `jax.lax.split`, whose transpose is a concatenation, so
`jax.grad` through it yields each bucket's gradient as one buffer, with no
per-leaf padding. Masks given as trees, prefixes or callables (e.g.
:func:`adamlab.weight_decay_mask`) are mapped onto the buckets when a
transformation resolves them against a :class:`Flat`. :func:`flatten`
refuses complex leaves: keep complex params on the pytree path.

For code that keeps pytree params, :func:`packed` wraps a transformation so
that its state is flat and its update runs per bucket; see its docstring.
:func:`state_to_tree` and :func:`state_from_tree` convert a flat state to
the pytree path's state and back (for checkpoints).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from adamlab import _checks, quantize
from adamlab.base import GradientTransformation, Transformation, stage, stage_info
from adamlab.decay import resolve_mask, weight_decay_mask

__all__ = [
    "DEFAULT_BUCKET_BYTES",
    "BucketInfo",
    "Flat",
    "Layout",
    "LeafSlot",
    "default_solo_above",
    "flatten",
    "layout_for",
    "leaf_totals",
    "packed",
    "require_leaf_shapes",
    "state_from_tree",
    "state_to_tree",
    "unflatten",
]

DEFAULT_BUCKET_BYTES = 1 << 30
"""The default ``bucket_bytes``, 1 GiB (``2**30`` bytes), the largest bucket unless a single leaf is larger.

1 GiB keeps every buffer far below ``2**31`` elements.
"""


class LeafSlot(NamedTuple):
    """Where one leaf of the tree lives in a flat layout: elements ``offset:offset + size`` of bucket ``bucket``.

    ``Layout.slots`` holds one per leaf, in the tree's leaf order
    (`jax.tree.leaves`). A record only: :class:`Layout` builds them.

    Args:
      path: The leaf's key path as text, as `jax.tree_util.keystr` writes it (``"['w']"``); error messages
        name leaves by it.
      shape: The leaf's shape, a tuple of ints.
      dtype: The leaf's dtype (a `numpy.dtype`), which is also its bucket's dtype.
      bucket: Index of the leaf's bucket in ``Layout.buckets`` (and of its buffer in ``Flat.buckets``).
      offset: Index of the leaf's first element in its bucket, counted in elements of the flattened
        (1-D) bucket; 0 for the leaf of a solo bucket.
      size: Number of elements of the leaf, ``prod(shape)`` (1 for a scalar, 0 for an empty leaf).

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab import flat
      >>> layout = flat.Layout.of({"b": jnp.zeros(3), "w": jnp.ones((2, 3))}, group=None)
      >>> for s in layout.slots:
      ...     print(s.path, s.shape, s.dtype, s.bucket, s.offset, s.size)
      ['b'] (3,) float32 0 0 3
      ['w'] (2, 3) float32 0 3 6
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    bucket: int
    offset: int
    size: int


class BucketInfo(NamedTuple):
    """One buffer of a flat layout: ``size`` elements of ``dtype``, holding the leaves numbered ``leaves``.

    A packed bucket has shape ``(size,)``; a *solo* bucket (one leaf, see
    ``solo_above`` of :meth:`Layout.of`) keeps its leaf's shape, so that it is the leaf itself,
    with no copy in or out and no reshape between the update and its param
    (a reshape there would cost a copy where the params are donated).
    ``Layout.buckets`` holds one per buffer; a record only: :class:`Layout` builds them.

    Args:
      dtype: The dtype (a `numpy.dtype`) of every leaf in the bucket and of its buffer.
      size: Total number of elements, the sum of its leaves' sizes.
      group: The group key its leaves share (from ``group`` of :meth:`Layout.of`): with the default
        grouping `True` for leaves that :func:`adamlab.weight_decay_mask` decays and `False` for the others;
        `None` with ``group=None``.
      leaves: The indices of its leaves in the tree's leaf order (indices into ``Layout.slots``),
        ascending; their elements follow one another in that order.
      shape: The buffer's shape: ``(size,)`` for a packed bucket, the leaf's own shape for a solo bucket.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab import flat
      >>> layout = flat.Layout.of({"b": jnp.zeros(3), "w": jnp.ones((2, 3))})
      >>> for b in layout.buckets:
      ...     print(b.dtype, b.size, b.group, b.leaves, b.shape)
      float32 3 False (0,) (3,)
      float32 6 True (1,) (6,)
      >>> solo = flat.Layout.of({"b": jnp.zeros(3), "w": jnp.ones((2, 3))}, group=None, solo_above=6)
      >>> [(b.shape, b.leaves) for b in solo.buckets]  # a solo bucket comes before its group's packed one
      [((2, 3), (1,)), ((3,), (0,))]
    """

    dtype: np.dtype
    size: int
    group: Hashable
    leaves: tuple[int, ...]
    shape: tuple[int, ...]


def _group_keys(group, tree) -> list[Hashable]:
    """One hashable key per leaf of `tree` from a tree, a prefix of one, or a callable ``tree -> tree``."""
    leaves = jax.tree.leaves(tree)
    if group is None:
        return [None] * len(leaves)
    if _checks.is_function(group):
        group = group(tree)
    full = _checks.broadcast_prefix(
        group,
        tree,
        "group does not match the tree: it must be the tree's structure or a prefix",
        names=("the group", "the tree"),
    )
    keys = []
    for path, k in jax.tree_util.tree_flatten_with_path(full)[0]:
        if isinstance(k, np.ndarray | jax.Array) and k.ndim == 0:
            k = k.item()
        if isinstance(k, np.ndarray | jax.Array) or not isinstance(k, Hashable):
            raise TypeError(
                f"group key at {_checks.path_str(path)} is a {type(k).__name__}; keys must be hashable "
                "scalars (a bool mask works)"
            )
        keys.append(k)
    return keys


class Layout:
    """The index of a flat layout: tree structure, leaf slots and buckets. Build one with :meth:`Layout.of`.

    A layout is static: it is the aux data of every :class:`Flat` that uses
    it (so it is hashable and never traced), and it converts trees to
    buffers and back (:meth:`flatten`, :meth:`unflatten`) and masks to
    buckets (:meth:`mask`). Layouts compare equal when they describe the
    same packing (tree structure, shapes, dtypes, buckets and offsets), so
    two :class:`Flat`\\ s made from equal layouts have the same tree
    structure. The ``repr`` lists the buckets' dtypes and shapes.

    Args:
      treedef: The tree structure (a `jax.tree_util.PyTreeDef`) of the tree the layout describes.
      slots: One :class:`LeafSlot` per leaf, in leaf order.
      buckets: One :class:`BucketInfo` per buffer.

    Attributes:
      treedef: The tree structure of the tree it describes, a `jax.tree_util.PyTreeDef`.
      slots: A tuple of one :class:`LeafSlot` per leaf, in leaf order: where each leaf lives.
      buckets: A tuple of one :class:`BucketInfo` per buffer, in buffer order.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab import flat
      >>> params = {"b": jnp.zeros(3), "w": jnp.ones((2, 3))}
      >>> layout = flat.Layout.of(params)
      >>> layout
      Layout(2 leaves in 2 buckets: float32[3], float32[6])
      >>> layout.size
      9
      >>> fp = layout.flatten(params)
      >>> fp.layout == flat.Layout.of(params)
      True
    """

    __slots__ = ("treedef", "slots", "buckets", "_key", "_hash")

    def __init__(self, treedef, slots: Sequence[LeafSlot], buckets: Sequence[BucketInfo]):
        self.treedef = treedef
        self.slots = tuple(slots)
        self.buckets = tuple(buckets)
        self._key = (
            treedef,
            tuple((s.shape, s.dtype, s.bucket, s.offset) for s in self.slots),
            tuple((b.dtype, b.shape) for b in self.buckets),
        )
        self._hash = hash(self._key)

    @classmethod
    def of(
        cls,
        tree: Any,
        *,
        bucket_bytes: int = DEFAULT_BUCKET_BYTES,
        group: Any = weight_decay_mask,
        solo_above: int | None = None,
    ) -> Layout:
        """The layout of `tree` (arrays or `jax.ShapeDtypeStruct`\\ s).

        Leaves are grouped by ``(dtype, group key)``, in order of first
        appearance, and packed in tree order into buckets of at most
        `bucket_bytes` (a larger leaf gets a bucket of its own). `group`
        gives each leaf a key (a tree, a prefix of one, or a callable
        ``tree -> tree``); by default :func:`adamlab.weight_decay_mask`, so that AdamW with
        that mask decays whole buckets. ``group=None`` puts each dtype in one
        group. A leaf with at least `solo_above` elements gets a bucket of its
        own, which `flatten` fills without a copy.

        Only shapes, dtypes and group keys are read, so an abstract tree
        (``jax.eval_shape`` output) gives the same layout as the arrays.
        :func:`adamlab.flat.flatten` is ``Layout.of(tree, ...).flatten(tree)``;
        :func:`adamlab.flat.layout_for` is the cached variant that
        :func:`adamlab.flat.packed` uses.

        Args:
          tree: A pytree of arrays or `jax.ShapeDtypeStruct`\\ s (anything with ``shape`` and ``dtype``).
            Real dtypes only: float, integer and bool leaves each go to buckets of their own dtype.
          bucket_bytes: The largest bucket, in bytes, a positive int; a leaf larger than this gets a
            bucket to itself. Default `DEFAULT_BUCKET_BYTES` (1 GiB).
          group: A key per leaf, buckets never mixing two keys: a tree like `tree` (or a prefix of it)
            of hashable scalars (bools, ints, strings), or a callable that takes `tree` and returns one.
            Default :func:`adamlab.weight_decay_mask` (decayed and non-decayed leaves apart, so a
            decay mask is one bool per bucket); None: one group per dtype. Group the layout by
            the mask of any masked transformation you use (`adamlab.masked`, ``mask=`` arguments),
            or those masks cost a bool per element per step.
          solo_above: Element count from which a leaf gets a *solo* bucket that keeps its shape (the
            leaf itself, no copy in or out), a positive int. Default None: every leaf is packed.

        Returns:
          The :class:`Layout`.

        Raises:
          TypeError: If a leaf is not an array (no ``shape``/``dtype``), is complex, or gets a group
            key that is not a hashable scalar.
          ValueError: If `bucket_bytes` or `solo_above` is not a positive integer, or `group` does not
            match the tree's structure.

        Example:
          >>> import jax.numpy as jnp
          >>> from adamlab import flat
          >>> params = {"b": jnp.zeros(3), "w": jnp.ones((2, 3)), "v": jnp.ones((4, 4))}
          >>> flat.Layout.of(params)  # b apart from the decayed matrices
          Layout(3 leaves in 2 buckets: float32[3], float32[22])
          >>> flat.Layout.of(params, group=None)
          Layout(3 leaves in 1 buckets: float32[25])
          >>> flat.Layout.of(params, bucket_bytes=64)  # at most 16 float32 per bucket
          Layout(3 leaves in 3 buckets: float32[3], float32[16], float32[6])
          >>> flat.Layout.of(params, solo_above=16)  # v keeps its shape
          Layout(3 leaves in 3 buckets: float32[3], float32[4, 4], float32[6])
        """
        with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
        for path, x in with_path:
            if not (hasattr(x, "shape") and hasattr(x, "dtype")):
                raise TypeError(
                    f"leaf at {_checks.path_str(path)} is a {type(x).__name__}, not an array (wrap it: jnp.asarray(x))"
                )
            if jnp.issubdtype(x.dtype, jnp.complexfloating):
                raise TypeError(
                    f"leaf at {_checks.path_str(path)} is complex ({x.dtype}); the flat layout holds "
                    "real params only: keep complex params on the pytree path"
                )
        return cls._build(with_path, treedef, _group_keys(group, tree), bucket_bytes, solo_above)

    @classmethod
    def _build(cls, with_path, treedef, keys, bucket_bytes, solo_above) -> Layout:
        if not isinstance(bucket_bytes, int | np.integer) or isinstance(bucket_bytes, bool) or bucket_bytes <= 0:
            raise ValueError(f"bucket_bytes must be a positive integer, got {bucket_bytes!r}")
        if solo_above is not None and (not isinstance(solo_above, int | np.integer) or solo_above < 1):
            raise ValueError(f"solo_above must be a positive integer or None, got {solo_above!r}")
        groups: dict[tuple, list[int]] = {}
        for i, ((_, x), k) in enumerate(zip(with_path, keys)):
            groups.setdefault((np.dtype(x.dtype), k), []).append(i)

        slots: list[LeafSlot | None] = [None] * len(with_path)
        buckets: list[BucketInfo] = []

        def close(dtype, key, members, solo=False):
            size = 0
            b = len(buckets)
            for i in members:
                path, x = with_path[i]
                n = int(np.prod(x.shape, dtype=np.int64))
                slots[i] = LeafSlot(_checks.path_str(path), tuple(x.shape), dtype, b, size, n)
                size += n
            shape = slots[members[0]].shape if solo else (size,)
            buckets.append(BucketInfo(dtype, size, key, tuple(members), shape))

        for (dtype, key), members in groups.items():
            cap = max(1, bucket_bytes // dtype.itemsize)
            current: list[int] = []
            used = 0
            for i in members:
                n = int(np.prod(with_path[i][1].shape, dtype=np.int64))
                if solo_above is not None and n >= solo_above:
                    close(dtype, key, [i], solo=True)
                    continue
                if current and used + n > cap:
                    close(dtype, key, current)
                    current, used = [], 0
                current.append(i)
                used += n
            if current:
                close(dtype, key, current)
        filled = [s for s in slots if s is not None]
        if len(filled) != len(slots):  # cannot happen: every leaf is in one group, and each group is closed
            raise AssertionError("Layout._build left a leaf out of every bucket")
        return cls(treedef, filled, buckets)

    # -- identity -----------------------------------------------------------------------------------------------

    def __eq__(self, other):
        return self is other or (isinstance(other, Layout) and self._hash == other._hash and self._key == other._key)

    def __hash__(self):
        return self._hash

    def __repr__(self):
        per = ", ".join(f"{b.dtype}{list(b.shape)}" for b in self.buckets)
        return f"Layout({len(self.slots)} leaves in {len(self.buckets)} buckets: {per})"

    @property
    def size(self) -> int:
        """Total number of elements over all buckets (the tree's element count).

        Example:
          >>> import jax.numpy as jnp
          >>> from adamlab import flat
          >>> flat.Layout.of({"b": jnp.zeros(3), "w": jnp.ones((2, 3))}).size
          9
        """
        return sum(b.size for b in self.buckets)

    def abstract(self) -> Any:
        """The tree the layout describes, with a `jax.ShapeDtypeStruct` per leaf.

        Returns:
          A pytree of the layout's structure whose leaves are `jax.ShapeDtypeStruct`\\ s of the
          leaves' shapes and dtypes (what :meth:`mask` hands a callable mask).

        Example:
          >>> import jax.numpy as jnp
          >>> from adamlab import flat
          >>> layout = flat.Layout.of({"b": jnp.zeros(3), "w": jnp.ones((2, 3))})
          >>> layout.abstract()["w"]
          ShapeDtypeStruct(shape=(2, 3), dtype=float32)
        """
        return jax.tree.unflatten(self.treedef, [jax.ShapeDtypeStruct(s.shape, s.dtype) for s in self.slots])

    # -- conversions --------------------------------------------------------------------------------------------

    def check(self, tree: Any, what: str = "tree", *, dtypes: bool = True) -> None:
        """Checks that `tree` fits this layout, raising an error that names the first leaf that does not.

        Args:
          tree: A pytree of arrays (or anything with a shape) to check against the layout's tree.
          what: What `tree` is, for the error messages (``"params"``, ``"updates"``). Default ``"tree"``.
          dtypes: Whether each leaf's dtype must equal its slot's, as packing into a bucket needs.
            Default True; False checks structure and shapes only.

        Returns:
          None.

        Raises:
          ValueError: If `tree`'s structure differs from the layout's, or a leaf's shape from its slot's.
          TypeError: If `dtypes` is true and a leaf's dtype differs from its slot's.

        Example:
          >>> import jax.numpy as jnp
          >>> from adamlab import flat
          >>> layout = flat.Layout.of({"b": jnp.zeros(3), "w": jnp.ones((2, 3))})
          >>> layout.check({"b": jnp.ones(3), "w": jnp.zeros((2, 3))})  # fits: no error
          >>> try:
          ...     layout.check({"b": jnp.ones(4), "w": jnp.zeros((2, 3))}, "grads")
          ... except ValueError as e:
          ...     print(e)
          grads at ['b'] has shape (4,), the layout has (3,)
        """
        diff = _checks.first_difference(tree, self.abstract())
        if diff is not None:
            raise ValueError(f"{what} does not have the structure of the layout's tree: {diff}")
        for x, s in zip(jax.tree.leaves(tree), self.slots):
            if tuple(np.shape(x)) != s.shape:
                raise ValueError(f"{what} at {s.path} has shape {tuple(np.shape(x))}, the layout has {s.shape}")
            if dtypes and jnp.result_type(x) != s.dtype:
                raise TypeError(
                    f"{what} at {s.path} has dtype {jnp.result_type(x)}, the layout has {s.dtype}; "
                    "cast it first (buckets hold one dtype)"
                )

    def flatten(self, tree: Any, what: str = "tree") -> Flat:
        """Packs `tree` into this layout's buckets: one concatenation per bucket, none for a one-leaf bucket.

        Outside `jax.jit` a one-leaf bucket is a copy of its leaf (so that
        donating the bucket cannot delete the leaf); under `jax.jit` it is
        the leaf itself, reshaped to the bucket's shape.

        Args:
          tree: A pytree that fits the layout: same structure, shapes and dtypes as the tree it
            was built from (any values).
          what: What `tree` is, for the error messages. Default ``"tree"``.

        Returns:
          A :class:`Flat` of this layout holding `tree`'s values.

        Raises:
          ValueError: If `tree`'s structure or a leaf's shape does not fit the layout.
          TypeError: If a leaf's dtype differs from its slot's (cast it first: a bucket holds one dtype).

        Example:
          >>> import jax.numpy as jnp
          >>> from adamlab import flat
          >>> layout = flat.Layout.of({"b": jnp.zeros(3), "w": jnp.ones((2, 3))}, group=None)
          >>> fp = layout.flatten({"b": jnp.arange(3.0), "w": jnp.full((2, 3), 7.0)})
          >>> print(fp.buckets[0])
          [0. 1. 2. 7. 7. 7. 7. 7. 7.]
        """
        self.check(tree, what)
        leaves = jax.tree.leaves(tree)
        out = []
        for b in self.buckets:
            parts = [jnp.asarray(leaves[i]).reshape(-1 if len(b.shape) == 1 else b.shape) for i in b.leaves]
            if not parts:
                out.append(jnp.zeros((0,), b.dtype))
            elif len(parts) > 1:
                out.append(jnp.concatenate(parts))
            else:  # outside jit a reshape may return the leaf itself: copy, or donating the bucket deletes the leaf
                out.append(parts[0] if isinstance(parts[0], jax.core.Tracer) else jnp.copy(parts[0]))
        return Flat(tuple(out), self)

    def unflatten(self, buffers: Sequence[Any]) -> Any:
        """The tree of views into `buffers` (one per bucket): `jax.lax.split` and a reshape per leaf.

        A buffer of size 0 in place of a non-empty bucket is a moment's
        placeholder for leaves without gradient (integer, bool): each of its
        leaves gets a ``(0,)`` placeholder of the buffer's dtype, as the
        pytree path's `init` makes. Buffers keep their own dtype (moments
        are float32 where params are bfloat16). Two more come from states. In
        a bucket of one leaf, a buffer of another shape than the bucket's is a
        state of that leaf's own shape and is the leaf's value as it is: a
        per-tensor scalar (NovoGrad's ``v``, :func:`leaf_totals` of a
        one-leaf bucket), or Adafactor's factored rows and columns of a matrix
        in a solo bucket, as on the pytree path. A buffer that is not an
        array (a `adamlab.groups.Cut`, where `adamlab.partition` keeps no
        state for the bucket) stands for every leaf of its bucket.

        Args:
          buffers: One array per bucket, in bucket order, each of its bucket's shape (or a ``(0,)``
            placeholder, or, for a bucket of one leaf, an array of any shape, or a non-array pytree
            node such as ``Cut()``); any dtype. ``Flat.buckets`` of a :class:`Flat` of this layout will do.

        Returns:
          A pytree of the layout's structure whose leaves have the slots' shapes and the buffers' dtypes.

        Raises:
          ValueError: If the number of buffers differs from the number of buckets, or a buffer's shape
            from its bucket's.

        Example:
          >>> import jax.numpy as jnp
          >>> from adamlab import flat
          >>> layout = flat.Layout.of({"b": jnp.zeros(3), "w": jnp.ones((2, 3))}, group=None)
          >>> tree = layout.unflatten([jnp.arange(9.0)])
          >>> print(tree["b"], tree["w"].shape)
          [0. 1. 2.] (2, 3)
        """
        buffers = tuple(buffers)
        if len(buffers) != len(self.buckets):
            raise ValueError(f"the layout has {len(self.buckets)} buckets, got {len(buffers)} buffers")
        leaves: list[Any] = [None] * len(self.slots)
        for j, (buf, b) in enumerate(zip(buffers, self.buckets)):
            if not hasattr(buf, "shape"):  # a Cut: the bucket's leaves are outside this part of the state
                for i in b.leaves:
                    leaves[i] = buf
                continue
            shape = tuple(np.shape(buf))
            placeholder = shape == (0,) and b.size != 0
            if shape != b.shape and not placeholder and len(b.leaves) == 1:
                leaves[b.leaves[0]] = buf  # a state of the leaf's own shape (a per-tensor scalar, factored rows)
                continue
            if shape != b.shape and not placeholder:
                first = self.slots[b.leaves[0]].path if b.leaves else "-"
                raise ValueError(f"buffer {j} has shape {shape}; bucket {j} (from leaf {first}) has shape {b.shape}")
            if placeholder:
                for i in b.leaves:
                    leaves[i] = jnp.zeros((0,), buf.dtype)
                continue
            sizes = [self.slots[i].size for i in b.leaves]
            parts = jax.lax.split(buf, sizes) if len(sizes) > 1 else [buf]
            for i, part in zip(b.leaves, parts):
                leaves[i] = part.reshape(self.slots[i].shape)
        return jax.tree.unflatten(self.treedef, leaves)

    def mask(self, mask: Any) -> Flat:
        """A mask over the tree's leaves (tree, prefix or callable) as one bool per bucket, or a bool array.

        A callable sees `abstract()`: a `jax.ShapeDtypeStruct` per leaf. A
        bucket whose leaves all agree gets a plain bool (no per-element
        select in the step); otherwise a bool array with one entry per
        element, which costs a byte per element per step: group the layout
        by the mask (``Layout.of(..., group=mask)``) to avoid it.

        Args:
          mask: Which elements to select: a tree like the layout's tree (or a prefix of it) of bools,
            or of bool arrays of their leaves' shapes (selecting elements), a callable
            ``tree -> such a tree``, or a :class:`Flat` of this layout (returned unchanged).

        Returns:
          A :class:`Flat` of this layout with one entry per bucket: a Python bool where the whole
          bucket is selected or not, else a bool array of the bucket's shape.

        Raises:
          ValueError: If `mask` is a :class:`Flat` of another layout, a tree that does not match the
            layout's tree, or holds a bool array of another shape than its leaf.
          TypeError: If a leaf of the resolved mask is not a bool or bool array.

        Example:
          >>> import jax.numpy as jnp
          >>> import adamlab
          >>> from adamlab import flat
          >>> params = {"b": jnp.zeros(3), "w": jnp.ones((2, 3))}
          >>> flat.Layout.of(params).mask(adamlab.weight_decay_mask).buckets
          (False, True)
          >>> print(flat.Layout.of(params, group=None).mask(adamlab.weight_decay_mask).buckets[0])
          [False False False  True  True  True  True  True  True]
        """
        if isinstance(mask, Flat):
            if mask.layout != self:
                raise ValueError("mask is a Flat of another layout")
            return mask
        resolved = jax.tree.leaves(resolve_mask(mask, self.abstract()), is_leaf=lambda x: x is None)
        out = []
        for b in self.buckets:
            ms = [resolved[i] for i in b.leaves]
            concrete = all(not isinstance(m, jax.core.Tracer) and np.ndim(m) == 0 for m in ms)
            if concrete and len({bool(m) for m in ms}) <= 1:
                out.append(bool(ms[0]) if ms else True)
            elif all(not isinstance(m, jax.core.Tracer) for m in ms):
                out.append(
                    jnp.asarray(
                        np.concatenate(
                            [
                                np.broadcast_to(np.asarray(m, bool), self.slots[i].shape).ravel()
                                for m, i in zip(ms, b.leaves)
                            ]
                        ).reshape(b.shape)
                    )
                )
            else:
                out.append(
                    jnp.concatenate(
                        [jnp.broadcast_to(jnp.asarray(m), self.slots[i].shape).ravel() for m, i in zip(ms, b.leaves)]
                    ).reshape(b.shape)
                )
        return Flat(tuple(out), self)


@jax.tree_util.register_pytree_with_keys_class
class Flat:
    """Buffers in a flat layout: ``buckets[j]`` is the buffer of bucket j of `layout`.

    A pytree node (its children are the buffers, its layout is static), so
    `jax.jit`, `jax.grad`, `tx.init` and `tx.update` take it like any tree,
    and the moments of a `Flat` are `Flat`\\ s of the same layout.
    :func:`adamlab.apply_updates` adds two of them bucket by bucket, and
    masks written for the tree (``mask=adamlab.weight_decay_mask``) are
    mapped onto its buckets. Build one with :func:`adamlab.flat.flatten`
    (or :meth:`Layout.flatten`); :meth:`unflatten` gives the tree back.

    Args:
      buckets: One buffer per bucket of `layout`, in bucket order: an array of the bucket's shape
        (``(size,)`` packed, the leaf's shape solo), or a ``(0,)`` placeholder in a moment of
        leaves without gradient. Inside transformations also scalars (a mask's bool per bucket).
      layout: The :class:`Layout` the buffers follow.

    Attributes:
      buckets: The tuple of buffers, one per bucket of `layout`.
      layout: The :class:`Layout`: the tree structure and where each leaf lives.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from adamlab import flat
      >>> fp = flat.flatten({"b": jnp.zeros(3), "w": jnp.ones((2, 3))})
      >>> fp
      Flat(float32[3], float32[6])
      >>> [x.shape for x in jax.tree.leaves(fp)]  # the buffers are its leaves
      [(3,), (6,)]
      >>> doubled = jax.jit(lambda f: jax.tree.map(lambda x: 2 * x, f))(fp)
      >>> print(doubled.unflatten()["w"])
      [[2. 2. 2.]
       [2. 2. 2.]]
    """

    __slots__ = ("buckets", "layout")

    def __init__(self, buckets: Sequence[Any], layout: Layout):
        self.buckets = tuple(buckets)
        self.layout = layout

    def tree_flatten_with_keys(self):
        return [(jax.tree_util.SequenceKey(i), b) for i, b in enumerate(self.buckets)], self.layout

    def tree_flatten(self):
        return self.buckets, self.layout

    @classmethod
    def tree_unflatten(cls, layout, buckets):
        return cls(buckets, layout)

    def unflatten(self) -> Any:
        """The tree of views into the buffers (see :meth:`Layout.unflatten`): the inverse of flattening, exact.

        Returns:
          A pytree of the layout's structure, each leaf of its slot's shape and its buffer's dtype.

        Raises:
          ValueError: If a buffer's shape does not match its bucket's.

        Example:
          >>> import jax.numpy as jnp
          >>> from adamlab import flat
          >>> fp = flat.flatten({"b": jnp.zeros(3), "w": jnp.ones((2, 3))})
          >>> tree = fp.unflatten()
          >>> print(tree["b"], tree["w"].shape)
          [0. 0. 0.] (2, 3)
        """
        return self.layout.unflatten(self.buckets)

    def __repr__(self):
        parts = ", ".join(f"{b.dtype}{list(b.shape)}" if hasattr(b, "shape") else repr(b) for b in self.buckets)
        return f"Flat({parts})"

    # `adamlab.decay.resolve_mask` calls this, so masks written for the tree apply to the buckets.
    def __adamlab_resolve_mask__(self, mask):
        return self.layout.mask(mask)


def flatten(
    tree: Any,
    *,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
    group: Any = weight_decay_mask,
    solo_above: int | None = None,
) -> Flat:
    """Packs `tree` into a new flat layout (see :meth:`Layout.of` for the options): ``tree -> Flat``.

    ``Layout.of(tree, ...).flatten(tree)``: one copy of the values (one
    concatenation per bucket). Run the optimizer on the result
    (``tx.init(fp)``, ``tx.update(grads, state, fp)`` with grads taken with
    respect to ``fp``) and rebuild the tree with :func:`unflatten`.

    Args:
      tree: A pytree of real arrays (float, integer, bool): the params.
      bucket_bytes: The largest bucket, in bytes (a larger leaf gets a bucket to itself), a positive
        int. Default `DEFAULT_BUCKET_BYTES` (1 GiB).
      group: A key per leaf that buckets never mix: a tree (or prefix) of hashable scalars, or a
        callable ``tree -> tree``. Default :func:`adamlab.weight_decay_mask`, so a decay mask is
        one bool per bucket; None groups by dtype alone.
      solo_above: Element count from which a leaf keeps a bucket of its own and its shape, a
        positive int. Default None: every leaf is packed.

    Returns:
      A :class:`Flat` holding `tree`'s values.

    Raises:
      TypeError: If a leaf is not an array or is complex (keep complex params on the pytree path),
        or a group key is not hashable.
      ValueError: If `bucket_bytes` or `solo_above` is not a positive integer, or `group` does not
        match the tree.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> from adamlab import flat
      >>> params = {"b": jnp.zeros(3), "w": jnp.ones((2, 3))}
      >>> fp = flat.flatten(params)
      >>> fp  # b (not decayed) and w (decayed) in buckets of their own
      Flat(float32[3], float32[6])
      >>> tx = adamlab.sgd(0.5)
      >>> updates, _ = tx.update(flat.flatten({"b": jnp.ones(3), "w": jnp.ones((2, 3))}), tx.init(fp), fp)
      >>> print(adamlab.apply_updates(fp, updates).unflatten()["b"])
      [-0.5 -0.5 -0.5]
    """
    return Layout.of(tree, bucket_bytes=bucket_bytes, group=group, solo_above=solo_above).flatten(tree)


def unflatten(flat: Flat) -> Any:
    """``Flat -> tree``: the inverse of :func:`flatten`, exact (views, no arithmetic).

    The same as ``flat.unflatten()``. Inside a jitted loss it costs nothing:
    the leaves are slices of the buffers, and the gradient with respect to
    the :class:`Flat` comes back as one buffer per bucket.

    Args:
      flat: A :class:`Flat` (params, updates, or a moment of a flat state).

    Returns:
      The pytree, of the layout's structure, each leaf of its slot's shape and its buffer's dtype.

    Raises:
      TypeError: If `flat` is not a :class:`Flat`.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from adamlab import flat
      >>> params = {"b": jnp.arange(3.0), "w": jnp.ones((2, 3))}
      >>> back = flat.unflatten(flat.flatten(params))
      >>> jax.tree.all(jax.tree.map(lambda x, y: bool((x == y).all()), back, params))
      True
    """
    if not isinstance(flat, Flat):
        raise TypeError(f"unflatten takes a Flat, got {type(flat).__name__}")
    return flat.unflatten()


def _is_flat(x) -> bool:
    return isinstance(x, Flat)


def leaf_totals(tree: Any) -> tuple[Any, Any]:
    """Per-tensor reductions on either layout: ``(sums, sizes)``, trees like `tree` that give every element the
    sum and the size of the leaf it belongs to (scalars per leaf on a pytree; on a `Flat`, per leaf within each
    bucket). A statistic taken per tensor, such as the cautious mask's count, then means the same on both.

    ``sums / sizes`` is then each element's per-tensor mean, broadcast
    against `tree`. On a :class:`Flat`, a bucket of several leaves gets
    arrays of the bucket's shape (one segment sum per bucket, each element
    given its own leaf's total); a one-leaf bucket (or a ``(0,)``
    placeholder) gets scalars, like a pytree leaf. The buffers of
    :func:`adamlab.sharding.zero1`'s `adamlab.sharding.PaddedFlat` are
    longer than their buckets: their padding is a segment of its own, so no
    leaf's total includes it.

    Args:
      tree: A pytree of numeric arrays, a :class:`Flat`, or an `adamlab.sharding.PaddedFlat`.

    Returns:
      ``(sums, sizes)``: on a pytree, two trees like `tree` of scalars (each leaf's sum in its dtype,
      its element count as a float32); on a :class:`Flat` (or a `PaddedFlat`), two of its kind and
      layout whose buffers broadcast against its buffers.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab import flat
      >>> tree = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([3.0, 4.0, 5.0])}
      >>> sums, sizes = flat.leaf_totals(tree)
      >>> print(sums["b"], sizes["b"])
      12.0 3.0
      >>> sums, sizes = flat.leaf_totals(flat.flatten(tree, group=None))  # a and b share one bucket
      >>> print(sums.buckets[0], sizes.buckets[0])
      [ 3.  3. 12. 12. 12.] [2. 2. 3. 3. 3.]
    """
    if not _is_laid_out(tree):
        return jax.tree.map(jnp.sum, tree), jax.tree.map(lambda x: np.float32(np.size(x)), tree)
    layout, sums, sizes = tree.layout, [], []
    for buf, b in zip(tree.buckets, layout.buckets):
        n = [layout.slots[i].size for i in b.leaves]
        if not hasattr(buf, "shape"):  # a Cut: a partition computes these leaves elsewhere
            sums.append(buf)
            sizes.append(buf)
            continue
        length = int(np.size(buf))
        if length == 0 or (len(n) <= 1 and length == b.size):  # one leaf, or a placeholder: the bucket is the tensor
            sums.append(jnp.sum(buf))
            sizes.append(np.float32(length))
            continue
        # A padded buffer (zero1's) gets one more segment, its padding, which no leaf's total includes.
        segments = n + ([length - b.size] if length > b.size else [])
        ids = jnp.searchsorted(jnp.asarray(np.cumsum(n), jnp.int32), jnp.arange(length, dtype=jnp.int32), side="right")
        sums.append(jax.ops.segment_sum(jnp.ravel(buf), ids, num_segments=len(segments))[ids].reshape(np.shape(buf)))
        sizes.append(jnp.asarray(segments, jnp.float32)[ids].reshape(np.shape(buf)))
    treedef = jax.tree.structure(tree, is_leaf=lambda x: x is not tree)
    return jax.tree.unflatten(treedef, sums), jax.tree.unflatten(treedef, sizes)


def _is_laid_out(x) -> bool:
    """A `Flat`, or another node of a layout's buffers (`adamlab.sharding.PaddedFlat`: padded to a longer length)."""
    return _is_flat(x) or (isinstance(getattr(x, "layout", None), Layout) and hasattr(x, "buckets"))


def require_leaf_shapes(tree: Any, who: str, needs: Callable[[tuple[int, ...]], bool] = lambda shape: True) -> None:
    """Refuses a `Flat` on which a transformation would lose a leaf's shape; a pytree (or a fitting `Flat`) passes.

    For a transformation whose arithmetic reads a leaf's shape (rows and columns: Adafactor's factored moments,
    Muon's Newton-Schulz iteration), which `leaf_totals` cannot give it: a leaf packed into a bucket with others
    (or into a 1-D buffer of its own) has lost its shape, and computing over the bucket would silently compute
    something else. A leaf in a *solo* bucket (``solo_above`` of :meth:`Layout.of`) keeps its shape, so there
    the transformation runs on the buffer as on the leaf.

    Buckets of integer or bool leaves, and buckets a `adamlab.partition` cut away (``Cut()`` buffers), pass.

    Args:
      tree: The updates or params the transformation was given: a pytree (always passes) or a :class:`Flat`.
      who: The transformation's name, which opens the message.
      needs: ``shape -> bool``: whether the transformation needs that leaf's shape. Default: every leaf's.

    Returns:
      None.

    Raises:
      ValueError: If `tree` is a :class:`Flat` in which a leaf that `needs` selects is packed (its bucket's
        shape is not its own); the message names the leaf and its bucket.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab import flat
      >>> params = {"b": jnp.zeros(3), "w": jnp.ones((4, 4))}
      >>> flat.require_leaf_shapes(flat.flatten(params, solo_above=16), "demo", lambda s: len(s) == 2)
      >>> try:
      ...     flat.require_leaf_shapes(flat.flatten(params), "demo", lambda s: len(s) == 2)
      ... except ValueError as e:
      ...     print(str(e)[:77])
      demo needs the shape of ['w'] (4, 4), which bucket 1 of the flat layout packs
    """
    if not _is_flat(tree):
        return
    layout = tree.layout
    for j, (buf, b) in enumerate(zip(tree.buckets, layout.buckets)):
        if not hasattr(buf, "shape") or not jnp.issubdtype(b.dtype, jnp.inexact):
            continue  # a Cut (a partition's other group) or integer leaves: nothing is computed on them
        for i in b.leaves:
            slot = layout.slots[i]
            if b.shape != slot.shape and needs(slot.shape):
                raise ValueError(
                    f"{who} needs the shape of {slot.path} {slot.shape}, which bucket {j} of the flat layout packs "
                    f"into {b.shape}: give such leaves buckets of their own, which keep their shapes "
                    f"(flat.flatten(params, solo_above={max(slot.size, 1)}) or less), or keep the params a pytree"
                )


def state_to_tree(state: Any) -> Any:
    """Replaces every `Flat` inside `state` (moments, EMAs of params) by its tree: the pytree path's state.

    8-bit moments come back decoded, in float32: a packed bucket is quantized as one tensor, so its blocks (and
    their scales) span leaves and cannot be cut into per-leaf codes.

    Use it to save a flat run's state in the form a pytree run (or another
    layout) can load, and to inspect moments per leaf;
    :func:`state_from_tree` goes back. Everything that is not a
    :class:`Flat` (step counts, empty states) is kept as it is.

    Args:
      state: A state of a transformation initialised on a :class:`Flat` (``tx.init(fp)``), or any
        pytree containing :class:`Flat`\\ s.

    Returns:
      `state` with each :class:`Flat` replaced by its tree (views of its buffers; decoded float32 where
      a buffer was 8-bit): for adamlab's transformations, the state ``tx.init(params)`` would have.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> from adamlab import flat
      >>> params = {"b": jnp.zeros(3), "w": jnp.ones((2, 3))}
      >>> tx = adamlab.adam(1e-3)
      >>> flat_state = tx.init(flat.flatten(params))
      >>> flat_state[0].moment
      Flat(float32[3], float32[6])
      >>> tree_state = flat.state_to_tree(flat_state)
      >>> tree_state[0].moment["w"].shape
      (2, 3)
      >>> jax.tree.structure(tree_state) == jax.tree.structure(tx.init(params))
      True
    """

    def tree_of(x: Flat):
        buckets = [quantize.decode(b) if quantize.is_quantized(b) else b for b in x.buckets]
        return x.layout.unflatten(buckets)

    return jax.tree.map(lambda x: tree_of(x) if isinstance(x, Flat) else x, state, is_leaf=_is_flat)


def convert_nodes(state: Any, like: Any, node_type: type, convert: Callable[[Any, Any], Any], what: str) -> Any:
    """Walks the template `like` and converts the parts of `state` found where `like` has a `node_type`.

    `like` is flattened with its `node_type` instances as leaves, and `state`
    is matched to that structure down to them (what `state` holds below such
    a node is left to `convert`); a mismatch raises ValueError
    ``f"{what}: {mismatch}"``, so `what` should say what `state` was expected
    to be. At each `node_type` node the result holds
    ``convert(node_in_like, part_of_state)``; elsewhere it keeps `state`'s
    own leaf. Shared by `state_from_tree` and
    `adamlab.sharding.zero1_state_from_flat`.
    """
    nodes, treedef = jax.tree.flatten(like, is_leaf=lambda x: isinstance(x, node_type))
    try:
        subs = treedef.flatten_up_to(state)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{what}: {e}") from None
    return jax.tree.unflatten(
        treedef, [convert(node, sub) if isinstance(node, node_type) else sub for node, sub in zip(nodes, subs)]
    )


def state_from_tree(tree_state: Any, like: Any) -> Any:
    """The inverse of `state_to_tree`: packs the trees of `tree_state` where `like` has a `Flat`.

    `like` is a flat state of the same transformation (``tx.init(flat)``, or
    ``jax.eval_shape(tx.init, flat)`` to avoid allocating one). A moment
    that is a ``(0,)`` placeholder for every leaf of a bucket becomes a
    ``(0,)`` buffer, as ``tx.init(flat)`` makes it.

    Use it to resume a flat run from a state saved as trees (by a pytree run,
    or by :func:`state_to_tree`), also with a different layout (other
    ``bucket_bytes`` or ``group``): `like`'s layouts decide the packing. A
    moment decoded from 8-bit comes back in float32 (re-encode by building
    `like`'s dtypes yourself if you need 8-bit buffers).

    Args:
      tree_state: The pytree path's state: `like`'s structure with a tree of the params' structure
        (arrays of the leaves' shapes, or ``(0,)`` placeholders) in place of each :class:`Flat`.
      like: A flat state of the same transformation, giving the layouts and placeholders; its
        arrays are not read, so ``jax.eval_shape(tx.init, fp)`` works.

    Returns:
      A state of `like`'s structure: each tree of `tree_state` packed into a :class:`Flat` of the
      layout `like` has there, other leaves taken from `tree_state`.

    Raises:
      ValueError: If `tree_state` does not have `like`'s structure (with trees in place of
        :class:`Flat`\\ s), or a tree's structure or a leaf's element count does not fit the layout.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> from adamlab import flat
      >>> params = {"b": jnp.zeros(3), "w": jnp.ones((2, 3))}
      >>> tx = adamlab.adam(1e-3)
      >>> fp = flat.flatten(params)
      >>> saved = flat.state_to_tree(tx.init(fp))
      >>> restored = flat.state_from_tree(saved, jax.eval_shape(tx.init, fp))
      >>> restored[0].moment
      Flat(float32[3], float32[6])
    """

    def pack(node: Flat, sub: Any) -> Flat:
        layout = node.layout
        # A bucket `like` holds a Cut for (a partition's group without it) stands as a Cut for each of its leaves.
        stand_ins = {type(b) for b in node.buckets if not hasattr(b, "shape")}
        expected = [jax.ShapeDtypeStruct(s.shape, s.dtype) for s in layout.slots]
        for b, like_buf in zip(layout.buckets, node.buckets):
            if type(like_buf) in stand_ins:
                for i in b.leaves:
                    expected[i] = like_buf
        diff = _checks.first_difference(sub, jax.tree.unflatten(layout.treedef, expected))
        if diff is not None:
            raise ValueError(f"a tree in tree_state does not have the structure of the layout's tree: {diff}")
        leaves = jax.tree.leaves(sub, is_leaf=lambda x: type(x) in stand_ins)
        bufs = []
        for j, (b, like_buf) in enumerate(zip(layout.buckets, node.buckets)):
            if type(like_buf) in stand_ins:
                bufs.append(like_buf)
                continue
            if tuple(np.shape(like_buf)) == (0,) and b.size:
                bufs.append(jnp.zeros((0,), like_buf.dtype))
                continue
            own = tuple(np.shape(like_buf))
            if own != b.shape and len(b.leaves) == 1:  # a state of the leaf's own shape (per-tensor, factored)
                leaf = jnp.asarray(leaves[b.leaves[0]])
                if leaf.size != int(np.prod(own, dtype=np.int64)):
                    raise ValueError(
                        f"tree_state at {layout.slots[b.leaves[0]].path} has {leaf.size} elements where `like` keeps "
                        f"a state of shape {own} for the leaf (bucket {j})"
                    )
                bufs.append(leaf.reshape(own))
                continue
            parts = [jnp.ravel(jnp.asarray(leaves[i])) for i in b.leaves]
            for i, p in zip(b.leaves, parts):
                if p.shape[0] != layout.slots[i].size:
                    raise ValueError(
                        f"tree_state at {layout.slots[i].path} has {p.shape[0]} elements, the "
                        f"layout {layout.slots[i].size} (bucket {j})"
                    )
            buf = parts[0] if len(parts) == 1 else jnp.concatenate(parts) if parts else jnp.zeros((0,), like_buf.dtype)
            bufs.append(buf.reshape(b.shape))
        return Flat(tuple(bufs), layout)

    return convert_nodes(
        tree_state, like, Flat, pack, "tree_state does not have the structure of `like` with trees in place of Flats"
    )


# -- the pytree path -----------------------------------------------------------------------------------------------


def default_solo_above(backend: str | None = None) -> int:
    """Elements from which `packed` leaves a leaf in a bucket of its own (no copy) rather than packing it.

    Packing costs copies (the gradient and the param into the bucket, the
    update out: about 24 bytes per float32 element) and temporary buffers;
    a leaf of its own costs a few kernel launches. On a 2-core CPU packing
    pays below about 4K elements per leaf (``benchmarks/probe_pack_threshold.py``);
    above it, the copies and the temporaries, which the CPU backend
    allocates afresh (page faults) on every call, cost more than the
    launches saved. On GPUs, where launches cost as much and bandwidth is
    ~100x higher, the default is 1M elements: an estimate until measured.

    Args:
      backend: A JAX backend name (``"cpu"``, ``"gpu"``, ``"tpu"``, ...). Default None: the
        current default backend, `jax.default_backend`.

    Returns:
      4096 (``2**12``) on ``"cpu"``, 1048576 (``2**20``) on every other backend.

    Example:
      >>> from adamlab import flat
      >>> flat.default_solo_above("cpu")
      4096
      >>> flat.default_solo_above("gpu")
      1048576
    """
    backend = backend or jax.default_backend()
    return 1 << 12 if backend == "cpu" else 1 << 20


@functools.lru_cache(maxsize=64)
def _cached_layout(treedef, paths, shapes, dtypes, bucket_bytes, group_keys, solo_above) -> Layout:
    with_path = [(p, jax.ShapeDtypeStruct(s, d)) for p, s, d in zip(paths, shapes, dtypes)]
    return Layout._build(with_path, treedef, list(group_keys), bucket_bytes, solo_above)


def layout_for(
    tree: Any,
    *,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
    group: Any = weight_decay_mask,
    solo_above: int | None = None,
) -> Layout:
    """`Layout.of` with `solo_above` defaulting to `default_solo_above()`, cached on the tree's shapes and dtypes.

    Called while tracing, so a jitted step rebuilds no index after its first trace.
    :func:`packed` calls it on every ``init`` and ``update``. Trees with
    the same structure, shapes, dtypes and group keys get the same
    :class:`Layout` object (64 layouts are kept). A callable `group` sees
    the tree as `jax.ShapeDtypeStruct`\\ s. Unlike :meth:`Layout.of`, it does
    not refuse complex leaves.

    Args:
      tree: A pytree of arrays, tracers or `jax.ShapeDtypeStruct`\\ s.
      bucket_bytes: The largest bucket, in bytes, a positive int. Default `DEFAULT_BUCKET_BYTES` (1 GiB).
      group: A key per leaf that buckets never mix (tree, prefix or callable, as in
        :meth:`Layout.of`). Default :func:`adamlab.weight_decay_mask`; None groups by dtype alone.
      solo_above: Element count from which a leaf gets a solo bucket, a positive int. Default None:
        :func:`default_solo_above` for the current backend (4096 on CPU).

    Returns:
      The :class:`Layout`, shared with earlier calls on a like tree.

    Raises:
      TypeError: If a leaf is not an array (no ``dtype``/``shape``), or a group key is not hashable.
      ValueError: If `bucket_bytes` or `solo_above` is not a positive integer, or `group` does not
        match the tree.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab import flat
      >>> params = {"b": jnp.zeros(3), "w": jnp.ones((64, 128))}
      >>> layout = flat.layout_for(params, solo_above=4096)  # w (8192 elements) is solo
      >>> layout
      Layout(2 leaves in 2 buckets: float32[3], float32[64, 128])
      >>> flat.layout_for({"b": jnp.ones(3), "w": jnp.zeros((64, 128))}, solo_above=4096) is layout
      True
    """
    with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    for path, x in with_path:
        if not (hasattr(x, "dtype") and hasattr(x, "shape")):
            raise TypeError(f"leaf at {_checks.path_str(path)} is a {type(x).__name__}, not an array")
    shapes = tuple(tuple(np.shape(x)) for _, x in with_path)
    dtypes = tuple(np.dtype(x.dtype) for _, x in with_path)
    abstract = jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(s, d) for s, d in zip(shapes, dtypes)])
    keys = tuple(_group_keys(group, abstract))
    solo = default_solo_above() if solo_above is None else solo_above
    paths = tuple(tuple(p) for p, _ in with_path)
    return _cached_layout(treedef, paths, shapes, dtypes, bucket_bytes, keys, solo)


def packed(
    tx: Transformation,
    *,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
    group: Any = weight_decay_mask,
    solo_above: int | None = None,
) -> GradientTransformation:
    """Runs `tx` on bucketed buffers while its caller keeps pytree params, grads and updates.

    ``update(grads, state, params)`` packs the grads and params into the
    layout's buckets, runs ``tx.update`` once per bucket (one multi-tensor
    pass instead of kernels per leaf), and splits the updates back into the
    tree. The state is `tx`'s state over the `Flat` buffers
    (`state_to_tree` gives the pytree one). Leaves of at least `solo_above`
    elements (default: `default_solo_above` for the backend) stay in
    buckets of their own, so large matrices are neither copied in nor out;
    small leaves, where per-leaf kernels cost more than the copies, are
    packed. Masks in `tx` (trees, prefixes, callables over the params) are
    mapped onto the buckets; `group` (default `weight_decay_mask`) keeps
    each bucket on one side of the usual decay mask.

    Leaves in buckets of their own step bit for bit as ``tx`` on the tree
    under `jax.jit`. A packed leaf's update is computed in its bucket and
    added to the param in a separate fusion, where XLA may or may not
    contract ``p - lr * u`` into a fused multiply-add: such params agree to
    about an ulp per step. Global reductions (`clip_by_global_norm`) sum in
    another order.

    Wrap the whole optimizer (``packed(adamlab.adamw(...))``), not one stage
    of a chain: the packing and unpacking happen once per step around it.
    It also wraps :func:`adamlab.sharding.zero1` to keep pytree params with
    ZeRO-1 state. Extra keyword arguments of ``update`` are passed on to
    `tx` (a ``gradient=`` tree is packed like the updates).

    Args:
      tx: The transformation to run on the buckets: any adamlab transformation or chain (elementwise,
        per-tensor through `leaf_totals`, or refusing a packed leaf whose shape it needs), or an
        elementwise Optax one. Not a wrapper whose params are not a tree like its gradients
        (`adamlab.lookahead`: pack its inner optimizer instead).
      bucket_bytes: The largest bucket, in bytes, a positive int. Default `DEFAULT_BUCKET_BYTES` (1 GiB).
      group: A key per leaf that buckets never mix (tree, prefix or callable over the params, as in
        :meth:`Layout.of`). Default :func:`adamlab.weight_decay_mask`; use the mask of a masked
        stage in `tx` so that it resolves to one bool per bucket. None groups by dtype alone.
      solo_above: Element count from which a leaf keeps a bucket of its own (no copies), a positive
        int. Default None: :func:`default_solo_above` for the backend (4096 on CPU, ``2**20`` elsewhere).

    Returns:
      A `GradientTransformation` taking and returning pytrees like the params, whose state is
      `tx`'s state over :class:`Flat` buffers (:func:`state_to_tree` gives the pytree one).

    Raises:
      TypeError: If `tx` has no callable ``init`` and ``update``; at ``init``/``update``, if a leaf is
        not an array or the params' dtypes differ from the updates'.
      ValueError: At ``init``/``update``, if the params do not have the updates' structure and shapes,
        or `bucket_bytes`/`solo_above` is not a positive integer.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> from adamlab import flat
      >>> params = {"b": jnp.zeros(3), "w": jnp.ones((2, 3))}
      >>> tx = flat.packed(adamlab.adam(0.1))
      >>> state = tx.init(params)
      >>> state[0].moment  # the first moment, in buckets
      Flat(float32[3], float32[6])
      >>> grads = {"b": jnp.ones(3), "w": jnp.ones((2, 3))}
      >>> updates, state = jax.jit(tx.update)(grads, state, params)
      >>> print(updates["b"].round(4), updates["w"].shape)
      [-0.1 -0.1 -0.1] (2, 3)
    """
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(f"packed takes a GradientTransformation, got {type(tx).__name__}")

    def init(params):
        layout = layout_for(params, bucket_bytes=bucket_bytes, group=group, solo_above=solo_above)
        return tx.init(layout.flatten(params, "params"))

    def update(updates, state, params=None, **extra):
        layout = layout_for(updates, bucket_bytes=bucket_bytes, group=group, solo_above=solo_above)
        flat_u = layout.flatten(updates, "packed: updates")
        if params is not None:
            diff = _checks.first_difference(params, updates, names=("the params", "the updates"))
            if diff is not None:
                raise ValueError(
                    f"packed: the params do not have the updates' tree ({diff}); packed runs a transformation "
                    "whose params are a tree like its gradients. For a wrapper whose params are another tree "
                    "(adamlab.lookahead's LookaheadParams), pack the optimizer inside it: "
                    "adamlab.lookahead(flat.packed(fast_optimizer), ...)"
                )
        flat_p = None if params is None else layout.flatten(params, "packed: params")
        if extra.get("gradient") is not None:
            extra = dict(extra, gradient=layout.flatten(extra["gradient"], "packed: gradient"))
        out, state = tx.update(flat_u, state, flat_p, **extra)
        return out.unflatten(), state

    return stage("packed", init, update, role=stage_info(tx).role)
