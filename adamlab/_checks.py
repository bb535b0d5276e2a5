"""Eager validation: hyperparameters and tree structure, with messages that name the problem."""

from __future__ import annotations

import inspect
import numbers
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np


def is_number(x: Any) -> bool:
    """True for Python and NumPy scalars, whose value is known before tracing."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) or (isinstance(x, np.ndarray) and x.ndim == 0)


def _check_int32(name: str, value: Any) -> None:
    """ValueError for a Python int that JAX cannot take (beyond int32)."""
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**31) <= value < 2**31:
        raise ValueError(f"{name} = {value} is a Python int beyond int32, which JAX cannot take; pass {float(value)}")


def _value(name: str, value: Any) -> float | None:
    """A scalar hyperparameter's value, None when it is only known at run time; TypeError when it is no number."""
    _check_int32(name, value)
    if is_number(value):
        return float(value)
    if isinstance(value, bool) or not hasattr(value, "dtype"):
        raise TypeError(f"{name} must be a real number or a scalar array, got {type(value).__name__}")
    if not (jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer)):
        raise TypeError(f"{name} must be a real number or a scalar array, got an array of {value.dtype}")
    if np.ndim(value) != 0:
        raise TypeError(f"{name} must be a scalar, got an array of shape {np.shape(value)}")
    return None if isinstance(value, jax.core.Tracer) else float(value)


def check_decay(name: str, value: Any, *, one_allowed: bool = False) -> None:
    """A decay rate must lie in [0, 1): 1 would never forget, and the bias correction would divide by 0.

    `one_allowed`: [0, 1] instead, for momentum, where 1 is defined (the running sum of the updates).

    The moments are computed in float32, so the rate must also be below 1 *in
    float32*, and it may not arrive as a bfloat16 or float16 array (as
    ``optax.inject_hyperparams`` makes for bfloat16 params), where 0.999 is 1.
    """
    if hasattr(value, "dtype") and jnp.issubdtype(value.dtype, jnp.floating) and jnp.finfo(value.dtype).bits < 32:
        raise TypeError(
            f"{name} is a {value.dtype} array: in {value.dtype} a decay rate near 1 rounds to 1 (0.999 does in "
            "bfloat16) and the moment never decays; pass it in float32 (with optax.inject_hyperparams: "
            "hyperparam_dtype=jnp.float32)"
        )
    v = _value(name, value)
    if one_allowed:
        if v is not None and not (0.0 <= v <= 1.0):
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        return
    if v is not None and not (0.0 <= v < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    if v is not None and np.float32(v) == 1.0:
        raise ValueError(
            f"{name} must be in [0, 1) in float32, where the moments are computed: {value!r} rounds to 1.0; "
            "the largest usable rate is 1 - 2**-24 = 0.99999994"
        )


def check_nonnegative(name: str, value: Any) -> None:
    v = _value(name, value)
    if v is not None and not (0.0 <= v <= float(np.finfo(np.float32).max)):  # also rejects NaN; float32 math
        raise ValueError(f"{name} must be >= 0 and finite (in float32), got {value!r}")


def check_rate(name: str, value: Any) -> None:
    """A rate that may follow a schedule (a learning rate, a weight decay): a number or scalar array ``>= 0``, or a
    function of the step alone."""
    check_schedule(name, value)
    if not callable(value):
        check_nonnegative(name, value)


def known_positive(value: Any) -> bool:
    """True when `value` is known before tracing and > 0 in float32: a decision the optimizer makes once, in Python.

    (1e-50 is 0 in float32, where the arithmetic runs.)"""
    return not isinstance(value, jax.core.Tracer) and np.ndim(value) == 0 and bool(np.float32(float(value)) > 0)


def explicit_axes(mesh: Any) -> bool:
    """Whether `mesh` has an axis of type ``Explicit``: sharding is then part of every array's type."""
    return any(t == jax.sharding.AxisType.Explicit for t in getattr(mesh, "axis_types", ()))


def is_function(x: Any) -> bool:
    """A callable that is not a pytree node: an Equinox module of bools is callable, but it is a mask (a tree),
    not a function of the params."""
    return callable(x) and jax.tree_util.treedef_is_leaf(jax.tree.structure(x))


def check_schedule(name: str, value: Any) -> None:
    """A hyperparameter that may be a schedule must be a number, a scalar array or a function of the step alone.

    Checked when the transformation is built: a function that cannot take one argument would otherwise fail at
    the first update, inside the compiled step, with Python's own message.
    """
    if not is_function(value):
        return
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):  # a builtin or C function: nothing to read, leave it to the call
        return
    try:
        signature.bind(0)
    except TypeError:
        what = getattr(value, "__qualname__", type(value).__name__)
        raise TypeError(
            f"{name} must be a number or a schedule, a function of one argument (the step count) such as "
            f"optax.linear_schedule(...) or `lambda step: 1e-3`; got {what}{signature}, which cannot be called "
            "with one argument"
        ) from None


def broadcast_prefix(
    spec: Any, tree: Any, mismatch: str, is_leaf=None, names: tuple[str, str] = ("the mask", "the params")
) -> Any:
    """`spec` (a tree like `tree`, or a prefix of one) with each of its values repeated over the leaves of `tree`
    below it: a tree like `tree`. When it is neither, ValueError ``f"{mismatch}; {where they differ}"``."""
    try:
        return jax.tree.map(lambda s, sub: jax.tree.map(lambda _: s, sub), spec, tree, is_leaf=is_leaf)
    except (ValueError, TypeError):
        diff = first_difference(spec, tree, names=names) or "the structures differ"
        raise ValueError(f"{mismatch}; {diff}") from None


def known_zero(value: Any) -> bool:
    """True for a Python or NumPy scalar equal to 0. An array, concrete or traced, may hold anything (under
    ``optax.inject_hyperparams`` it is concrete in ``init`` and traced in ``update``, and both must build the
    same chain)."""
    return is_number(value) and float(value) == 0.0


def check_positive(name: str, value: Any) -> None:
    v = _value(name, value)
    if v is not None and not v > 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def check_leaves(tree: Any, what: str) -> None:
    """Every leaf must be an array (or NumPy scalar) of a numeric dtype; names the first that is not."""
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        dtype = getattr(x, "dtype", None)
        if dtype is None:
            hint = " (wrap it: jnp.asarray(x))" if isinstance(x, numbers.Number) else ""
            raise TypeError(f"{what} at {path_str(path)} is a {type(x).__name__}, not an array{hint}")
        if dtype != jax.dtypes.float0 and not (jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)):
            raise TypeError(f"{what} at {path_str(path)} has dtype {dtype}, not a numeric dtype")


def path_str(path) -> str:
    return jax.tree_util.keystr(tuple(path)) or "<root>"


def first_difference(
    a: Any, b: Any, is_leaf=None, names: tuple[str, str] = ("the first tree", "the second tree")
) -> str | None:
    """Describes where trees `a` and `b` (called `names` in the message) first differ in structure, or None.

    A key that only one of them has is named with the tree that has it (``missing leaf at ['b']: in the params,
    not in the updates``), so a user sees which key to add or drop.
    """
    if jax.tree.structure(a, is_leaf=is_leaf) == jax.tree.structure(b, is_leaf=is_leaf):
        return None
    name_a, name_b = names
    pa = [p for p, _ in jax.tree_util.tree_flatten_with_path(a, is_leaf=is_leaf)[0]]
    pb = [p for p, _ in jax.tree_util.tree_flatten_with_path(b, is_leaf=is_leaf)[0]]
    in_a, in_b = set(pa), set(pb)
    only_a = [p for p in pa if p not in in_b]
    only_b = [p for p in pb if p not in in_a]
    if only_a and not only_b:
        return f"extra leaf at {path_str(only_a[0])}: in {name_a}, not in {name_b}"
    if only_b and not only_a:
        return f"missing leaf at {path_str(only_b[0])}: in {name_b}, not in {name_a}"
    if only_a:
        return f"first difference: {path_str(only_a[0])} in {name_a} where {name_b} have {path_str(only_b[0])}"
    # Same leaf paths, different node types (e.g. tuple vs list, or a NamedTuple vs tuple), or a leaf where the
    # other has a subtree.
    return (
        f"same leaf paths but different container types: "
        f"{jax.tree.structure(a, is_leaf=is_leaf)} vs {jax.tree.structure(b, is_leaf=is_leaf)}"
    )


def _the(what: str) -> str:
    """``"scale_by_ema: updates"`` (which names the stage at the message's start) as ``"the updates"``."""
    noun = what.rsplit(": ", 1)[-1]
    return noun if noun.startswith("the ") else f"the {noun}"


def check_same_tree(got: Any, expected: Any, what_got: str, what_expected: str, *, strict: bool = False) -> None:
    """Raises ValueError naming the first differing path (structure, then shape).

    Unless `strict`, an expected leaf of size 0 (a moment's placeholder for a non-float leaf) matches any shape.
    """
    diff = first_difference(got, expected, names=(_the(what_got), _the(what_expected)))
    if diff is not None:
        raise ValueError(f"{what_got} do not have the tree structure of {what_expected}: {diff}")
    flat_g = jax.tree_util.tree_flatten_with_path(got)[0]
    flat_e = jax.tree.leaves(expected)
    for (path, g), e in zip(flat_g, flat_e):
        gs, es = np.shape(g), np.shape(e)
        if gs != es and (strict or np.size(e) != 0):  # size-0 placeholders stand for non-float leaves
            raise ValueError(f"{what_got} at {path_str(path)} have shape {gs}, {what_expected} have {es}")
