import os
import subprocess
import sys

# XLA's older CPU elemental emitters compile the suite's thousands of small programs in about half the time of the
# default fusion emitters (tests/test_accumulate.py and tests/test_flat.py: 150 s -> 77 s). Results may move by a
# float32 ulp, both libraries alike: tests/test_compiler.py steps every optimizer and its Optax counterpart both
# ways and checks that the pairs bit-identical under XLA's defaults are so here too. Set before JAX starts its
# backend (in the processes the tests start too, which inherit the environment); skipped where this XLA does not
# know the flag (it would abort), and where XLA_FLAGS already names it or ADAMLAB_TEST_XLA_DEFAULTS=1.
EMITTER_FLAG = "--xla_cpu_use_fusion_emitters=false"


def _use_fast_emitters() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_use_fusion_emitters" in flags or os.environ.get("ADAMLAB_TEST_XLA_DEFAULTS") == "1":
        return
    env = dict(os.environ, XLA_FLAGS=f"{flags} {EMITTER_FLAG}".strip(), JAX_PLATFORMS="cpu")
    probe = [sys.executable, "-c", "import jax.numpy as jnp; jnp.zeros(1).block_until_ready()"]
    if subprocess.run(probe, env=env, capture_output=True).returncode == 0:
        os.environ["XLA_FLAGS"] = env["XLA_FLAGS"]


_use_fast_emitters()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

STEPS = 300

# A worker of the multi-process cluster (tests/test_multihost.py starts it): importing it joins a cluster.
collect_ignore = ["multihost_checks.py"]


def mixed_params(seed: int = 0):
    """float32 leaves of every shape the issue names: 0-d, vectors, matrices, a size-1 leaf, nested dicts and lists."""
    k = jax.random.split(jax.random.PRNGKey(seed), 6)
    return {
        "dense": {"w": jax.random.normal(k[0], (5, 3)), "b": jnp.zeros((3,))},
        "scalar": jnp.asarray(0.7, jnp.float32),
        "one": jnp.ones((1,), jnp.float32),
        "blocks": [jax.random.normal(k[1], (4,)), {"kernel": jax.random.normal(k[2], (2, 3, 2)) * 0.1}],
    }


def as_dict(tree):
    """Flattens a tree into {path string: leaf} for the NumPy reference."""
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.fixture
def params():
    return mixed_params()


# The extended tier, marked `slow`: property-based searches, end-to-end runs (the demo, the examples), multi-device
# subprocesses, Optax's own suite, 8-bit state, long runs, and the longest parity sweeps. `pytest -m "not slow"` is
# the fast tier for iteration (about 3 minutes on 2 cores); plain `pytest`, which CI runs, runs both.
SLOW_MODULES = {
    "tests/test_properties.py",
    "tests/test_demo.py",
    "tests/test_demo_grid.py",
    "tests/test_examples.py",
    "tests/test_sharding.py",
    "tests/test_multihost.py",
    "tests/test_quantize.py",
    "tests/test_long_runs.py",
    "tests/test_hostile.py",
    # The rest of Optax's first-order family (issue 22): 300-step parity sweeps, one compile per case.
    "tests/test_adaptive.py",
    "tests/test_accumulators.py",
    "tests/test_layerwise.py",
    "tests/test_factored.py",
    "tests/test_schedule_free.py",
    "tests/test_lookahead.py",
    "tests/test_muon.py",
    "tests/test_transforms_family.py",
}
SLOW_TESTS = {
    "tests/test_flat.py::test_family_on_the_flat_layout_is_the_pytree_path_or_refused",
    "tests/test_flat.py::test_a_shape_the_arithmetic_needs_is_refused_where_packed_and_kept_in_a_solo_bucket",
    "tests/test_flat.py::test_per_tensor_statistics_and_partition_cuts_convert_to_the_tree_state_and_back",
    "tests/test_weight_decay.py::test_scheduled_weight_decay_matches_optax",
    "tests/torch_compat/test_switches.py::test_maximize_is_descent_on_the_negated_gradient",
    "tests/torch_compat/test_switches.py::test_every_case_in_float32_stays_within_float32_rounding_of_the_reference",
    "tests/torch_compat/test_switches.py::test_the_switches_survive_optax_inject_hyperparams",
    "tests/torch_compat/test_reference.py::test_equals_optax_in_float64_where_the_algorithms_coincide",
    "tests/test_accumulate.py::test_k_micro_steps_equal_one_step_on_the_mean_gradient",
    "tests/test_parity.py::test_matches_optax_without_jit",
    "tests/test_docs.py::test_guide_code_runs",
    "tests/test_numerics.py::test_finite_on_zero_tiny_and_huge_gradients",
    "tests/test_flat.py::test_flat_path_is_bitwise_the_pytree_path_over_100_steps",
    "tests/test_numerics.py::test_state_layout_is_fixed_and_runs_are_bit_reproducible",
    "tests/test_complex.py::test_complex_params_match_optax_and_the_complex128_reference",
    "tests/test_accumulate.py::test_skip_nonfinite_outside_drops_the_bad_micro_batch_alone",
    "tests/test_compat.py::test_optax_inject_hyperparams_learning_rate",
    "tests/test_checkpoint.py::test_resume_at_step_k_is_bit_identical_at_step_2k",
    "tests/test_accumulate.py::test_with_k_1_the_wrapper_is_the_wrapped_optimizer",
    "tests/test_numerics.py::test_skip_nonfinite_leaves_every_family_member_bit_for_bit",
    "tests/test_traced_hyperparameters.py::test_vmap_over_the_hyperparameters_of_each_family_member_equals_each_number",
    "tests/test_precision.py::test_every_family_member_in_float64_is_bit_identical_to_optax_under_x64",
    "tests/test_precision.py::test_every_family_member_in_float64_is_within_1e12_of_its_float64_reference",
    "tests/test_traced_hyperparameters.py::test_radam_with_an_array_b2_is_within_float32_rounding_of_the_float64_reference",
    "tests/test_family_state.py::test_moments_are_stored_in_the_asked_dtype",
    "tests/test_family_state.py::test_updates_keep_the_param_dtype_and_the_state_its_layout",
    "tests/test_family_state.py::test_narrow_state_minimises_as_well_as_float32_state",
    "tests/test_family_state.py::test_finite_on_zero_tiny_and_huge_gradients",
}


def pytest_collection_modifyitems(items):
    for item in items:
        path = item.nodeid.split("::")[0]
        if path in SLOW_MODULES or path.startswith("tests/optax_compat/") or item.nodeid.split("[")[0] in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
