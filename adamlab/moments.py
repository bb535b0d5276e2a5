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
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import GradientTransformation, stage

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


def compute_dtype(*leaves) -> jnp.dtype:
    """float32, or wider if any leaf is wider: low precision is for storage, not arithmetic."""
    return jnp.result_type(jnp.float32, *[x.dtype for x in leaves])


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


def store(new, old):
    """Casts a freshly computed moment to its storage dtype; placeholders stay as they are."""
    return new.astype(old.dtype) if is_float(new) and old.size else old


def _check_tree(name: str, updates, moment) -> None:
    _checks.check_same_tree(updates, moment, f"{name}: updates", "the params given to init")


def scale_by_ema(decay: float, *, state_dtype=None) -> GradientTransformation:
    """First moment: ``m_t = decay * m_{t-1} + (1 - decay) * u_t``; outputs ``m_t``.

    Averages the incoming updates over an effective window of about
    ``1 / (1 - decay)`` steps (see `effective_window`). Starts at zero, so
    early outputs are biased toward 0: follow with `bias_correct(decay)`.
    """
    _checks.check_decay("decay", decay)

    def init(params):
        return EmaState(init_moment(params, state_dtype))

    def update(updates, state, params=None, **extra):
        del params, extra
        _check_tree("scale_by_ema", updates, state.moment)

        def ema(u, m):
            dt = compute_dtype(u, m)
            return (1 - decay) * u.astype(dt) + decay * m.astype(dt)

        new = leafwise(ema, updates, state.moment)
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
) -> GradientTransformation:
    """Divides the updates by the root mean square of the *gradient*.

    ``v_t = decay * v_{t-1} + (1 - decay) * g_t**2``, ``v_hat = v_t / (1 - decay**t)``
    when `bias_correction` (else ``v_t``), and the output is
    ``u_t / (sqrt(v_hat) + eps)``, or ``u_t / sqrt(v_hat + eps)`` with
    `eps_in_sqrt`. With `centered`, ``v_hat`` is replaced by the variance
    ``v_hat - mean(g)**2`` (centered RMSProp).

    ``g`` is the gradient handed over by `adamlab.chain` (the extra argument
    ``gradient``), not the output of the previous stage: in Adam the previous
    stage outputs the first moment. Outside an adamlab chain pass
    ``gradient=`` yourself; without it this raises rather than guess.
    """
    _checks.check_decay("decay", decay)
    _checks.check_nonnegative("eps", eps)
    use_bc = bias_correction

    def init(params):
        v = init_moment(params, state_dtype)
        mean = init_moment(params, state_dtype) if centered else ()
        return RmsState(jnp.zeros((), jnp.int32), v, mean)

    def update(updates, state, params=None, *, gradient=None, **extra):
        del params, extra
        if gradient is None:
            raise ValueError(
                "scale_by_rms needs the gradient, which adamlab.chain hands to each stage as the extra "
                "argument `gradient`; it got none (is it inside a foreign chain such as optax.chain?). "
                "Wrap it: adamlab.chain(..., scale_by_rms(...)), or call update(..., gradient=grads)."
            )
        _check_tree("scale_by_rms: gradient", gradient, state.second_moment)
        _check_tree("scale_by_rms", updates, state.second_moment)
        count = increment(state.count)
        bc = bias_correction_term(decay, count) if use_bc else None

        def moments(g, v):
            dt = compute_dtype(g, v)
            g = g.astype(dt)
            return (1 - decay) * jnp.square(g) + decay * v.astype(dt)

        new_v = leafwise(moments, gradient, state.second_moment)
        new_mean = leafwise(
            lambda g, m: (1 - decay) * g.astype(compute_dtype(g, m)) + decay * m.astype(compute_dtype(g, m)),
            gradient,
            state.first_moment,
        ) if centered else ()

        def scale(u, v, *mean):
            v_hat = v / bc if use_bc else v
            if mean:
                m_hat = mean[0] / bc if use_bc else mean[0]
                v_hat = v_hat - jnp.square(m_hat)
            u = u.astype(v_hat.dtype)
            if eps_in_sqrt:
                return u * jax.lax.rsqrt(v_hat + eps)
            return u / (jnp.sqrt(v_hat) + eps)

        out = leafwise(scale, updates, new_v, *((new_mean,) if centered else ()))
        new_state = RmsState(
            count,
            jax.tree.map(store, new_v, state.second_moment),
            jax.tree.map(store, new_mean, state.first_moment) if centered else (),
        )
        return out, new_state

    return stage("scale_by_rms", init, update, role="moment")



def trace(decay: float, nesterov: bool = False, *, state_dtype=None) -> GradientTransformation:
    """Heavy-ball momentum: ``t_k = u_k + decay * t_{k-1}``; outputs ``t_k``.

    With `nesterov`, outputs ``u_k + decay * t_k`` (look-ahead). Unlike
    `scale_by_ema` the input is not scaled by ``1 - decay``: the step grows
    to ``u / (1 - decay)`` on a constant gradient.
    """
    _checks.check_decay("decay", decay)

    def init(params):
        return TraceState(init_moment(params, state_dtype))

    def update(updates, state, params=None, **extra):
        del params, extra
        _check_tree("trace", updates, state.trace)

        def step(u, t):
            dt = compute_dtype(u, t)
            u = u.astype(dt)
            return u + decay * t.astype(dt)

        new_t = leafwise(step, updates, state.trace)
        out = leafwise(step, updates, new_t) if nesterov else new_t
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
