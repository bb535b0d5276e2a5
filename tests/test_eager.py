"""Eager calls (no jax.jit) compile once: repeated calls with new values of the same shapes compile nothing.

A `jax.lax.cond` called eagerly traces and compiles its branches on every call (93 ms a call for the old
clip_by_global_norm); the transformations built on one run through one cached program instead. Their results
equal the jitted ones, and their errors are the same.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamlab
from adamlab import testing

COMPILES: list = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: (
        COMPILES.append(event) if event == "/jax/core/compile/backend_compile_duration" else None
    )
)

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.zeros(4), "n": jnp.arange(2)}

CASES = {
    "clip_by_global_norm": lambda: adamlab.clip_by_global_norm(1.0),
    "accumulate_gradients": lambda: adamlab.accumulate_gradients(adamlab.adamw(1e-2), 3),
    "skip_nonfinite": lambda: adamlab.skip_nonfinite(adamlab.adamw(1e-2), max_consecutive=5),
    "adamw": lambda: adamlab.adamw(1e-2),
    "chain": lambda: adamlab.chain(adamlab.clip_by_global_norm(1.0), adamlab.adam(1e-2)),
}

OP_BY_OP = {"adamw", "chain"}  # no cond: run op by op eagerly, each primitive compiled once per shape


def grads(i: int):
    g = {"w": jnp.cos(PARAMS["w"] * (i + 1)) * 3.0, "b": jnp.full(4, 0.1 * i), "n": PARAMS["n"]}
    if i == 4:  # one non-finite step: skip_nonfinite takes its other branch, which must not compile either
        g["b"] = g["b"].at[0].set(jnp.nan)
    return g


@pytest.mark.parametrize("name", sorted(CASES))
def test_repeated_eager_updates_compile_nothing_and_match_jit(name):
    tx = CASES[name]()
    eager_state = jit_state = tx.init(PARAMS)
    jit_update = jax.jit(tx.update)
    all_grads = [grads(i) for i in range(8)]
    jax.block_until_ready(all_grads)
    for i, g in enumerate(all_grads):
        if name != "skip_nonfinite" and i == 4:
            continue  # only skip_nonfinite is asked to survive a NaN
        if i == 2:
            before = len(COMPILES)
        eager_out, eager_state = tx.update(g, eager_state, PARAMS)
        jit_out, jit_state = jit_update(g, jit_state, PARAMS)
        if name in OP_BY_OP:  # XLA fuses the jitted step and may round differently from op-by-op
            assert max(e.max_rel for e in testing.compare_trees(eager_out, jit_out)) <= 1e-6
        else:  # one compiled program either way
            testing.assert_bitwise_equal(eager_out, jit_out)
            testing.assert_bitwise_equal(eager_state, jit_state)
    jax.block_until_ready(eager_state)
    assert len(COMPILES) - before == 0, f"{len(COMPILES) - before} compilations in 5 eager calls of {name}"


def test_global_norm_eagerly_compiles_once_per_tree_structure():
    adamlab.global_norm(grads(0))
    before = len(COMPILES)
    norms = [float(adamlab.global_norm(grads(i))) for i in (1, 2, 3)]
    assert len(COMPILES) == before
    expected = [
        np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64))) for k, x in grads(i).items() if k != "n"))
        for i in (1, 2, 3)
    ]
    np.testing.assert_allclose(norms, expected, rtol=1e-6)


def test_eager_errors_are_the_plain_ones():
    clip = adamlab.clip_by_global_norm(1.0)
    with pytest.raises(TypeError, match=r"updates at \['b'\] is a float"):
        adamlab.chain(clip).update({"b": 1.0}, adamlab.chain(clip).init({"b": jnp.ones(())}))
    skip = adamlab.skip_nonfinite(adamlab.adam(1e-2), max_consecutive=0)
    bad = {"w": jnp.full((3, 4), jnp.inf), "b": jnp.zeros(4), "n": PARAMS["n"]}
    with pytest.raises(adamlab.NonFiniteGradientError, match=r"\['w'\]"):
        skip.update(bad, skip.init(PARAMS), PARAMS)
    acc = adamlab.accumulate_gradients(adamlab.adam(1e-2), 2)
    with pytest.raises(ValueError, match="accumulate_gradients got a state of type tuple"):
        acc.update(grads(0), (), PARAMS)
