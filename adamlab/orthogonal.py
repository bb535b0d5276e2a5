"""Muon: momentum orthogonalized by a Newton-Schulz iteration for the matrices, AdamW for every other leaf.

Muon (Jordan et al., 2024) keeps a momentum ``m`` per matrix and steps along an (approximately)
orthogonalized ``m``: the polar factor ``U V^T`` of ``m = U S V^T``, which has every singular value near 1.
The polar factor is approximated by a few steps of a quintic Newton-Schulz iteration, whose coefficients
are tuned to push small singular values up fast rather than to converge exactly::

    A = X X^T,   X <- a X + (b A + c A A) X          (5 steps of (a, b, c) = (3.4445, -4.7750, 2.0315))

Leaves that are not matrices (biases, scales, scalars) go through AdamW instead.

Everything here is Optax 0.2.8's ``optax.contrib`` Muon (``muon``, ``scale_by_muon``, ``scale_by_shape``,
``orthogonalize_via_newton_schulz``, ``MuonDimensionNumbers``), with Optax's argument names, order and
defaults, built from adamlab's primitives: :func:`adamlab.scale_by_ema` and :func:`adamlab.bias_correct`
for the momentum, a stateless Newton-Schulz stage, :func:`adamlab.add_decoupled_weight_decay`,
:func:`adamlab.scale_by_learning_rate`, :func:`adamlab.adamw` for the other leaves and
:func:`adamlab.partition` for the split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks
from adamlab.base import GradientTransformation, chain, identity, init_empty, stage
from adamlab.decay import Mask, add_decoupled_weight_decay
from adamlab.flat import require_leaf_shapes
from adamlab.groups import partition
from adamlab.moments import bias_correct, scale_by_ema
from adamlab.optimizers import _moment_dtypes, adam, adamw
from adamlab.scaling import ScalarOrSchedule, scale_by_learning_rate
from adamlab.tree import has_gradient

__all__ = [
    "MuonDimensionNumbers",
    "muon",
    "orthogonalize_via_newton_schulz",
    "scale_by_muon",
    "scale_by_shape",
]

# Keller Jordan's coefficients: the steepest slope at 0 that still keeps the iteration in a band around 1.
_STANDARD = (3.4445, -4.7750, 2.0315)
# Ahn et al.'s (Dion) five steps, one (a, b, c) per step.
_DION = (
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)
_PRESETS = {"standard": _STANDARD, "dion": _DION}
_PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")
# The AOL and Schatten first steps floor their rescaling at this constant, not at `eps` (as Optax does).
_FIRST_STEP_EPS = 1e-8


class MuonDimensionNumbers(NamedTuple):
    """Which axes of a weight form the matrix that Muon orthogonalizes; every other axis is a batch axis.

    A weight ``W`` used as ``y = x W`` reduces over its ``reduction_axis`` (the rows, fan-in) and produces its
    ``output_axis`` (the columns, fan-out). For a weight of higher rank, the reduction axes are flattened into
    the rows, the output axes into the columns, and the remaining axes index independent matrices, each
    orthogonalized on its own. Optax: ``optax.contrib.MuonDimensionNumbers`` (an instance of Optax's class is
    accepted too).

    Args:
        reduction_axis: The axis (or axes) flattened into the rows. Default 0.
        output_axis: The axis (or axes) flattened into the columns. Default 1.

    Example:
        >>> from adamlab.orthogonal import MuonDimensionNumbers
        >>> MuonDimensionNumbers(reduction_axis=(0, 1), output_axis=2)
        MuonDimensionNumbers(reduction_axis=(0, 1), output_axis=2)
    """

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


WeightDimensionNumbers = Any  # MuonDimensionNumbers, a tree (or prefix) of them and None, or params -> such a tree


def _is_dims(x) -> bool:
    """A dimension spec, adamlab's or Optax's (any NamedTuple with the two fields)."""
    return isinstance(x, tuple) and hasattr(x, "reduction_axis") and hasattr(x, "output_axis")


def _axes(x, dims) -> tuple[tuple[int, ...], tuple[int, ...]]:
    def norm(axes):
        return tuple(a % x.ndim for a in ((axes,) if isinstance(axes, int) else axes))

    return norm(dims.reduction_axis), norm(dims.output_axis)


def _fans(x, dims) -> tuple[int, int]:
    if x.ndim < 2:
        raise ValueError(f"scale_by_shape scales weights of rank >= 2, got one of shape {x.shape}")
    rows, cols = _axes(x, dims)
    return math.prod(x.shape[a] for a in rows), math.prod(x.shape[a] for a in cols)


def _as_matrices(x, dims) -> tuple[jax.Array, Callable[[jax.Array], jax.Array]]:
    """`x` as a stack ``(batch, rows, cols)`` of matrices, and the function that puts such a stack back."""
    if x.ndim < 2:
        raise ValueError(f"Muon orthogonalizes weights of rank >= 2, got one of shape {x.shape}")
    rows, cols = _axes(x, dims)
    if set(rows) & set(cols):
        raise ValueError(f"the reduction axes {rows} and output axes {cols} of {dims} overlap for shape {x.shape}")
    batch = tuple(a for a in range(x.ndim) if a not in rows and a not in cols)
    order = batch + rows + cols
    moved = tuple(x.shape[a] for a in order)
    stacked = x.transpose(order).reshape(
        math.prod(x.shape[a] for a in batch), math.prod(x.shape[a] for a in rows), math.prod(x.shape[a] for a in cols)
    )
    back = tuple(np.argsort(order))
    return stacked, lambda y: y.reshape(moved).transpose(back)


def _coefficient_rows(ns_coeffs, ns_steps: int) -> np.ndarray:
    """The ``(a, b, c)`` of every Newton-Schulz step, one row per step, in float64 (rounded per leaf later)."""
    coeffs = np.asarray(ns_coeffs, np.float64)
    if coeffs.ndim not in (1, 2) or coeffs.shape[-1] != 3:
        raise ValueError(f"ns_coeffs must have shape (3,) or (n, 3), got {coeffs.shape}")
    return np.tile(coeffs, (ns_steps, 1)) if coeffs.ndim == 1 else coeffs


def _newton_schulz_step(x, a, b, c):
    """``a X + (b A + c A A) X`` with ``A = X X^H``; the brackets are Optax's (``c A`` first, then ``@ A``)."""
    gram = x @ x.T.conj()
    return a * x + (b * gram + c * gram @ gram) @ x


def _aol_first_step(x, a, b, c):
    """The first step on ``S X``, ``S = diag(1 / sqrt(sum_j |A_ij|))``: every singular value of ``S X`` is <= 1
    (Boissin et al.), so no norm is needed beforehand; ``A`` is rescaled as ``S A S`` rather than recomputed."""
    gram = x @ x.T.conj()
    s = jax.lax.rsqrt(jnp.clip(jnp.abs(gram).sum(axis=-1), min=_FIRST_STEP_EPS))[:, None]
    x, gram = x * s, gram * s * s.T
    return a * x + (b * gram + c * gram @ gram) @ x


def _schatten_first_step(x, a, b, c):
    """The first step on ``X / ||X||_S4``, ``||X||_S4 = sqrt(||A||_F)`` (the Schatten-4 norm, >= the spectral norm;
    Grishina et al.). Optax multiplies by ``X X^T`` here, without the conjugate."""
    gram = x @ x.T
    s = jax.lax.rsqrt(jnp.clip(jnp.linalg.norm(gram, ord="fro", axis=(-2, -1)), min=_FIRST_STEP_EPS))
    s = jnp.reshape(s, (1, 1))
    x, gram = x * s, gram * s**2
    return a * x + (b * gram + c * gram @ gram) @ x


def _orthogonalize_matrix(x, rows: np.ndarray, preconditioning: str, eps):
    """Newton-Schulz on one matrix, run on the wide orientation (``X X^T`` is the smaller Gram matrix) since
    the iteration commutes with transposition."""
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    if preconditioning == "frobenius":
        x = x / (jnp.linalg.norm(x, ord="fro") + eps)
    elif preconditioning == "spectral":
        x = x / (jnp.linalg.norm(x, ord=2) + eps)
    for i, (a, b, c) in enumerate(jnp.asarray(rows, x.dtype)):
        if i == 0 and preconditioning == "aol":
            x = _aol_first_step(x, a, b, c)
        elif i == 0 and preconditioning == "schatten":
            x = _schatten_first_step(x, a, b, c)
        else:
            x = _newton_schulz_step(x, a, b, c)
    return x.T if tall else x


def _check_preconditioning(preconditioning) -> None:
    if preconditioning not in _PRECONDITIONINGS:
        raise ValueError(
            f"preconditioning must be one of {', '.join(map(repr, _PRECONDITIONINGS))}, got {preconditioning!r}"
        )


def orthogonalize_via_newton_schulz(
    x: jax.Array,
    ns_coeffs,
    ns_steps: int = 5,
    preconditioning: str = "frobenius",
    eps: float = 1e-8,
    dimension_numbers: MuonDimensionNumbers | None = None,
) -> jax.Array:
    """Approximately orthogonalizes a matrix (``G = U S V^T -> U S' V^T``, ``S'`` near 1) by Newton-Schulz steps.

    ::

        X_0 = G^T if G has more rows than columns, else G      (the iteration commutes with transposition)
        X_0 <- X_0 / (||X_0||_F + eps)                          (preconditioning="frobenius")
              X_0 / (||X_0||_2 + eps)                           ("spectral": the largest singular value, an SVD)
        A_k = X_k X_k^H,   X_{k+1} = a_k X_k + (b_k A_k + c_k A_k A_k) X_k      (k = 0 .. n-1)
        ("aol", "schatten": no rescaling before; the first step rescales X_0 itself, see below)
        output: X_n (transposed back)

    With the default coefficients ``(3.4445, -4.7750, 2.0315)`` (the slope at 0 is 3.4445: small singular
    values grow fast) five steps map every singular value above ``0.002 * ||G||_F`` into ``[0.68, 1.21]``
    rather than onto 1, which Jordan found trains as well as the exact polar factor. ``"aol"`` starts with
    ``X_0 = D X`` where ``D = diag(sum_j |A_ij|)^(-1/2)`` (Boissin et al.'s almost-orthogonal rescaling),
    ``"schatten"`` with ``X_0 = X / sqrt(||A||_F)`` (the Schatten-4 norm; Grishina et al.). A weight of rank
    > 2 is orthogonalized as the stack of matrices that `dimension_numbers` describes. A pure function of
    its input, computed in its dtype. Optax: ``optax.contrib._muon.orthogonalize_via_newton_schulz``, whose
    arithmetic this follows in its order.

    Args:
        x: The matrix (or, with `dimension_numbers`, the weight of rank >= 2) to orthogonalize.
        ns_coeffs: The coefficients ``(a, b, c)`` of every step, shape ``(3,)``, or one row per step, shape
            ``(n, 3)`` (then `ns_steps` is ignored). An array or nested tuples. Optax: ``ns_coeffs``.
        ns_steps: The number of steps with coefficients of shape ``(3,)``, an int >= 0. Default 5.
        preconditioning: ``"frobenius"`` (default), ``"spectral"``, ``"aol"`` or ``"schatten"`` (above).
        eps: Added to the norm that ``"frobenius"`` and ``"spectral"`` divide by. Default 1e-8. (``"aol"`` and
            ``"schatten"`` floor their first step's rescaling at 1e-8 whatever `eps` is, as Optax does.)
        dimension_numbers: For a weight of rank > 2, a :class:`MuonDimensionNumbers` saying which axes are the
            rows and the columns; the other axes index independent matrices. Ignored for a 2-D `x` (always
            rows = axis 0), as in Optax. Default None.

    Returns:
        An array of `x`'s shape and dtype.

    Raises:
        ValueError: If `x` is not 2-D and `dimension_numbers` is None, or its axes overlap; if `ns_coeffs` has
            another shape than ``(3,)`` or ``(n, 3)``; if `ns_steps` is negative; if `preconditioning` is not
            one of the four.

    References:
        Jordan et al., *Muon: An optimizer for hidden layers in neural networks*, 2024,
        https://kellerjordan.github.io/posts/muon/.

        Boissin et al., *Turbo-Muon: Accelerating Orthogonality-Based Optimization with Pre-Conditioning*,
        2025 (``"aol"``). Grishina et al., *Accelerating Newton-Schulz Iteration for Orthogonalization via
        Chebyshev-type Polynomials*, 2025 (``"schatten"``).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from adamlab.orthogonal import orthogonalize_via_newton_schulz
        >>> g = jax.random.normal(jax.random.PRNGKey(0), (8, 4))
        >>> o = orthogonalize_via_newton_schulz(g, jnp.array([3.4445, -4.7750, 2.0315]))
        >>> s = jnp.linalg.svd(o, compute_uv=False)
        >>> print(o.shape, bool(s.min() > 0.6), bool(s.max() < 1.25))
        (8, 4) True True
    """
    _check_ns_steps(ns_steps)
    _check_preconditioning(preconditioning)
    rows = _coefficient_rows(ns_coeffs, ns_steps)
    x = jnp.asarray(x)
    if x.ndim != 2 and not _is_dims(dimension_numbers):
        raise ValueError(
            f"orthogonalize_via_newton_schulz takes a matrix, or dimension_numbers for a weight of another rank; "
            f"got shape {x.shape} and dimension_numbers={dimension_numbers!r}"
        )
    dims = MuonDimensionNumbers() if x.ndim == 2 else dimension_numbers
    stacked, back = _as_matrices(x, dims)
    # vmap over the stack (one matrix for a 2-D weight), as Optax does: same batched products, same bits.
    return back(jax.vmap(lambda m: _orthogonalize_matrix(m, rows, preconditioning, eps))(stacked))


def _check_ns_steps(ns_steps) -> None:
    if isinstance(ns_steps, bool) or not isinstance(ns_steps, (int, np.integer)):
        raise TypeError(
            f"ns_steps must be a Python int (the number of Newton-Schulz steps), got {ns_steps!r}; under "
            "optax.inject_hyperparams, name it in static_args=('ns_steps',)"
        )
    if ns_steps < 0:
        raise ValueError(f"ns_steps must be >= 0, got {ns_steps}")


def _dims_per_leaf(spec, tree) -> list:
    """One dimension spec (or None) per leaf of `tree`, from a spec, a tree or prefix of specs, or a function.

    None for the whole `spec` means every leaf is a matrix with the default axes.
    """
    if spec is None:
        return [MuonDimensionNumbers()] * len(jax.tree.leaves(tree))
    if _checks.is_function(spec):
        spec = spec(tree)
    is_spec = lambda s: s is None or _is_dims(s)  # noqa: E731
    full = _checks.broadcast_prefix(
        spec,
        tree,
        "weight_dimension_numbers does not match the params: it must have their tree structure or a prefix of it",
        is_leaf=is_spec,
        names=("the dimension numbers", "the params"),
    )
    return jax.tree.leaves(full, is_leaf=is_spec)


def _per_leaf_with_dims(name: str, spec, fn) -> GradientTransformation:
    """A stateless stage applying ``fn(u, dims)`` to every float leaf of the updates, `dims` read from `spec`."""

    def update(updates, state, params=None, **extra):
        del params, extra
        require_leaf_shapes(updates, name)  # a packed bucket of the flat layout has lost its matrices' shapes
        leaves, treedef = jax.tree.flatten(updates)
        dims = _dims_per_leaf(spec, updates)
        out = [
            fn(u, d if d is not None else MuonDimensionNumbers()) if has_gradient(u) else u
            for u, d in zip(leaves, dims)
        ]
        return jax.tree.unflatten(treedef, out), state

    return stage(name, init_empty, update, role="direction")


def _newton_schulz(rows: np.ndarray, preconditioning: str, eps, adaptive: bool, spec) -> GradientTransformation:
    def one(u, dims):
        o = orthogonalize_via_newton_schulz(u, rows, len(rows), preconditioning, eps, dims)
        # Bernstein & Newhouse's dual-norm scaling: <m_hat, O> O.
        return jnp.sum(u.conj() * o) * o if adaptive else o

    return _per_leaf_with_dims("newton_schulz", spec, one)


def scale_by_muon(
    ns_coeffs=_STANDARD,
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    mu_dtype=None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    weight_dimension_numbers: WeightDimensionNumbers = None,
) -> GradientTransformation:
    """Muon's direction: the (Nesterov) momentum of each matrix, bias-corrected and orthogonalized.

    ::

        m_t   = beta * m_{t-1} + (1 - beta) * g_t                                 (m_0 = 0)
        m_hat = beta * m_t / (1 - beta**(t+1)) + (1 - beta) * g_t / (1 - beta**t)  (nesterov=True)
                m_t / (1 - beta**t)                                                (nesterov=False)
        out   = NS(m_hat)          (orthogonalize_via_newton_schulz, per matrix)
        adaptive:  out <- <m_hat, out> * out          (the dual norm of m_hat times the direction)

    Built as ``chain(scale_by_ema(beta, state_dtype=mu_dtype), bias_correct(beta, nesterov=nesterov),
    <a stateless Newton-Schulz stage>)``: the momentum and its correction are exactly NAdam's (or Adam's) first
    moment. Every float leaf must be a matrix, or be described by `weight_dimension_numbers`: use
    :func:`muon` for a whole model. Optax: ``optax.contrib.scale_by_muon``, bit for bit (see
    ``tests/test_muon.py``).

    Args:
        ns_coeffs: The Newton-Schulz coefficients ``(a, b, c)``, or one row per step (at most `ns_steps` rows,
            as Optax requires). Default ``(3.4445, -4.7750, 2.0315)``. Optax: ``ns_coeffs``.
        ns_steps: The number of Newton-Schulz steps (ignored with one row of coefficients per step), an
            int >= 0. Default 5. Optax: ``ns_steps``.
        beta: The momentum's decay in ``[0, 1)``. Default 0.95. Optax: ``beta``; PyTorch (Jordan's
            ``Muon``): ``momentum``.
        eps: Added to the Frobenius (or spectral) norm before the first step. Default 1e-8. Optax: ``eps``.
        mu_dtype: Storage dtype of ``m`` (see :func:`adamlab.scale_by_ema`'s `state_dtype`; arithmetic stays
            float32). Default None: float32, or the param's dtype when wider. Optax: ``mu_dtype`` (whose None
            is the param's dtype).
        nesterov: Nesterov's look-ahead (the default, True) or the plain corrected momentum. Optax:
            ``nesterov``.
        adaptive: Scale the direction by ``<m_hat, NS(m_hat)>`` (Bernstein & Newhouse's dual norm). Default
            False. Optax: ``adaptive``.
        preconditioning: How the momentum is brought into the iteration's range: ``"frobenius"`` (default),
            ``"spectral"``, ``"aol"`` or ``"schatten"`` (see :func:`orthogonalize_via_newton_schulz`). Optax:
            ``preconditioning``.
        weight_dimension_numbers: None (default: every leaf is a matrix, rows = axis 0), a
            :class:`MuonDimensionNumbers` for every leaf, a tree (or prefix) of them like the params, or a
            function ``params -> such a tree``. Optax: ``weight_dimension_numbers``.

    Returns:
        A :class:`adamlab.GradientTransformation` whose state is ``(EmaState(moment=m), CountState(count=t),
        EmptyState())`` (Optax's is one ``MuonState(count, mu, ns_coeffs)``; the coefficients are constants
        here).

    Raises:
        ValueError: If `beta` is outside ``[0, 1)``, `eps` negative, `ns_steps` negative, `ns_coeffs` of
            another shape than ``(3,)`` or ``(n, 3)`` or with more rows than `ns_steps`, or `preconditioning`
            unknown; in ``update``, if a leaf is not a matrix and has no dimension numbers.
        TypeError: If `ns_steps` is not an int, `nesterov` or `adaptive` not a bool.

    References:
        Jordan et al., *Muon: An optimizer for hidden layers in neural networks*, 2024,
        https://kellerjordan.github.io/posts/muon/.

        Bernstein & Newhouse, *Old Optimizer, New Norm: An Anthology*, 2024 (`adaptive`).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from adamlab.orthogonal import scale_by_muon
        >>> tx = scale_by_muon()
        >>> params = {"w": jnp.zeros((6, 3))}
        >>> updates, state = tx.update({"w": jax.random.normal(jax.random.PRNGKey(0), (6, 3))}, tx.init(params))
        >>> s = jnp.linalg.svd(updates["w"], compute_uv=False)
        >>> print(bool(jnp.all((s > 0.6) & (s < 1.25))), state[1].count)
        True 1
    """
    rows = _rows_for(ns_coeffs, ns_steps)
    _checks.check_decay("beta", beta)
    _checks.check_nonnegative("eps", eps)
    _check_preconditioning(preconditioning)
    for name, flag in (("nesterov", nesterov), ("adaptive", adaptive)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    return chain(
        scale_by_ema(beta, state_dtype=mu_dtype),
        bias_correct(beta, nesterov=nesterov),
        _newton_schulz(rows, preconditioning, eps, adaptive, weight_dimension_numbers),
        name="scale_by_muon",
    )


def _rows_for(ns_coeffs, ns_steps) -> np.ndarray:
    """The coefficient rows of `scale_by_muon`: a preset's or the given ones, checked against `ns_steps`."""
    _check_ns_steps(ns_steps)
    if isinstance(ns_coeffs, str):
        if ns_coeffs not in _PRESETS:
            raise ValueError(
                f"ns_coeffs must be a preset ({', '.join(map(repr, _PRESETS))}) or numbers, got {ns_coeffs!r}"
            )
        ns_coeffs = _PRESETS[ns_coeffs]
    try:
        given = np.asarray(ns_coeffs, np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"ns_coeffs must be numbers of shape (3,) or (n, 3), got {ns_coeffs!r}") from None
    if given.ndim == 2 and given.shape[-1] == 3 and given.shape[0] > ns_steps:
        # Optax refuses this too (it keeps at most the last ns_steps rows).
        raise ValueError(f"ns_coeffs has {given.shape[0]} rows (steps), more than ns_steps={ns_steps}")
    if not np.all(np.isfinite(given)):
        raise ValueError(f"ns_coeffs must be finite, got {ns_coeffs!r}")
    return _coefficient_rows(given, ns_steps)


def scale_by_shape(
    weight_dimension_numbers: WeightDimensionNumbers = None, consistent_rms: float | None = None
) -> GradientTransformation:
    """Scales each matrix's update by a factor of its shape, so that one learning rate suits every width.

    ::

        u <- sqrt(max(1, fan_out / fan_in)) * u                 (consistent_rms=None: Jordan's width scaling)
        u <- sqrt(max(fan_in, fan_out)) * consistent_rms * u    (Liu et al.'s: RMS(u) about consistent_rms)

    ``fan_in`` is the product of the reduction axes' sizes (the rows of a 2-D weight), ``fan_out`` that of the
    output axes (its columns). An orthogonalized update of a ``fan_in x fan_out`` matrix has RMS
    ``1 / sqrt(max(fan_in, fan_out))``, so the second form makes its RMS ``consistent_rms`` (0.2 matches
    AdamW's typical RMS). Stateless. Optax: ``optax.contrib._muon.scale_by_shape``.

    Args:
        weight_dimension_numbers: As in :func:`scale_by_muon`. Default None: every leaf is a matrix.
        consistent_rms: None (default) for the width scaling, or the target RMS, a number >= 0.

    Returns:
        A stateless :class:`adamlab.GradientTransformation` (state ``EmptyState()``).

    Raises:
        ValueError: If `consistent_rms` is negative or not finite; in ``update``, if a leaf is not a matrix
            and has no dimension numbers.

    References:
        Liu et al., *Muon is Scalable for LLM Training*, 2025 (`consistent_rms`).

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.orthogonal import scale_by_shape
        >>> tx = scale_by_shape()
        >>> u, _ = tx.update({"wide": jnp.ones((2, 8)), "tall": jnp.ones((8, 2))}, tx.init(None))
        >>> print(u["wide"][0, 0], u["tall"][0, 0])
        2.0 1.0
    """
    if consistent_rms is not None:
        _checks.check_nonnegative("consistent_rms", consistent_rms)

    def one(u, dims):
        if u.size == 0:  # an empty matrix has nothing to scale (and a fan of 0)
            return u
        fan_in, fan_out = _fans(u, dims)
        if consistent_rms is None:
            factor = jnp.sqrt(jnp.maximum(1, fan_out / fan_in))
        else:
            factor = jnp.sqrt(jnp.maximum(fan_in, fan_out)) * consistent_rms
        return factor * u

    return _per_leaf_with_dims("scale_by_shape", weight_dimension_numbers, one)


def muon(
    learning_rate: ScalarOrSchedule,
    ns_coeffs=_STANDARD,
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Mask | None = None,
    mu_dtype=None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps_root: float = 0.0,
    adam_weight_decay: ScalarOrSchedule = 0.0,
    adam_learning_rate: ScalarOrSchedule | None = None,
    muon_weight_dimension_numbers: WeightDimensionNumbers = None,
    consistent_rms: float | None = None,
    state_dtype=None,
) -> GradientTransformation:
    """Muon: orthogonalized Nesterov momentum for the matrices, (N)AdamW for the other leaves.

    For every 2-D leaf (or every leaf `muon_weight_dimension_numbers` describes)::

        m_t   = beta * m_{t-1} + (1 - beta) * g_t
        m_hat = beta * m_t / (1 - beta**(t+1)) + (1 - beta) * g_t / (1 - beta**t)   (nesterov; else m_t / (1 - beta**t))
        O     = NS5(m_hat)                   (Newton-Schulz: singular values moved into about [0.68, 1.21])
        p    <- p - lr * (sqrt(max(1, fan_out / fan_in)) * O + weight_decay * p)
                (consistent_rms=r: sqrt(max(fan_in, fan_out)) * r * O instead)

    and for every other leaf (vectors, scalars), ``adamw(adam_learning_rate or learning_rate, adam_b1, adam_b2,
    eps, adam_eps_root, mu_dtype, adam_weight_decay, nesterov=nesterov, state_dtype=state_dtype)``: with the
    default ``nesterov=True`` that is NAdamW.

    Built as ``partition({"muon": chain(scale_by_muon(ns_coeffs, ns_steps, beta, eps, mu_dtype, ...),
    scale_by_shape(...), add_decoupled_weight_decay(weight_decay, weight_decay_mask),
    scale_by_learning_rate(learning_rate)), "adam": adamw(...)}, labels)``, the labels ``"muon"`` for every leaf
    with ``ndim == 2`` (or a spec that is not None in `muon_weight_dimension_numbers`) and ``"adam"`` for the
    rest, inside a chain named ``muon``. A decay given as the number 0 gets no stage (``adam(...)`` instead of
    ``adamw(...)`` for ``adam_weight_decay=0``), as Optax skips it: ``u + 0 * p`` is ``u``, but XLA fuses it
    differently, which moves the last bit. Integer leaves pass through. It computes what
    ``optax.contrib.muon`` computes, bit for bit under `jax.jit` (``tests/test_muon.py``: the defaults, no
    Nesterov, weight decay with a mask, schedules, dimension numbers).

    Args:
        learning_rate: The step size, a number >= 0 or a schedule ``step -> lr`` (of the steps already taken).
            No default. Optax: ``learning_rate``; PyTorch (Jordan's ``Muon``): ``lr``.
        ns_coeffs: The Newton-Schulz coefficients ``(a, b, c)``, one row per step, or a preset: ``"standard"``
            (the default's values) or ``"dion"`` (Ahn et al.'s five rows). Default ``(3.4445, -4.7750, 2.0315)``.
            Optax: ``ns_coeffs``.
        ns_steps: The number of Newton-Schulz steps, an int >= 0 (at least the number of rows of a per-step
            `ns_coeffs`, which then sets the steps). Default 5. Optax: ``ns_steps``; PyTorch: ``ns_steps``.
        beta: The momentum's decay in ``[0, 1)``. Default 0.95. Optax: ``beta``; PyTorch: ``momentum``.
        eps: Added to the norm before the Newton-Schulz steps, and AdamW's `eps`. Default 1e-8. Optax: ``eps``.
        weight_decay: Decoupled decay of the Muon leaves, ``lr * weight_decay * p`` per step, a number >= 0
            or a schedule ``count -> wd``. Default 0.0. Optax: ``weight_decay``.
        weight_decay_mask: Which Muon leaves decay (see :func:`adamlab.add_decoupled_weight_decay`'s `mask`;
            read over the Muon leaves only). Default None: all. Optax: ``weight_decay_mask``.
        mu_dtype: Storage dtype of both first moments (Muon's and AdamW's); overrides `state_dtype` for them.
            Default None: `state_dtype`'s choice. Optax: ``mu_dtype`` (whose None is the params' dtype).
        nesterov: Nesterov momentum for Muon and NAdam's look-ahead for AdamW. Default True. Optax:
            ``nesterov``; PyTorch: ``nesterov``.
        adaptive: Scale Muon's direction by ``<m_hat, O>``. Default False. Optax: ``adaptive``.
        preconditioning: ``"frobenius"`` (default), ``"spectral"``, ``"aol"`` or ``"schatten"`` (see
            :func:`orthogonalize_via_newton_schulz`). Optax: ``preconditioning``.
        adam_b1: AdamW's first-moment decay in ``[0, 1)``. Default 0.9. Optax: ``adam_b1``.
        adam_b2: AdamW's second-moment decay in ``[0, 1)``. Default 0.999. Optax: ``adam_b2``.
        adam_eps_root: AdamW's `eps_root`, >= 0. Default 0.0. Optax: ``adam_eps_root``.
        adam_weight_decay: AdamW's decoupled decay, >= 0. Default 0.0. Optax: ``adam_weight_decay``.
        adam_learning_rate: AdamW's learning rate (number or schedule). Default None: `learning_rate`. Optax:
            ``adam_learning_rate``.
        muon_weight_dimension_numbers: Which leaves Muon takes and how to see them as matrices: a tree (or
            prefix) like the params of :class:`MuonDimensionNumbers` and None (None: the leaf goes to AdamW),
            or a function ``params -> such a tree``. Default None: every 2-D leaf, rows = axis 0. Optax:
            ``muon_weight_dimension_numbers``.
        consistent_rms: None (default) for the width scaling ``sqrt(max(1, fan_out / fan_in))``, or the target
            RMS of Muon's updates (0.2 matches AdamW's; see :func:`scale_by_shape`). Optax: ``consistent_rms``.
        state_dtype: Keyword-only. Storage dtype of every moment, where `mu_dtype` does not say otherwise: Muon's
            momentum and AdamW's ``m`` and ``v``. None (default: float32, or the param's dtype when wider),
            ``jnp.bfloat16`` (first moments rounded to nearest, ``v`` stochastically) or ``jnp.int8`` (8-bit
            block-wise codes for leaves of at least 4096 elements, rounded stochastically); float16 cannot hold
            ``v``. The arithmetic, the Newton-Schulz iteration included, stays float32. adamlab's; no Optax or
            PyTorch equivalent (Optax's ``mu_dtype`` reaches the first moments only).

    Returns:
        A :class:`adamlab.GradientTransformation` whose state is a 1-tuple holding a
        ``adamlab.groups.PartitionState`` with ``inner_states={"muon": (EmaState, CountState, EmptyState,
        EmptyState, [EmptyState,] <lr state>), "adam": (EmaState, CountState, RmsState, [EmptyState,]
        <lr state>)}``, each over its own leaves (``Cut()`` at the others'); the bracketed ``EmptyState`` (the
        decay) is there only for a `weight_decay` (`adam_weight_decay`) that is not the number 0; ``<lr state>``
        is ``EmptyState()`` for a number, a :class:`adamlab.ScheduleState` for a schedule.

    Raises:
        ValueError: If a hyperparameter is out of range (the message names it: `beta`, `adam_b1`, `adam_b2` in
            ``[0, 1)``; `eps`, `weight_decay`, `adam_eps_root`, `adam_weight_decay`, `consistent_rms`,
            `learning_rate`, `adam_learning_rate` >= 0; `ns_steps` >= 0), `ns_coeffs` is an unknown preset,
            has another shape than ``(3,)`` or ``(n, 3)`` or more rows than `ns_steps`, or `preconditioning`
            is unknown; if the storage dtype of AdamW's ``v`` lacks float32's exponent range (float16).
        TypeError: If `ns_steps` is not an int, `nesterov` or `adaptive` not a bool, a hyperparameter not
            a number (or schedule where one is allowed), or `mu_dtype` or `state_dtype` neither a float dtype
            nor ``jnp.int8``.

    References:
        Jordan et al., *Muon: An optimizer for hidden layers in neural networks*, 2024,
        https://kellerjordan.github.io/posts/muon/.

        Liu et al., *Muon is Scalable for LLM Training*, 2025 (`consistent_rms`). Ahn et al., *Dion:
        Distributed Orthonormalized Updates*, 2025 (``"dion"``).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> from adamlab.orthogonal import muon
        >>> tx = muon(0.1)
        >>> params = {"w": jnp.zeros((4, 8)), "b": jnp.zeros(8)}
        >>> grads = {"w": jax.random.normal(jax.random.PRNGKey(0), (4, 8)), "b": jnp.ones(8)}
        >>> updates, state = tx.update(grads, tx.init(params), params)
        >>> s = jnp.linalg.svd(updates["w"], compute_uv=False)  # -0.1 * sqrt(8 / 4) * O
        >>> print(bool(jnp.all((s > 0.67 * 0.1414) & (s < 1.22 * 0.1414))), updates["b"][:2])
        True [-0.1 -0.1]
    """
    _checks.check_decay("adam_b1", adam_b1)
    _checks.check_decay("adam_b2", adam_b2)
    _checks.check_nonnegative("adam_eps_root", adam_eps_root)
    _checks.check_rate("adam_weight_decay", adam_weight_decay)
    if adam_learning_rate is None:
        adam_learning_rate = learning_rate
    else:
        _checks.check_rate("adam_learning_rate", adam_learning_rate)
    spec = muon_weight_dimension_numbers
    mu, nu = _moment_dtypes(mu_dtype, None, state_dtype)

    def labels(tree):
        if spec is None:
            return jax.tree.map(lambda x: "muon" if np.ndim(x) == 2 else "adam", tree)
        leaves, treedef = jax.tree.flatten(tree)
        return jax.tree.unflatten(treedef, ["adam" if d is None else "muon" for d in _dims_per_leaf(spec, tree)])

    return chain(
        partition(
            {
                "muon": chain(
                    scale_by_muon(
                        ns_coeffs,
                        ns_steps,
                        beta,
                        eps,
                        mu,
                        nesterov=nesterov,
                        adaptive=adaptive,
                        preconditioning=preconditioning,
                        weight_dimension_numbers=spec,
                    ),
                    scale_by_shape(spec, consistent_rms),
                    # Optax skips a decay known to be 0 (`u + 0 * p` would change XLA's fusion, hence bits).
                    identity()
                    if _checks.known_zero(weight_decay)
                    else add_decoupled_weight_decay(weight_decay, weight_decay_mask),
                    scale_by_learning_rate(learning_rate),
                ),
                "adam": adam(
                    adam_learning_rate, adam_b1, adam_b2, eps, adam_eps_root, mu, nesterov=nesterov, nu_dtype=nu
                )
                if _checks.known_zero(adam_weight_decay)
                else adamw(
                    adam_learning_rate,
                    adam_b1,
                    adam_b2,
                    eps,
                    adam_eps_root,
                    mu,
                    adam_weight_decay,
                    nesterov=nesterov,
                    nu_dtype=nu,
                ),
            },
            labels,
        ),
        name="muon",
    )
