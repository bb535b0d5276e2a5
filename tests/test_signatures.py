"""Optax's signatures: every positional and keyword argument of Optax 0.2.8's aliases, in its order, with its
defaults and meanings; adamlab's additions keyword-only.

The differences on purpose are listed in DIFFERENT and in the table in docs/guides/from_optax.md.
"""

import inspect

import jax.numpy as jnp
import optax
import pytest
from conftest import mixed_params

import adamlab
from adamlab import testing

PAIRS = {
    "adam": (adamlab.adam, optax.adam),
    "adamw": (adamlab.adamw, optax.adamw),
    "sgd": (adamlab.sgd, optax.sgd),
    "rmsprop": (adamlab.rmsprop, optax.rmsprop),
    "scale_by_rms": (adamlab.scale_by_rms, optax.scale_by_rms),
    "trace": (adamlab.trace, optax.trace),
    "cosine_decay": (adamlab.schedules.cosine_decay, optax.cosine_decay_schedule),
    "warmup_cosine_decay": (adamlab.schedules.warmup_cosine_decay, optax.warmup_cosine_decay_schedule),
    "linear_warmup": (adamlab.schedules.linear_warmup, optax.linear_schedule),
    "amsgrad": (adamlab.amsgrad, optax.amsgrad),
    "nadam": (adamlab.nadam, optax.nadam),
    "nadamw": (adamlab.nadamw, optax.nadamw),
    "ademamix": (adamlab.ademamix, optax.contrib.ademamix),
    "lion": (adamlab.lion, optax.lion),
}
# The rest of the first-order family (issue 22): the same names in Optax and in adamlab (schedules in
# adamlab.schedules).
FAMILY = {
    "optax": (
        "adabelief adadelta adafactor adagrad adamax adamaxw adan lamb lars novograd radam yogi rprop sign_sgd signum "
        "noisy_sgd optimistic_adam_v2 lookahead scale_by_adamax scale_by_belief scale_by_radam scale_by_yogi "
        "scale_by_adan scale_by_rss scale_by_adadelta scale_by_rprop scale_by_novograd scale_by_trust_ratio "
        "normalize_by_update_norm scale_by_factored_rms scale_by_param_block_rms scale_by_optimistic_gradient "
        "add_noise clip clip_by_block_rms adaptive_grad_clip centralize zero_nans keep_params_nonnegative"
    ),
    "optax.contrib": (
        "adopt scale_by_adopt schedule_free schedule_free_adamw schedule_free_sgd schedule_free_eval_params "
        "simplified_ademamix muon scale_by_muon"
    ),
    "optax.schedules": (
        "exponential_decay polynomial_schedule piecewise_constant_schedule piecewise_interpolate_schedule "
        "join_schedules sgdr_schedule linear_onecycle_schedule cosine_onecycle_schedule warmup_constant_schedule "
        "warmup_exponential_decay_schedule constant_schedule linear_schedule cosine_decay_schedule "
        "warmup_cosine_decay_schedule"
    ),
}
for _where, _names in FAMILY.items():
    _optax = {"optax": optax, "optax.contrib": optax.contrib, "optax.schedules": optax.schedules}[_where]
    _ours = adamlab.schedules if _where == "optax.schedules" else adamlab
    for _name in _names.split():
        PAIRS[_name] = (getattr(_ours, _name), getattr(_optax, _name))
# (function, parameter) -> (adamlab's default, Optax's default): docs/guides/from_optax.md.
DIFFERENT = {
    ("adam", "learning_rate"): (1e-3, inspect.Parameter.empty),
    ("adamw", "learning_rate"): (1e-3, inspect.Parameter.empty),
    ("scale_by_rms", "eps_in_sqrt"): (False, True),
}
# Defaults that are functions, compared on these arguments.
CALLABLE_DEFAULTS = {
    ("adopt", "clip_value_fn"): (jnp.int32(7),),
    ("scale_by_adopt", "clip_value_fn"): (jnp.int32(7),),
    ("scale_by_factored_rms", "decay_rate_fn"): (jnp.int32(7), 0.8),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_optax_arguments_in_optax_order_with_optax_defaults(name):
    ours, theirs = (inspect.signature(f).parameters for f in PAIRS[name])
    positional = [p for p in theirs.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    ours_positional = [p for p in ours.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [p.name for p in ours_positional[: len(positional)]] == [p.name for p in positional]
    for p in theirs.values():
        assert p.name in ours, f"{name} lacks Optax's argument {p.name}"
        if p.kind is p.KEYWORD_ONLY:
            assert ours[p.name].kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        expected = DIFFERENT.get((name, p.name), (p.default, p.default))
        if callable(p.default) and (name, p.name) in CALLABLE_DEFAULTS:  # a function: the same values
            args = CALLABLE_DEFAULTS[name, p.name]
            assert float(ours[p.name].default(*args)) == float(p.default(*args)), (name, p.name)
            continue
        assert (ours[p.name].default, p.default) == expected, (name, p.name)
    extra = [p.name for p in ours_positional[len(positional) :]]
    assert not extra, f"{name}: adamlab's own arguments must be keyword-only: {extra}"


def run_both(ours, theirs, steps=100):
    params = mixed_params()
    stream = testing.gradient_stream(params, steps, seed=4)
    return testing.run(ours, params, stream), testing.run(theirs, params, stream)


@pytest.mark.parametrize(
    "case", ["positional_adamw", "eps_root", "nesterov", "nadamw", "initial_scale", "rmsprop_positional"]
)
def test_optax_arguments_mean_what_they_mean_in_optax(case):
    ours, theirs = {
        # Optax's fifth positional of adamw is eps_root: the decay stays at its default 1e-4.
        "positional_adamw": (adamlab.adamw(1e-3, 0.9, 0.999, 1e-8, 0.0), optax.adamw(1e-3, 0.9, 0.999, 1e-8, 0.0)),
        "eps_root": (adamlab.adam(1e-3, eps_root=1e-6), optax.adam(1e-3, eps_root=1e-6)),
        "nesterov": (adamlab.adam(1e-3, nesterov=True), optax.nadam(1e-3)),
        "nadamw": (adamlab.adamw(1e-3, weight_decay=0.1, nesterov=True), optax.nadamw(1e-3, weight_decay=0.1)),
        "initial_scale": (adamlab.rmsprop(1e-3, initial_scale=0.5), optax.rmsprop(1e-3, initial_scale=0.5)),
        "rmsprop_positional": (
            adamlab.rmsprop(1e-3, 0.95, 1e-6, 0.1, False, False, 0.9, True),
            optax.rmsprop(1e-3, 0.95, 1e-6, 0.1, False, False, 0.9, True),
        ),
    }[case]
    a, b = run_both(ours, theirs)
    assert max(e.max_rel for e in testing.compare_trees(a, b)) <= 1e-6


def test_moment_dtypes_map_onto_state_dtypes():
    params = {"w": jnp.ones((3, 2))}
    s = adamlab.adam(1e-3, mu_dtype=jnp.bfloat16).init(params)
    assert s[0].moment["w"].dtype == jnp.bfloat16 and s[2].second_moment["w"].dtype == jnp.float32
    s = adamlab.adam(1e-3, nu_dtype=jnp.bfloat16).init(params)  # what Optax cannot set (its issue 1552)
    assert s[0].moment["w"].dtype == jnp.float32 and s[2].second_moment["w"].dtype == jnp.bfloat16
    s = adamlab.adamw(1e-3, state_dtype=jnp.bfloat16, mu_dtype=jnp.float32).init(params)
    assert s[0].moment["w"].dtype == jnp.float32 and s[2].second_moment["w"].dtype == jnp.bfloat16
    s = adamlab.sgd(1e-3, 0.9, False, jnp.bfloat16).init(params)
    assert s[0].trace["w"].dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="accumulator_dtype=.*and state_dtype=.*disagree"):
        adamlab.trace(0.9, accumulator_dtype=jnp.bfloat16, state_dtype=jnp.float32)
    # A bfloat16 moment is storage only: adamlab computes b1 * m in float32, Optax in bfloat16 (its weakly typed
    # b1 keeps m's dtype), so adamlab stays closer to the float32 run (docs/guides/numerics.md: differences from Optax).
    for make_ours, make_theirs, make_full in (
        (lambda dt: adamlab.adam(1e-3, mu_dtype=dt), lambda dt: optax.adam(1e-3, mu_dtype=dt), adamlab.adam(1e-3)),
        (
            lambda dt: adamlab.sgd(1e-2, 0.9, accumulator_dtype=dt),
            lambda dt: optax.sgd(1e-2, 0.9, accumulator_dtype=dt),
            adamlab.sgd(1e-2, 0.9),
        ),
    ):
        ours, theirs = run_both(make_ours(jnp.bfloat16), make_theirs(jnp.bfloat16))
        full, _ = run_both(make_full, make_full)
        err = lambda x, full=full: max(e.max_rel for e in testing.compare_trees(x, full))
        assert err(ours) < err(theirs) / 2 and err(ours) < 1e-2, (err(ours), err(theirs))
