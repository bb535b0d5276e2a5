"""Optax 0.2.8's accumulation tests (optax/transforms/_accumulation_test.py), re-expressed for adamlab.
Inputs, step counts and tolerances are Optax's.

Equivalents: ``optax.ema(decay, debias=False)`` is ``adamlab.scale_by_ema(decay)``, and with debiasing
``chain(scale_by_ema(decay), bias_correct(decay))``. ``optax.MultiSteps(tx, every_k_schedule=k)`` is
``adamlab.accumulate_gradients(tx, k)``: the inner step runs on the k-th micro-step, on the mean gradient, and the
other micro-steps return ``-0.0`` updates (Optax: ``+0.0``; compared with ``==``). MultiSteps' ``has_updated(state)``
is ``state.micro_step == 0`` after an update (the micro-step counter wraps to 0 on a real step).
``should_skip_update_fn=skip_not_finite`` is ``skip_nonfinite(accumulate_gradients(tx, k))``, which drops the bad
micro-batch alone (docs/guides/sharding.md, "Gradient accumulation"). Where the point of Optax's test is the
wrapped optimizer, an adamlab optimizer inside ``optax.MultiSteps`` is tested too.

Not ported: adamlab has no ``skip_large_updates`` (AccumulationTest.test_skip_large_updates); adamlab has no
varying ``every_k_schedule``, only a fixed int ``every_k`` (test_multi_steps_every_k_schedule); adamlab has no
``gradient_step`` counter, so ``has_updated`` of a fresh state (False in Optax) has no equivalent and is not checked;
adamlab has no count of non-finite leaves (``num_not_finite`` in test_skip_not_finite); adamlab has no
``zero_nans``, so Optax's own ``optax.zero_nans()`` is chained in (test_multi_steps_zero_nans).
"""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamlab
from adamlab.numerics import all_finite


class Loss(flax.linen.Module):
    """Optax's test model: sum of squares of a Dense(10) layer's output."""

    @flax.linen.compact
    def __call__(self, x, dtype=jnp.float32, param_dtype=jnp.float32):
        return jnp.sum(flax.linen.Dense(10, dtype=dtype, param_dtype=param_dtype)(x) ** 2)


def _scale_by_adam_chain(*rest):
    """optax.scale_by_adam() as adamlab stages (b1=0.9, b2=0.999, eps=1e-8), then `rest`."""
    return adamlab.chain(
        adamlab.scale_by_ema(0.9),
        adamlab.bias_correct(0.9),
        adamlab.scale_by_rms(0.999, 1e-8, bias_correction=True),
        *rest,
    )


def _has_updated(state):
    """MultiSteps.has_updated for adamlab's state, read after an update: the micro-step counter wrapped to 0."""
    return int(state.micro_step) == 0


# -------------------------------------------------------------------------------------------------------------- ema


def test_ema():
    """From optax/transforms/_accumulation_test.py::AccumulationTest.test_ema (optax.ema(decay, debias=False) ->
    adamlab.scale_by_ema(decay))."""
    values = jnp.array([5.0, 7.0])
    d = 0.9
    ema = adamlab.scale_by_ema(d)
    state = ema.init(values[0])  # zeros
    transform_fn = jax.jit(ema.update)
    mean, state = transform_fn(values[0], state)
    np.testing.assert_allclose(mean, (1 - d) * values[0], atol=1e-4)
    mean, _ = transform_fn(values[1], state)
    np.testing.assert_allclose(mean, (1 - d) * (values[1] + d * values[0]), atol=1e-2)


def test_ema_debias():
    """From optax/transforms/_accumulation_test.py::AccumulationTest.test_ema_debias (optax.ema(decay) ->
    adamlab.chain(scale_by_ema(decay), bias_correct(decay))): the output is debiased, the stored moment is not."""
    values = jnp.array([5.0, 7.0])
    d = 0.9
    ema = adamlab.chain(adamlab.scale_by_ema(d), adamlab.bias_correct(d))
    state = ema.init(values[0])
    transform_fn = jax.jit(ema.update)
    mean, state = transform_fn(values[0], state)
    np.testing.assert_allclose(mean, values[0], atol=1e-4)
    mean, state = transform_fn(values[1], state)
    np.testing.assert_allclose(mean, ((1 - d) * values[1] + d * (1 - d) * values[0]) / (1 - d**2), atol=1e-2)
    # The state must not be debiased.
    np.testing.assert_allclose(state[0].moment, (1 - d) * values[1] + d * (1 - d) * values[0], atol=1e-2)


@pytest.mark.parametrize(
    "value,skip",
    [(float("inf"), True), (-float("inf"), True), (float("nan"), True), (11.0, False)],
    ids=["pos_inf", "neg_inf", "nan", "finite"],
)
def test_skip_not_finite(value, skip):
    """From optax/transforms/_accumulation_test.py::AccumulationTest.test_skip_not_finite (each subtest).

    optax.skip_not_finite's ``should_skip`` is ``not adamlab.numerics.all_finite``, and a skip_nonfinite wrapper
    counts the step as skipped; Optax's ``num_not_finite`` (non-finite leaves) has no adamlab equivalent.
    """
    grads = [jnp.array(value), jnp.zeros([])]
    assert bool(all_finite(grads)) is not skip
    tx = adamlab.skip_nonfinite(adamlab.identity(), max_consecutive=None)
    _, state = tx.update(grads, tx.init(grads))
    assert int(state.skipped) == int(skip)


# ------------------------------------------------------------------------------------------------------- multi steps


def _multi_steps(wrapper, tx, k):
    """(init, update, has_updated) of `tx` accumulated over `k` micro-steps by adamlab or by optax.MultiSteps."""
    if wrapper == "adamlab":
        acc = adamlab.accumulate_gradients(tx, k)
        return acc.init, acc.update, _has_updated
    ms = optax.MultiSteps(tx, every_k_schedule=k)
    return ms.init, ms.update, ms.has_updated


@pytest.mark.parametrize("wrapper", ["adamlab", "optax_multisteps"])
def test_multi_steps(wrapper):
    """From optax/transforms/_accumulation_test.py::AccumulationTest.test_multi_steps: params move only every
    k_steps=4 calls (for 5 * k_steps calls), and then the loss goes down; the step is jitted.

    The inner optimizer, chain(scale_by_adam(), add_decayed_weights(1e-2), scale(-1e-4)), is adamlab's stages
    (scale_by_ema, bias_correct, scale_by_rms, add_decoupled_weight_decay, scale), wrapped by
    adamlab.accumulate_gradients and, as a compat check, by optax.MultiSteps.
    """
    batch_size, x_size, k_steps = 32, 7, 4
    data = jnp.ones([batch_size, x_size])
    loss = Loss()
    params = loss.init({"params": jax.random.key(0)}, data)["params"]
    loss_apply = lambda params, data: loss.apply({"params": params}, data)

    inner = _scale_by_adam_chain(adamlab.add_decoupled_weight_decay(1e-2), adamlab.scale(-1e-4))
    opt_init, opt_update, has_updated = _multi_steps(wrapper, inner, k_steps)

    @jax.jit
    def train_step(data, opt_state, params):
        grad = jax.grad(loss_apply)(params, data)
        return opt_update(grad, opt_state, params)

    opt_state = opt_init(params)
    prev_loss = loss_apply(params, data)
    for idx in range(5 * k_steps):
        updates, opt_state = train_step(data, opt_state, params)
        new_params = adamlab.apply_updates(params, updates)
        new_loss = loss_apply(new_params, data)
        if idx % k_steps < k_steps - 1:
            jax.tree.map(np.testing.assert_array_equal, new_params, params)
            np.testing.assert_equal(new_loss, prev_loss)
            assert not has_updated(opt_state)
        else:
            np.testing.assert_array_less(new_loss, prev_loss)
            prev_loss = new_loss
            assert has_updated(opt_state)
        params = new_params


def test_multi_steps_scan_dtype_stability():
    """From optax/transforms/_accumulation_test.py::AccumulationTest.test_multi_steps_scan_dtype_stability: bfloat16
    params and gradients, accumulator_dtype=float32, 4 micro-steps in a lax.scan; the accumulator stays float32."""
    acc = adamlab.accumulate_gradients(adamlab.sgd(1e-4), 2, accumulator_dtype=jnp.float32)
    params = {"a": jnp.zeros([], dtype=jnp.bfloat16)}

    def train_step(state, _):
        grad = {"a": jnp.ones([], dtype=jnp.bfloat16)}
        updates, state = acc.update(grad, state, params)
        return state, updates

    final_state, updates = jax.lax.scan(train_step, acc.init(params), jnp.arange(4))
    assert final_state.accumulator["a"].dtype == jnp.float32
    assert updates["a"].dtype == jnp.bfloat16


@pytest.mark.parametrize("wrapper", ["adamlab", "optax_multisteps"])
def test_multi_steps_zero_nans(wrapper):
    """From optax/transforms/_accumulation_test.py::AccumulationTest.test_multi_steps_zero_nans (Optax issue 828):
    chain(optax.zero_nans(), sgd(1e-4)) accumulated over 2 micro-steps updates. adamlab has no zero_nans: Optax's
    is chained with adamlab.sgd, under adamlab.accumulate_gradients and under optax.MultiSteps."""
    opt_init, opt_update, _ = _multi_steps(wrapper, adamlab.chain(optax.zero_nans(), adamlab.sgd(1e-4)), 2)
    params = {"a": jnp.zeros([])}
    opt_state = opt_init(params)
    grad = {"a": jnp.zeros([])}
    opt_update(grad, opt_state, params)


def test_multi_steps_computes_mean():
    """From optax/transforms/_accumulation_test.py::AccumulationTest.test_multi_steps_computes_mean (use_grad_mean=True,
    adamlab's only mode): scale(1.0) over k=4 micro-steps of gradients 1, 2, 3, 4 gives 2.5 on the 4th."""
    k_steps = 4
    acc = adamlab.accumulate_gradients(adamlab.scale(1.0), k_steps)
    params = {"a": jnp.zeros([])}
    opt_state = acc.init(params)
    grads = [{"a": jnp.ones([]) * i} for i in [1, 2, 3, 4]]
    for grad in grads[:-1]:
        _, opt_state = acc.update(grad, opt_state, params)
        assert not _has_updated(opt_state)
    new_params, opt_state = acc.update(grads[-1], opt_state, params)
    assert _has_updated(opt_state)
    np.testing.assert_array_equal(new_params["a"], 2.5)


def test_multi_steps_skip_not_finite():
    """From optax/transforms/_accumulation_test.py::AccumulationTest.test_multi_steps_skip_not_finite (each subtest,
    in order): should_skip_update_fn=skip_not_finite -> skip_nonfinite(accumulate_gradients(sgd(1.0), 2)), which
    drops a non-finite micro-batch alone without advancing the micro-step; jitted init and update."""
    tx = adamlab.skip_nonfinite(adamlab.accumulate_gradients(adamlab.sgd(1.0), 2), max_consecutive=None)
    opt_init, opt_update = jax.jit(tx.init), jax.jit(tx.update)
    params = {"a": jnp.zeros([])}
    opt_state = opt_init(params)
    mini_step = lambda state: int(state.inner_state.micro_step)

    # good updates
    updates, opt_state = opt_update({"a": jnp.ones([])}, opt_state, params)
    assert mini_step(opt_state) == 1
    params = adamlab.apply_updates(params, updates)
    updates, opt_state = opt_update({"a": jnp.ones([])}, opt_state, params)
    assert mini_step(opt_state) == 0
    params = adamlab.apply_updates(params, updates)
    np.testing.assert_array_equal(params["a"], jnp.negative(jnp.ones([])))

    # inf, then nan: no increase in the micro-step, params unchanged
    for bad in (jnp.array(float("inf")), jnp.full([], float("nan"))):
        updates, opt_state = opt_update({"a": bad}, opt_state, params)
        assert mini_step(opt_state) == 0
        params = adamlab.apply_updates(params, updates)
        np.testing.assert_array_equal(params["a"], jnp.negative(jnp.ones([])))

    # final good updates
    updates, opt_state = opt_update({"a": jnp.ones([])}, opt_state, params)
    assert mini_step(opt_state) == 1
    params = adamlab.apply_updates(params, updates)
    updates, opt_state = opt_update({"a": jnp.ones([])}, opt_state, params)
    assert mini_step(opt_state) == 0
    params = adamlab.apply_updates(params, updates)
    np.testing.assert_array_equal(params["a"], jnp.negative(jnp.full([], 2.0)))


OPTIMIZERS_TO_TEST = [
    ("adam", {"learning_rate": 0.1}),
    ("adam", {"learning_rate": 0.1, "mu_dtype": jnp.float32}),
]
DTYPES = [jnp.float32, jnp.float16, jnp.bfloat16]


@pytest.mark.parametrize("param_dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("upd_dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("opt_name,opt_kwargs", OPTIMIZERS_TO_TEST, ids=["adam", "adam_mu_float32"])
def test_multi_steps_mixed_precision(opt_name, opt_kwargs, upd_dtype, param_dtype):
    """From optax/transforms/_accumulation_test.py::AccumulationTest.test_multi_steps_mixed_precision (each optimizer
    and each upd_dtype/param_dtype subtest): over k_steps + 1 = 5 steps, accumulate_gradients(adam, 4) returns
    updates of the dtypes adam's own updates have, and applying them keeps the params' dtypes. (The step is jitted
    here, to keep the test fast; Optax runs it eagerly.)"""
    k_steps = 4
    loss = Loss()
    data = jnp.ones([32, 7]).astype(param_dtype)
    loss_apply = lambda params, data: loss.apply({"params": params}, data)
    opt = getattr(adamlab, opt_name)(**opt_kwargs)
    ms_opt = adamlab.accumulate_gradients(opt, k_steps)

    def train_step(data, opt_state, params, opt_update_fn):
        grad = jax.grad(loss_apply)(params, data)
        grad = jax.tree.map(lambda x: x.astype(upd_dtype), grad)  # mimic varying dtype
        return opt_update_fn(grad, opt_state, params)

    step = jax.jit(train_step, static_argnums=3)
    dtypes = lambda tree: jax.tree.map(lambda x: x.dtype, tree)
    params = loss.init({"params": jax.random.key(0)}, data, param_dtype=param_dtype)["params"]
    opt_state, ms_opt_state = opt.init(params), ms_opt.init(params)
    for _ in range(k_steps + 1):
        updates, opt_state = step(data, opt_state, params, opt.update)
        ms_updates, ms_opt_state = step(data, ms_opt_state, params, ms_opt.update)
        assert dtypes(updates) == dtypes(ms_updates)
        new_params = adamlab.apply_updates(params, ms_updates)
        assert dtypes(new_params) == dtypes(params)
        params = new_params
