"""Bad input raises a clear ValueError/TypeError, eagerly, naming the parameter or the tree path."""

import warnings

import jax.numpy as jnp
import optax
import pytest

import adamlab


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda v: adamlab.adam(b1=v), "b1"),
        (lambda v: adamlab.adam(b2=v), "b2"),
        (lambda v: adamlab.adamw(b1=v), "b1"),
        (lambda v: adamlab.adamw(b2=v), "b2"),
        (lambda v: adamlab.rmsprop(1e-3, decay=v), "decay"),
        (lambda v: adamlab.scale_by_ema(v), "decay"),
        (lambda v: adamlab.bias_correct(v), "decay"),
        (lambda v: adamlab.scale_by_rms(v), "decay"),
        (lambda v: adamlab.parameter_ema(v), "decay"),
    ],
)
@pytest.mark.parametrize("value", [1.0, 1.5, -0.1, float("nan")])
def test_decay_rates_outside_unit_interval(make, name, value):
    with pytest.raises(ValueError, match=rf"{name} must be in \[0, 1\)"):
        make(value)


@pytest.mark.parametrize(
    "make, name",
    [(lambda v: adamlab.trace(v), "decay"), (lambda v: adamlab.sgd(0.1, momentum=v), "momentum")],
    ids=["trace", "sgd"],
)
@pytest.mark.parametrize("value", [1.5, -0.1, float("nan")])
def test_momentum_outside_closed_unit_interval(make, name, value):
    """Momentum may be 1 (the running sum of the updates, as in Optax and PyTorch), not more, less than 0 or NaN."""
    with pytest.raises(ValueError, match=rf"{name} must be in \[0, 1\]"):
        make(value)
    make(1.0)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda v: adamlab.adam(eps=v), "eps"),
        (lambda v: adamlab.adamw(eps=v), "eps"),
        (lambda v: adamlab.rmsprop(1e-3, eps=v), "eps"),
        (lambda v: adamlab.adam(v), "learning_rate"),
        (lambda v: adamlab.sgd(v), "learning_rate"),
        (lambda v: adamlab.adamw(weight_decay=v), "weight_decay"),
        (lambda v: adamlab.adam(weight_decay=v), "weight_decay"),
        (lambda v: adamlab.add_decoupled_weight_decay(v), "weight_decay"),
        (lambda v: adamlab.add_coupled_weight_decay(v), "weight_decay"),
    ],
)
def test_negative_hyperparameters(make, name):
    with pytest.raises(ValueError, match=rf"{name} must be >= 0"):
        make(-1e-3)


def test_boundaries_are_accepted():
    adamlab.adam(0.0, b1=0.0, b2=0.0, eps=0.0)
    adamlab.adamw(1e-3, b1=0.999999, b2=0.999999, weight_decay=0.0)


def test_update_with_a_different_tree_names_the_path():
    tx = adamlab.adam(1e-3)
    state = tx.init({"a": jnp.ones(3), "b": {"c": jnp.ones(2)}})
    with pytest.raises(ValueError, match=r"\['b'\]\['d'\]"):
        tx.update({"a": jnp.ones(3), "b": {"d": jnp.ones(2)}}, state)
    with pytest.raises(ValueError, match=r"extra leaf at \['e'\]"):
        tx.update({"a": jnp.ones(3), "b": {"c": jnp.ones(2)}, "e": jnp.ones(1)}, state)
    with pytest.raises(ValueError, match=r"\['b'\]\['c'\] have shape \(3,\)"):
        tx.update({"a": jnp.ones(3), "b": {"c": jnp.ones(3)}}, state)


@pytest.mark.parametrize("tx", [adamlab.adamw(1e-3), adamlab.adam(1e-3, weight_decay=0.1)], ids=["adamw", "adam_l2"])
def test_weight_decay_without_params(tx):
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="needs the params"):
        tx.update(params, tx.init(params))


def test_mask_that_does_not_match():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    tx = adamlab.adamw(1e-3, mask={"w": True, "bias": False})
    with pytest.raises(ValueError, match=r"mask does not match the params.*\['bias'\]"):
        tx.init(params)


def test_mask_with_non_bool_leaves():
    params = {"w": jnp.ones((2, 2))}
    with pytest.raises(TypeError, match=r"mask leaf at \['w'\] is int"):
        adamlab.adamw(1e-3, mask={"w": 1}).init(params)


def test_mask_prefix_is_broadcast():
    params = {"enc": {"w": jnp.ones(2), "b": jnp.ones(2)}, "head": jnp.ones(2)}
    mask = adamlab.resolve_mask({"enc": False, "head": True}, params)
    assert mask == {"enc": {"w": False, "b": False}, "head": True}


def test_rms_without_the_gradient_in_a_foreign_chain():
    params = {"w": jnp.ones(3)}
    tx = optax.chain(adamlab.scale_by_ema(0.9), adamlab.scale_by_rms(0.999))
    with pytest.raises(ValueError, match="scale_by_rms needs the gradient"):
        tx.update(params, tx.init(params))


def test_chain_rejects_non_transformations():
    with pytest.raises(TypeError, match="argument 1 is int"):
        adamlab.chain(adamlab.scale(1.0), 3)


def test_chain_rejects_coupled_decay_after_moments():
    with pytest.raises(ValueError, match="add_coupled_weight_decay .* after the moment stage"):
        adamlab.chain(adamlab.scale_by_ema(0.9), adamlab.add_coupled_weight_decay(0.1))


def test_chain_rejects_decoupled_decay_before_moments():
    with pytest.raises(ValueError, match="add_decoupled_weight_decay .* before the first moment stage"):
        adamlab.chain(adamlab.add_decoupled_weight_decay(0.1), adamlab.scale_by_ema(0.9))


def test_chain_state_of_wrong_shape():
    tx = adamlab.adam(1e-3)
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="chain of 4 stages got a state"):
        tx.update(params, (), params)


def test_complex_params_are_accepted_with_a_real_second_moment():
    state = adamlab.adam().init({"z": jnp.ones(2, jnp.complex64)})
    assert state[2].second_moment["z"].dtype == jnp.float32 and state[0].moment["z"].dtype == jnp.complex64


def test_nesterov_without_momentum():
    with pytest.raises(ValueError, match="nesterov=True needs a momentum"):
        adamlab.sgd(0.1, nesterov=True)


@pytest.mark.parametrize(
    "make",
    [
        lambda: adamlab.schedules.warmup_cosine_decay(0.0, 1.0, 10, 5),
        lambda: adamlab.schedules.cosine_decay(1.0, 0),
        lambda: adamlab.schedules.linear_warmup(0.0, 1.0, 2.5),
    ],
)
def test_bad_schedules(make):
    with pytest.raises(ValueError):
        make()


def test_apply_updates_tree_mismatch():
    with pytest.raises(ValueError, match=r"\['b'\]"):
        adamlab.apply_updates({"a": jnp.ones(1)}, {"b": jnp.ones(1)})


# -- errors a user meets first: they name the optimizer called, the key, the expected signature -------------------


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda f: adamlab.adamw(f), "learning_rate"),
        (lambda f: adamlab.sgd(f, momentum=0.9), "learning_rate"),
        (lambda f: adamlab.adamw(1e-3, schedule=f), "schedule"),
        (lambda f: adamlab.add_slow_moment(0.999, f), "alpha"),
        (lambda f: adamlab.scale_by_learning_rate(f), "learning_rate"),
    ],
)
def test_a_schedule_that_cannot_take_the_step_is_refused_when_built(build, name):
    for wrong in (lambda: 1e-3, lambda step, total: 1e-3):
        with pytest.raises(TypeError, match=rf"{name} must be a number or a schedule, a function of one argument"):
            build(wrong)
    build(lambda step: 1e-3)  # one argument, a default or *args are all fine
    build(lambda step, scale=1.0: 1e-3 * scale)
    build(optax.linear_schedule(1e-3, 0.0, 100))


def test_a_tree_mismatch_names_the_optimizer_and_the_key():
    params = {"w": jnp.ones(3), "b": jnp.zeros(2)}
    for tx, called in [
        (adamlab.adamw(1e-3), "adamw"),
        (adamlab.nadam(1e-3), "nadam"),
        (adamlab.chain(adamlab.clip_by_global_norm(1.0), adamlab.adamw(1e-3)), "adamw"),
    ]:
        state = tx.init(params)
        with pytest.raises(
            ValueError,
            match=rf"^{called}: .*missing leaf at \['b'\]: in the params given to init, "
            r"not in the updates \(raised by its scale_by_ema stage\)",
        ):
            tx.update({"w": jnp.ones(3)}, state, params)
        with pytest.raises(ValueError, match=rf"^{called}: .*extra leaf at \['e'\]: in the updates"):
            tx.update({**params, "e": jnp.ones(1)}, state, params)
    with pytest.raises(
        ValueError,
        match=r"^adamw: mask does not match the params.*\['x'\] in the mask where the "
        r"params have \['b'\]",
    ):
        adamlab.adamw(1e-3, mask={"w": True, "x": False}).init(params)
    # An unnamed chain of primitives keeps the stage's own name.
    tx = adamlab.chain(adamlab.scale_by_ema(0.9))
    with pytest.raises(ValueError, match=r"^scale_by_ema: updates .*missing leaf at \['b'\]"):
        tx.update({"w": jnp.ones(3)}, tx.init(params))


def test_params_with_no_float_leaf_warn_that_nothing_trains():
    with pytest.warns(
        UserWarning,
        match=r"adamw: the params have 2 leaves and none is floating point \(bool, int32\): "
        "nothing will be trained",
    ):
        adamlab.adamw(1e-3).init({"step": jnp.zeros((), jnp.int32), "flag": jnp.array(True)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adamlab.adamw(1e-3).init({"w": jnp.ones(2), "step": jnp.zeros((), jnp.int32)})  # one float leaf: silent
        adamlab.adamw(1e-3).init({})  # no leaves at all (JAX's empty tree, as in Optax): silent


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: adamlab.sgd(1e-3, momentum=1.5), "momentum"),
        (lambda: adamlab.rmsprop(1e-3, momentum=2.0), "momentum"),
        (lambda: adamlab.lion(1e-3, b1=1.5), "b1"),
        (lambda: adamlab.lion(1e-3, b2=-0.1), "b2"),
        (lambda: adamlab.ademamix(1e-3, b3=1.0), "b3"),
    ],
)
def test_a_bad_rate_is_named_as_the_caller_wrote_it(build, name):
    """The stages below call these `decay` or `output_decay`; the message uses the optimizer's own argument."""
    with pytest.raises(ValueError, match=rf"^{name} must be in \[0, 1"):
        build()
