"""Optimizer state on a device mesh: moments that follow their params' sharding, ZeRO-1 flat buffers, and the
measurements (bytes per device, collectives in the compiled program) that show it.

JAX's SPMD machinery (`jax.sharding.Mesh`, `jax.sharding.NamedSharding`, `jax.jit`) is the distributed engine;
adamlab only has to put every piece of state where it belongs and keep it there. Most adamlab transformations are
elementwise over leaves, so a moment sharded like its param is updated where it lives: the step of a plain
optimizer (no global norm) compiles to a program without a single collective, and its results equal the
single-device run bit for bit. Those that reduce over a tensor (trust ratios, per-tensor norms, Adafactor's
factored means, Muon's Newton-Schulz products) add the collectives their reductions need and agree to rounding.

Two placements:

- **Follow the params** (FSDP, tensor parallel, replicated, or any mix): every moment gets exactly its param's
  sharding; counters and other small leaves are replicated. Eagerly, ``tx.init(params)`` already does this for
  committed params (``jnp.zeros_like`` keeps the sharding). Under `jax.jit` with a mesh of ``Auto`` axes it does
  *not*: the zeros depend on no input, so the compiler places them on one device. :func:`init` (or `jax.jit`
  with ``out_shardings=state_shardings(tx, params)``) fixes that, and is what to use to build the state without
  first materialising it on one device.
- **ZeRO-1** (data parallel, replicated params): :func:`zero1` wraps a transformation over the flat layout
  (:mod:`adamlab.flat`) so that each of its 1-D buffers is split along one mesh axis: each of ``N`` devices
  holds ``1/N`` of every moment and computes ``1/N`` of the update, and the params are rebuilt by one
  all-gather of the update per step. Buffers whose length ``N`` does not divide are zero-padded (the padding
  never reaches the params).

FSDP and ZeRO-1 compared, on ``N`` devices along one axis:

- **FSDP** (fully sharded data parallel, :func:`fsdp_shardings` and :func:`fsdp_loss`): params, gradients and
  moments are all split ``N`` ways, each leaf along one of its dimensions. Each step, the forward pass
  all-gathers every split weight on every device, and the backward pass reduce-scatters the gradient into
  its param's shards; the optimizer step itself runs on the shards with no collective. Memory per device:
  ``1/N`` of everything (plus the weights gathered while the loss runs).
- **ZeRO-1** (:func:`zero1`): params and gradients stay whole on every device (replicated params, gradients
  all-reduced as in plain data parallelism); only the optimizer state is split, as flat buffers. Each device
  updates its ``1/N`` slice of every bucket and one all-gather per bucket gives every device the whole
  update. Memory per device: whole params and gradients, ``1/N`` of the moments; the model code needs no
  change.

Measurements: :func:`bytes_per_device` (what each device holds of a tree) and :func:`collectives` (the
collective operations in a compiled program, with the bytes each produces per device).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, Sharding

from adamlab import _checks, _hosts, quantize
from adamlab.base import GradientTransformation, Transformation, stage, stage_info
from adamlab.factored import FactoredState
from adamlab.flat import Flat, convert_nodes
from adamlab.groups import Cut
from adamlab.slow_weights import LookaheadParams

PyTree = Any

__all__ = [
    "CollectiveStats",
    "PaddedFlat",
    "bytes_per_device",
    "collectives",
    "fsdp_loss",
    "fsdp_shardings",
    "init",
    "replicated",
    "state_shardings",
    "zero1",
    "zero1_state_from_flat",
    "zero1_state_to_flat",
]


# -- following the params -------------------------------------------------------------------------------------------


def replicated(sharding: Sharding) -> Sharding:
    """The sharding that replicates an array over the devices of `sharding` (same mesh, spec ``P()``).

    Where a moment is not like its param (a step count, a scalar), the
    state is placed with this sharding of the params'.

    Args:
      sharding: Any `jax.sharding.Sharding`. A `jax.sharding.NamedSharding` keeps its mesh and memory kind;
        another sharding's devices (sorted by id) make a one-axis mesh named ``"devices"``, or a
        `jax.sharding.SingleDeviceSharding` when there is one device.

    Returns:
      A sharding over the same devices that holds the whole array on each.

    Example:
      >>> import jax
      >>> import numpy as np
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> from adamlab import sharding
      >>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("fsdp",))
      >>> rep = sharding.replicated(NamedSharding(mesh, P("fsdp", None)))
      >>> tuple(rep.spec), rep.mesh == mesh  # an empty spec: replicated
      ((), True)
    """
    if isinstance(sharding, NamedSharding):
        return NamedSharding(sharding.mesh, PartitionSpec(), memory_kind=sharding.memory_kind)
    devices = sorted(sharding.device_set, key=lambda d: d.id)
    if len(devices) == 1:
        return jax.sharding.SingleDeviceSharding(devices[0], memory_kind=sharding.memory_kind)
    return NamedSharding(Mesh(np.array(devices), ("devices",)), PartitionSpec(), memory_kind=sharding.memory_kind)


def _param_shardings(params: PyTree, param_shardings: PyTree | None) -> list[Sharding]:
    """One sharding per leaf of `params`: from `param_shardings` (a tree like params) or each leaf's own."""
    with_path = jax.tree_util.tree_flatten_with_path(params)[0]
    if param_shardings is not None:
        diff = _checks.first_difference(param_shardings, params, is_leaf=lambda x: isinstance(x, Sharding))
        leaves = jax.tree.leaves(param_shardings, is_leaf=lambda x: isinstance(x, Sharding))
        if diff is not None or len(leaves) != len(with_path):
            raise ValueError(f"param_shardings must have the structure of params: {diff}")
        for (path, _), s in zip(with_path, leaves):
            if not isinstance(s, Sharding):
                raise TypeError(
                    f"param_shardings at {_checks.path_str(path)} is a {type(s).__name__}, not a jax.sharding.Sharding"
                )
        return leaves
    out = []
    for path, p in with_path:
        s = getattr(p, "sharding", None)
        if not isinstance(s, Sharding):
            raise TypeError(
                f"params at {_checks.path_str(path)} is a {type(p).__name__} without a sharding; pass arrays placed "
                "with jax.device_put(x, NamedSharding(...)), ShapeDtypeStructs with sharding=, or param_shardings="
            )
        out.append(s)
    return out


def _default_sharding(shardings: Sequence[Sharding], mesh: Mesh | None) -> Sharding:
    if mesh is not None:
        return NamedSharding(mesh, PartitionSpec())
    named = [s for s in shardings if isinstance(s, NamedSharding)]
    if named:
        return replicated(named[0])
    if shardings:
        return replicated(shardings[0])
    if jax.process_count() == 1:
        return jax.sharding.SingleDeviceSharding(jax.devices()[0])
    # No param to follow: replicate over every device, so that every process holds (and can read) the state.
    return NamedSharding(Mesh(np.array(jax.devices()), ("devices",)), PartitionSpec())


def state_shardings(
    tx: Transformation,
    params: PyTree,
    param_shardings: PyTree | None = None,
    *,
    mesh: Mesh | None = None,
) -> PyTree:
    """The sharding of every leaf of ``tx.init(params)``: each moment exactly its param's, the rest replicated.

    `params` are arrays or `jax.ShapeDtypeStruct`\\ s; their shardings come
    from `param_shardings` (a tree like `params`) or from each leaf's own
    ``.sharding``. Every subtree of the state with the params' tree structure
    (a moment, an accumulator, an Optax ``mu``) takes the params' shardings
    leaf by leaf, where the shapes agree; every other leaf (step counters,
    ``(0,)`` placeholders of integer leaves, per-tensor scalars) is
    replicated over the params' mesh (or `mesh`). Adafactor's factored rows
    and columns (:class:`adamlab.factored.FactoredState`) take their
    matrix's sharding without the averaged axis. For
    :class:`adamlab.LookaheadParams` params, moments over the fast weights
    (the fast optimizer's) take the fast weights' shardings. The padded buffers of `zero1` are split along
    its mesh axis. Pass the result as ``out_shardings`` of the jitted init
    and step. Params without an array leaf (and no `mesh`) leave nothing to
    follow: the state goes to the first device, or under `jax.distributed`
    is replicated over every device, so that every process can read it.

    Nothing is allocated: the state's shapes come from ``jax.eval_shape``.

    Args:
      tx: The transformation whose state is to be placed (any adamlab or Optax one, a :func:`zero1`
        wrapper included).
      params: The params `tx` will be initialised on: arrays or `jax.ShapeDtypeStruct`\\ s (with
        ``sharding=`` unless `param_shardings` is given); a :class:`adamlab.flat.Flat` for :func:`zero1`.
      param_shardings: A tree like `params` of `jax.sharding.Sharding`\\ s to use instead of the
        leaves' own ``.sharding``. Default None: each leaf's ``.sharding``.
      mesh: The mesh over which to replicate the leaves that are not moments. Default None: the
        mesh of the first param with a `jax.sharding.NamedSharding` (else the first param's devices).

    Returns:
      A tree with the structure of ``tx.init(params)`` whose leaves are `jax.sharding.Sharding`\\ s.

    Raises:
      ValueError: If `param_shardings` does not have the structure of `params`.
      TypeError: If a leaf of `param_shardings` is not a `jax.sharding.Sharding`, or (without
        `param_shardings`) a leaf of `params` has no sharding.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import adamlab
      >>> from adamlab import sharding
      >>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("fsdp",))
      >>> params = {"b": jnp.zeros(4), "w": jnp.ones((256, 4))}
      >>> params = jax.device_put(params, sharding.fsdp_shardings(params, mesh))
      >>> shardings = sharding.state_shardings(adamlab.adam(1e-3), params)
      >>> for path, s in jax.tree_util.tree_leaves_with_path(shardings):
      ...     print(jax.tree_util.keystr(path), tuple(s.spec))
      [0].moment['b'] (None,)
      [0].moment['w'] ('fsdp', None)
      [1].count ()
      [2].count ()
      [2].second_moment['b'] (None,)
      [2].second_moment['w'] ('fsdp', None)
    """
    shardings = _param_shardings(params, param_shardings)
    default = _default_sharding(shardings, mesh)
    abstract = jax.eval_shape(tx.init, params)
    p_shapes = [tuple(np.shape(p)) for p in jax.tree.leaves(params)]
    # The trees a moment may follow: the params, and for lookahead's pair the fast weights (its fast optimizer's
    # moments are over them; they lead the pair's leaves).
    forms = [(jax.tree.structure(params), shardings, p_shapes)]
    if isinstance(params, LookaheadParams):
        n = len(jax.tree.leaves(params.fast))
        forms.append((jax.tree.structure(params.fast), shardings[:n], p_shapes[:n]))

    def follow(leaves, shs, shapes):
        # A moment over the params, or over some of them (`adamlab.partition`: the others are `Cut` nodes).
        # An 8-bit moment's codes have its param's shape and its scales the same leading axes, the last in blocks.
        return [
            x
            if _is_cut(x)
            else _quantized_sharding(x, s, default)
            if quantize.is_quantized(x)
            else s
            if tuple(np.shape(x)) == shape
            else default
            for x, s, shape in zip(leaves, shs, shapes)
        ]

    def assign(node):
        if isinstance(node, PaddedFlat):
            return jax.tree.map(lambda b: default if _is_placeholder(b) else node.sharding, node)
        for td, shs, shapes in forms:
            if isinstance(node, FactoredState) and jax.tree.structure(node.v, is_leaf=_is_moment_leaf) == td:
                return node._replace(
                    count=default,
                    v_row=td.unflatten(_factored(td.flatten_up_to(node.v_row), shs, shapes, -1, default)),
                    v_col=td.unflatten(_factored(td.flatten_up_to(node.v_col), shs, shapes, -2, default)),
                    v=td.unflatten(follow(td.flatten_up_to(node.v), shs, shapes)),
                )
            if jax.tree.structure(node, is_leaf=_is_moment_leaf) == td:
                return td.unflatten(follow(jax.tree.leaves(node, is_leaf=_is_moment_leaf), shs, shapes))
        children, td = jax.tree.flatten(node, is_leaf=lambda x: x is not node)
        if not jax.tree.leaves(node):  # (), None, EmptyState(): keep the empty node itself
            return node
        if jax.tree_util.treedef_is_leaf(td):
            return default
        return jax.tree.unflatten(td, [assign(c) for c in children])

    return assign(abstract)


def _factored(leaves, shs, shapes, rank: int, default) -> list:
    """Adafactor's rows (`rank` -1: the mean over a matrix's largest axis) or columns (-2: over the second largest)
    placed as their param without that axis, so the update reads and writes them where they live: only the means
    over a split axis need a collective (an all-reduce the math needs)."""
    out = []
    for x, s, shape in zip(leaves, shs, shapes):
        if _is_cut(x) or tuple(np.shape(x)) == (0,) or len(shape) < 2 or not isinstance(s, NamedSharding):
            out.append(x if _is_cut(x) else default)
            continue
        axis = int(np.argsort(shape)[rank])  # adamlab.factored's choice of axes, ties included
        spec = tuple(s.spec) + (None,) * (len(shape) - len(s.spec))
        kept = NamedSharding(s.mesh, PartitionSpec(*(spec[:axis] + spec[axis + 1 :])), memory_kind=s.memory_kind)
        if tuple(np.shape(x)) != shape[:axis] + shape[axis + 1 :]:
            out.append(default)
        else:
            out.append(_quantized_sharding(x, kept, default) if quantize.is_quantized(x) else kept)
    return out


def _is_moment_leaf(x) -> bool:
    return _is_cut(x) or quantize.is_quantized(x)


def _quantized_sharding(q, s, default):
    # Blocks along the last axis: the scales have the param's axes (the last counted in blocks), so its sharding
    # (whole along the last axis where that holds fewer blocks than its devices).
    if not quantize.block_of(q.shape):
        return quantize.Quantized(s, default, q.signed, q.code)
    scales = quantize.scales_sharding(s, q.shape) if isinstance(s, NamedSharding) else s
    return quantize.Quantized(s, scales, q.signed, q.code)


def _is_cut(x) -> bool:
    return isinstance(x, Cut)


def _explicit_mesh(shardings: Sequence[Sharding]) -> Mesh | None:
    for s in shardings:
        mesh = getattr(s, "mesh", None)
        if isinstance(mesh, Mesh) and _checks.explicit_axes(mesh):
            return mesh
    return None


def init(
    tx: Transformation,
    params: PyTree,
    param_shardings: PyTree | None = None,
    *,
    mesh: Mesh | None = None,
) -> PyTree:
    """``tx.init(params)`` built directly in place: compiled with ``out_shardings=state_shardings(...)``.

    Each moment is created on the devices that hold its param, as its shard
    only: no device ever holds a full moment it does not own. `params` are
    arrays (an init may read their values: `parameter_ema` starts from them);
    their shardings come from `param_shardings` or their own ``.sharding``.

    On a mesh of ``Explicit`` axes the mesh is set (`jax.set_mesh`) while
    the init is traced. For abstract params use
    ``jax.jit(tx.init, out_shardings=state_shardings(tx, params))``.

    Args:
      tx: The transformation to initialise (any adamlab or Optax one, a :func:`zero1` wrapper included).
      params: The params, as arrays (`jax.Array` or NumPy), placed on the mesh unless
        `param_shardings` is given; a :class:`adamlab.flat.Flat` for :func:`zero1`.
      param_shardings: A tree like `params` of `jax.sharding.Sharding`\\ s to use instead of the
        leaves' own. Default None: each leaf's ``.sharding``.
      mesh: The mesh over which to replicate the leaves that are not moments. Default None: the
        params' own.

    Returns:
      ``tx.init(params)``, each leaf placed with its sharding from :func:`state_shardings`.

    Raises:
      TypeError: If a leaf of `params` is not an array, a leaf of `param_shardings` not a
        `jax.sharding.Sharding`, or a param has no sharding.
      ValueError: If `param_shardings` does not have the structure of `params`.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import adamlab
      >>> from adamlab import sharding
      >>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("fsdp",))
      >>> params = {"b": jnp.zeros(4), "w": jnp.ones((256, 4))}
      >>> params = jax.device_put(params, sharding.fsdp_shardings(params, mesh))
      >>> state = sharding.init(adamlab.adam(1e-3), params)
      >>> tuple(state[0].moment["w"].sharding.spec), tuple(state[1].count.sharding.spec)
      (('fsdp', None), ())
    """
    for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
        if not isinstance(p, jax.Array | np.ndarray | np.generic):
            # An init may read values (parameter_ema starts from the params), so shapes alone cannot stand in.
            raise TypeError(
                f"init: params at {_checks.path_str(path)} is a {type(p).__name__}, not an array; for "
                "abstract params use jax.jit(tx.init, out_shardings=state_shardings(tx, params))"
            )
    out = state_shardings(tx, params, param_shardings, mesh=mesh)
    explicit = _explicit_mesh(_param_shardings(params, param_shardings))
    fn = jax.jit(tx.init, out_shardings=out)
    if explicit is not None:  # explicit-axis meshes must be in context while tracing
        with jax.set_mesh(explicit):
            return fn(params)
    return fn(params)


def _axis_size(mesh: Mesh, axis: str, who: str = "") -> int:
    """The number of devices along `axis`, refusing an axis the mesh does not have."""
    if axis not in mesh.shape:
        raise ValueError(f"{who}axis {axis!r} is not an axis of the mesh (axes: {tuple(mesh.shape)})")
    return mesh.shape[axis]


def fsdp_shardings(params: PyTree, mesh: Mesh, axis: str = "fsdp", *, min_elements: int = 1024) -> PyTree:
    """FSDP placement: each leaf split along its largest dimension that the `axis` size divides, else replicated.

    Leaves with fewer than `min_elements` elements (biases, norm scales) are
    replicated: splitting them saves little and costs a collective each.
    Returns a tree of `NamedSharding`\\ s like `params`; ``jax.device_put(params,
    fsdp_shardings(params, mesh))`` places them.

    Only shapes are read. Ties between equal dimensions go to the first.
    Pass the result to :func:`fsdp_loss` for the loss, and place the
    state with :func:`init`.

    Args:
      params: A pytree of arrays or `jax.ShapeDtypeStruct`\\ s (anything with a shape).
      mesh: The `jax.sharding.Mesh` to place the params on.
      axis: The mesh axis to split along. Default ``"fsdp"``.
      min_elements: Leaves with fewer elements are replicated. Default 1024; 0 or 1 splits every
        leaf that has a divisible dimension.

    Returns:
      A tree like `params` of `jax.sharding.NamedSharding`\\ s on `mesh`: spec `axis` on the split
      dimension, None elsewhere (all None for a replicated leaf).

    Raises:
      ValueError: If `axis` is not an axis of `mesh`.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> from adamlab import sharding
      >>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("fsdp",))
      >>> params = {"b": jnp.zeros(4), "w": jnp.ones((4, 256))}
      >>> {k: tuple(s.spec) for k, s in sharding.fsdp_shardings(params, mesh).items()}
      {'b': (None,), 'w': (None, 'fsdp')}
    """
    n = _axis_size(mesh, axis)

    def place(p):
        shape = tuple(np.shape(p))
        spec: list[str | None] = [None] * len(shape)
        if int(np.prod(shape, dtype=np.int64)) >= min_elements:
            for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
                if shape[dim] % n == 0:
                    spec[dim] = axis
                    break
        return NamedSharding(mesh, PartitionSpec(*spec))

    return jax.tree.map(place, params)


def fsdp_loss(loss_fn, param_shardings: PyTree, axis: str = "fsdp"):
    """``loss_fn(params, *batch)`` as an FSDP loss: weights gathered per device, batch split, loss averaged.

    Returns ``loss(params, *batch)``, a `jax.shard_map` over the mesh of
    `param_shardings` (a tree of `NamedSharding`\\ s like the params, e.g.
    from `fsdp_shardings`). On each device it all-gathers every param split
    along `axis` into the whole weight, runs `loss_fn` on that device's slice
    of every batch argument (split along its first dimension), and averages
    the loss over `axis`. Its gradient (``jax.grad(loss)``) is the full-batch
    gradient, each leaf split like its param: the transpose of the
    all-gather is a reduce-scatter. `loss_fn` must return the *mean* over its
    batch, and every batch argument's first dimension must be divisible by
    the size of `axis`.

    Left to itself, the compiler may instead gather the (small) batch and
    repeat the model's work on every device; this fixes the data-parallel
    split.

    Params whose spec does not name `axis` are passed whole (replicated, or
    split along other axes as `loss_fn` expects); only the first dimension
    that names `axis` is gathered.

    Args:
      loss_fn: ``loss_fn(params, *batch) -> scalar``, the mean loss over its batch, written for
        whole (unsplit) params.
      param_shardings: A tree like the params of `jax.sharding.NamedSharding`\\ s, all on one mesh
        (e.g. from :func:`fsdp_shardings`); the params passed to the loss must be placed with them.
      axis: The mesh axis the params are split along and the batch is split over. Default ``"fsdp"``.

    Returns:
      ``loss(params, *batch)``: the mean of `loss_fn` over the devices' slices, a replicated scalar;
      differentiable, and jittable.

    Raises:
      TypeError: If `loss_fn` is not callable, or `param_shardings` is not a non-empty tree of
        `jax.sharding.NamedSharding`\\ s.
      ValueError: If `axis` is not an axis of the mesh; when the loss is called, if a batch
        argument is a scalar or its first dimension is not divisible by the size of `axis`.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> from adamlab import sharding
      >>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("fsdp",))
      >>> params = {"b": jnp.zeros(4), "w": jnp.full((4, 256), 0.5)}
      >>> shardings = sharding.fsdp_shardings(params, mesh)
      >>> params = jax.device_put(params, shardings)
      >>> def loss_fn(p, x):
      ...     return jnp.mean((x @ p["w"]).sum(-1) + p["b"].sum())
      >>> loss = sharding.fsdp_loss(loss_fn, shardings)
      >>> x = jnp.arange(8.0).reshape(2, 4)
      >>> float(loss(params, x)) == float(loss_fn(params, x))
      True
      >>> grads = jax.grad(loss)(params, x)  # split like the params
      >>> grads["w"].shape, tuple(grads["w"].sharding.spec)
      ((4, 256), (None, 'fsdp'))
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    shardings = jax.tree.leaves(param_shardings)  # a Sharding is a leaf
    if not shardings or not all(isinstance(s, NamedSharding) for s in shardings):
        raise TypeError("param_shardings must be a tree of NamedShardings (e.g. from fsdp_shardings)")
    mesh = shardings[0].mesh
    n = _axis_size(mesh, axis)
    specs = jax.tree.map(lambda sh: sh.spec, param_shardings)
    is_spec = lambda x: isinstance(x, PartitionSpec)

    def gather(w, spec):
        dims = [d for d, name in enumerate(spec) if name == axis]
        return jax.lax.all_gather(w, axis, axis=dims[0], tiled=True) if dims else w

    def loss(params, *batch):
        for i, b in enumerate(batch):
            if not np.ndim(b) or np.shape(b)[0] % n:
                raise ValueError(
                    f"batch argument {i} has shape {np.shape(b)}: its first dimension must be "
                    f"divisible by the {n} devices of axis {axis!r}"
                )

        def local(p, *local_batch):
            whole = jax.tree.map(gather, p, specs, is_leaf=is_spec)
            return jax.lax.pmean(loss_fn(whole, *local_batch), axis)

        in_specs = (specs, *[PartitionSpec(axis)] * len(batch))
        return jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=PartitionSpec())(params, *batch)

    return loss


# -- ZeRO-1 over the flat layout ------------------------------------------------------------------------------------


@jax.tree_util.register_pytree_with_keys_class
class PaddedFlat:
    """The buffers of a `Flat`, each zero-padded to a multiple of the shard count and split along one mesh axis.

    ``buckets[j]`` holds bucket j of `layout` followed by zeros; `sharding`
    is the `NamedSharding` that splits it. Masks written for the params'
    tree apply (their per-element entries are padded with False).

    The moments of a :func:`zero1` state are `PaddedFlat`\\ s; a pytree
    node like :class:`adamlab.flat.Flat` (buffers as children, layout and
    sharding static). Each buffer is 1-D, even for a solo bucket, and its
    length is a multiple of the shard count ``N`` (of ``256 N`` for a
    bucket of at least 4096 elements, so that 8-bit blocks never straddle
    two devices). A ``(0,)`` placeholder (a moment of integer leaves) is
    kept unpadded. :meth:`unpad` and :func:`zero1_state_to_flat` give the
    `Flat` back.

    Args:
      buckets: One buffer per bucket of `layout`: the bucket's elements, raveled, then zeros.
      layout: The :class:`adamlab.flat.Layout` the unpadded buffers follow.
      sharding: The `jax.sharding.NamedSharding` that splits each buffer (spec ``P(axis)``).

    Attributes:
      buckets: The tuple of padded 1-D buffers, one per bucket of `layout`.
      layout: The :class:`adamlab.flat.Layout` of the params.
      sharding: The `jax.sharding.NamedSharding` with spec ``P(axis)`` that places every buffer.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import adamlab
      >>> from adamlab import flat, sharding
      >>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
      >>> fp = flat.flatten({"b": jnp.zeros(3), "w": jnp.ones((50, 100))})
      >>> state = sharding.init(sharding.zero1(adamlab.adam(0.1), mesh, "data"), fp)
      >>> moment = state[0].moment
      >>> [b.shape for b in moment.buckets]  # 5000 elements padded to 20 blocks of 256
      [(3,), (5120,)]
      >>> tuple(moment.sharding.spec), moment.layout == fp.layout
      (('data',), True)
      >>> moment.unpad()
      Flat(float32[3], float32[5000])
    """

    __slots__ = ("buckets", "layout", "sharding")

    def __init__(self, buckets: Sequence[Any], layout: Any, sharding: NamedSharding):
        self.buckets = tuple(buckets)
        self.layout = layout
        self.sharding = sharding

    def tree_flatten_with_keys(self):
        return [(jax.tree_util.SequenceKey(i), b) for i, b in enumerate(self.buckets)], (self.layout, self.sharding)

    def tree_flatten(self):
        return self.buckets, (self.layout, self.sharding)

    @classmethod
    def tree_unflatten(cls, aux, buckets):
        return cls(buckets, *aux)

    def __repr__(self):
        parts = ", ".join(f"{b.dtype}{list(b.shape)}" if hasattr(b, "shape") else repr(b) for b in self.buckets)
        return f"PaddedFlat({parts}; {self.sharding.spec})"

    def unpad(self) -> Flat:
        """The `Flat` of the same values, padding removed; a ``(0,)`` placeholder buffer stays one.

        Solo buckets get their leaf's shape back. The buffers are slices of
        the padded ones (sharded as the compiler or the eager slice places
        them; on a mesh of ``Explicit`` axes, gathered whole first, since
        slicing off the padding moves the shard boundaries).

        Returns:
          A :class:`adamlab.flat.Flat` of `layout`.

        Example:
          >>> import jax
          >>> import jax.numpy as jnp
          >>> import numpy as np
          >>> import adamlab
          >>> from adamlab import flat, sharding
          >>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
          >>> fp = flat.flatten({"b": jnp.zeros(3), "w": jnp.ones((50, 100))})
          >>> state = sharding.init(sharding.zero1(adamlab.adam(0.1), mesh, "data"), fp)
          >>> state[0].moment.unpad()
          Flat(float32[3], float32[5000])
        """
        explicit = _checks.explicit_axes(self.sharding.mesh)
        whole = NamedSharding(self.sharding.mesh, PartitionSpec())
        return Flat(
            tuple(
                b
                if _is_placeholder(b)
                else (jax.sharding.reshard(b, whole) if explicit else b)[: info.size].reshape(info.shape)
                for b, info in zip(self.buckets, self.layout.buckets)
            ),
            self.layout,
        )

    def unflatten(self) -> Any:
        """The pytree of the unpadded values: ``self.unpad().unflatten()``.

        Returns:
          A tree like the params of `layout`.

        Example:
          >>> import jax
          >>> import jax.numpy as jnp
          >>> import numpy as np
          >>> import adamlab
          >>> from adamlab import flat, sharding
          >>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
          >>> fp = flat.flatten({"b": jnp.zeros(3), "w": jnp.ones((50, 100))})
          >>> state = sharding.init(sharding.zero1(adamlab.adam(0.1), mesh, "data"), fp)
          >>> state[0].moment.unflatten()["w"].shape
          (50, 100)
        """
        return self.unpad().unflatten()

    def __adamlab_apply__(self, params: Any) -> Flat:
        # adamlab.apply_updates(params, self): each device adds its shard of the update to its shard of the
        # params, then the new params are gathered. The add stays beside the arithmetic that made the update, as
        # in the unsplit program (gathering the update first would leave the compiler a different program).
        if not isinstance(params, Flat) or params.layout != self.layout:
            raise ValueError(
                "apply_updates: zero1's updates are a PaddedFlat of "
                f"{self.layout!r}; the params must be the Flat of that layout, got {_describe(params)}"
            )
        whole = NamedSharding(self.sharding.mesh, PartitionSpec())
        padded = _pad_flat(params, self.sharding, self.sharding.mesh.shape[self.sharding.spec[0]], "params")
        out = []
        for p, pp, u, info in zip(params.buckets, padded.buckets, self.buckets, self.layout.buckets):
            if _is_placeholder(u) or not jnp.issubdtype(jnp.result_type(p), jnp.inexact):
                out.append(p)  # integer leaves have no update
                continue
            new = _constrain((pp + u).astype(pp.dtype), self.sharding)
            out.append(_constrain(new, whole)[: info.size].reshape(info.shape))
        return Flat(tuple(out), self.layout)

    def __adamlab_resolve_mask__(self, mask):
        resolved = self.layout.mask(mask)
        return PaddedFlat(
            tuple(
                m if np.ndim(m) == 0 else _pad(jnp.ravel(jnp.asarray(m)), p.shape[0], False)
                for m, p in zip(resolved.buckets, self.buckets)
            ),
            self.layout,
            self.sharding,
        )


def _is_placeholder(b) -> bool:
    """A ``(0,)`` buffer: the moment of a bucket of integer leaves, which has none."""
    return tuple(np.shape(b)) == (0,)


def _pad(x, length: int, value=0):
    extra = length - x.shape[0]
    return x if extra == 0 else jnp.concatenate([x, jnp.full((extra,), value, x.dtype)])


def _padded_length(size: int, n: int) -> int:
    # A buffer large enough for 8-bit moments is padded to whole blocks per device, so no block straddles two.
    unit = n * quantize.BLOCK if size >= quantize.MIN_SIZE else n
    return -(-size // unit) * unit


def _constrain(x, sharding: NamedSharding):
    if _checks.explicit_axes(sharding.mesh):
        return jax.sharding.reshard(x, sharding)
    return jax.lax.with_sharding_constraint(x, sharding)


def _describe(x) -> str:
    return repr(x) if isinstance(x, Flat) else f"a {type(x).__name__}"


def _pad_flat(flat: Flat, sharding: NamedSharding, n: int, what: str, constrain: bool = True) -> PaddedFlat:
    if not isinstance(flat, Flat):
        raise TypeError(
            f"zero1: {what} is a {type(flat).__name__}, not an adamlab.flat.Flat; flatten the params with "
            "adamlab.flat.flatten, or keep pytree params and wrap as adamlab.flat.packed(zero1(tx, mesh, axis))"
        )
    bufs = []
    for b, info in zip(flat.buckets, flat.layout.buckets):
        if _is_placeholder(b):  # a moment of integer leaves: nothing to split
            bufs.append(b)
            continue
        # Solo buckets keep their leaf's shape; split, every bucket is a line (reshaping a whole buffer is free).
        padded = _pad(jnp.ravel(jnp.asarray(b)), _padded_length(info.size, n))
        bufs.append(_constrain(padded, sharding) if constrain else padded)
    return PaddedFlat(tuple(bufs), flat.layout, sharding)


def zero1(tx: Transformation, mesh: Mesh, axis: str = "data") -> GradientTransformation:
    """ZeRO-1: `tx`'s state over flat buffers split ``N`` ways along mesh `axis`; each device updates ``1/N``.

    ``update(grads, state, params)`` takes `Flat`\\ s (any sharding; usually
    replicated params and data-parallel gradients), pads each buffer with
    zeros to a multiple of ``N = mesh.shape[axis]`` (of ``256 N`` from 4096 elements, so that
    8-bit moments' blocks never straddle two devices), constrains it to
    ``P(axis)`` so that each device computes only its ``1/N`` slice of the
    step, and returns the updates still split: a `PaddedFlat`. The state is
    `tx`'s state with `PaddedFlat` moments of that padded length, each
    device holding one ``1/N`` slice of each.

    ``adamlab.apply_updates(params, updates)`` then adds each device's slice
    of the update to its slice of the params and gathers the new params (one
    all-gather per bucket): the ZeRO-1 step. ``updates.unpad()`` gives the
    updates as a `Flat` of the original lengths, and
    ``updates.unflatten()`` as the params' tree, for logging or for an
    addition of your own.

    Every element is computed by the same arithmetic as without sharding,
    the addition to the params included, so params equal the unsharded run
    bit for bit under `jax.jit`, whatever the bucket sizes; global
    reductions (`clip_by_global_norm`) add their partial sums across devices
    in another order and agree to rounding. Build the state with
    ``adamlab.sharding.init(zero1(tx, mesh, axis), flat_params)`` and jit the
    step with ``out_shardings=state_shardings(...)`` for the state. To keep
    pytree params, wrap it: ``adamlab.flat.packed(zero1(tx, mesh, axis))``
    (its updates are trees, gathered before your addition, so they agree
    with the unsharded run to one rounding where a bucket is padded).

    Pin the gradient to the params' sharding before the update
    (``jax.lax.with_sharding_constraint(grads, param_shardings)``): left
    free, XLA may assemble the gradient's buckets split across devices and
    gather them again, one gradient-sized all-gather per step more than the
    data-parallel all-reduce and the gather of the updated params
    (``benchmarks/scaling.py`` measures both).

    Args:
      tx: The transformation whose state to split: any adamlab transformation or chain (elementwise,
        so it runs on the padded buffers unchanged, or per tensor through `adamlab.flat.leaf_totals`,
        which leaves the padding out of every leaf's total), or an elementwise Optax one. Wrap the
        whole optimizer, not a stage of a chain.
      mesh: The `jax.sharding.Mesh` to split the state over.
      axis: The mesh axis to split along, usually the data-parallel one; its size is ``N``.
        Default ``"data"``.

    Returns:
      A `GradientTransformation` taking :class:`adamlab.flat.Flat` params, updates (and ``gradient=``)
      and returning :class:`PaddedFlat` updates (apply them with :func:`adamlab.apply_updates`);
      its state is `tx`'s with :class:`PaddedFlat` buffers.

    Raises:
      TypeError: If `tx` is not a transformation or `mesh` not a `jax.sharding.Mesh`; at ``init`` or
        ``update``, if the params, updates or gradient are not :class:`adamlab.flat.Flat`\\ s.
      ValueError: If `axis` is not an axis of `mesh`.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import adamlab
      >>> from adamlab import flat, sharding
      >>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
      >>> fp = flat.flatten({"b": jnp.zeros(3), "w": jnp.ones((50, 100))})
      >>> tx = sharding.zero1(adamlab.adam(0.1), mesh, "data")
      >>> state = sharding.init(tx, fp)
      >>> [b.shape for b in state[0].moment.buckets]  # padded, split along "data"
      [(3,), (5120,)]
      >>> grads = flat.flatten({"b": jnp.ones(3), "w": jnp.ones((50, 100))})
      >>> updates, state = jax.jit(tx.update)(grads, state, fp)
      >>> updates  # still split along "data"
      PaddedFlat(float32[3], float32[5120]; P('data',))
      >>> updates.unpad()  # the original lengths
      Flat(float32[3], float32[5000])
      >>> new = adamlab.apply_updates(fp, updates)  # added where each slice lives, then gathered
      >>> print(new.unflatten()["b"].round(4))
      [-0.1 -0.1 -0.1]
    """
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(f"zero1: tx is a {type(tx).__name__}, not a GradientTransformation")
    if not isinstance(mesh, Mesh):
        raise TypeError(f"zero1: mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    n = _axis_size(mesh, axis, "zero1: ")
    sharding = NamedSharding(mesh, PartitionSpec(axis))

    def init(params):
        # No constraint here: init is traced by `init`/`state_shardings`, whose out_shardings place the buffers.
        return tx.init(_pad_flat(params, sharding, n, "params", constrain=False))

    def update(updates, state, params=None, **extra):
        padded_u = _pad_flat(updates, sharding, n, "updates")
        padded_p = None if params is None else _pad_flat(params, sharding, n, "params")
        if extra.get("gradient") is not None:
            extra = dict(extra, gradient=_pad_flat(extra["gradient"], sharding, n, "gradient"))
        out, state = tx.update(padded_u, state, padded_p, **extra)
        return out, state

    return stage("zero1", init, update, role=stage_info(tx).role)


def zero1_state_to_flat(state: PyTree) -> PyTree:
    """Replaces each `PaddedFlat` in a `zero1` state by the `Flat` it pads: the state the unsharded flat run has.

    With `adamlab.flat.state_to_tree` after it, the pytree run's state. Save
    this form to resume on another number of devices.

    Args:
      state: A :func:`zero1` state, or any pytree containing :class:`PaddedFlat`\\ s.

    Returns:
      `state` with each :class:`PaddedFlat` replaced by its :class:`adamlab.flat.Flat` (see
      :meth:`PaddedFlat.unpad`); other leaves kept.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import adamlab
      >>> from adamlab import flat, sharding
      >>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
      >>> fp = flat.flatten({"b": jnp.zeros(3), "w": jnp.ones((50, 100))})
      >>> tx = sharding.zero1(adamlab.adam(0.1), mesh, "data")
      >>> flat_state = sharding.zero1_state_to_flat(sharding.init(tx, fp))
      >>> flat_state[0].moment
      Flat(float32[3], float32[5000])
      >>> flat.state_to_tree(flat_state)[0].moment["w"].shape
      (50, 100)
    """
    return jax.tree.map(
        lambda x: x.unpad() if isinstance(x, PaddedFlat) else x, state, is_leaf=lambda x: isinstance(x, PaddedFlat)
    )


def zero1_state_from_flat(flat_state: PyTree, like: PyTree) -> PyTree:
    """The inverse of `zero1_state_to_flat`: pads the `Flat`\\ s of `flat_state` where `like` has a `PaddedFlat`.

    `like` is a `zero1` state (``jax.eval_shape(tx.init, flat)`` will do):
    it gives the padded lengths and the sharding. The result is placed with
    that sharding when `flat_state` holds concrete arrays.

    With :func:`adamlab.flat.state_from_tree` before it, a pytree run's
    state (or one saved on another device count) resumes under ZeRO-1.

    Args:
      flat_state: An unsharded flat state: `like`'s structure with a :class:`adamlab.flat.Flat` of the
        same layout in place of each :class:`PaddedFlat` (as :func:`zero1_state_to_flat` returns).
      like: A :func:`zero1` state of the same transformation on the target mesh; only its structure,
        layouts, buffer lengths and shardings are read.

    Returns:
      A :func:`zero1` state: `flat_state` with every :class:`adamlab.flat.Flat` padded to `like`'s lengths
      and placed with its sharding.

    Raises:
      ValueError: If `flat_state` does not have `like`'s structure (with Flats in place of
        PaddedFlats), or holds something other than a :class:`adamlab.flat.Flat` of the same layout
        where `like` has a :class:`PaddedFlat`.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import adamlab
      >>> from adamlab import flat, sharding
      >>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
      >>> fp = flat.flatten({"b": jnp.zeros(3), "w": jnp.ones((50, 100))})
      >>> tx = sharding.zero1(adamlab.adam(0.1), mesh, "data")
      >>> flat_state = adamlab.adam(0.1).init(fp)  # an unsharded flat run's state
      >>> state = sharding.zero1_state_from_flat(flat_state, jax.eval_shape(tx.init, fp))
      >>> [b.shape for b in state[0].moment.buckets]
      [(3,), (5120,)]
      >>> tuple(state[0].moment.buckets[1].sharding.spec)
      ('data',)
    """

    def pad(node: PaddedFlat, sub: Any) -> PaddedFlat:
        if not isinstance(sub, Flat) or sub.layout != node.layout:
            raise ValueError(f"flat_state has a {type(sub).__name__} where `like` has a PaddedFlat of {node.layout!r}")
        bufs = []
        for b, ref in zip(sub.buckets, node.buckets):
            length = np.shape(ref)[0]
            if _is_placeholder(b):
                bufs.append(b)
                continue
            b = _pad(jnp.ravel(jnp.asarray(b)), length)
            bufs.append(b if isinstance(b, jax.core.Tracer) else _hosts.place(b, node.sharding))
        return PaddedFlat(tuple(bufs), node.layout, node.sharding)

    out = convert_nodes(
        flat_state,
        like,
        PaddedFlat,
        pad,
        "flat_state does not have the structure of `like` with Flats in place of PaddedFlats",
    )
    # The other leaves (step counts) go where `like` has them, else replicated on the zero1 mesh: a state restored
    # without shardings sits on one local device, which a step over the mesh of several processes cannot take.
    is_padded = lambda x: isinstance(x, PaddedFlat)
    meshes = [n.sharding.mesh for n in jax.tree.leaves(like, is_leaf=is_padded) if is_padded(n)]
    if not meshes:
        return out

    def place(x, ref):
        if is_padded(x) or isinstance(x, jax.core.Tracer) or not isinstance(x, jax.Array | np.ndarray | np.generic):
            return x
        target = getattr(ref, "sharding", None)
        return _hosts.place(x, target if isinstance(target, Sharding) else NamedSharding(meshes[0], PartitionSpec()))

    return jax.tree.map(place, out, like, is_leaf=is_padded)


# -- measurements ---------------------------------------------------------------------------------------------------


def bytes_per_device(tree: PyTree) -> dict[Any, int]:
    """Bytes of `tree`'s arrays held by each device of their meshes: the sum of its shards' sizes, device by device.

    A replicated leaf counts in full on every device; a leaf split ``N``
    ways counts ``1/N`` on each.

    Every device of each array's sharding is counted, also those of other
    processes under `jax.distributed`: the sizes come from the sharding
    alone, no data is read.

    Args:
      tree: A pytree of `jax.Array`\\ s (params, a state, both in a tuple).

    Returns:
      A dict from each device holding part of `tree` to its bytes, an int.

    Raises:
      TypeError: If a leaf is not a `jax.Array` (NumPy arrays and Python scalars included).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> from adamlab import sharding
      >>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("fsdp",))
      >>> params = {"b": jnp.zeros(4), "w": jnp.ones((256, 4))}
      >>> params = jax.device_put(params, sharding.fsdp_shardings(params, mesh))
      >>> {d.id: n for d, n in sharding.bytes_per_device(params).items()}  # (4 + 1024) float32
      {0: 4112}
    """
    out: Counter = Counter()
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not isinstance(x, jax.Array):
            raise TypeError(
                f"bytes_per_device: leaf at {_checks.path_str(path)} is a {type(x).__name__}, not a jax.Array"
            )
        for device, index in x.sharding.devices_indices_map(x.shape).items():
            shape = [len(range(*ix.indices(n))) for ix, n in zip(index, x.shape)]
            out[device] += int(np.prod(shape, dtype=np.int64)) * x.dtype.itemsize
    return dict(out)


class CollectiveStats(NamedTuple):
    """Collective operations in a compiled SPMD program: how many of each kind, and the bytes they produce.

    ``bytes[kind]`` sums the sizes of the result buffers of that kind in the
    per-device program (an all-gather's gathered output, an all-reduce's
    reduced buffer, a reduce-scatter's shard): a measure of the data each
    device receives, per call.

    Returned by :func:`collectives`; ``str(stats)`` is one line
    (``"all-gather: 2 (8,192 B), all-reduce: 1 (4 B)"``, or
    ``"no collectives"``). Kinds: ``all-gather``, ``all-reduce``,
    ``reduce-scatter``, ``collective-permute``, ``all-to-all``,
    ``collective-broadcast``; a kind that does not occur has no entry.

    Args:
      counts: A dict from collective kind to the number of such operations in the program.
      bytes: A dict from collective kind to the total bytes of their results, per device.

    Example:
      >>> from adamlab import sharding
      >>> stats = sharding.CollectiveStats({"all-gather": 2}, {"all-gather": 1024})
      >>> print(stats, stats.total_bytes)
      all-gather: 2 (1,024 B) 1024
    """

    counts: dict[str, int]
    bytes: dict[str, int]

    @property
    def total_bytes(self) -> int:
        """The bytes of all kinds together, per device, ``sum(bytes.values())``.

        Example:
          >>> from adamlab import sharding
          >>> stats = sharding.CollectiveStats({"all-gather": 1, "all-reduce": 1}, {"all-gather": 128, "all-reduce": 4})
          >>> stats.total_bytes
          132
        """
        return sum(self.bytes.values())

    def __str__(self) -> str:
        if not self.counts:
            return "no collectives"
        return ", ".join(f"{k}: {self.counts[k]} ({self.bytes[k]:,} B)" for k in sorted(self.counts))


_KINDS = ("all-gather", "all-reduce", "reduce-scatter", "collective-permute", "all-to-all", "collective-broadcast")
_OP = re.compile(
    r"=\s*(?P<type>\([^()]*\)|[a-z0-9]+\[[0-9,]*\](?:\{[^}]*\})?)\s+"
    r"(?P<kind>" + "|".join(_KINDS) + r")(?P<start>-start)?\("
)
_SHAPE = re.compile(r"([a-z]+[0-9]*)\[([0-9,]*)\]")
_BYTES = {
    "pred": 1,
    "s8": 1,
    "u8": 1,
    "s16": 2,
    "u16": 2,
    "f16": 2,
    "bf16": 2,
    "s32": 4,
    "u32": 4,
    "f32": 4,
    "s64": 8,
    "u64": 8,
    "f64": 8,
    "c64": 8,
    "c128": 16,
    "f8e4m3fn": 1,
    "f8e5m2": 1,
}


def _shape_bytes(dtype: str, dims: str) -> int:
    n = int(np.prod([int(d) for d in dims.split(",") if d], dtype=np.int64)) if dims else 1
    return n * _BYTES.get(dtype, 4)


def collectives(compiled: Any) -> CollectiveStats:
    """Counts the collectives of a compiled program (``jax.jit(f).lower(*args).compile()``, or its HLO text).

    An async pair (``all-gather-start``/``-done``) counts once; the bytes of
    an async all-gather are those of its gathered output.

    Reads the HLO text, so it sees what the compiler really emitted (after
    SPMD partitioning), including collectives inserted to reshard. Use it
    to check that a step has none, or which ones an FSDP or ZeRO-1 step
    adds (``benchmarks/scaling.py``).

    Args:
      compiled: A compiled program (anything with ``as_text()``: ``jax.jit(f).lower(*args).compile()``)
        or its HLO text as a string.

    Returns:
      A :class:`CollectiveStats` of counts and bytes per kind.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from adamlab import sharding
      >>> compiled = jax.jit(lambda x: 2 * x).lower(jnp.ones(3)).compile()
      >>> print(sharding.collectives(compiled))
      no collectives
      >>> hlo = "%ag = f32[8,4]{1,0} all-gather(f32[2,4]{1,0} %x), dimensions={0}"
      >>> stats = sharding.collectives(hlo)
      >>> stats.counts, stats.bytes
      ({'all-gather': 1}, {'all-gather': 128})
    """
    text = compiled if isinstance(compiled, str) else compiled.as_text()
    counts: Counter = Counter()
    nbytes: Counter = Counter()
    for m in _OP.finditer(text):
        kind = m.group("kind")
        sizes = [_shape_bytes(d, s) for d, s in _SHAPE.findall(m.group("type"))]
        counts[kind] += 1
        # An async all-gather's result is the tuple (operand, output): count the output only.
        nbytes[kind] += max(sizes) if m.group("start") and kind == "all-gather" else sum(sizes)
    return CollectiveStats(dict(counts), dict(nbytes))
