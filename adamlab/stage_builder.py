"""A moment stage, written once: a primitive gives its formula for one leaf, `moment_stage` does everything else.

Every built-in moment (:func:`adamlab.scale_by_ema`, :func:`adamlab.scale_by_rms`, :func:`adamlab.trace`,
:func:`adamlab.scale_by_max_rms`, ...) is built by :func:`adamlab.moment_stage`, and a moment of your own can be too.

A moment stage keeps, for every float leaf of the params, the moments named by
the fields of its state NamedTuple (all fields but ``count``), and, when the
state has a ``count`` field, an int32 step count. :func:`adamlab.moment_stage` supplies:

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
from adamlab.numerics import _round_with_bits, hash_bits
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
    per_precision,
    scalars_for,
    store,
    upcast,
)

# Odd constants that spread the stochastic-rounding seeds of steps and moments apart (see `hash_bits`).
_STEP_MIX, _MOMENT_MIX = 0x9E3779B9, 0x5BD1E995


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
    recurrence: dict | None = None,
) -> GradientTransformation:
    """Builds the transformation of a moment stage from the formula for one leaf.

    ``formula(u, *moments)`` (``formula(u, g, *moments)`` with
    `reads_gradient`) returns ``(out, *new_moments)``, moments in the order of
    `state_type`'s fields. When the step count is needed, pass instead
    ``per_step(t)``, called once per update with the new step count ``t``
    (1 on the first step), returning the formula: per-step scalars such as a
    bias correction are then computed once, not once per leaf.

    ::

        init(params)          -> state_type(count=0, <field>=zeros like params, ...)
        update(u, state, ...) -> t = count + 1 (saturating);  f = formula, or per_step(t)
                                 for every float leaf:  out, *new = f(u, [g,] *old)
                                 -> (tree of out, state_type(count=t, <field>=tree of new, ...))

    Everything around the formula comes from here, the same for every built-in moment
    (:func:`adamlab.scale_by_ema`, :func:`adamlab.scale_by_rms`, :func:`adamlab.scale_by_max_rms`, ...):
    checks that the updates (and gradient) have the tree of the params given to ``init``, with errors that name
    the path; ``(0,)`` placeholders for integer and bool leaves, which pass through unchanged; the formula's
    arguments cast to float32 or wider (8-bit moments decoded); the new moments stored back in their storage
    dtype (saturating, or rounded stochastically when asked). The formula is plain JAX code, traced once per
    float leaf each time ``update`` is traced (a Python loop over the leaves); it must return arrays of the
    leaf's shape. The stage's role is "moment": :func:`adamlab.chain` fixes the gradient at the input of its
    first moment stage and checks that gradient stages come before it and direction stages after it.

    Args:
      name: The stage's name, used in error messages and reported by :func:`adamlab.stage_info` as
        ``StageInfo.name`` (with role ``"moment"``). Use the constructor's name; adamlab finds some stages by
        name (:func:`adamlab.clip_by_rms_ratio` looks for ``"scale_by_rms"``), so do not reuse a built-in name.
      state_type: A NamedTuple class (`typing.NamedTuple`), the stage's state. Every field but ``count`` names a
        moment, a tree like the params, passed to the formula in field order; give at least one field that
        `absent` does not name. A field called ``count`` (anywhere in the tuple) makes the stage keep an int32
        step count, 0 after ``init`` and incremented (saturating at ``2**31 - 1``) before the formula runs; it
        is required by `per_step` and by stochastic rounding.
      formula: The update of one leaf, ``formula(u, *moments) -> (out, *new_moments)``, or with
        `reads_gradient` ``formula(u, g, *moments)``: ``u`` the incoming update leaf, ``g`` the gradient leaf,
        the moments in `state_type`'s field order (``count`` and `absent` fields left out), all upcast to at
        least float32 (complex64 for complex leaves). It returns the outgoing update leaf and the new value of
        each moment, in the same order. Default None; give exactly one of `formula` and `per_step`.
      per_step: Instead of `formula`, ``per_step(t) -> formula``: called once per ``update`` with the new step
        count ``t`` (an int32 scalar array, 1 on the first step), it returns the formula for every leaf of
        this step, so that per-step scalars such as ``bias_correction_term(decay, t)``
        (:func:`adamlab.moments.bias_correction_term`) or a schedule's value are computed once, not once per
        leaf. Needs a ``count`` field in `state_type`. Default None.
      reads_gradient: Default False: the formula sees the incoming updates only. True: it also receives ``g``,
        the gradient :func:`adamlab.chain` hands to every stage as the extra argument ``gradient`` (the updates
        as they entered the chain's first moment stage, i.e. after any clipping or coupled weight decay), as
        :func:`adamlab.scale_by_rms` does to divide the first moment by the gradient's RMS. Called outside an
        adamlab chain, ``update`` then needs ``gradient=grads``.
      state_dtype: Storage dtype of every moment: ``jnp.bfloat16``, ``jnp.float16`` (refused with
        `holds_squares`), ``jnp.int8`` (8-bit block-wise codes for real float leaves of at least 4096 elements,
        float32 for smaller or complex ones), or a float dtype. Default None: float32, or the param's dtype
        when wider (complex64 for complex params). The formula always computes in float32 or wider.
      holds_squares: Default False. True for a moment of squared values: refuses a `state_dtype` without
        float32's exponent range (``jnp.float16``, where ``g**2`` overflows above about 256) with a ValueError.
      rounding: How new moments are rounded into a `state_dtype` narrower than float32: ``"nearest"`` (default)
        or ``"stochastic"`` (unbiased, with bits hashed from the step count, the moment and the leaf, so runs
        are reproducible); stochastic rounding needs a ``count`` field. No effect for float32 storage.
      absent: Names of moment fields this configuration does not keep (default none): they hold ``()`` in the
        state, are not passed to the formula and get no new value from it (``scale_by_rms`` lists
        ``"gradient_mean"`` unless ``centered``).
      real: Names of moment fields that stay real for complex params (moments of ``|g|**2``, default none):
        float32 where other moments of a complex leaf are complex64, and, under ``jnp.int8``, the unsigned
        8-bit code, which holds values ``>= 0`` only. The formula must return real values for them.
      initial: Start values other than 0, a dict from field name to a Python number, e.g.
        ``{"second_moment": 1.0}`` (``scale_by_rms``'s ``initial_scale``); every float leaf of that moment
        starts there. Default None: every moment starts at 0.
      recurrence: For moments the formula updates as a linear recurrence ``new = a * old + c * x`` (an EMA: ``a =
        b``, ``c = 1 - b``), a dict from field name to ``(u[, g]) -> (a, c, x)`` (the formula's leaf arguments
        before the moments; ``a``, ``c`` scalars, ``x`` shaped like the leaf), or ``(a, c, y, f)`` where the
        recurrence's input is a function of ``y`` whose block maximum is ``f(max|y|)`` (for ``x = g**2``: ``(b, 1 -
        b, g, lambda top: top * top)``, so that both of Adam's moments read one block maximum of ``|g|``). Under
        ``jnp.int8`` such a moment's block scales are kept as the running bound ``s <- |a| * s + |c| * max|x|``
        over the block, which holds ``|new|`` by induction and is read from the gradient (one reduction), instead
        of the new moment's block maximum (a second pass). No effect on other storage. Default None: block
        maxima.

    Returns:
      A `GradientTransformation` whose ``init(params)`` returns a `state_type` and whose
      ``update(updates, state, params=None, *, gradient=None, **extra)`` returns the tree of outputs (float32
      or wider for float leaves, the incoming leaf for the others; :func:`adamlab.chain` casts them back to
      the dtype it received) and the new `state_type`.

    Raises:
      TypeError: At build time, if both or neither of `formula` and `per_step` are given; if `per_step`, or
        stochastic rounding into a narrow `state_dtype`, is asked of a `state_type` without a ``count``
        field; if `state_dtype` is not a float dtype (nor ``jnp.int8``). At update time, if an updates leaf is
        not an array, or is not floating point where the param was.
      ValueError: At build time, if `rounding` is neither ``"nearest"`` nor ``"stochastic"``, or if
        `holds_squares` and `state_dtype` lacks float32's exponent range. At update time, if the updates (or
        the gradient) do not have the tree structure and shapes of the params given to ``init``, or if
        `reads_gradient` and no gradient is given.

    Example:
      A formula without a count: a running sum of the updates, kept as the field ``total``.

      >>> from typing import Any, NamedTuple
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> class SumState(NamedTuple):
      ...     total: Any
      >>> running_sum = adamlab.moment_stage("running_sum", SumState, lambda u, s: (u + s, u + s))
      >>> state = running_sum.init({"w": jnp.zeros(2), "steps": jnp.zeros((), jnp.int32)})
      >>> for _ in range(3):
      ...     out, state = running_sum.update({"w": jnp.ones(2), "steps": jnp.zeros((), jnp.int32)}, state)
      >>> print(out["w"], state.total["steps"].shape)  # the int leaf has a (0,) placeholder and passes through
      [3. 3.] (0,)

      AMSGrad's running maximum of the bias-corrected second moment, from its formula (the built-in
      :func:`adamlab.scale_by_max_rms` computes the same):

      >>> from adamlab.moments import bias_correction_term
      >>> class AmsState(NamedTuple):
      ...     count: jax.Array
      ...     second_moment: Any
      ...     max_second_moment: Any
      >>> def scale_by_amsgrad_rms(b2=0.999, eps=1e-8):
      ...     def per_step(t):  # once per step: the bias correction is computed once
      ...         bc = bias_correction_term(b2, t)
      ...         def leaf(u, g, v, v_max):  # u: incoming update, g: gradient, then the moments
      ...             v = (1 - b2) * jnp.square(g) + b2 * v
      ...             v_max = jnp.maximum(v_max, v / bc)
      ...             return u / (jnp.sqrt(v_max) + eps), v, v_max
      ...         return leaf
      ...     return adamlab.moment_stage("scale_by_amsgrad_rms", AmsState, per_step=per_step,
      ...                                 reads_gradient=True, holds_squares=True)
      >>> ours = adamlab.chain(scale_by_amsgrad_rms(0.5))
      >>> builtin = adamlab.chain(adamlab.scale_by_max_rms(0.5))
      >>> s1, s2 = ours.init({"w": jnp.zeros(2)}), builtin.init({"w": jnp.zeros(2)})
      >>> for g in ([1.0, 2.0], [0.1, 3.0]):
      ...     u1, s1 = ours.update({"w": jnp.array(g)}, s1)
      ...     u2, s2 = builtin.update({"w": jnp.array(g)}, s2)
      >>> print([round(float(x), 4) for x in u1["w"]], bool(jnp.all(u1["w"] == u2["w"])))
      [0.1, 1.1078] True
      >>> s1[0].count
      Array(2, dtype=int32)
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
    bounds = dict(recurrence or {}) if state_dtype == INT8 else {}
    if set(bounds) - set(moments):
        raise ValueError(f"{name}: recurrence names {sorted(set(bounds) - set(moments))}, not moments of the stage")
    if stochastic and not counted:
        raise TypeError(
            f"{name}: stochastic rounding draws its bits from the step: {state_type.__name__} needs a `count` field"
        )

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
        if per_step is not None:
            make = per_step
            formula_for = per_precision(lambda: make(count))  # per-step scalars in each leaf's precision
        elif formula is not None:
            fixed = formula
            formula_for = lambda u: fixed
        else:  # ruled out when the stage was built
            raise TypeError(f"{name}: give exactly one of formula and per_step")

        u_leaves, treedef = jax.tree.flatten(updates)
        g_leaves = treedef.flatten_up_to(gradient) if reads_gradient else [()] * len(u_leaves)
        old_leaves = [treedef.flatten_up_to(m) for m in olds]
        outs, news = [], [[] for _ in olds]
        for i, (u, g) in enumerate(zip(u_leaves, g_leaves)):
            ms = [load(m[i]) for m in old_leaves]
            if not all(has_moment(u, m) for m in ms):
                result = (u, *ms)
            else:
                with scalars_for(u):
                    result = formula_for(u)(*upcast(*((u, g, *ms) if reads_gradient else (u, *ms))))
            outs.append(result[0])
            for new, r in zip(news, result[1:]):
                new.append(r)

        seed = count.astype(jnp.uint32) * jnp.uint32(_STEP_MIX) if stochastic and count is not None else None
        stored = {}
        for j, (f, new, old) in enumerate(zip(moments, news, old_leaves)):
            leaves = []
            for i, (n, o) in enumerate(zip(new, old)):
                scales = None
                if f in bounds and is_quantized(o) and has_moment(u_leaves[i], n):
                    a, c, x, *bound = bounds[f](
                        *upcast(*((u_leaves[i], g_leaves[i]) if reads_gradient else (u_leaves[i],)))
                    )
                    scales = quantize.running_bound(o.scales, a, c, x, *bound)
                if is_quantized(o):
                    bits = None if seed is None else _code_bits(n, seed, j + (moments[0] in real))
                    leaves.append(quantize.encode(n, o.signed, o.code, bits, scales))
                elif seed is None:
                    leaves.append(store(n, o))
                else:
                    leaves.append(_store_stochastic(n, o, seed ^ jnp.uint32(j * _MOMENT_MIX % 2**32)))
            stored[f] = jax.tree.unflatten(treedef, leaves)
        values = {f: stored.get(f, ()) for f in fields}
        new_state = state_type(**values, **({"count": count} if counted else {}))
        return jax.tree.unflatten(treedef, outs), new_state

    return stage(name, init, update, role="moment")


def countless_storage(state_dtype, rounding: str | None, plain: type, counted: type) -> tuple[str, type]:
    """The rounding and state type of a moment whose formula needs no step count: `rounding`, or by default
    stochastic for 8-bit codes (rounded to nearest, a slowly moving moment keeps its code:
    ``tests/test_quantize.py``) and nearest otherwise; `counted` (a `plain` with a ``count`` field, the seed of
    the rounding) when that rounding is stochastic, else `plain`.

    Internal (used by ``scale_by_ema`` and ``trace``): decides in Python, at build time, which state NamedTuple
    the stage keeps.

    Args:
      state_dtype: The stage's storage dtype (None, a float dtype, or ``jnp.int8``).
      rounding: ``"nearest"``, ``"stochastic"``, or None for the default above.
      plain: The state NamedTuple without a ``count`` field (e.g. ``EmaState``).
      counted: The same fields plus ``count`` (e.g. ``CountedEmaState``).

    Returns:
      ``(rounding, state_type)``: the rounding to pass to :func:`adamlab.moment_stage` and `counted` or `plain`.

    Raises:
      TypeError: If `state_dtype` is not a float dtype (nor ``jnp.int8``).

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.moments import CountedEmaState, EmaState
      >>> from adamlab.stage_builder import countless_storage
      >>> countless_storage(jnp.int8, None, EmaState, CountedEmaState)[1].__name__
      'CountedEmaState'
      >>> countless_storage(jnp.bfloat16, None, EmaState, CountedEmaState)[1].__name__
      'EmaState'
    """
    if rounding is None:
        rounding = "stochastic" if check_state_dtype(state_dtype) == INT8 else "nearest"
    return rounding, counted if rounds_stochastically(state_dtype, rounding) else plain


def rounds_stochastically(state_dtype, rounding: str) -> bool:
    """Whether `rounding` applies: stochastic, into storage narrower than float32 (8-bit codes included).

    Internal: a stochastic `rounding` into float32 or wider storage is a no-op, and needs no step count.

    Args:
      state_dtype: The storage dtype (None for float32 or wider, a float dtype, or ``jnp.int8``).
      rounding: ``"nearest"`` or ``"stochastic"``.

    Returns:
      True when `rounding` is ``"stochastic"`` and `state_dtype` is ``jnp.int8`` or a float narrower than 32 bits.

    Raises:
      TypeError: If `state_dtype` is not a float dtype (nor ``jnp.int8``).

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.stage_builder import rounds_stochastically
      >>> rounds_stochastically(jnp.bfloat16, "stochastic"), rounds_stochastically(None, "stochastic")
      (True, False)
    """
    dtype = check_state_dtype(state_dtype)
    return rounding == "stochastic" and dtype is not None and (dtype == INT8 or jnp.finfo(dtype).bits < 32)


def require_gradient(name: str, updates, gradient, wrap: str) -> None:
    """The error of a stage that reads the gradient and got none; `wrap` shows the chain it belongs in.

    Internal: called at the top of the ``update`` of every stage that reads the gradient. An empty `updates`
    tree needs no gradient.

    Args:
      name: The stage's name, for the message.
      updates: The updates the stage received.
      gradient: The ``gradient`` extra argument it received (None when called outside an adamlab chain).
      wrap: The chain to suggest in the message, e.g. ``"adamlab.chain(..., cautious_mask(), ...)"``.

    Returns:
      None, when a gradient was given (or nothing needs one).

    Raises:
      ValueError: If `gradient` is None and `updates` has leaves.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.stage_builder import require_gradient
      >>> require_gradient("my_stage", {"w": jnp.ones(2)}, None, "adamlab.chain(my_stage())")
      Traceback (most recent call last):
        ...
      ValueError: my_stage needs the gradient, which adamlab.chain hands to each stage ...
    """
    # An empty tree (params None) has the gradient None too: nothing is missing then.
    if gradient is None and jax.tree.leaves(updates):
        raise ValueError(
            f"{name} needs the gradient, which adamlab.chain hands to each stage as the extra argument `gradient`; "
            f"it got none (is it inside a foreign chain such as optax.chain?). Wrap it: {wrap}, or call "
            "update(..., gradient=grads)."
        )


def _code_bits(value: jax.Array, seed, slot: int) -> jax.Array:
    """The random bits (the top 16 of a uint32) an 8-bit moment rounds `value` (its new float32 value) with.

    One hash per element and step serves two moments: slot `k` takes the (k % 2)-th half of hash k // 2. A
    stage's moments take successive slots, starting at 1 when its first moment is unsigned (a second moment), so
    that Adam's m (``scale_by_ema``) and v (``scale_by_rms``), stages of their own with equal step counts, draw
    the two halves of one hash. The hash depends on the element's index and the step, not on the leaf: XORed with
    the value's own bit pattern, the bits stay uniform given the value (rounding stays unbiased) and differ from
    leaf to leaf, while leaves of one shape keep one program (XLA compiles identical fusions once; a constant per
    leaf made the per-leaf step over 100 leaves compile 3.5x slower: benchmarks/RESULTS.md)."""
    h = hash_bits(value.shape, seed, (slot // 2) * _MOMENT_MIX)
    h = h & jnp.uint32(0xFFFF0000) if slot % 2 == 0 else h << 16
    return (h ^ jax.lax.bitcast_convert_type(value.astype(jnp.float32), jnp.uint32)) & jnp.uint32(0xFFFF0000)


def _store_stochastic(new, old, seed):
    if not (has_gradient(new) and old.size) or jnp.iscomplexobj(new):
        return store(new, old)
    # As for 8-bit codes (`_code_bits`): the bits hash the element's index and the step, XORed with the value's
    # own bits (uniform given the value), and carry no constant per leaf, so that leaves of one shape keep one
    # compiled program (100 leaves of bfloat16 state: compile 4.0 -> 1.3 s, benchmarks/RESULTS.md).
    value = lambda: jax.lax.bitcast_convert_type(new.astype(jnp.float32), jnp.uint32)
    return _round_with_bits(new, old.dtype, lambda: hash_bits(new.shape, seed) ^ value())


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
