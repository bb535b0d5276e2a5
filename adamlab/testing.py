"""Parity testing as a tool: run two transformations on the same gradients and report where they part.

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

from adamlab._checks import check_same_tree, path_str
from adamlab.base import apply_updates


class LeafError(NamedTuple):
    path: str
    max_abs: float
    max_rel: float


class ParityReport(NamedTuple):
    steps: int
    leaves: list[LeafError]  # errors of the final params, leaf by leaf
    max_rel: float  # the largest of them
    step_max_rel: np.ndarray  # after each step, the largest relative error over all leaves
    first_divergence: int | None  # first step (1-based) whose error exceeded rtol, or None
    rtol: float

    def __str__(self) -> str:
        lines = [f"parity over {self.steps} steps: max rel error {self.max_rel:.3g} (rtol {self.rtol:g}); "
                 + ("never diverged" if self.first_divergence is None
                    else f"first diverged at step {self.first_divergence}")]
        lines += [f"  {e.path}: max abs {e.max_abs:.3g}, max rel {e.max_rel:.3g}" for e in self.leaves]
        return "\n".join(lines)


def gradient_stream(params: Any, steps: int, seed: int = 0, scale: float = 1.0) -> Any:
    """Fresh normal gradients for every step: a tree like `params` with a leading axis of `steps` (complex normal
    for complex leaves)."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), max(len(leaves), 1))
    out = [
        scale * jax.random.normal(k, (steps, *jnp.shape(p)), _normal_dtype(p)).astype(jnp.result_type(p))
        for k, p in zip(keys, leaves)
    ]
    return jax.tree.unflatten(treedef, out)


def _normal_dtype(p):
    return jnp.complex64 if jnp.iscomplexobj(p) else jnp.float32


def _leaf_errors(a, b):
    def err(x, y):
        wide = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
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
    """Applies `tx` for every step of the stream `grads`; returns the final params.

    With `reference` (another transformation), runs both side by side and
    also returns the per-step maximum relative error between their params.
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
    """Per-leaf max absolute and relative error of `actual` against `expected` (any array types)."""
    check_same_tree(actual, expected, "actual", "expected")
    out = []
    for (path, a), e in zip(jax.tree_util.tree_flatten_with_path(actual)[0], jax.tree.leaves(expected)):
        wide = np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(e) else np.float64
        a, e = np.asarray(a, wide), np.asarray(e, wide)
        abs_err = float(np.max(np.abs(a - e))) if a.size else 0.0
        ref = float(np.max(np.abs(e))) if e.size else 0.0
        out.append(LeafError(path_str(path), abs_err, abs_err / max(ref, np.finfo(np.float64).tiny)))
    return out


def compare(tx_a, tx_b, params: Any, *, steps: int = 300, seed: int = 0, grads: Any = None,
            rtol: float = 1e-6, jit: bool = True) -> ParityReport:
    """Runs `tx_a` and `tx_b` from the same `params` on the same gradients and reports their differences.

    `grads` is a stream (a tree like `params` with a leading step axis); by
    default `steps` fresh normal gradients are drawn from `seed`.
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
    """`compare`, raising AssertionError with the report when any leaf's final error exceeds `rtol`."""
    report = compare(tx_a, tx_b, params, rtol=rtol, **kwargs)
    if report.max_rel > rtol:
        raise AssertionError(str(report))
    return report


def assert_bitwise_equal(actual: Any, expected: Any) -> None:
    """Raises AssertionError naming the first leaf whose bits differ."""
    check_same_tree(actual, expected, "actual", "expected")
    for (path, a), e in zip(jax.tree_util.tree_flatten_with_path(actual)[0], jax.tree.leaves(expected)):
        a, e = np.asarray(a), np.asarray(e)
        if a.dtype != e.dtype or a.shape != e.shape or a.tobytes() != e.tobytes():
            diff = np.max(np.abs(a.astype(np.float64) - e.astype(np.float64)), initial=0) if a.shape == e.shape else "-"
            raise AssertionError(
                f"leaf {path_str(path)} differs: {a.dtype}{a.shape} vs {e.dtype}{e.shape}, max abs diff {diff}"
            )
