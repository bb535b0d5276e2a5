"""Parity testing as a tool: run two transformations on the same gradients and report where they part.

Typical use, in a test suite or a notebook::

    report = adamlab.testing.compare(adamlab.adamw(1e-3), optax.adamw(1e-3), params, steps=300)
    print(report)                       # per-leaf max abs/rel error, first diverging step
    adamlab.testing.assert_parity(adamlab.adamw(1e-3), optax.adamw(1e-3), params, rtol=1e-6)

The relative error of a leaf is ``max|a - b| / max|b|`` (normwise, so that
elements crossing zero do not dominate it).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from adamlab._checks import check_same_tree, path_str
from adamlab._hosts import place, to_host
from adamlab.base import apply_updates

__all__ = [
    "LeafError",
    "ParityReport",
    "assert_bitwise_equal",
    "assert_parity",
    "compare",
    "compare_trees",
    "gradient_stream",
    "run",
]


class LeafError(NamedTuple):
    """The error of one leaf of a tree against a reference, as :func:`adamlab.testing.compare_trees` reports it.

    ::

        max_abs = max |actual - expected|
        max_rel = max_abs / max |expected|          (normwise; the denominator is floored at the tiniest float64)

    Args:
      path: The leaf's path in the tree, as a string such as ``"['dense']['w']"``.
      max_abs: The largest absolute elementwise difference, a Python float (0.0 for a zero-size leaf).
      max_rel: ``max_abs`` divided by the largest magnitude of the expected leaf, a Python float.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> [err] = adamlab.testing.compare_trees({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([1.0, 2.5])})
      >>> print(err.path, err.max_abs, err.max_rel)
      ['a'] 0.5 0.2
    """

    path: str
    max_abs: float
    max_rel: float


class ParityReport(NamedTuple):
    """The result of :func:`adamlab.testing.compare`: how far two transformations' params drifted apart.

    ``str(report)`` gives a readable summary: the largest error, the first diverging step, and one line per
    leaf.

    Args:
      steps: The number of steps run, an int.
      leaves: The errors of the final params, one :class:`adamlab.testing.LeafError` per leaf in tree order.
      max_rel: The largest ``max_rel`` of ``leaves`` (0.0 for a tree without leaves), a Python float.
      step_max_rel: After each step, the largest relative error over all leaves: a float32 NumPy array of
        shape ``(steps,)``.
      first_divergence: The first step (1-based) whose entry in ``step_max_rel`` exceeded ``rtol``, or None
        when none did.
      rtol: The tolerance the report was made with, a float.

    Example:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import adamlab
      >>> params = {"w": jnp.ones((2, 2))}
      >>> report = adamlab.testing.compare(adamlab.sgd(0.1), optax.sgd(0.1), params, steps=3)
      >>> print(report.steps, report.step_max_rel.shape, report.first_divergence, report.leaves[0].path)
      3 (3,) None ['w']
    """

    steps: int
    leaves: list[LeafError]
    max_rel: float
    step_max_rel: np.ndarray
    first_divergence: int | None
    rtol: float

    def __str__(self) -> str:
        lines = [
            f"parity over {self.steps} steps: max rel error {self.max_rel:.3g} (rtol {self.rtol:g}); "
            + ("never diverged" if self.first_divergence is None else f"first diverged at step {self.first_divergence}")
        ]
        lines += [f"  {e.path}: max abs {e.max_abs:.3g}, max rel {e.max_rel:.3g}" for e in self.leaves]
        return "\n".join(lines)


def gradient_stream(params: Any, steps: int, seed: int = 0, scale: float = 1.0) -> Any:
    """Returns fresh normal gradients for every step: a tree like ``params`` with a leading axis of ``steps``.

    ::

        grads[leaf][i] ~ scale * N(0, 1)      i = 0 .. steps - 1   (complex normal for complex leaves)

    Each leaf draws from its own key split from ``seed``; the draw is made in float32 (complex64) and cast
    to the leaf's dtype. A param placed with a `jax.sharding.NamedSharding` gets its gradients placed like it
    (split the same way, the step axis whole), also when the mesh spans several processes.

    Feed the result to :func:`adamlab.testing.run` or as ``grads=`` to
    :func:`adamlab.testing.compare`.

    Args:
      params: A tree of arrays giving the structure, shapes and dtypes of the gradients.
      steps: The number of steps, the length of the leading axis, ``>= 0``.
      seed: The integer seed of ``jax.random.PRNGKey``. Default 0.
      scale: The standard deviation of the gradients. Default 1.0.

    Returns:
      A tree like ``params`` whose leaf of shape ``s`` has shape ``(steps, *s)`` and the leaf's dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> grads = adamlab.testing.gradient_stream({"w": jnp.ones((2, 3), jnp.bfloat16)}, steps=5, seed=1)
      >>> print(grads["w"].shape, grads["w"].dtype)
      (5, 2, 3) bfloat16
    """
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), max(len(leaves), 1))
    out = [
        scale * jax.random.normal(k, (steps, *jnp.shape(p)), _normal_dtype(p)).astype(jnp.result_type(p))
        for k, p in zip(keys, leaves)
    ]
    return jax.tree.unflatten(treedef, [_like_param(g, p) for g, p in zip(out, leaves)])


def _like_param(g, p):
    sharding = getattr(p, "sharding", None)
    if not isinstance(sharding, NamedSharding):
        return g
    return place(g, NamedSharding(sharding.mesh, PartitionSpec(None, *sharding.spec)))


def _normal_dtype(p):
    return jnp.complex64 if jnp.iscomplexobj(p) else jnp.float32


def _leaf_errors(a, b):
    def err(x, y):
        wide = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
        x = jnp.asarray(x, jnp.result_type(wide, jnp.complex64) if jnp.iscomplexobj(x) else wide)
        y = jnp.asarray(y, x.dtype)
        real = jnp.finfo(x.dtype).dtype
        abs_err = jnp.max(jnp.abs(x - y)) if x.size else jnp.zeros((), real)
        ref = jnp.max(jnp.abs(y)) if y.size else jnp.zeros((), real)
        return abs_err, abs_err / jnp.maximum(ref, jnp.finfo(abs_err.dtype).tiny)

    return jax.tree.map(err, a, b)


def _max_rel(a, b):
    errs = jax.tree.leaves(_leaf_errors(a, b))
    return jnp.max(jnp.stack([e for e in errs[1::2]])) if errs else jnp.zeros(())


def run(tx, params: Any, grads: Any, *, jit: bool = True, reference: Any = None):
    """Applies ``tx`` for every step of the gradient stream ``grads``; returns the final params.

    ::

        state = tx.init(params)
        for g in grads (along the leading axis):
            updates, state = tx.update(g, state, params)
            params = apply_updates(params, updates)

    With ``reference`` (another transformation), runs both side by side from the same params on the same
    gradients and also records, after every step, the largest relative error ``max|a - b| / max|b|`` over
    the leaves of the two params.

    Args:
      tx: The transformation to run: an adamlab :class:`adamlab.GradientTransformation` or an
        ``optax.GradientTransformation``.
      params: The initial params, a tree of arrays.
      grads: The gradient stream: a tree like ``params`` whose leaves have a leading step axis, as made by
        :func:`adamlab.testing.gradient_stream`.
      jit: Whether to run all steps as one jitted ``jax.lax.scan``. Default True. False runs the steps one
        by one eagerly (slower; useful to test eager code paths or to debug).
      reference: Another transformation to run beside ``tx``, or None (the default) to run ``tx`` alone.

    Returns:
      Without ``reference``, the final params of ``tx``. With it, a tuple ``(params, reference_params,
      step_max_rel)``, where ``step_max_rel`` is a NumPy array of shape ``(steps,)``: after each step, the
      largest relative error of ``tx``'s params against ``reference``'s.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> params = {"w": jnp.zeros(2)}
      >>> grads = {"w": jnp.ones((3, 2))}  # three steps of gradient 1
      >>> print(adamlab.testing.run(adamlab.sgd(0.1), params, grads)["w"])
      [-0.3 -0.3]
    """
    steps = jax.tree.leaves(grads)[0].shape[0] if jax.tree.leaves(grads) else 0

    def step(carry, g):
        p, s, rp, rs = carry
        u, s = tx.update(g, s, p)
        p = apply_updates(p, u)
        if reference is None:
            return (p, s, rp, rs), jnp.zeros(())
        ru, rs = reference.update(g, rs, rp)
        rp = apply_updates(rp, ru)
        return (p, s, rp, rs), _max_rel(p, rp)

    carry = (params, tx.init(params), params, reference.init(params) if reference is not None else ())
    if jit:
        carry, rel = jax.jit(lambda c, gs: jax.lax.scan(step, c, gs))(carry, grads)
    else:
        rel = []
        for i in range(steps):
            g = jax.tree.map(lambda x, i=i: x[i], grads)
            p, s, rp, rs = carry
            u, s = tx.update(g, s, p)
            p = apply_updates(p, u)
            if reference is not None:
                ru, rs = reference.update(g, rs, rp)
                rp = apply_updates(rp, ru)
                # NumPy here: op-by-op dispatch of the error reduction would cost more than the step
                rel.append(max((e.max_rel for e in compare_trees(p, rp)), default=0.0))
            carry = (p, s, rp, rs)
        rel = np.asarray(rel, np.float32)
    return (carry[0], carry[2], np.asarray(rel)) if reference is not None else carry[0]


def compare_trees(actual: Any, expected: Any) -> list[LeafError]:
    """Returns the per-leaf max absolute and relative error of ``actual`` against ``expected``.

    ::

        max_abs = max |actual - expected|
        max_rel = max_abs / max |expected|          per leaf, computed in float64 (complex128) with NumPy

    Args:
      actual: A tree of arrays (JAX or NumPy, any dtype).
      expected: The reference, a tree of the same structure and leaf shapes.

    Returns:
      A list with one :class:`adamlab.testing.LeafError` per leaf, in tree order.

    Raises:
      ValueError: If the two trees differ in structure or in a leaf's shape.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> errs = adamlab.testing.compare_trees({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([1.0, 2.5])})
      >>> print(errs[0].max_abs, errs[0].max_rel)
      0.5 0.2
    """
    check_same_tree(actual, expected, "actual", "expected")
    out = []
    for (path, a), e in zip(jax.tree_util.tree_flatten_with_path(actual)[0], jax.tree.leaves(expected)):
        wide = np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(e) else np.float64
        a, e = to_host(a).astype(wide), to_host(e).astype(wide)
        abs_err = float(np.max(np.abs(a - e))) if a.size else 0.0
        ref = float(np.max(np.abs(e))) if e.size else 0.0
        out.append(LeafError(path_str(path), abs_err, abs_err / max(ref, np.finfo(np.float64).tiny)))
    return out


def compare(
    tx_a, tx_b, params: Any, *, steps: int = 300, seed: int = 0, grads: Any = None, rtol: float = 1e-6, jit: bool = True
) -> ParityReport:
    """Runs ``tx_a`` and ``tx_b`` from the same ``params`` on the same gradients and reports their differences.

    Both transformations see the same gradient at every step (and each its own params), so the report
    measures how the two implementations drift apart over ``steps`` steps. The relative error of a leaf is
    ``max|a - b| / max|b|``: ``tx_b`` is the reference.

    Args:
      tx_a: The transformation under test (e.g. an adamlab optimizer).
      tx_b: The reference transformation (e.g. the Optax one).
      params: The initial params, a tree of arrays.
      steps: The number of steps when ``grads`` is None. Default 300.
      seed: The seed of the generated gradients when ``grads`` is None. Default 0.
      grads: A gradient stream (a tree like ``params`` with a leading step axis) to use instead of fresh
        normal gradients; its length then sets the number of steps. Default None: ``steps`` gradients from
        :func:`adamlab.testing.gradient_stream` with ``seed``.
      rtol: The relative tolerance against which ``first_divergence`` is found. Default 1e-6.
      jit: Whether to run the steps as one jitted scan (see :func:`adamlab.testing.run`). Default True.

    Returns:
      A :class:`adamlab.testing.ParityReport`.

    Raises:
      ValueError: If the two transformations' params end up with different tree structures.

    Example:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import adamlab
      >>> params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
      >>> report = adamlab.testing.compare(adamlab.adamw(1e-2), optax.adamw(1e-2), params, steps=5)
      >>> print(report.max_rel <= 1e-6, report.first_divergence)
      True None
      >>> report = adamlab.testing.compare(adamlab.adamw(1e-2), optax.adamw(1e-2, b1=0.8), params, steps=5)
      >>> print(report)
      parity over 5 steps: max rel error ... (rtol 1e-06); first diverged at step 2
        ['b']: max abs ..., max rel ...
        ['w']: max abs ..., max rel ...
    """
    if grads is None:
        grads = gradient_stream(params, steps, seed)
    pa, pb, rel = run(tx_a, params, grads, jit=jit, reference=tx_b)
    leaves = compare_trees(pa, pb)
    over = np.nonzero(rel > rtol)[0]
    return ParityReport(
        steps=len(rel),
        leaves=leaves,
        max_rel=max((e.max_rel for e in leaves), default=0.0),
        step_max_rel=rel,
        first_divergence=int(over[0]) + 1 if over.size else None,
        rtol=rtol,
    )


def assert_parity(tx_a, tx_b, params: Any, *, rtol: float = 1e-6, **kwargs) -> ParityReport:
    """Runs :func:`adamlab.testing.compare` and raises AssertionError when any leaf's final error exceeds ``rtol``.

    Only the final params are judged (``report.max_rel > rtol``): a transient divergence that later shrinks
    below ``rtol`` is recorded in ``report.first_divergence`` but does not fail.

    Args:
      tx_a: The transformation under test.
      tx_b: The reference transformation.
      params: The initial params, a tree of arrays.
      rtol: The largest relative error allowed in the final params, per leaf. Default 1e-6.
      **kwargs: Passed on to :func:`adamlab.testing.compare`: ``steps``, ``seed``, ``grads``, ``jit``.

    Returns:
      The :class:`adamlab.testing.ParityReport`, when the check passes.

    Raises:
      AssertionError: If the final relative error of some leaf exceeds ``rtol``; the message is the
        report.

    Example:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import adamlab
      >>> params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
      >>> report = adamlab.testing.assert_parity(adamlab.adamw(1e-2), optax.adamw(1e-2), params, steps=5)
      >>> print(report.steps)
      5
      >>> adamlab.testing.assert_parity(adamlab.adamw(1e-2), optax.adamw(1e-2, b1=0.8), params, steps=5)
      Traceback (most recent call last):
        ...
      AssertionError: parity over 5 steps: max rel error ... first diverged at step 2
      ...
    """
    report = compare(tx_a, tx_b, params, rtol=rtol, **kwargs)
    if report.max_rel > rtol:
        raise AssertionError(str(report))
    return report


def assert_bitwise_equal(actual: Any, expected: Any) -> None:
    """Checks that two trees are equal bit for bit; raises AssertionError naming the first leaf that differs.

    Leaves must agree in dtype, shape and bytes, so ``0.0`` differs from ``-0.0`` and NaNs with different
    payloads differ, while equal NaNs are equal (unlike ``==``).

    Args:
      actual: A tree of arrays (JAX or NumPy).
      expected: The reference, a tree of the same structure.

    Returns:
      None.

    Raises:
      AssertionError: If a leaf's dtype, shape or bytes differ; the message gives its path, both dtypes
        and shapes, and the largest absolute difference.
      ValueError: If the trees differ in structure or in a leaf's shape.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> adamlab.testing.assert_bitwise_equal({"a": jnp.array([1.0, jnp.nan])}, {"a": jnp.array([1.0, jnp.nan])})
      >>> adamlab.testing.assert_bitwise_equal({"a": jnp.array([0.0])}, {"a": jnp.array([-0.0])})
      Traceback (most recent call last):
        ...
      AssertionError: leaf ['a'] differs: float32(1,) vs float32(1,), max abs diff 0.0
    """
    check_same_tree(actual, expected, "actual", "expected")
    for (path, a), e in zip(jax.tree_util.tree_flatten_with_path(actual)[0], jax.tree.leaves(expected)):
        a, e = to_host(a), to_host(e)
        if a.dtype != e.dtype or a.shape != e.shape or a.tobytes() != e.tobytes():
            diff = np.max(np.abs(a.astype(np.float64) - e.astype(np.float64)), initial=0) if a.shape == e.shape else "-"
            raise AssertionError(
                f"leaf {path_str(path)} differs: {a.dtype}{a.shape} vs {e.dtype}{e.shape}, max abs diff {diff}"
            )
