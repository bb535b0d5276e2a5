"""Adafactor: a second moment kept as a row and a column vector per matrix, so its memory is O(n + m), not O(n m).

For a leaf whose two largest axes both have at least ``min_dim_size_to_factor`` elements, the second moment
``E[g**2]`` is estimated from its means over each of those axes (a rank-1 factorization)::

    v_row = beta_t * v_row + (1 - beta_t) * mean(g**2 + eps, axis=largest)
    v_col = beta_t * v_col + (1 - beta_t) * mean(g**2 + eps, axis=second largest)
    v_hat = v_row * v_col / mean(v_row)                beta_t = 1 - t**-decay_rate

Smaller leaves keep a full ``v``. :func:`adamlab.scale_by_factored_rms` is the estimator;
:func:`adamlab.adafactor` chains it with per-leaf update clipping, the relative step size
(:func:`adamlab.scale_by_param_block_rms`), optional momentum and weight decay, stage for stage as
:func:`optax.adafactor` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks, quantize
from adamlab.base import GradientTransformation, chain, identity, init_empty, stage
from adamlab.clipping import clip_by_block_rms
from adamlab.decay import Mask, add_decoupled_weight_decay
from adamlab.flat import leaf_totals, require_leaf_shapes
from adamlab.moments import scale_by_ema
from adamlab.numerics import hash_bits, stochastic_round
from adamlab.quantize import INT8
from adamlab.scaling import ScalarOrSchedule, scale, scale_by_learning_rate
from adamlab.stage_builder import rounds_stochastically
from adamlab.tree import (
    abs_sq,
    check_state_dtype,
    has_gradient,
    increment,
    leafwise,
    load,
    logical,
    per_precision,
    precision,
    scalar,
    store,
    upcast,
    widest_float,
)

__all__ = ["FactoredState", "adafactor", "scale_by_factored_rms", "scale_by_param_block_rms"]

# Odd constants that spread the stochastic-rounding seeds of steps, moments and leaves apart (as moment_stage's).
_STEP_MIX, _MOMENT_MIX, _LEAF_MIX = 0x9E3779B9, 0x5BD1E995, 0x632BE5AB


class FactoredState(NamedTuple):
    """State of :func:`adamlab.scale_by_factored_rms`: the step count and the factored second moments.

    Each of ``v_row``, ``v_col`` and ``v`` is a tree like the params; per leaf, only the moments its shape
    calls for are kept, the others are ``(0,)`` float32 placeholders (as are all three for integer and bool
    leaves). With ``d0`` the largest axis of a leaf and ``d1`` the second largest (NumPy's ``argsort`` of the
    shape decides ties), a leaf is *factored* when its size along ``d1`` is at least ``min_dim_size_to_factor``.
    Moments are real, stored in float32 (float64 for float64 params) or the requested ``state_dtype``; with
    ``jnp.int8`` each moment of at least 4096 elements is an ``adamlab.quantize.Quantized`` of that shape.
    Optax's ``FactoredState`` has the same fields (with ``(1,)`` placeholders in the param's dtype).

    Args:
      count: An int32 scalar, the number of updates so far (saturating at ``2**31 - 1``).
      v_row: For a factored leaf, the EMA of ``g**2 + eps`` averaged over ``d0``: the leaf's shape without
        axis ``d0`` (``(m,)`` for an ``(n, m)`` matrix with ``n >= m``).
      v_col: For a factored leaf, the same averaged over ``d1``: the shape without axis ``d1`` (``(n,)``).
      v: For a leaf that is not factored, the EMA of ``g**2 + eps`` itself, shaped like the leaf.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from adamlab.factored import scale_by_factored_rms
      >>> state = scale_by_factored_rms().init({"w": jnp.zeros((256, 128)), "b": jnp.zeros(128)})
      >>> print(jax.tree.map(jnp.shape, state._asdict()))
      {'count': (), 'v': {'b': (128,), 'w': (0,)}, 'v_col': {'b': (0,), 'w': (256,)}, 'v_row': {'b': (0,), 'w': (128,)}}
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    v_row: Any
    v_col: Any
    v: Any


def _decay_rate_pow(step, exponent):
    """Adafactor's ``beta_t = 1 - (step + 1)**-exponent`` (0 on the first step, tending to 1)."""
    t = jnp.asarray(step + 1).astype(widest_float())
    return 1.0 - t ** (-exponent)


def _factored_dims(shape: tuple, factored: bool, min_dim_size_to_factor: int) -> tuple[int, int] | None:
    """``(d1, d0)``: the second largest and the largest axis of `shape`, or None when the leaf keeps a full ``v``."""
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape)  # Optax's choice of axes, ties included
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


def _without(shape: tuple, axis: int) -> tuple:
    return shape[:axis] + shape[axis + 1 :]


def _placeholder() -> jax.Array:
    return jnp.zeros((0,), jnp.float32)


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate: float = 0.8,
    step_offset: int = 0,
    min_dim_size_to_factor: int = 128,
    epsilon: float = 1e-30,
    decay_rate_fn: Callable[[Any, Any], Any] = _decay_rate_pow,
    *,
    state_dtype=None,
    rounding: str = "stochastic",
) -> GradientTransformation:
    """Divides the updates by a factored estimate of their root mean square: Adafactor's second moment.

    ::

        beta_t = decay_rate_fn(t - 1 - step_offset, decay_rate)   default 1 - (t - step_offset)**-decay_rate
        g2     = |u_t|**2 + epsilon
        factored leaf (axes d1 < d0 by size, size along d1 >= min_dim_size_to_factor):
            v_row  = beta_t * v_row + (1 - beta_t) * mean(g2, axis=d0)
            v_col  = beta_t * v_col + (1 - beta_t) * mean(g2, axis=d1)
            output = u_t * (v_row / mean(v_row, over d1))**-0.5 * v_col**-0.5     (broadcast back over d0, d1)
        other leaf:
            v      = beta_t * v + (1 - beta_t) * g2
            output = u_t * v**-0.5

    ``v_row * v_col / mean(v_row)`` is the rank-1 estimate of ``E[g**2]`` of Shazeer & Stern's Algorithm 4
    (written with means, which give the same estimate as their row and column sums); axes other than ``d0``
    and ``d1`` are batch axes, each slice factored on its own. An ``n x m`` matrix keeps ``n + m`` numbers
    instead of ``n m``. ``beta_t`` is 0 on the first step (no bias correction is needed) and tends to 1. It
    reads the incoming updates (it opens a chain: its role is "moment"); the params are not needed. Computed
    in float32 or wider, the moments stored in float32 (or wider) unless `state_dtype` asks for less; integer
    and bool leaves keep ``(0,)`` placeholders and pass through. With float32 params it is bit for bit
    :func:`optax.scale_by_factored_rms` (same arguments, same order of operations).

    Args:
      factored: Default True: factor the leaves that qualify. False keeps a full ``v`` for every leaf (RMSProp
        with Adafactor's decay schedule). Optax: ``factored``.
      decay_rate: The exponent ``c`` of the default schedule ``beta_t = 1 - t**-c`` (the paper's 0.8 by
        default; 0 gives ``beta_t = 0``, the current gradient alone), a number or scalar array ``>= 0``; with a
        custom `decay_rate_fn`, its second argument. Optax: ``decay_rate``.
      step_offset: Steps to subtract from the count before the schedule reads it (default 0), e.g. the first
        step of a fine-tuning run resumed with its count, so that ``beta`` restarts at 0. It must not exceed the
        count: until the count reaches it ``beta`` is not finite, as in Optax. Optax: ``step_offset``.
      min_dim_size_to_factor: Factor a leaf only when its two largest axes both have at least this many
        elements (default 128), an int ``>= 0``. Optax: ``min_dim_size_to_factor``.
      epsilon: Added to ``|u|**2`` before averaging (the paper's ``eps1``, default ``1e-30``), ``>= 0``. Optax:
        ``epsilon``.
      decay_rate_fn: ``(step, decay_rate) -> beta``, with ``step`` the int32 count of steps already taken minus
        `step_offset` (0 on the first step). Default: ``1 - (step + 1)**-decay_rate``, computed in the widest
        float enabled. Its value is rounded to each leaf's precision. Optax: ``decay_rate_fn`` (e.g. Zhai et
        al.'s capped ``min(decay_rate, 1 - (step + 1)**-0.8)``).
      state_dtype: Keyword-only. Storage dtype of ``v_row``, ``v_col`` and ``v``: ``jnp.bfloat16`` (float32's
        range; float16 is refused, squares overflow it), a float dtype, or ``jnp.int8``: 8-bit block-wise codes
        (``adamlab.quantize``, unsigned, a nonzero moment never rounds to 0) for each of the three that has
        at least 4096 elements, the factored vectors of a large enough matrix included; smaller ones stay
        float32. Default None: float32, or float64 for float64 params. The arithmetic is float32 or wider
        either way. adamlab's; Optax stores the moments in the param's dtype.
      rounding: Keyword-only. How new moments are rounded into a `state_dtype` narrower than float32:
        ``"stochastic"`` (default; unbiased, with bits hashed from the step, the moment and the leaf) or
        ``"nearest"``, with which a moment stops decaying in bfloat16 once ``beta_t > 0.996`` (from about step
        1000 with the defaults), and a quiet element's 8-bit moment rises with its block's scale. No effect for
        float32 storage.

    Returns:
      A `GradientTransformation` whose state is a :class:`adamlab.factored.FactoredState`.

    Raises:
      ValueError: At build time, if `decay_rate` or `epsilon` is negative or not finite, `min_dim_size_to_factor`
        is negative, `rounding` is unknown, or `state_dtype` lacks float32's exponent range (float16). At update
        time, if the updates do not have the tree or the shapes of the params given to ``init``.
      TypeError: At build time, if `factored` is not a bool, `min_dim_size_to_factor` or `step_offset` is not
        an int, `decay_rate_fn` is not callable, or `state_dtype` is neither a float dtype nor ``jnp.int8``. At
        update time, if the update of a float param is not a float array.

    References:
      Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*, ICML 2018.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.factored import scale_by_factored_rms
      >>> tx = scale_by_factored_rms(min_dim_size_to_factor=2)
      >>> params = {"w": jnp.zeros((3, 2))}
      >>> updates, state = tx.update({"w": jnp.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])}, tx.init(params))
      >>> print(state.v_row["w"].shape, state.v_col["w"].shape, state.v["w"].shape)
      (2,) (3,) (0,)
      >>> print(jnp.round(updates["w"], 4))  # a rank-1 gradient: its factored estimate is exact, |output| = 1
      [[1. 1.]
       [1. 1.]
       [1. 1.]]
    """
    if not isinstance(factored, bool):
        raise TypeError(f"factored must be a bool, got {type(factored).__name__}")
    _check_int("min_dim_size_to_factor", min_dim_size_to_factor)
    if min_dim_size_to_factor < 0:
        raise ValueError(f"min_dim_size_to_factor must be >= 0, got {min_dim_size_to_factor}")
    offset_dtype = getattr(step_offset, "dtype", None) if not isinstance(step_offset, (bool, int)) else None
    if isinstance(step_offset, bool) or not (
        isinstance(step_offset, int) or (offset_dtype is not None and jnp.issubdtype(offset_dtype, jnp.integer))
    ):
        raise TypeError(f"step_offset must be an int (a step number), got {type(step_offset).__name__}")
    _checks.check_nonnegative("decay_rate", decay_rate)
    _checks.check_nonnegative("epsilon", epsilon)
    if not callable(decay_rate_fn):
        raise TypeError(f"decay_rate_fn must be a function (step, decay_rate) -> beta, got {decay_rate_fn!r}")
    if rounding not in ("stochastic", "nearest"):
        raise ValueError(f"rounding must be 'stochastic' or 'nearest', got {rounding!r}")
    state_dtype = check_state_dtype(state_dtype, second_moment=True)
    stochastic = rounds_stochastically(state_dtype, rounding)
    name = "scale_by_factored_rms"

    def zeros(p, shape):
        if state_dtype == INT8:
            # The rule of every 8-bit moment, applied to the moment's own shape: a factored vector of a large
            # matrix is large too, and a small one costs little in float32.
            if int(np.prod(shape)) >= quantize.MIN_SIZE:
                return quantize.encode(jnp.zeros(shape, jnp.float32), signed=False)
            return jnp.zeros(shape, precision(p))
        dtype = state_dtype or precision(p)  # real: a moment of |g|**2
        return jnp.zeros(shape, dtype)

    def init(params):
        _checks.check_leaves(params, "params")
        # A factored leaf needs its rows and columns: refused where the flat layout packs it (a solo bucket keeps
        # its shape, and is factored as the leaf is).
        require_leaf_shapes(params, name, lambda s: _factored_dims(s, factored, min_dim_size_to_factor) is not None)

        def one(p):
            if not has_gradient(p):
                return _placeholder(), _placeholder(), _placeholder()
            dims = _factored_dims(np.shape(p), factored, min_dim_size_to_factor)
            if dims is None:
                return _placeholder(), _placeholder(), zeros(p, np.shape(p))
            d1, d0 = dims
            return zeros(p, _without(p.shape, d0)), zeros(p, _without(p.shape, d1)), _placeholder()

        leaves, treedef = jax.tree.flatten(params)
        rows, cols, vs = zip(*[one(p) for p in leaves]) if leaves else ((), (), ())
        return FactoredState(
            count=jnp.zeros((), jnp.int32),
            v_row=jax.tree.unflatten(treedef, list(rows)),
            v_col=jax.tree.unflatten(treedef, list(cols)),
            v=jax.tree.unflatten(treedef, list(vs)),
        )

    def update(updates, state, params=None, **extra):
        del params, extra
        _checks.check_same_tree(updates, logical(state.v), f"{name}: updates", "the params given to init")
        paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(updates)[0]]
        u_leaves, treedef = jax.tree.flatten(updates)
        old = [treedef.flatten_up_to(m) for m in (state.v_row, state.v_col, state.v)]
        step = state.count - step_offset  # the steps taken, as Optax's schedule reads it
        beta_for = per_precision(lambda: scalar(decay_rate_fn(step, decay_rate)))
        count = increment(state.count)

        outs, new = [], ([], [], [])
        for path, u, row, col, v in zip(paths, u_leaves, *old):
            kept = row.size or col.size or v.size
            if not has_gradient(u):
                if kept:
                    raise TypeError(
                        f"{name}: updates at {_checks.path_str(path)} are {getattr(u, 'dtype', type(u).__name__)}, "
                        "but the param given to init is floating point: the gradient of a float param must be float"
                    )
                result = (u, row, col, v)
            else:
                dims = _factored_dims(u.shape, factored, min_dim_size_to_factor)
                if dims is not None and (row.shape, col.shape) == (
                    _without(u.shape, dims[1]),
                    _without(u.shape, dims[0]),
                ):
                    g, row32, col32 = upcast(u, load(row), load(col))
                    result = (*_factored(g, row32, col32, beta_for(u), dims), v)
                elif dims is None and v.shape == u.shape:
                    out, new_v = _full(upcast(u)[0], upcast(load(v))[0], beta_for(u))
                    result = (out, row, col, new_v)
                elif not kept:  # the param was an integer or bool leaf: its update passes through
                    result = (u, row, col, v)
                else:
                    raise ValueError(
                        f"{name}: updates at {_checks.path_str(path)} have shape {u.shape}, which does not fit the "
                        f"moments kept for the params given to init (v_row {row.shape}, v_col {col.shape}, "
                        f"v {v.shape})"
                    )
            outs.append(result[0])
            for j, (n, o) in enumerate(zip(result[1:], (row, col, v))):
                if n is o:  # a moment this leaf does not update (a placeholder) stays as it is
                    new[j].append(o)
                else:
                    new[j].append(_store(n, o, count, j, len(outs) - 1) if stochastic else store(n, o))
        trees = [jax.tree.unflatten(treedef, leaves) for leaves in new]
        return jax.tree.unflatten(treedef, outs), FactoredState(count, *trees)

    def _factored(g, row, col, beta, dims):
        d1, d0 = dims
        g2 = abs_sq(g) + epsilon
        row = beta * row + (1.0 - beta) * jnp.mean(g2, axis=d0)
        col = beta * col + (1.0 - beta) * jnp.mean(g2, axis=d1)
        # v_row lacks axis d0: d1 moves down one place when it came after d0.
        row_mean = jnp.mean(row, axis=d1 - 1 if d1 > d0 else d1, keepdims=True)
        row_factor = (row / row_mean) ** -0.5
        col_factor = col**-0.5
        return g * jnp.expand_dims(row_factor, axis=d0) * jnp.expand_dims(col_factor, axis=d1), row, col

    def _full(g, v, beta):
        v = beta * v + (1.0 - beta) * (abs_sq(g) + epsilon)
        return g * v**-0.5, v

    return stage(name, init, update, role="moment")


def _store(new, old, count, moment: int, leaf: int):
    """`new` stochastically rounded into `old`'s narrow dtype (or 8-bit codes), seeded by the step, the moment and
    the leaf."""
    if not (has_gradient(new) and old.size) or new.dtype == old.dtype:
        return store(new, old)
    seed = count.astype(jnp.uint32) * jnp.uint32(_STEP_MIX) ^ jnp.uint32(moment * _MOMENT_MIX % 2**32)
    seed = seed + jnp.uint32(leaf * _LEAF_MIX % 2**32)
    if quantize.is_quantized(old):
        return quantize.encode(new, old.signed, old.code, bits=hash_bits(new.shape, seed))
    return stochastic_round(new, old.dtype, seed)


def _check_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")


def scale_by_param_block_rms(min_scale: float = 1e-3) -> GradientTransformation:
    """Multiplies each leaf's update by the root mean square of its param: Adafactor's relative step size.

    ::

        output = u * max(RMS(p), min_scale)        RMS(p) = sqrt(mean(|p|**2)) over the leaf

    A *block* is one leaf of the params (a bias vector, a weight matrix). Followed by a learning rate ``lr``,
    a step moves each leaf by ``lr`` times its own scale: Adafactor's ``alpha_t = max(eps2, RMS(X)) * rho_t``.
    Stateless; needs the params. Computed in float32 or wider; integer leaves pass through. Optax:
    :func:`optax.scale_by_param_block_rms` (bit for bit).

    Args:
      min_scale: The floor ``eps2`` of the scale (default ``1e-3``), so that a leaf initialised at zero still
        moves; a number or scalar array ``>= 0``. Optax: ``min_scale``.

    Returns:
      A stateless `GradientTransformation` (state :class:`adamlab.EmptyState`) whose ``update`` needs the
      params: ``update(updates, state, params)``.

    Raises:
      ValueError: If `min_scale` is negative or not finite; in ``update``, if the params are missing or their
        tree differs from the updates'.

    References:
      Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*, ICML 2018 (section 8).

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.factored import scale_by_param_block_rms
      >>> tx = scale_by_param_block_rms()
      >>> params = {"w": jnp.array([3.0, -4.0]), "b": jnp.zeros(2)}
      >>> updates, _ = tx.update({"w": jnp.ones(2), "b": jnp.ones(2)}, tx.init(params), params)
      >>> print(jnp.round(updates["w"], 4), updates["b"])  # RMS([3, -4]) = 3.5355; b is floored at 1e-3
      [3.5355 3.5355] [0.001 0.001]
    """
    _checks.check_nonnegative("min_scale", min_scale)
    name = "scale_by_param_block_rms"

    def update(updates, state, params=None, **extra):
        del extra
        if params is None:
            if not jax.tree.leaves(updates):
                return updates, state
            raise ValueError(f"{name} needs the params: call update(updates, state, params)")
        _checks.check_same_tree(updates, params, f"{name}: updates", "params", strict=True)

        # Per leaf, on the flat layout too (flat.leaf_totals); sum / n is jnp.mean's arithmetic, bit for bit.
        sums, sizes = leaf_totals(leafwise(lambda p: abs_sq(upcast(p)[0]), params))

        def one(u, s, n):
            (u,) = upcast(u)
            return u * jnp.maximum(jnp.sqrt(s / n.astype(s.dtype)), min_scale)

        return leafwise(one, updates, sums, sizes), state

    return stage(name, init_empty, update)


def adafactor(
    learning_rate: ScalarOrSchedule | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: float = 0.8,
    decay_offset: int = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: float | None = 1.0,
    momentum: float | None = None,
    dtype_momentum=jnp.float32,
    weight_decay_rate: ScalarOrSchedule | None = None,
    eps: float = 1e-30,
    factored: bool = True,
    weight_decay_mask: Mask | None = None,
    *,
    state_dtype=None,
    rounding: str = "stochastic",
) -> GradientTransformation:
    """Adafactor (Shazeer & Stern, 2018): factored second moments, update clipping and a relative step size.

    ::

        u_t   = g_t / sqrt(v_hat_t)                    factored estimate (scale_by_factored_rms)
        u_t  <- u_t / max(1, RMS(u_t) / clipping_threshold)          per leaf (if clipping_threshold)
        u_t  <- lr_t * u_t                                            (if learning_rate)
        u_t  <- u_t * max(RMS(p), 1e-3)                               (if multiply_by_parameter_scale)
        m_t   = momentum * m_{t-1} + (1 - momentum) * u_t;  u_t <- m_t  (if momentum)
        u_t  <- u_t + weight_decay_rate_t * p                          (if weight_decay_rate, masked)
        p    <- p - u_t

    Built, as :func:`optax.adafactor` is, as ``chain(scale_by_factored_rms(factored, decay_rate, decay_offset,
    min_dim_size_to_factor, eps), clip_by_block_rms(clipping_threshold), scale_by_learning_rate(learning_rate,
    flip_sign=False), scale_by_param_block_rms(), scale_by_ema(momentum), add_decoupled_weight_decay(
    weight_decay_rate, weight_decay_mask), scale(-1))``, each optional stage left out when its argument is None
    (or False). With float32 params it is bit for bit ``optax.adafactor`` with the same arguments. The paper's
    relative step size ``rho_t = min(1e-2, 1 / sqrt(t))`` is the schedule ``lambda count: jnp.minimum(1e-2,
    jax.lax.rsqrt(count + 1.0))``; note that the weight decay is not multiplied by the learning rate (as in
    Optax). The state of an ``n x m`` matrix is ``n + m`` numbers (plus ``n m`` with momentum); PyTorch has no
    Adafactor in ``torch.optim`` before 2.5, and its later one differs in details (no update clipping).

    Args:
      learning_rate: A number ``>= 0`` or a schedule ``count -> lr`` (the relative step size ``rho_t`` when
        `multiply_by_parameter_scale`); default None: no learning-rate stage (a step of the update's own
        size). Optax: ``learning_rate``.
      min_dim_size_to_factor: Factor the second moment of a leaf only when its two largest axes both have at
        least this many elements (default 128). Optax: ``min_dim_size_to_factor``.
      decay_rate: The exponent ``c`` of ``beta_t = 1 - t**-c`` (default 0.8). Optax: ``decay_rate``.
      decay_offset: Steps subtracted from the count before ``beta_t`` is computed (default 0), for fine-tuning.
        Optax: ``decay_offset`` (``step_offset`` of :func:`adamlab.scale_by_factored_rms`).
      multiply_by_parameter_scale: Default True: scale each leaf's step by ``max(RMS(p), 1e-3)``
        (:func:`adamlab.scale_by_param_block_rms`), so `learning_rate` is relative; False: it is absolute. Optax:
        ``multiply_by_parameter_scale``.
      clipping_threshold: The paper's ``d`` (default 1.0), a number ``> 0``: each leaf's update is scaled down
        until its RMS is at most ``d``; None disables clipping. Optax: ``clipping_threshold``.
      momentum: Default None (no first moment). A number in ``[0, 1)``: an EMA of the scaled updates (not
        bias-corrected), which costs one full moment per param. Optax: ``momentum``.
      dtype_momentum: Storage dtype of the momentum (default float32). Optax: ``dtype_momentum``.
      weight_decay_rate: Default None: no weight decay. A number ``>= 0`` or a schedule ``count -> rate``:
        ``rate * p`` is added to the update after the learning rate (so it is not multiplied by it). Optax:
        ``weight_decay_rate``.
      eps: Added to ``g**2`` in the second moment (the paper's ``eps1``, default ``1e-30``). Optax: ``eps``.
      factored: Default True; False keeps a full second moment for every leaf. Optax: ``factored``.
      weight_decay_mask: Where to decay: a bool tree like the params, a prefix of one, or a callable ``params
        -> such a tree`` (see :func:`adamlab.resolve_mask`); default None: every float leaf. Optax:
        ``weight_decay_mask``.
      state_dtype: Keyword-only. Storage dtype of the second moments ``v_row``, ``v_col`` and ``v`` (not of the
        momentum: `dtype_momentum` sets that): ``jnp.bfloat16`` halves them, ``jnp.int8`` stores those of at
        least 4096 elements as 8-bit codes (see :func:`adamlab.scale_by_factored_rms`); float16 is refused.
        Default None: float32. adamlab's; no Optax or PyTorch equivalent.
      rounding: Keyword-only. ``"stochastic"`` (default) or ``"nearest"``, for a `state_dtype` narrower than
        float32 (see :func:`adamlab.scale_by_factored_rms`).

    Returns:
      A `GradientTransformation` whose state is a flat tuple: a :class:`adamlab.factored.FactoredState`, then
      the states of the stages that are on (an :class:`adamlab.ScheduleState` for a scheduled learning rate or
      weight decay, an :class:`adamlab.EmaState` for the momentum, :class:`adamlab.EmptyState` for the
      stateless ones).

    Raises:
      ValueError: If a numeric argument is out of range (see :func:`adamlab.scale_by_factored_rms`; `learning_rate`,
        `weight_decay_rate` ``< 0``, `clipping_threshold` ``<= 0``, `momentum` outside ``[0, 1)``), or
        `state_dtype` lacks float32's exponent range (float16).
      TypeError: If an argument has the wrong type (a bool flag that is not a bool, a schedule that cannot take
        one argument, a `dtype_momentum` that is not a float dtype, a `state_dtype` neither a float dtype nor
        ``jnp.int8``).

    References:
      Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*, ICML 2018.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> from adamlab.factored import adafactor
      >>> def loss(p): return jnp.sum(p["w"] ** 2)
      >>> tx = adafactor(learning_rate=0.01)
      >>> params = {"w": jnp.array([1.0, 2.0, 3.0])}
      >>> state = tx.init(params)
      >>> for _ in range(3):
      ...     updates, state = tx.update(jax.grad(loss)(params), state, params)
      ...     params = adamlab.apply_updates(params, updates)
      >>> print([round(float(x), 4) for x in params["w"]])  # each step: about 1% of RMS(w) = 2.16
      [0.9364, 1.9361, 2.936]
    """
    if not isinstance(multiply_by_parameter_scale, bool):
        raise TypeError(f"multiply_by_parameter_scale must be a bool, got {type(multiply_by_parameter_scale).__name__}")
    if momentum is not None:
        _checks.check_decay("momentum", momentum)
    if weight_decay_rate is not None:
        _checks.check_rate("weight_decay_rate", weight_decay_rate)
    if clipping_threshold is not None:
        _checks.check_positive("clipping_threshold", clipping_threshold)
    decay = (
        identity() if weight_decay_rate is None else add_decoupled_weight_decay(weight_decay_rate, weight_decay_mask)
    )
    return chain(
        scale_by_factored_rms(
            factored, decay_rate, decay_offset, min_dim_size_to_factor, eps, state_dtype=state_dtype, rounding=rounding
        ),
        identity() if clipping_threshold is None else clip_by_block_rms(clipping_threshold),
        identity() if learning_rate is None else scale_by_learning_rate(learning_rate, flip_sign=False),
        scale_by_param_block_rms() if multiply_by_parameter_scale else identity(),
        identity() if momentum is None else scale_by_ema(momentum, state_dtype=dtype_momentum),
        decay,
        scale(-1.0),
        name="adafactor",
    )
