"""A new moment primitive is its formula: AMSGrad written on `adamlab.moment_stage`, held to Optax and float64.

`scale_by_amsgrad_rms` below is everything AMSGrad adds to Adam (Reddi et al., "On the Convergence of Adam and
Beyond", 2018): a running maximum of the bias-corrected second moment. Tree checks, integer leaves, dtypes and
the gradient channel come from the builder.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import STEPS, as_dict, mixed_params

import adamlab
from adamlab import testing
from adamlab.moments import bias_correction_term


class AmsState(NamedTuple):
    count: jax.Array
    second_moment: Any
    max_second_moment: Any


def scale_by_amsgrad_rms(b2: float = 0.999, eps: float = 1e-8) -> adamlab.GradientTransformation:
    """``v_max = max(v_max, v_t / (1 - b2**t))``; outputs ``u / (sqrt(v_max) + eps)``."""

    def per_step(t):
        bc = bias_correction_term(b2, t)

        def leaf(u, g, v, v_max):
            v = (1 - b2) * jnp.square(g) + b2 * v
            v_max = jnp.maximum(v_max, v / bc)
            return u / (jnp.sqrt(v_max) + eps), v, v_max

        return leaf

    return adamlab.moment_stage("scale_by_amsgrad_rms", AmsState, per_step=per_step, reads_gradient=True)


def amsgrad(lr: float) -> adamlab.GradientTransformation:
    return adamlab.chain(
        adamlab.scale_by_ema(0.9),
        adamlab.bias_correct(0.9),
        scale_by_amsgrad_rms(0.999),
        adamlab.scale_by_learning_rate(lr),
    )


def reference_amsgrad(params, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    out = {}
    for k, p in params.items():
        p = np.asarray(p, np.float64)
        m, v, v_max = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
        for i, g in enumerate(np.asarray(grads[k], np.float64), start=1):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            v_max = np.maximum(v_max, v / (1 - b2**i))
            p = p - lr * (m / (1 - b1**i)) / (np.sqrt(v_max) + eps)
        out[k] = p
    return out


def test_amsgrad_from_its_formula_matches_optax_and_float64():
    params = mixed_params()
    # Gradients that shrink over the run, so that the maximum differs from the running v (AMSGrad != Adam).
    stream = jax.tree.map(
        lambda g: g * jnp.linspace(3.0, 0.1, STEPS).reshape((-1,) + (1,) * (g.ndim - 1)),
        testing.gradient_stream(params, STEPS, seed=3),
    )
    final = testing.run(amsgrad(1e-3), params, stream)
    theirs = testing.run(optax.amsgrad(1e-3), params, stream)
    testing.assert_bitwise_equal(final, theirs)
    expected = reference_amsgrad(as_dict(params), as_dict(stream), 1e-3)
    assert max(e.max_rel for e in testing.compare_trees(as_dict(final), expected)) <= 1e-5
    adam = testing.run(adamlab.adam(1e-3), params, stream)
    assert max(e.max_rel for e in testing.compare_trees(final, adam)) > 1e-3  # the maximum mattered


def test_the_builder_supplies_placeholders_checks_and_the_gradient_channel():
    tx = amsgrad(1e-3)
    params = {"w": jnp.ones((2, 3)), "steps": jnp.arange(2)}
    state = tx.init(params)
    assert state[2].max_second_moment["w"].dtype == jnp.float32 and state[2].max_second_moment["steps"].shape == (0,)
    grads = {"w": jnp.full((2, 3), 0.5), "steps": params["steps"]}
    updates, state = jax.jit(tx.update)(grads, state, params)
    testing.assert_bitwise_equal(updates["steps"], params["steps"])
    assert int(state[2].count) == 1
    alone = scale_by_amsgrad_rms()
    with pytest.raises(ValueError, match=r"scale_by_amsgrad_rms: gradient: updates do not have the tree structure"):
        alone.update({"w": grads["w"]}, alone.init(params), gradient={"w": grads["w"]})
    with pytest.raises(TypeError, match=r"scale_by_amsgrad_rms: gradient: updates at \['w'\] are int32"):
        alone.update(grads, alone.init(params), gradient={"w": jnp.ones((2, 3), jnp.int32), "steps": grads["steps"]})
    with pytest.raises(ValueError, match="scale_by_amsgrad_rms needs the gradient"):
        alone.update(grads, alone.init(params))
    with pytest.raises(TypeError, match="exactly one of formula and per_step"):
        adamlab.moment_stage("x", AmsState)
    with pytest.raises(TypeError, match="needs a `count` field"):
        adamlab.moment_stage("x", adamlab.EmaState, per_step=lambda t: None)


def test_stage_info_is_read_off_the_transformation_and_survives_rewrapping():
    tx = adamlab.adamw(1e-3)
    info = adamlab.stage_info(tx)
    assert info.name == "chain" and info.role == "moment"
    assert [adamlab.stage_info(s).name for s in info.stages] == [
        "scale_by_ema",
        "bias_correct",
        "scale_by_rms",
        "add_decoupled_weight_decay",
        "scale",
    ]
    rewrapped = optax.GradientTransformation(tx.init, tx.update)
    assert adamlab.stage_info(rewrapped) == info
    assert adamlab.stage_info(optax.adam(1e-3)).role == "any"  # a foreign transformation may stand anywhere


def test_recurrence_keeps_8bit_scales_as_running_bounds_that_hold_the_moment():
    """A user's EMA of ``|g|`` with ``recurrence=``: under int8 its block scales are ``b * s + (1 - b) * max|g|``
    step by step (not the new moment's block maximum), always at least that maximum (the bound holds the moment:
    no code saturates), and larger than it once the gradient shrinks (1.4-2x here); without ``recurrence`` the
    scales are the block maxima. A recurrence naming a field that is not a moment is refused, naming it."""

    class AbsState(NamedTuple):
        count: jax.Array
        moment: Any

    b = 0.9

    def build(recurrence):
        leaf = lambda u, m: (u, b * m + (1 - b) * jnp.abs(u))
        return adamlab.moment_stage(
            "scale_by_abs_ema", AbsState, per_step=lambda t: leaf, state_dtype=jnp.int8, recurrence=recurrence
        )

    from adamlab import quantize

    rng = np.random.default_rng(0)
    params = {"w": jnp.zeros((16, 256))}
    bounded, plain = build({"moment": lambda u: (b, 1 - b, u)}), build(None)
    sb, sp = bounded.init(params), plain.init(params)
    expected = np.zeros((16, 1))
    for step in range(20):
        g = {"w": jnp.asarray(rng.normal(size=(16, 256)) * (10.0 if step < 5 else 0.1), jnp.float32)}
        _, sb = jax.jit(bounded.update)(g, sb)
        _, sp = jax.jit(plain.update)(g, sp)
        expected = b * expected + (1 - b) * np.abs(np.asarray(g["w"])).max(axis=1, keepdims=True)
    qb, qp = sb.moment["w"], sp.moment["w"]
    np.testing.assert_allclose(np.asarray(qb.scales), expected, rtol=1e-5)
    decoded = np.abs(np.asarray(quantize.decode(qb))).max(axis=1, keepdims=True)
    assert np.all(np.asarray(qb.scales) >= decoded) and np.all(np.asarray(qb.scales) > 1.2 * decoded)
    np.testing.assert_allclose(np.asarray(qp.scales), np.abs(np.asarray(quantize.decode(qp))).max(1, keepdims=True))
    with pytest.raises(ValueError, match=r"recurrence names \['nu'\], not moments"):
        build({"nu": lambda u: (b, 1 - b, u)})
