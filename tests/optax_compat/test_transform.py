"""Optax 0.2.8's transformation tests (optax/_src/transform_test.py) and float64 tests
(optax/_src/float64_test.py), re-expressed with adamlab's primitives. Inputs, step counts and tolerances are Optax's.

Mapping (Optax -> adamlab):

- ``scale_by_adam(b1, b2, eps, eps_root)`` -> ``chain(scale_by_ema(b1), bias_correct(b1),
  scale_by_rms(b2, eps, bias_correction=True, eps_root=eps_root))``, the chain `adamlab.adam` is built from
  (adamlab/optimizers.py, ``_adam_direction``) without its learning-rate stage.
- ``scale_by_rms(...)`` -> ``chain(scale_by_rms(..., eps_in_sqrt=True))``: Optax's default puts eps under the root,
  adamlab's primitive outside it (docs/guides/from_optax.md, table row ``scale_by_rms(eps_in_sqrt=...)``); it reads
  the gradient, which `adamlab.chain` hands over, hence the one-stage chain.
- ``scale_by_stddev(decay, eps, initial_scale)`` -> ``chain(scale_by_rms(decay, eps, initial_scale,
  eps_in_sqrt=True, centered=True))``: ``u / sqrt(v - m**2 + eps)`` in both.
- ``scale``, ``trace``, ``identity``, ``clip_by_global_norm`` -> the adamlab functions of the same name.
- ``add_decayed_weights(wd)`` -> ``add_coupled_weight_decay(wd)`` and ``add_decoupled_weight_decay(wd)``: both are
  ``u + wd * p``; they differ only in where `adamlab.chain` lets them stand. Both are tested.
- ``scale_by_schedule(fn)`` -> ``scale_by_learning_rate(fn, flip_sign=False)`` (``u * fn(count)``, count from 0).
- ``alias.adam/adamw/rmsprop/sgd`` -> ``adamlab.adam/adamw/rmsprop/sgd``.
- ``apply_every(k)`` has no adamlab stage; its nearest counterpart, ``accumulate_gradients(tx, k)`` (Optax's
  ``MultiSteps``), wraps a transformation and steps it on the *mean* of k gradients (docs/guides/sharding.md,
  "Gradient accumulation") where ``apply_every`` emits their *sum*: `test_apply_every` asserts both, the sum as
  the mean with the learning rate times k.

Not ported: adamlab has no such transformation.

- transform_test.py::TransformTest.test_scalers cases adadelta, adamax, adan, lion, polyak, trust_ratio,
  param_block_norm, param_block_rms, distance_over_gradients, normalize_by_update_norm;
  test_centralize, test_scale_by_optimistic_gradient, test_lion_modes_variants, test_lion_invalid_mode_raises,
  test_scale_by_polyak_l1_norm.
- float64_test.py::Float64Test.test_mixed_dtype_input_outputs cases clip, scale_by_rss, scale_by_trust_ratio,
  add_noise, apply_every_k, adagrad, fromage, lamb, noisy_sgd.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamlab

STEPS = 50
LR = 1e-2

INIT_PARAMS = (jnp.array([1.0, 2.0]), jnp.array([3.0, 4.0]))
PER_STEP_UPDATES = (jnp.array([500.0, 5.0]), jnp.array([300.0, 3.0]))


def _assert_close(actual, desired, rtol=1e-6, atol=0.0):
    """optax._src.test_utils.assert_trees_all_close, with its default tolerances."""
    assert jax.tree.structure(actual) == jax.tree.structure(desired)
    jax.tree.map(lambda a, d: np.testing.assert_allclose(a, d, rtol=rtol, atol=atol), actual, desired)


def _assert_all_finite(tree):
    for x in jax.tree.leaves(tree):
        assert np.all(np.isfinite(x)), f"{x} is not finite"


def scale_by_adam(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0):
    """optax.scale_by_adam, as the stages of adamlab.adam without its learning rate."""
    return adamlab.chain(
        adamlab.scale_by_ema(b1),
        adamlab.bias_correct(b1),
        adamlab.scale_by_rms(b2, eps, bias_correction=True, eps_root=eps_root),
    )


def scale_by_rms(decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False):
    """optax.scale_by_rms, with Optax's defaults (eps under the root)."""
    return adamlab.chain(adamlab.scale_by_rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction))


def scale_by_stddev(decay=0.9, eps=1e-8, initial_scale=0.0):
    """optax.scale_by_stddev: centered RMS, ``u / sqrt(v - m**2 + eps)``."""
    return adamlab.chain(adamlab.scale_by_rms(decay, eps, initial_scale, eps_in_sqrt=True, centered=True))


# --------------------------------------------------------------------------------------------- transform_test.py

SCALERS = [
    ("adam", scale_by_adam, optax.scale_by_adam),
    ("rmsprop", scale_by_rms, optax.scale_by_rms),
    ("stddev", scale_by_stddev, optax.scale_by_stddev),
]


@pytest.mark.parametrize("name,scaler_constr,optax_constr", SCALERS, ids=[s[0] for s in SCALERS])
def test_scalers(name, scaler_constr, optax_constr):
    """From optax/_src/transform_test.py::TransformTest.test_scalers (cases adam, rmsprop, stddev).

    Jitted init and update give a finite state, finite updates shaped like the params. Added check of the
    mapping: the updates equal those of Optax's transformation within Optax's default rtol=1e-6.
    """
    params = INIT_PARAMS
    scaler = scaler_constr()
    state = jax.jit(scaler.init)(params)
    _assert_all_finite(state)

    updates, state = jax.jit(scaler.update)(PER_STEP_UPDATES, state, params)
    _assert_all_finite((params, updates, state))
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params)):
        assert u.shape == p.shape

    ref = optax_constr()
    ref_updates, _ = ref.update(PER_STEP_UPDATES, ref.init(params), params)
    _assert_close(updates, ref_updates)


def test_apply_every():
    """From optax/_src/transform_test.py::TransformTest.test_apply_every, with adamlab.accumulate_gradients.

    Optax: ``chain(apply_every(4), trace(0), scale(-LR))`` emits the *sum* of 4 gradients every 4th step, so its
    params match ``sgd(LR)``'s every 4 steps (atol=1e-6, rtol=1e-5) and its other updates are 0.
    adamlab has no ``apply_every``; its accumulation is ``accumulate_gradients(tx, k)``, which (docs/guides/sharding.md,
    paragraph "Gradient accumulation") runs `tx` on the *mean* ``(g_1 + ... + g_k) / k``, as ``optax.MultiSteps``
    does. This test asserts that documented behaviour (not listed among the differences from Optax): adamlab's
    ``accumulate_gradients(chain(trace(0), scale(-LR)), 4)`` takes one SGD step per 4 calls, so its params match
    ``sgd(LR)`` after ``(i + 1) / 4`` steps, and ``sgd(LR)`` after ``i + 1`` steps once the learning rate is
    multiplied by k. Its other updates are 0 (``-0.0``, compared with ``==``).
    """
    k = 4
    zero_update = (jnp.array([0.0, 0.0]), jnp.array([0.0, 0.0]))

    sgd = adamlab.sgd(LR, 0.0)
    sgd_params, sgd_state = INIT_PARAMS, sgd.init(INIT_PARAMS)
    sgd_history = [sgd_params]

    mean_every = adamlab.accumulate_gradients(
        adamlab.chain(adamlab.trace(decay=0, nesterov=False), adamlab.scale(-LR)), k
    )
    sum_every = adamlab.accumulate_gradients(
        adamlab.chain(adamlab.trace(decay=0, nesterov=False), adamlab.scale(-LR * k)), k
    )
    mean_params, mean_state = INIT_PARAMS, mean_every.init(INIT_PARAMS)
    sum_params, sum_state = INIT_PARAMS, sum_every.init(INIT_PARAMS)
    mean_fn, sum_fn = jax.jit(mean_every.update), jax.jit(sum_every.update)

    for i in range(STEPS):
        updates_sgd, sgd_state = sgd.update(PER_STEP_UPDATES, sgd_state)
        sgd_params = adamlab.apply_updates(sgd_params, updates_sgd)
        sgd_history.append(sgd_params)

        mean_updates, mean_state = mean_fn(PER_STEP_UPDATES, mean_state)
        mean_params = adamlab.apply_updates(mean_params, mean_updates)
        sum_updates, sum_state = sum_fn(PER_STEP_UPDATES, sum_state)
        sum_params = adamlab.apply_updates(sum_params, sum_updates)

        if i % k == k - 1:
            _assert_close(mean_params, sgd_history[(i + 1) // k], atol=1e-6, rtol=1e-5)
            _assert_close(sum_params, sgd_params, atol=1e-6, rtol=1e-5)  # Optax's assertion, lr times k
            if i + 1 > k:  # the mean lags behind the sum (both equal at the start)
                assert not np.allclose(mean_params[0], sgd_params[0], atol=1e-6, rtol=1e-5)
        else:
            _assert_close(mean_updates, zero_update, atol=0.0, rtol=0.0)
            _assert_close(sum_updates, zero_update, atol=0.0, rtol=0.0)


def test_scale():
    """From optax/_src/transform_test.py::TransformTest.test_scale."""
    updates = PER_STEP_UPDATES
    for i in range(1, STEPS + 1):
        factor = 0.1**i
        rescaler = adamlab.scale(factor)
        scaled_updates, _ = rescaler.update(updates, {})
        manual_updates = jax.tree.map(lambda t, f=factor: t * f, updates)
        _assert_close(scaled_updates, manual_updates)


def test_rms_match_adam():
    """From optax/_src/transform_test.py::TransformTest.test_rms_match_adam.

    ``scale_by_rms(decay=0.999, eps_in_sqrt=False, bias_correction=True)`` matches ``scale_by_adam(b1=0)`` after 5
    steps on ``|x|**2`` (Optax's default rtol=1e-6).
    """
    fun = lambda x: optax.tree.norm(x, squared=True)  # noqa: E731

    rms = scale_by_rms(decay=0.999, eps_in_sqrt=False, bias_correction=True)
    rms_params, rms_state = INIT_PARAMS, rms.init(INIT_PARAMS)

    adam = scale_by_adam(b1=0)
    adam_params, adam_state = INIT_PARAMS, adam.init(INIT_PARAMS)

    for _ in range(5):
        rms_grads = jax.grad(fun)(rms_params)
        rms_updates, rms_state = rms.update(rms_grads, rms_state)
        rms_params = adamlab.apply_updates(rms_params, rms_updates)

        adam_grads = jax.grad(fun)(adam_params)
        adam_updates, adam_state = adam.update(adam_grads, adam_state)
        adam_params = adamlab.apply_updates(adam_params, adam_updates)

    _assert_close(adam_params, rms_params)


# ----------------------------------------------------------------------------------------------- float64_test.py

ALL_MODULES = [
    ("identity", adamlab.identity, {}),
    ("clip_by_global_norm", adamlab.clip_by_global_norm, {"max_norm": 1.0}),
    ("trace", adamlab.trace, {"decay": 0.5, "nesterov": False}),
    ("trace_with_nesterov", adamlab.trace, {"decay": 0.5, "nesterov": True}),
    ("scale_by_rms", scale_by_rms, {}),
    ("scale_by_stddev", scale_by_stddev, {}),
    ("scale_by_adam", scale_by_adam, {}),
    ("scale", adamlab.scale, {"factor": 3.0}),
    ("add_decayed_weights-coupled", adamlab.add_coupled_weight_decay, {"weight_decay": 0.1}),
    ("add_decayed_weights-decoupled", adamlab.add_decoupled_weight_decay, {"weight_decay": 0.1}),
    ("scale_by_schedule", adamlab.scale_by_learning_rate, {"learning_rate": lambda x: x * 0.1, "flip_sign": False}),
    ("adam", adamlab.adam, {"learning_rate": 0.1}),
    ("adamw", adamlab.adamw, {"learning_rate": 0.1}),
    ("rmsprop", adamlab.rmsprop, {"learning_rate": 0.1}),
    ("sgd", adamlab.sgd, {"learning_rate": 0.1}),
    ("sign_sgd", adamlab.sgd, {"learning_rate": 0.1}),  # Optax's case is alias.sgd too
]


@pytest.mark.parametrize("name,transform_constr,transform_kwargs", ALL_MODULES, ids=[m[0] for m in ALL_MODULES])
def test_mixed_dtype_input_outputs(name, transform_constr, transform_kwargs):
    """From optax/_src/float64_test.py::Float64Test.test_mixed_dtype_input_outputs (cases adamlab has).

    With 64-bit types enabled, a (float32, float64) tree of params and updates: the jitted update's state has
    init's dtypes, and the new params keep the params' dtypes.
    """
    with jax.enable_x64(True):
        initial_params = (jnp.array([1.0, 2.0], dtype=jnp.float32), jnp.array([3.0, 4.0], dtype=jnp.float64))
        updates = (jnp.array([10.0, 21.0], dtype=jnp.float32), jnp.array([33.0, 42.0], dtype=jnp.float64))
        scaler = transform_constr(**transform_kwargs)
        initial_state = jax.jit(scaler.init)(initial_params)
        updates, new_state = jax.jit(scaler.update)(updates, initial_state, params=initial_params)
        new_params = adamlab.apply_updates(initial_params, updates)

        dtypes = lambda tree: jax.tree.map(lambda t: t.dtype, tree)  # noqa: E731
        assert dtypes(initial_state) == dtypes(new_state)
        assert dtypes(initial_params) == dtypes(new_params)
