"""Moments: exponential moving averages of the gradient and of its square, and their bias correction.

Every formula of Adam lives here::

    m_t     = b1 * m_{t-1} + (1 - b1) * g_t            scale_by_ema(b1)
    m_hat_t = m_t / (1 - b1**t)                          bias_correct(b1)
    v_t     = b2 * v_{t-1} + (1 - b2) * g_t**2          scale_by_rms(b2, eps, bias_correction=True)
    update  = m_hat_t / (sqrt(v_t / (1 - b2**t)) + eps)

Moments are stored in float32 (or wider) whatever the param dtype, unless
``state_dtype`` asks for less; arithmetic is always done in at least float32.
Leaves that are not floating point (integer counters, boolean flags) have no
gradient: they pass through untouched and their moment is an empty
placeholder of shape ``(0,)``.

Moments saturate at the largest finite value of their dtype instead of
overflowing (``0.001 * g**2`` overflows float32 for ``|g| > 1.8e19``); a
NaN or an Inf in the gradient still propagates. With ``state_dtype`` below
float32 (bfloat16), the second moment is rounded *stochastically* into its
storage by default: rounded to nearest, ``0.999 * v`` is ``v`` again in
bfloat16 and ``v`` never decays.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks
from adamlab.base import GradientTransformation, stage
from adamlab.numerics import clip_finite, saturate, stochastic_round

INT32_MAX = jnp.iinfo(jnp.int32).max


class EmaState(NamedTuple):
    moment: Any  # m, a tree like the params


class CountState(NamedTuple):
    count: jax.Array  # int32 steps taken, saturating at 2**31 - 1


class RmsState(NamedTuple):
    count: jax.Array
    second_moment: Any  # v
    first_moment: Any  # mean of the gradient when centered, else an empty tuple


class TraceState(NamedTuple):
    trace: Any


def is_float(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)


def _check_real(params) -> None:
    for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
        if hasattr(p, "dtype") and jnp.issubdtype(p.dtype, jnp.complexfloating):
            raise TypeError(f"leaf {_checks.path_str(path)} is complex ({p.dtype}); adamlab supports real params only")
    _checks.check_leaves(params, "params")


def compute_dtype(*leaves) -> jnp.dtype:
    """float32, or wider if any leaf is wider: low precision is for storage, not arithmetic."""
    return jnp.result_type(jnp.float32, *[x.dtype for x in leaves])


def check_state_dtype(state_dtype, *, second_moment: bool = False):
    """`state_dtype` as a dtype (or None), refusing what cannot hold a moment."""
    if state_dtype is None:
        return None
    try:
        dtype = jnp.dtype(state_dtype)
    except TypeError:
        raise TypeError(f"state_dtype must be a float dtype such as jnp.bfloat16, got {state_dtype!r}") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"state_dtype must be a float dtype such as jnp.bfloat16, got {dtype}")
    if second_moment and jnp.finfo(dtype).maxexp < jnp.finfo(jnp.float32).maxexp:
        raise ValueError(
            f"state_dtype {dtype} cannot hold a second moment: squared gradients overflow it above "
            f"{float(jnp.sqrt(jnp.finfo(dtype).max.astype(jnp.float32))):.3g} and underflow it below "
            f"{float(jnp.sqrt(jnp.finfo(dtype).smallest_subnormal.astype(jnp.float32))):.3g}; use jnp.bfloat16 "
            "(float32's range)"
        )
    return dtype


def init_moment(params, state_dtype=None):
    """Zeros shaped like each float leaf (keeping its sharding), float32 unless `state_dtype` says otherwise."""
    _check_real(params)

    def zeros(p):
        if not is_float(p):
            return jnp.zeros((0,), jnp.float32)
        dtype = state_dtype or jnp.promote_types(p.dtype, jnp.float32)
        return jnp.zeros_like(p, dtype=dtype)

    return jax.tree.map(zeros, params)


def increment(count: jax.Array) -> jax.Array:
    """count + 1, saturating at the int32 maximum instead of wrapping to a negative step."""
    return jnp.where(count < INT32_MAX, count + 1, count).astype(jnp.int32)


@functools.partial(jax.jit, inline=True)
def _one_minus_power(decay, count):
    return 1 - decay**count


def bias_correction_term(decay, count: jax.Array) -> jax.Array:
    """``1 - decay**t`` in float32 (t = `count`, int32).

    Computed in float32 whatever the moments' dtype: in bfloat16, ``0.999``
    rounds to 1 and the term to 0. It is compiled (inlined) even outside
    `jax.jit`, so eager and jitted runs compute the same bits, and its
    arithmetic is Optax's, so adamlab's Adam is bit-identical to
    ``optax.adam``. It is exact at t = 1 and exactly 1 once ``decay**t``
    underflows; in between, float32 ``pow`` carries a relative error of
    about ``1e-8 / (1 - decay**t)`` (6e-6 at t = 3 for decay 0.999), which is
    why params agree with a float64 reference to 1e-5 rather than 1e-6.
    """
    return _one_minus_power(jnp.asarray(decay, jnp.float32), count).astype(jnp.float32)


def leafwise(fn, updates, *trees):
    """Applies ``fn(u, *rest)`` to float leaves of `updates`; other leaves pass through."""
    return jax.tree.map(lambda u, *rest: fn(u, *rest) if is_float(u) else u, updates, *trees)


def _has_moment(u, m) -> bool:
    # A placeholder (shape (0,)) stands for a leaf that was not floating point at init: it has no moment.
    return is_float(u) and np.shape(m) == np.shape(u)


def update_moment(fn, x, moment):
    """``fn(x, m)`` for each leaf that has a moment; placeholders stay as they are."""
    return jax.tree.map(lambda x, m: fn(x, m) if _has_moment(x, m) else m, x, moment)


def apply_moment(fn, updates, *moments):
    """``fn(u, *ms)`` for each leaf that has moments; other leaves of `updates` pass through untouched."""
    return jax.tree.map(
        lambda u, *ms: fn(u, *ms) if all(_has_moment(u, m) for m in ms) else u, updates, *moments
    )


def store(new, old):
    """Casts a freshly computed moment to its storage dtype (saturating, not overflowing); placeholders stay."""
    if not (is_float(new) and old.size):
        return old
    return clip_finite(new, old.dtype).astype(old.dtype)


def store_stochastic(new, old, key):
    """`store`, rounding at random into a storage dtype narrower than the arithmetic (see `stochastic_round`)."""
    if not (is_float(new) and old.size):
        return old
    return stochastic_round(new, old.dtype, key)


def _store_tree(new, old, seed):
    """Stores a tree of moments; with a `seed` (uint32), narrower storage is rounded stochastically, leaf i
    drawing its bits from ``seed + i * 0x632BE5AB`` (see `numerics.hash_bits`)."""
    if seed is None:
        return jax.tree.map(store, new, old)
    leaves_new, treedef = jax.tree.flatten(new)
    leaves_old = treedef.flatten_up_to(old)
    out = [store_stochastic(n, o, seed + jnp.uint32(i * 0x632BE5AB % 2**32))
           for i, (n, o) in enumerate(zip(leaves_new, leaves_old))]
    return jax.tree.unflatten(treedef, out)


def _check_tree(name: str, updates, moment) -> None:
    _checks.check_same_tree(updates, moment, f"{name}: updates", "the params given to init")
    for (path, u), m in zip(jax.tree_util.tree_flatten_with_path(updates)[0], jax.tree.leaves(moment)):
        if not hasattr(u, "dtype"):
            raise TypeError(
                f"{name}: updates at {_checks.path_str(path)} are a {type(u).__name__}, not an array"
            )
        if np.size(m) and not is_float(u):
            raise TypeError(
                f"{name}: updates at {_checks.path_str(path)} are {u.dtype}, but the param given to init is "
                "floating point: the gradient of a float param must be float"
            )


def scale_by_ema(decay: float, *, state_dtype=None) -> GradientTransformation:
    """First moment: ``m_t = decay * m_{t-1} + (1 - decay) * u_t``; outputs ``m_t``.

    Averages the incoming updates over an effective window of about
    ``1 / (1 - decay)`` steps (see `effective_window`). Starts at zero, so
    early outputs are biased toward 0: follow with `bias_correct(decay)`.
    """
    _checks.check_decay("decay", decay)
    state_dtype = check_state_dtype(state_dtype)

    def init(params):
        return EmaState(init_moment(params, state_dtype))

    def update(updates, state, params=None, **extra):
        del params, extra
        _check_tree("scale_by_ema", updates, state.moment)

        def ema(u, m):
            dt = compute_dtype(u, m)
            u, m = u.astype(dt), m.astype(dt)
            return saturate((1 - decay) * u + decay * m, u, m)

        new = apply_moment(ema, updates, state.moment)
        return new, EmaState(jax.tree.map(store, new, state.moment))

    return stage("scale_by_ema", init, update, role="moment")


def bias_correct(decay: float) -> GradientTransformation:
    """Bias correction: ``u_t / (1 - decay**t)``, t counting from 1.

    Undoes the pull toward zero of an EMA started at zero with the same
    `decay`. The step counter is int32 and saturates at 2**31 - 1.
    """
    _checks.check_decay("decay", decay)

    def init(params):
        del params
        return CountState(jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, **extra):
        del params, extra
        count = increment(state.count)
        bc = bias_correction_term(decay, count)
        out = leafwise(lambda u: u.astype(compute_dtype(u)) / bc, updates)
        return out, CountState(count)

    return stage("bias_correct", init, update)


def scale_by_rms(
    decay: float,
    eps: float = 1e-8,
    *,
    eps_in_sqrt: bool = False,
    bias_correction: bool = False,
    centered: bool = False,
    state_dtype=None,
    rounding: str = "stochastic",
) -> GradientTransformation:
    """Divides the updates by the root mean square of the *gradient*.

    ``v_t = decay * v_{t-1} + (1 - decay) * g_t**2``, ``v_hat = v_t / (1 - decay**t)``
    when `bias_correction` (else ``v_t``), and the output is
    ``u_t / (sqrt(v_hat) + eps)``, or ``u_t / sqrt(v_hat + eps)`` with
    `eps_in_sqrt`. With `centered`, ``v_hat`` is replaced by the variance
    ``max(v_hat - mean(g)**2, 0)`` (centered RMSProp).

    ``g`` is the gradient handed over by `adamlab.chain` (the extra argument
    ``gradient``), not the output of the previous stage: in Adam the previous
    stage outputs the first moment. Outside an adamlab chain pass
    ``gradient=`` yourself; without it this raises rather than guess.

    Numerics: a zero denominator (``eps = 0`` and a gradient that is zero
    or underflows when squared) gives 0, not NaN. ``v`` saturates at the
    float maximum instead of overflowing, so the state stays finite; but a
    gradient beyond ``sqrt(finfo(float32).max) ~ 1.8e19``, whose square
    float32 cannot hold, is outside what this formula can compute: the
    step stays finite (0 where ``v_hat`` overflows) without being exact.
    Clip such gradients first (`clip_by_global_norm` handles any finite
    gradient). With `state_dtype` narrower than float32 (bfloat16), ``rounding``
    ``"stochastic"`` (the default) rounds ``v`` into storage at random and
    unbiased, keyed by the step count, so the run stays deterministic;
    ``"nearest"`` is the plain cast, under which ``v`` stops decaying once
    ``(1 - decay) * v`` is below half a bfloat16 ulp (``decay > 0.996``).
    float16 storage is refused: ``g**2`` leaves its range.
    """
    _checks.check_decay("decay", decay)
    _checks.check_nonnegative("eps", eps)
    state_dtype = check_state_dtype(state_dtype, second_moment=True)
    if rounding not in ("stochastic", "nearest"):
        raise ValueError(f"rounding must be 'stochastic' or 'nearest', got {rounding!r}")
    stochastic = rounding == "stochastic" and state_dtype is not None and jnp.finfo(state_dtype).bits < 32
    use_bc = bias_correction

    def init(params):
        v = init_moment(params, state_dtype)
        mean = init_moment(params, state_dtype) if centered else ()
        return RmsState(jnp.zeros((), jnp.int32), v, mean)

    def update(updates, state, params=None, *, gradient=None, **extra):
        del params, extra
        # An empty tree (params None) has the gradient None too: nothing is missing then.
        if gradient is None and jax.tree.leaves(updates):
            raise ValueError(
                "scale_by_rms needs the gradient, which adamlab.chain hands to each stage as the extra "
                "argument `gradient`; it got none (is it inside a foreign chain such as optax.chain?). "
                "Wrap it: adamlab.chain(..., scale_by_rms(...)), or call update(..., gradient=grads)."
            )
        _check_tree("scale_by_rms: gradient", gradient, state.second_moment)
        _check_tree("scale_by_rms", updates, state.second_moment)
        count = increment(state.count)
        bc = bias_correction_term(decay, count) if use_bc else None

        def second(g, v):
            dt = compute_dtype(g, v)
            g, v = g.astype(dt), v.astype(dt)
            return saturate((1 - decay) * jnp.square(g) + decay * v, g, v)

        def first(g, m):
            dt = compute_dtype(g, m)
            g, m = g.astype(dt), m.astype(dt)
            return saturate((1 - decay) * g + decay * m, g, m)

        new_v = update_moment(second, gradient, state.second_moment)
        new_mean = update_moment(first, gradient, state.first_moment) if centered else ()

        def scale(u, v, *mean):
            v_hat = v / bc if use_bc else v
            # An Inf u over finite moments is an overflow (a bias-corrected mean rounding past the maximum).
            overflow = jnp.isinf(u) & jnp.isfinite(v)
            if mean:
                m_hat = mean[0] / bc if use_bc else mean[0]
                v_hat = jnp.maximum(v_hat - jnp.square(m_hat), 0)  # rounding can make the variance negative
                overflow = overflow | (~jnp.isfinite(v_hat) & jnp.isfinite(m_hat))  # Inf - Inf
            u = u.astype(v_hat.dtype)
            if eps_in_sqrt:
                denom = v_hat + eps
                out = u * jax.lax.rsqrt(denom)
            else:
                denom = jnp.sqrt(v_hat) + eps
                out = u / denom
            # eps = 0 and a gradient that is zero (or underflows when squared): no signal, no step, not 0/0.
            # The select acts on the quotient, not on u: a select between bias_correct's division and this one
            # changes how XLA compiles the pair and costs bit parity with Optax (measured, tests/test_parity.py).
            out = jnp.where((denom == 0) | overflow, jnp.zeros_like(out), out)
            return saturate(out, u, v, *mean)

        out = apply_moment(scale, updates, new_v, *((new_mean,) if centered else ()))
        # Rounding bits keyed by the step: a fresh draw every step, the same draw in every run.
        seed = count.astype(jnp.uint32) * jnp.uint32(0x9E3779B9) if stochastic else None
        new_state = RmsState(
            count,
            _store_tree(new_v, state.second_moment, seed),
            _store_tree(new_mean, state.first_moment, None if seed is None else seed ^ jnp.uint32(0x5BD1E995))
            if centered
            else (),
        )
        return out, new_state

    return stage("scale_by_rms", init, update, role="moment")


def trace(decay: float, nesterov: bool = False, *, state_dtype=None) -> GradientTransformation:
    """Heavy-ball momentum: ``t_k = u_k + decay * t_{k-1}``; outputs ``t_k``.

    With `nesterov`, outputs ``u_k + decay * t_k`` (look-ahead). Unlike
    `scale_by_ema` the input is not scaled by ``1 - decay``: the step grows
    to ``u / (1 - decay)`` on a constant gradient (saturating at the float
    maximum rather than overflowing).
    """
    _checks.check_decay("decay", decay)
    state_dtype = check_state_dtype(state_dtype)

    def init(params):
        return TraceState(init_moment(params, state_dtype))

    def update(updates, state, params=None, **extra):
        del params, extra
        _check_tree("trace", updates, state.trace)

        def step(u, t):
            dt = compute_dtype(u, t)
            u, t = u.astype(dt), t.astype(dt)
            return saturate(u + decay * t, u, t)

        new_t = update_moment(step, updates, state.trace)
        out = apply_moment(step if nesterov else (lambda u, t: t), updates, new_t)
        return out, TraceState(jax.tree.map(store, new_t, state.trace))

    return stage("trace", init, update, role="moment")


def effective_window(beta: float) -> float:
    """``1 / (1 - beta)``: roughly how many recent steps an EMA with decay `beta` averages."""
    _checks.check_decay("beta", beta)
    return 1.0 / (1.0 - beta)


def half_life(beta: float) -> float:
    """``log(0.5) / log(beta)``: steps after which a gradient's weight in the EMA has halved."""
    _checks.check_decay("beta", beta)
    if beta == 0.0:
        return 0.0
    return math.log(0.5) / math.log(beta)
