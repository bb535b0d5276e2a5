"""Narrow state and extreme gradients for the rest of Optax's first-order family (issue 22, `tests/family.py`).

Every member whose state is a moment keeps it in bfloat16 or in 8-bit codes when asked (Adafactor's factored
rows and columns too: `tests/test_quantize.py`), keeps its state's layout and its updates' dtypes over jitted
steps, and minimises a badly scaled quadratic about as well as with float32 state. Every member's updates and
params stay finite on zero, tiny and huge gradients, in float32 state and (members with moments) in bfloat16.

These tests cost compile time on the CPU, not run time. So the cases of one state dtype share one jitted step
(every member side by side, the gradient kinds batched by `jax.vmap`), compiled once, called once per step from
Python (in a scan the compile takes twice as long) and read by every test of that dtype.
"""

from __future__ import annotations

import functools

import family
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_numerics import mixed_dtype_params
from test_quantize import FAST_COMPILE, noisy_step, quadratic

from adamlab import ScheduleFreeState, apply_updates, quantize

I8, BF16 = jnp.int8, jnp.bfloat16
DTYPES = {"float32": None, "bfloat16": BF16, "int8": I8}
# 1e-30: its square underflows float32. 1e18: the largest whose square fits, so everything stays finite, the
# state included. 1e30: its square overflows, so a second moment may hold Inf (that weight's step is then 0, as
# in Optax: tests/test_numerics.py), but no NaN, and the updates and params stay finite. A leaf whose dtype
# cannot hold a value gets the nearest normal one it can (float16: 6.1e-5 and 65504).
KINDS = {"zero": 0.0, "tiny": 1e-30, "fits": 1e18, "huge": 1e30}
STEPS = {"extremes": 3, "quadratic": 30}  # 30: the registry's schedule decays to 0 at step 30
# Narrow state may lose at most LOST of float32's progress on the quadratic (start loss minus final loss), and
# end at most AWAY from float32's final loss either way, in the same unit. Measured: bfloat16 within 0.05% either
# way; int8 loses at most 0.57% (radam), and LAMB's 8-bit run gains 9.5% (an 8-bit v overestimates the small
# entries of its block, which shrinks their steps, and the trust ratio hands that share of the step's length to
# the others). Controls, float32 state tampered with at every step: zeroed, it loses 10% to 95% (schedule_free_sgd
# diverges), gains 19% to 415% (optimistic_adam_v2, simplified_ademamix, radam), or moves by under 6% (muon,
# signum, lamb, adafactor: 30 steps without memory do nearly as well); scaled by a random factor in [0.5, 1.5], it
# loses 4.1% (adafactor) to 10**12, or gains 75600% (lars).
LOST, AWAY = 0.02, 0.25

_EXTREMES = ("float32", "bfloat16")  # the state dtypes of the extreme-gradient runs


def members(dtype: str) -> list[str]:
    """The members a dtype's runs hold: every member in float32, those with moments in a narrow dtype."""
    return list(family.FAMILY) if dtype == "float32" else family.with_state()


def quadratic_params():
    """A bfloat16 matrix (Muon's), large enough for 8-bit codes, and a float32 vector (AdamW's, in Muon), too
    small for them (each 8-bit moment costs compile time)."""
    k = jax.random.split(jax.random.PRNGKey(1), 2)
    return {"w": (jax.random.normal(k[0], (64, 128)) * 0.1).astype(BF16), "v": jax.random.normal(k[1], (64,)) * 0.1}


@functools.cache
def loss():
    """The quadratic of tests/test_quantize.py over `quadratic_params`, jitted."""
    return jax.jit(quadratic(quadratic_params()))


def build(name: str, dtype: str):
    dt = DTYPES[dtype]
    return family.build(name) if dt is None else family.build(name, state_dtype=dt)


def view(name: str):
    """Where a member's gradient is taken: its params, or the fast weights of a lookahead pair."""
    return (lambda p: p.fast) if family.FAMILY[name].params == "lookahead" else (lambda p: p)


def extreme(params, value: float):
    """`value` with alternating signs in every float leaf, in the leaf's dtype (clipped to its normal range); the
    other leaves as they are. Built in NumPy: op by op, JAX would compile every little operation."""

    def leaf(p):
        if not jnp.issubdtype(p.dtype, jnp.floating):
            return np.asarray(p)
        fi = jnp.finfo(p.dtype)
        v = 0.0 if value == 0 else float(np.clip(value, float(fi.tiny), float(fi.max)))
        return (np.where(np.arange(p.size).reshape(p.shape) % 2 == 0, 1.0, -1.0) * v).astype(p.dtype)

    return jax.tree.map(leaf, params)


def extremes_inputs():
    """The mixed-dtype tree and its gradients, one of each kind, stacked."""
    mixed = mixed_dtype_params()
    return mixed, jax.tree.map(lambda *g: jnp.asarray(np.stack(g)), *[extreme(mixed, v) for v in KINDS.values()])


def extremes_case(name: str, tx):
    """``(init, step)`` from the mixed-dtype tree, batched over the gradient kinds: ``init(inputs) -> carry``,
    ``step(carry, i) -> (*carry, updates)``, the carry ``(grads, params, state)``."""

    def one(g, p, s):
        u, s = tx.update(g, s, p)
        return apply_updates(p, u), s, u

    def init(inputs):
        mixed, grads = inputs
        params = family.initial_params(name, mixed)
        batch = lambda tree: jax.tree.map(lambda x: jnp.broadcast_to(x, (len(KINDS), *jnp.shape(x))), tree)
        return grads, batch(params), batch(tx.init(params))

    def step(carry, i):
        del i
        grads, params, state = carry
        return grads, *jax.vmap(one)(grads, params, state)

    return init, step


def quadratic_case(name: str, tx):
    """``(init, step)`` of the noisy descent on the quadratic of tests/test_quantize.py, the carry ``(params,
    state)``."""

    def init(params):
        start = family.initial_params(name, params)
        return start, tx.init(start)

    return init, noisy_step(tx, loss(), view(name))


CASES = {"extremes": (extremes_case, extremes_inputs), "quadratic": (quadratic_case, quadratic_params)}


@functools.cache
def results(dtype: str, part: str) -> dict:
    """Every case of one state dtype and part ("extremes": `members`; "quadratic": the members with moments),
    stepped together by one jitted step: ``{name: (the last step's output, the output's layout at each step)}``,
    or the exception that building or tracing the member raised."""
    make, inputs = CASES[part][0], CASES[part][1]()
    steps, carry, out = {}, {}, {}
    for name in members(dtype) if part == "extremes" else family.with_state():
        try:
            init, steps[name] = make(name, build(name, dtype))
            carry[name] = init(inputs)  # op by op: compiled, the init would cost more than it runs
        except Exception as e:  # raised again by the tests that read the case
            out[name] = e
    step_all = jax.jit(lambda c, i: {n: steps[n](c[n], i) for n in c}, compiler_options=FAST_COMPILE)
    layouts, output = {name: [] for name in carry}, {}
    for i in range(STEPS[part]):
        try:
            output = step_all(carry, jnp.int32(i))  # a layout that changes costs a recompile here, not an error
        except Exception:
            if i:
                raise
            for name in list(carry):  # set aside the members that do not trace, and step the others
                try:
                    jax.eval_shape(steps[name], carry[name], 0)
                except Exception as e:
                    out[name] = e
                    del carry[name], layouts[name]
            output = step_all(carry, jnp.int32(i))
        for name in output:
            layouts[name].append(layout(output[name]))
        carry = {name: o[:-1] for name, o in output.items()}  # the updates are output, not carried
    out.update({name: (jax.device_get(o), layouts[name]) for name, o in output.items()})
    return out


@functools.cache
def initial(dtype: str, part: str, name: str):
    """The params a case starts from and the shapes of its initial state (traced, not run: an 8-bit init run op
    by op costs a third of a second)."""
    params = family.initial_params(name, quadratic_params() if part == "quadratic" else mixed_dtype_params())
    return params, jax.eval_shape(build(name, dtype).init, params)


def run(dtype: str, part: str, name: str):
    """The output of a case's last step, and its layout after each step."""
    value = results(dtype, part)[name]
    if isinstance(value, Exception):
        raise value
    return value


def layout(tree, batched: bool = False):
    """The tree structure and each leaf's dtype and shape (8-bit codes as such), without a batch axis."""
    leaves, treedef = jax.tree.flatten(tree, is_leaf=quantize.is_quantized)
    drop = (lambda s: s[1:]) if batched else (lambda s: s)
    return treedef, [("codes", drop(x.shape)) if quantize.is_quantized(x) else (x.dtype, drop(x.shape)) for x in leaves]


def floats(tree) -> list[np.ndarray]:
    """The float leaves of a fetched tree, in float32 (NumPy's checks: JAX's would dispatch an op per leaf)."""
    return [np.asarray(x, np.float32) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]


def finite(tree) -> bool:
    return all(np.isfinite(x).all() for x in floats(tree))


def has_nan(tree) -> bool:
    return any(np.isnan(x).any() for x in floats(tree))


# ------------------------------------------------------------------------------------------------- narrow state


@pytest.mark.parametrize("name, dtype", [(n, d) for d in ("bfloat16", "int8") for n in members(d)])
def test_moments_are_stored_in_the_asked_dtype(name, dtype):
    """bfloat16: every moment (each float state leaf with elements, scalars aside: counts, per-tensor norms) is
    bfloat16, after the run as at init. int8: every moment with at least 4096 elements is 8-bit codes.
    Schedule-free's iterate ``z`` is not a moment (its own float ``state_dtype``): its base optimizer's state is."""
    _, init = initial(dtype, "quadratic", name)
    (_, final, _), _ = run(dtype, "quadratic", name)
    for state in (init, final):
        if isinstance(state, ScheduleFreeState):
            state = state.base_optimizer_state
        leaves = jax.tree.leaves(state, is_leaf=quantize.is_quantized)
        plain = [x for x in leaves if not quantize.is_quantized(x) and jnp.issubdtype(x.dtype, jnp.floating)]
        if dtype == "bfloat16":
            moments = [x for x in plain if x.ndim and x.size]
            assert moments and all(x.dtype == BF16 for x in moments), [(x.dtype, x.shape) for x in moments]
        else:
            wide = [x.shape for x in plain if x.size >= quantize.MIN_SIZE]
            assert any(quantize.is_quantized(x) for x in leaves) and not wide, wide


@pytest.mark.parametrize("name, dtype", [(n, d) for d in DTYPES for n in family.with_state()])
def test_updates_keep_the_param_dtype_and_the_state_its_layout(name, dtype):
    """Over 30 jitted steps the state keeps the tree, dtypes and shapes of init (a change would only cost a
    recompile, silently), and the updates and params keep the params' dtypes (a bfloat16 leaf included)."""
    params, init = initial(dtype, "quadratic", name)
    _, layouts = run(dtype, "quadratic", name)
    expected = layout((params, init, params))
    assert all(got == expected for got in layouts), [i for i, got in enumerate(layouts) if got != expected]


@pytest.mark.parametrize("name, dtype", [(n, d) for d in ("bfloat16", "int8") for n in members(d)])
def test_narrow_state_minimises_as_well_as_float32_state(name, dtype):
    """30 noisy steps on a quadratic with curvatures over 4 decades: narrow state loses at most 2% of float32's
    progress and ends within 25% of it either way; float32 state makes progress."""
    at = lambda p: float(loss()(view(name)(p)))
    start = at(initial(dtype, "quadratic", name)[0])
    (f32, _, _), _ = run("float32", "quadratic", name)
    (narrow, _, _), _ = run(dtype, "quadratic", name)
    progress, gap = start - at(f32), at(narrow) - at(f32)
    assert progress > 0
    assert gap <= LOST * progress and abs(gap) <= AWAY * progress, (start, at(f32), at(narrow))


@pytest.mark.parametrize("name", [n for n in family.FAMILY if n not in family.with_state()])
def test_members_without_moments_take_no_storage_dtype(name):
    """A member the registry lists without moments takes no storage dtype: asked for 8-bit state, it refuses at
    build time, naming the argument, rather than run in float32 as if it had complied."""
    with pytest.raises((TypeError, ValueError), match="state_dtype"):
        family.FAMILY[name].make(state_dtype=I8)


# ------------------------------------------------------------------------------------------- extreme gradients


@pytest.mark.parametrize("name, dtype, kind", [(n, d, k) for d in _EXTREMES for n in members(d) for k in KINDS])
def test_finite_on_zero_tiny_and_huge_gradients(name, dtype, kind):
    """3 jitted steps of one gradient kind (KINDS) from the mixed-dtype tree of tests/test_numerics.py: updates
    and params finite and in the params' dtypes, the state finite (free of NaN where the gradient's square
    overflows) and in its layout, the int and bool leaves untouched."""
    params, init = initial(dtype, "extremes", name)
    (_, final, state, updates), _ = run(dtype, "extremes", name)
    assert layout(state, batched=True) == layout(init)
    assert layout(final, batched=True) == layout(params) and layout(updates, batched=True) == layout(params)
    i = list(KINDS).index(kind)
    final, state, updates = jax.tree.map(lambda x: x[i], (final, state, updates))
    assert finite(updates) and finite(final), updates
    assert (not has_nan(state)) if kind == "huge" else finite(state), state
    for key in ("steps", "flag"):
        np.testing.assert_array_equal(view(name)(final)[key], view(name)(params)[key])
