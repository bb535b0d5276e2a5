"""Saving and restoring optimizer state (or any pytree of arrays): a dependency-free ``.npz`` format and Orbax.

Both formats store the leaves with a description of the tree (every leaf's
path, shape and dtype, and the tree structure), and both restore *into a
template*: ``like`` is a tree of the same structure (the state itself, or
``jax.eval_shape(tx.init, params)``), whose node types (NamedTuples, `Flat`\\ s,
dicts) the restored tree takes, and whose leaves' shardings place the
restored arrays. Restoring never reshapes or casts: a checkpoint of another
tree, another shape or another dtype raises an error that names the first leaf
that differs. (Restoring without a template, as Orbax does when given none,
turns NamedTuples into lists and dicts: the known trap this design avoids.)

::

    adamlab.checkpoint.save_npz("ckpt/step_1000.npz", {"params": params, "opt_state": state})
    restored = adamlab.checkpoint.load_npz("ckpt/step_1000.npz", {"params": params, "opt_state": state})

``.npz`` (`save_npz`, `load_npz`) needs NumPy alone. It gathers each array on
the host, so it is for single-process runs (any number of local devices: a
sharded array is gathered, and restored onto the template's sharding). Orbax
(`save_orbax`, `restore_orbax`; ``pip install orbax-checkpoint``) writes each
device's shards where they are, so it is the one for multi-host runs and large
states. Zero-size leaves (the ``(0,)`` placeholder moments of integer params),
which Orbax refuses to write, are recorded in the description only.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks, _hosts, quantize

PyTree = Any

FORMAT = "adamlab-checkpoint"
VERSION = 1
_META_KEY = "__adamlab_meta__"

__all__ = ["describe", "load_npz", "restore_orbax", "save_npz", "save_orbax"]


# -- the description ------------------------------------------------------------------------------------------------


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _dtype_name(x) -> str:
    if _is_key(x):
        # A ShapeDtypeStruct has no public accessor for its key implementation; its dtype carries it.
        impl = jax.random.key_impl(x) if isinstance(x, jax.Array) else x.dtype._impl.name
        return f"key<{impl}>"
    return jnp.dtype(x.dtype).name


def _structure(tree) -> str:
    # Object addresses in the repr of custom nodes' data differ from process to process.
    return re.sub(r" at 0x[0-9a-fA-F]+", "", str(jax.tree.structure(tree)))


def describe(tree: PyTree) -> dict:
    """Returns the description stored with a checkpoint: format, tree structure and ``(path, shape, dtype)`` per leaf.

    It is what :func:`adamlab.checkpoint.load_npz` and :func:`adamlab.checkpoint.restore_orbax` compare a
    template against before restoring anything, and it is plain JSON-compatible data::

        {"format": "adamlab-checkpoint", "version": 1, "byteorder": "little",
         "structure": "<str of the PyTreeDef>",
         "leaves": [{"path": "['w']", "shape": [2, 3], "dtype": "float32"}, ...]}

    A typed PRNG key leaf has dtype ``"key<impl>"`` and an extra ``"data_shape"``, the shape of its key
    data. Only shapes and dtypes are read, so ``tree`` may hold ``jax.ShapeDtypeStruct`` leaves.

    Args:
      tree: A pytree whose leaves are arrays or anything with ``shape`` and ``dtype`` (JAX or NumPy arrays,
        ``jax.ShapeDtypeStruct``).

    Returns:
      A dict with keys ``format``, ``version``, ``byteorder``, ``structure`` and ``leaves``, as above.

    Raises:
      TypeError: If a leaf has no ``shape`` or ``dtype`` (a Python number, a string): wrap it with
        ``jnp.asarray``.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> meta = adamlab.checkpoint.describe({"w": jnp.ones((2, 3)), "step": jnp.asarray(3, jnp.int32)})
      >>> print(meta["format"], meta["structure"])
      adamlab-checkpoint PyTreeDef({'step': *, 'w': *})
      >>> for leaf in meta["leaves"]:
      ...     print(leaf)
      {'path': "['step']", 'shape': [], 'dtype': 'int32'}
      {'path': "['w']", 'shape': [2, 3], 'dtype': 'float32'}
    """
    leaves = []
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not (hasattr(x, "shape") and hasattr(x, "dtype")):
            raise TypeError(
                f"checkpoint: leaf at {_checks.path_str(path)} is a {type(x).__name__}, not an array "
                "(wrap it: jnp.asarray(x))"
            )
        info = {"path": _checks.path_str(path), "shape": list(np.shape(x)), "dtype": _dtype_name(x)}
        if _is_key(x):  # stored as its key data, which has trailing dimensions of its own
            info["data_shape"] = list(jax.eval_shape(jax.random.key_data, x).shape)
        leaves.append(info)
    return {
        "format": FORMAT,
        "version": VERSION,
        "byteorder": "little",
        "structure": _structure(tree),
        "leaves": leaves,
    }


def _check_against(meta: dict, like: PyTree, source: str) -> None:
    """Raises ValueError (tree, shape) or TypeError (dtype) naming the first leaf where `like` and `meta` differ."""
    if meta.get("format") != FORMAT:
        raise ValueError(f"{source} is not an adamlab checkpoint (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"{source} has checkpoint format version {meta.get('version')}; this adamlab reads {VERSION}")
    want = describe(like)
    saved_8bit, template_8bit = "Quantized" in meta["structure"], "Quantized" in want["structure"]
    if saved_8bit != template_8bit:
        which, other = ("the checkpoint", "the template") if saved_8bit else ("the template", "the checkpoint")
        raise ValueError(
            f"{source}: {which} holds 8-bit moments (state_dtype=jnp.int8) and {other} does not: build the template "
            "with the optimizer's state_dtype, or restore into an 8-bit template and convert the moments "
            "yourself (adamlab.quantize.decode gives float32)"
        )
    got_leaves, want_leaves = meta["leaves"], want["leaves"]
    for g, w in zip(got_leaves, want_leaves):
        if g["path"] != w["path"]:
            raise ValueError(
                f"{source} holds a different tree than the template: its leaf {g['path']} stands where "
                f"the template has {w['path']}"
            )
    if len(got_leaves) != len(want_leaves):
        longer, which = (got_leaves, source) if len(got_leaves) > len(want_leaves) else (want_leaves, "the template")
        raise ValueError(
            f"{source} has {len(got_leaves)} leaves, the template {len(want_leaves)}: {which} has an "
            f"extra leaf at {longer[min(len(got_leaves), len(want_leaves))]['path']}"
        )
    codes = [sorted(set(re.findall(r"Quantized\[\((?:True|False), '(\w+)'\)\]", t["structure"]))) for t in (meta, want)]
    if codes[0] != codes[1]:
        raise ValueError(
            f"{source} holds 8-bit moments in the code {', '.join(codes[0])} and the template in "
            f"{', '.join(codes[1])} (adamlab's default code is {quantize.DEFAULT_CODE!r}): restore into a template "
            f"in the checkpoint's code, adamlab.quantize.recode(template, {codes[0][0]!r}), and convert the "
            f"restored state with adamlab.quantize.recode(state, {codes[1][0]!r}) (or keep training in the "
            "checkpoint's code: the optimizer keeps each moment's)"
        )
    if meta["structure"] != want["structure"]:
        raise ValueError(
            f"{source} has the template's leaf paths but other containers (a different optimizer, or "
            f"lists where the template has tuples):\n  checkpoint: {meta['structure'][:500]}\n"
            f"  template:   {want['structure'][:500]}"
        )
    for g, w in zip(got_leaves, want_leaves):
        if g["shape"] != w["shape"]:
            raise ValueError(
                f"{source} at {g['path']} has shape {tuple(g['shape'])}, the template "
                f"{tuple(w['shape'])}; a checkpoint is never reshaped"
            )
        if g["dtype"] != w["dtype"]:
            raise TypeError(
                f"{source} at {g['path']} has dtype {g['dtype']}, the template {w['dtype']}; a checkpoint "
                "is never cast (cast the restored tree yourself if that is what you want)"
            )


def _place(value: np.ndarray, like_leaf, dtype_name: str):
    """The restored leaf: on the template leaf's sharding when it has one, as a PRNG key when it was one."""
    sharding = getattr(like_leaf, "sharding", None)
    arr = _hosts.place(value, sharding) if sharding is not None else jnp.asarray(value)
    if dtype_name.startswith("key<"):
        arr = jax.random.wrap_key_data(arr, impl=dtype_name[4:-1])
    return arr


def _host_value(x, path: str) -> np.ndarray:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        raise ValueError(
            f"save_npz: the array at {path} spans several processes; save multi-host state with "
            "save_orbax, which writes each process's shards"
        )
    if _is_key(x):
        x = jax.random.key_data(x)
    return np.asarray(x)


# -- .npz -----------------------------------------------------------------------------------------------------------


def _npz_path(path) -> Path:
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def save_npz(path: str | os.PathLike, tree: PyTree) -> Path:
    """Writes ``tree`` to the ``.npz`` file ``path`` (``.npz`` appended if missing), atomically; returns the path.

    Each leaf is gathered on the host and stored as one array, beside the JSON description of
    :func:`adamlab.checkpoint.describe`. Leaves of NumPy's own dtypes are stored as such (``np.load``
    reads them); others (bfloat16, float8, PRNG keys) as their raw bytes, rebuilt by
    :func:`adamlab.checkpoint.load_npz` from the stored dtype. The file is written under a temporary
    name and then renamed, so a crash mid-write leaves a previous checkpoint at ``path`` intact. Missing
    parent directories are created. For single-process runs; use :func:`adamlab.checkpoint.save_orbax`
    for multi-host state.

    Args:
      path: The file to write (a ``str`` or path-like); ``".npz"`` is appended when its suffix is not
        ``.npz``. An existing file is replaced.
      tree: The pytree of arrays to save, e.g. ``{"params": params, "opt_state": state}``.

    Returns:
      The ``pathlib.Path`` written (with the ``.npz`` suffix).

    Raises:
      TypeError: If a leaf is not an array (see :func:`adamlab.checkpoint.describe`).
      ValueError: If a leaf is a ``jax.Array`` spanning several processes.
      OSError: If the file cannot be written.

    Example:
      >>> import tempfile
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> params = {"w": jnp.arange(3.0)}
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     path = adamlab.checkpoint.save_npz(f"{tmp}/ckpt/step_10", params)
      ...     restored = adamlab.checkpoint.load_npz(path, params)
      >>> print(path.name, restored["w"])
      step_10.npz [0. 1. 2.]
    """
    meta = describe(tree)
    arrays = {}
    for i, ((p, x), info) in enumerate(zip(jax.tree_util.tree_flatten_with_path(tree)[0], meta["leaves"])):
        value = np.asarray(_host_value(x, _checks.path_str(p)), order="C")  # ascontiguousarray makes 0-d 1-d
        if value.dtype.type.__module__ != "numpy":  # an ml_dtypes type, which np.load would read back as void
            value = value.reshape(-1).view(np.uint8)
            info["raw"] = True
        arrays[f"leaf_{i:06d}"] = value
    arrays[_META_KEY] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path = _npz_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)  # a crash mid-write leaves the previous checkpoint intact
    return path


def load_npz(path: str | os.PathLike, like: PyTree) -> PyTree:
    """Reads a :func:`adamlab.checkpoint.save_npz` file into the structure of ``like``.

    The stored description is checked against ``like`` first, and nothing is reshaped or cast. The
    restored tree has ``like``'s node types (NamedTuple states stay NamedTuples), and each leaf is placed
    on the sharding of ``like``'s leaf when it has one (a sharded array is restored sharded), else on the
    default device.

    Args:
      path: The file to read (a ``str`` or path-like); ``".npz"`` is appended when its suffix is not
        ``.npz``, as in :func:`adamlab.checkpoint.save_npz`.
      like: The template: a tree of the same structure as the saved one, holding arrays or
        ``jax.ShapeDtypeStruct``\\ s (with ``sharding=`` to place the result), e.g. the current state or
        ``jax.eval_shape(tx.init, params)``.

    Returns:
      The restored tree, with ``like``'s structure and ``jax.Array`` leaves.

    Raises:
      ValueError: If the file is not an adamlab checkpoint or has another format version, its tree (leaf
        paths, number of leaves, containers, 8-bit moments or not) or a leaf's shape differs from
        ``like``'s, or the file is damaged. The message names the first leaf that differs.
      TypeError: If a leaf's dtype differs from ``like``'s.
      FileNotFoundError: If there is no file at ``path``.

    Example:
      >>> import tempfile
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> params = {"w": jnp.ones(2)}
      >>> opt = adamlab.adamw(1e-3)
      >>> state = opt.init(params)
      >>> _, state = opt.update({"w": jnp.ones(2)}, state, params)
      >>> like = jax.eval_shape(opt.init, params)  # shapes and dtypes only
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     path = adamlab.checkpoint.save_npz(f"{tmp}/opt_state.npz", state)
      ...     restored = adamlab.checkpoint.load_npz(path, like)
      >>> print(type(restored[2]).__name__, adamlab.diagnostics.step_count(restored))
      RmsState 1
    """
    path = _npz_path(path)
    with np.load(path, allow_pickle=False) as data:
        if _META_KEY not in data:
            raise ValueError(f"{path} is not an adamlab checkpoint (no {_META_KEY} entry)")
        meta = json.loads(data[_META_KEY].tobytes().decode())
        _check_against(meta, like, str(path))
        like_leaves, treedef = jax.tree.flatten(like)
        out = []
        for i, (info, leaf) in enumerate(zip(meta["leaves"], like_leaves)):
            value = data[f"leaf_{i:06d}"]
            if info.get("raw"):
                value = value.view(jnp.dtype(info["dtype"])).reshape(info["shape"])
            if list(value.shape) != info.get("data_shape", info["shape"]):
                raise ValueError(
                    f"{path} is damaged: the array at {info['path']} has shape {value.shape}, its "
                    f"description says {tuple(info.get('data_shape', info['shape']))}"
                )
            out.append(_place(value, leaf, info["dtype"]))
    return jax.tree.unflatten(treedef, out)


# -- Orbax ----------------------------------------------------------------------------------------------------------


def _orbax():
    try:
        import orbax.checkpoint as ocp
    except ImportError:
        raise ImportError(
            "save_orbax/restore_orbax need orbax-checkpoint: pip install orbax-checkpoint "
            "(or adamlab[test]); save_npz/load_npz need nothing beyond NumPy"
        ) from None
    return ocp


def save_orbax(directory: str | os.PathLike, tree: PyTree, *, force: bool = False) -> Path:
    """Writes ``tree`` to ``directory`` with Orbax (each process writes its own shards); returns the directory.

    The leaves are stored as a flat dict (no NamedTuple or empty node for Orbax to turn into something
    else) beside the JSON description of :func:`adamlab.checkpoint.describe`; zero-size leaves are
    recorded in the description only. Blocks until the write is complete. In a multi-process run every
    process calls it with the same ``directory``. Needs ``orbax-checkpoint``.

    Args:
      directory: The checkpoint directory to create (a ``str`` or path-like), made absolute.
      tree: The pytree of arrays to save, e.g. ``{"params": params, "opt_state": state}``.
      force: Whether to overwrite an existing checkpoint at ``directory``. Default False: an existing one
        is an error (raised by Orbax).

    Returns:
      The absolute ``pathlib.Path`` of the checkpoint directory.

    Raises:
      ImportError: If ``orbax-checkpoint`` is not installed.
      TypeError: If a leaf is not an array (see :func:`adamlab.checkpoint.describe`).

    Example:
      >>> import tempfile
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tree = {"w": jnp.arange(3.0), "step": jnp.asarray(7)}
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     directory = adamlab.checkpoint.save_orbax(f"{tmp}/step_7", tree)
      ...     restored = adamlab.checkpoint.restore_orbax(directory, tree)
      >>> print(directory.name, restored["w"], restored["step"])
      step_7 [0. 1. 2.] 7
    """
    ocp = _orbax()
    meta = describe(tree)
    items = {}
    for i, (x, info) in enumerate(zip(jax.tree.leaves(tree), meta["leaves"])):
        if int(np.prod(info["shape"], dtype=np.int64)) == 0:
            continue  # Orbax refuses zero-size arrays; the description is enough to rebuild them
        items[f"leaf_{i:06d}"] = jax.random.key_data(x) if _is_key(x) else x
    directory = Path(directory).absolute()
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        ckptr.save(
            directory,
            ocp.args.Composite(leaves=ocp.args.StandardSave(items), meta=ocp.args.JsonSave(meta)),
            force=force,
        )
    return directory


def restore_orbax(directory: str | os.PathLike, like: PyTree) -> PyTree:
    """Reads a :func:`adamlab.checkpoint.save_orbax` checkpoint into the structure of ``like``.

    As :func:`adamlab.checkpoint.load_npz`: the description is checked against ``like`` first, nothing is
    reshaped or cast, and the result has ``like``'s node types. Each process reads the shards its devices
    need for the sharding of ``like``'s leaf; leaves of ``like`` without a sharding (NumPy arrays,
    ``jax.ShapeDtypeStruct``\\ s without one) go to the first local device. Needs ``orbax-checkpoint``.

    Args:
      directory: The checkpoint directory that :func:`adamlab.checkpoint.save_orbax` wrote (a ``str`` or
        path-like).
      like: The template: a tree of the same structure as the saved one, holding arrays or
        ``jax.ShapeDtypeStruct``\\ s (with ``sharding=`` to place the result), e.g. the current state or
        ``jax.eval_shape(tx.init, params)``.

    Returns:
      The restored tree, with ``like``'s structure and ``jax.Array`` leaves.

    Raises:
      ImportError: If ``orbax-checkpoint`` is not installed.
      ValueError: If the checkpoint's tree or a leaf's shape differs from ``like``'s (naming the first
        leaf that differs), or it is not an adamlab checkpoint.
      TypeError: If a leaf's dtype differs from ``like``'s.

    Example:
      >>> import tempfile
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> params = {"w": jnp.ones(2)}
      >>> opt = adamlab.adamw(1e-3)
      >>> state = opt.init(params)
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     directory = adamlab.checkpoint.save_orbax(f"{tmp}/opt_state", state)
      ...     restored = adamlab.checkpoint.restore_orbax(directory, state)
      >>> print(type(restored[2]).__name__, restored[2].second_moment["w"])
      RmsState [0. 0.]
    """
    ocp = _orbax()
    directory = Path(directory).absolute()
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        meta = ckptr.restore(directory, ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        _check_against(meta, like, str(directory))
        like_leaves, treedef = jax.tree.flatten(like)
        default = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        targets = {}
        for i, (info, leaf) in enumerate(zip(meta["leaves"], like_leaves)):
            if int(np.prod(info["shape"], dtype=np.int64)) == 0:
                continue
            if info["dtype"].startswith("key<"):  # stored as its key data: a trailing dimension more
                data = jax.eval_shape(jax.random.key_data, leaf)
                shape, dtype = data.shape, data.dtype
                sharding = getattr(leaf, "sharding", None) or default
                if isinstance(sharding, jax.sharding.NamedSharding):
                    sharding = jax.sharding.NamedSharding(
                        sharding.mesh,
                        jax.sharding.PartitionSpec(*sharding.spec, *[None] * (len(shape) - len(sharding.spec))),
                    )
            else:
                shape, dtype = tuple(info["shape"]), jnp.dtype(info["dtype"])
                sharding = getattr(leaf, "sharding", None) or default
            targets[f"leaf_{i:06d}"] = jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
        restored = ckptr.restore(directory, ocp.args.Composite(leaves=ocp.args.StandardRestore(targets)))["leaves"]
    out = []
    for i, (info, leaf) in enumerate(zip(meta["leaves"], like_leaves)):
        key = f"leaf_{i:06d}"
        if key not in targets:
            out.append(_place(np.zeros(info["shape"], jnp.dtype(info["dtype"])), leaf, info["dtype"]))
            continue
        value = restored[key]
        out.append(
            jax.random.wrap_key_data(value, impl=info["dtype"][4:-1]) if info["dtype"].startswith("key<") else value
        )
    return jax.tree.unflatten(treedef, out)
