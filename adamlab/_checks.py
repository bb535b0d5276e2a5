"""Eager validation: hyperparameters and tree structure, with messages that name the problem."""

from __future__ import annotations

import numbers
from typing import Any

import jax
import numpy as np


def is_number(x: Any) -> bool:
    """True for Python and NumPy scalars, whose value is known before tracing."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) or (
        isinstance(x, np.ndarray) and x.ndim == 0
    )


def check_decay(name: str, value: Any) -> None:
    """A decay rate must lie in [0, 1): 1 would never forget, and the bias correction would divide by 0."""
    if is_number(value) and not (0.0 <= float(value) < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def check_nonnegative(name: str, value: Any) -> None:
    if is_number(value) and not float(value) >= 0.0:  # also rejects NaN
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def check_positive(name: str, value: Any) -> None:
    if is_number(value) and not float(value) > 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def path_str(path) -> str:
    return jax.tree_util.keystr(tuple(path)) or "<root>"


def first_difference(a: Any, b: Any, is_leaf=None) -> str | None:
    """Describes the first path where trees `a` and `b` differ in structure, or None."""
    if jax.tree.structure(a, is_leaf=is_leaf) == jax.tree.structure(b, is_leaf=is_leaf):
        return None
    pa = [p for p, _ in jax.tree_util.tree_flatten_with_path(a, is_leaf=is_leaf)[0]]
    pb = [p for p, _ in jax.tree_util.tree_flatten_with_path(b, is_leaf=is_leaf)[0]]
    for x, y in zip(pa, pb):
        if x != y:
            return f"first difference at {path_str(x)} vs {path_str(y)}"
    if len(pa) != len(pb):
        longer, which = (pa, "first") if len(pa) > len(pb) else (pb, "second")
        return f"the {which} tree has an extra leaf at {path_str(longer[min(len(pa), len(pb))])}"
    # Same leaf paths, different node types (e.g. tuple vs list, or a NamedTuple vs tuple).
    return (
        f"same leaf paths but different container types: "
        f"{jax.tree.structure(a, is_leaf=is_leaf)} vs {jax.tree.structure(b, is_leaf=is_leaf)}"
    )


def check_same_tree(got: Any, expected: Any, what_got: str, what_expected: str) -> None:
    """Raises ValueError naming the first differing path (structure, then shape)."""
    diff = first_difference(got, expected)
    if diff is not None:
        raise ValueError(f"{what_got} do not have the tree structure of {what_expected}: {diff}")
    flat_g = jax.tree_util.tree_flatten_with_path(got)[0]
    flat_e = jax.tree.leaves(expected)
    for (path, g), e in zip(flat_g, flat_e):
        gs, es = np.shape(g), np.shape(e)
        if gs != es and np.size(e) != 0:  # size-0 placeholders stand for non-float leaves
            raise ValueError(f"{what_got} at {path_str(path)} have shape {gs}, {what_expected} have {es}")
