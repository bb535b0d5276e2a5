"""A moment stage, written once: a primitive gives its formula for one leaf, `moment_stage` does everything else.

A moment stage keeps, for every float leaf of the params, the moments named by
the fields of its state NamedTuple (all fields but ``count``), and, when the
state has a ``count`` field, an int32 step count. `moment_stage` supplies:

- ``init``: zero moments shaped like each float param, in float32 (or the
  param's wider dtype, or ``state_dtype``), ``(0,)`` placeholders for integer
  and boolean leaves, and ``count = 0``;
- ``update``: the updates (and, for a stage that reads the gradient, the
  gradient) checked against init's tree, with errors that name the path; the
  count incremented (saturating); the formula called on every float leaf with
  all its arguments cast to the compute dtype; other leaves passed through;
  the new moments stored back in their storage dtype, rounded stochastically
  when asked and narrower than float32.

AMSGrad's running maximum of the second moment, for example, is its formula
(``tests/test_stage_builder.py`` holds it to ``optax.amsgrad``, bit for bit)::

    class AmsState(NamedTuple):
        count: jax.Array
        second_moment: Any
        max_second_moment: Any

    def scale_by_amsgrad_rms(b2=0.999, eps=1e-8):
        def per_step(t):
            bc = bias_correction_term(b2, t)

            def leaf(u, g, v, v_max):
                v = (1 - b2) * jnp.square(g) + b2 * v
                v_max = jnp.maximum(v_max, v / bc)
                return u / (jnp.sqrt(v_max) + eps), v, v_max

            return leaf

        return moment_stage("scale_by_amsgrad_rms", AmsState, per_step=per_step, reads_gradient=True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks, quantize
from adamlab.base import GradientTransformation, stage
from adamlab.numerics import hash_bits, stochastic_round
from adamlab.quantize import INT8, is_quantized
from adamlab.tree import (
    check_state_dtype,
    fill,
    has_gradient,
    has_moment,
    increment,
    init_moment,
    load,
    logical,
    store,
    upcast,
)

# Odd constants that spread the stochastic-rounding seeds of steps, moments and leaves apart (see `hash_bits`).
_STEP_MIX, _MOMENT_MIX, _LEAF_MIX = 0x9E3779B9, 0x5BD1E995, 0x632BE5AB


def moment_stage(
    name: str,
    state_type: type,
    formula: Callable | None = None,
    *,
    per_step: Callable | None = None,
    reads_gradient: bool = False,
    state_dtype=None,
    holds_squares: bool = False,
    rounding: str = "nearest",
    absent: Sequence[str] = (),
    real: Sequence[str] = (),
    initial: dict | None = None,
) -> GradientTransformation:
    """Builds the transformation of a moment stage from the formula for one leaf.

    ``formula(u, *moments)`` (``formula(u, g, *moments)`` with
    `reads_gradient`) returns ``(out, *new_moments)``, moments in the order of
    `state_type`'s fields. When the step count is needed, pass instead
    ``per_step(t)``, called once per update with the new step count ``t``
    (1 on the first step), returning the formula: per-step scalars such as a
    bias correction are then computed once, not once per leaf.

    `reads_gradient`: the formula receives the gradient that `adamlab.chain`
    hands over (the extra argument ``gradient``), not only the incoming
    updates. `holds_squares`: refuses a `state_dtype` without float32's range.
    `rounding`: ``"nearest"`` or ``"stochastic"`` (unbiased, keyed by the step
    count, for storage narrower than float32). `absent`: moment fields this
    configuration does not keep; they hold ``()``. `real`: moment fields that
    stay real for complex params (moments of ``|g|**2``). `initial`: a start
    value other than 0 for some fields (``{"second_moment": 1.0}``).
    """
    fields = [f for f in state_type._fields if f != "count"]
    counted = "count" in state_type._fields
    moments = [f for f in fields if f not in absent]
    if (formula is None) == (per_step is None):
        raise TypeError(f"{name}: give exactly one of formula and per_step")
    if per_step is not None and not counted:
        raise TypeError(f"{name}: per_step needs a `count` field in {state_type.__name__}")
    if rounding not in ("stochastic", "nearest"):
        raise ValueError(f"rounding must be 'stochastic' or 'nearest', got {rounding!r}")
    state_dtype = check_state_dtype(state_dtype, second_moment=holds_squares)
    stochastic = rounds_stochastically(state_dtype, rounding)
    if stochastic and not counted:
        raise TypeError(f"{name}: stochastic rounding draws its bits from the step: {state_type.__name__} needs a "
                        "`count` field")

    def init(params):
        values = {f: init_moment(params, state_dtype, real=f in real) if f in moments else () for f in fields}
        for f, value in (initial or {}).items():
            if not _checks.known_zero(value):
                values[f] = fill(values[f], value)
        return state_type(**values, **({"count": jnp.zeros((), jnp.int32)} if counted else {}))

    def update(updates, state, params=None, *, gradient=None, **extra):
        del params, extra
        olds = [getattr(state, f) for f in moments]
        if reads_gradient:
            require_gradient(name, updates, gradient, f"adamlab.chain(..., {name}(...))")
            _check_tree(f"{name}: gradient", gradient, olds[0])
        _check_tree(name, updates, olds[0])
        count = increment(state.count) if counted else None
        leaf = per_step(count) if per_step is not None else formula

        u_leaves, treedef = jax.tree.flatten(updates)
        g_leaves = treedef.flatten_up_to(gradient) if reads_gradient else [()] * len(u_leaves)
        old_leaves = [treedef.flatten_up_to(m) for m in olds]
        outs, news = [], [[] for _ in olds]
        for i, (u, g) in enumerate(zip(u_leaves, g_leaves)):
            ms = [load(m[i]) for m in old_leaves]
            if not all(has_moment(u, m) for m in ms):
                result = (u, *ms)
            else:
                result = leaf(*upcast(*((u, g, *ms) if reads_gradient else (u, *ms))))
            outs.append(result[0])
            for new, r in zip(news, result[1:]):
                new.append(r)

        seed = count.astype(jnp.uint32) * jnp.uint32(_STEP_MIX) if stochastic else None
        stored = {}
        for j, (f, new, old) in enumerate(zip(moments, news, old_leaves)):
            if seed is None:
                leaves = [store(n, o) for n, o in zip(new, old)]
            else:
                s = seed ^ jnp.uint32(j * _MOMENT_MIX % 2**32)
                leaves = [_store_stochastic(n, o, s + jnp.uint32(i * _LEAF_MIX % 2**32))
                          for i, (n, o) in enumerate(zip(new, old))]
            stored[f] = jax.tree.unflatten(treedef, leaves)
        values = {f: stored.get(f, ()) for f in fields}
        new_state = state_type(**values, **({"count": count} if counted else {}))
        return jax.tree.unflatten(treedef, outs), new_state

    return stage(name, init, update, role="moment")


def countless_storage(state_dtype, rounding: str | None, plain: type, counted: type) -> tuple[str, type]:
    """The rounding and state type of a moment whose formula needs no step count: `rounding`, or by default
    stochastic for 8-bit codes (rounded to nearest, a slowly moving moment keeps its code:
    ``tests/test_quantize.py``) and nearest otherwise; `counted` (a `plain` with a ``count`` field, the seed of
    the rounding) when that rounding is stochastic, else `plain`."""
    if rounding is None:
        rounding = "stochastic" if check_state_dtype(state_dtype) == INT8 else "nearest"
    return rounding, counted if rounds_stochastically(state_dtype, rounding) else plain


def rounds_stochastically(state_dtype, rounding: str) -> bool:
    """Whether `rounding` applies: stochastic, into storage narrower than float32 (8-bit codes included)."""
    dtype = check_state_dtype(state_dtype)
    return rounding == "stochastic" and dtype is not None and (dtype == INT8 or jnp.finfo(dtype).bits < 32)


def require_gradient(name: str, updates, gradient, wrap: str) -> None:
    """The error of a stage that reads the gradient and got none; `wrap` shows the chain it belongs in."""
    # An empty tree (params None) has the gradient None too: nothing is missing then.
    if gradient is None and jax.tree.leaves(updates):
        raise ValueError(
            f"{name} needs the gradient, which adamlab.chain hands to each stage as the extra argument `gradient`; "
            f"it got none (is it inside a foreign chain such as optax.chain?). Wrap it: {wrap}, or call "
            "update(..., gradient=grads)."
        )


def _store_stochastic(new, old, seed):
    if is_quantized(old):
        return quantize.encode(new, old.signed, old.code, bits=hash_bits(new.shape, seed))
    if not (has_gradient(new) and old.size) or jnp.iscomplexobj(new):
        return store(new, old)
    return stochastic_round(new, old.dtype, seed)


def _check_tree(name: str, updates, moment) -> None:
    moment = logical(moment)
    _checks.check_same_tree(updates, moment, f"{name}: updates", "the params given to init")
    for (path, u), m in zip(jax.tree_util.tree_flatten_with_path(updates)[0], jax.tree.leaves(moment)):
        if not hasattr(u, "dtype"):
            raise TypeError(f"{name}: updates at {_checks.path_str(path)} are a {type(u).__name__}, not an array")
        if np.size(m) and not has_gradient(u):
            raise TypeError(
                f"{name}: updates at {_checks.path_str(path)} are {u.dtype}, but the param given to init is "
                "floating point: the gradient of a float param must be float"
            )
