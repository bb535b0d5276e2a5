"""The parity harness itself: it must see a difference where there is one, and where it starts."""

import jax.numpy as jnp
import numpy as np
import pytest

import adamlab
from adamlab import testing


def test_identical_transformations_report_zero():
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    report = testing.assert_parity(adamlab.adam(1e-3), adamlab.adam(1e-3), params, steps=20)
    assert report.max_rel == 0.0 and report.first_divergence is None
    assert report.step_max_rel.shape == (20,)


def test_first_divergence_is_the_step_where_they_part():
    params = {"w": jnp.ones(4)}
    switch_at = 7  # 0-based step index where the second schedule changes: params differ after step 8
    a = adamlab.sgd(0.1)
    b = adamlab.sgd(lambda step: jnp.where(step < switch_at, 0.1, 0.2))
    report = testing.compare(a, b, params, steps=15, rtol=1e-6)
    assert report.first_divergence == switch_at + 1
    assert np.all(report.step_max_rel[:switch_at] == 0.0)
    with pytest.raises(AssertionError, match="first diverged at step 8"):
        testing.assert_parity(a, b, params, steps=15)


def test_eager_mode_agrees_with_jit():
    params = {"w": jnp.ones(4)}
    stream = testing.gradient_stream(params, 10, seed=2)
    jitted = testing.run(adamlab.adamw(1e-2), params, stream, jit=True)
    eager = testing.run(adamlab.adamw(1e-2), params, stream, jit=False)
    assert max(e.max_rel for e in testing.compare_trees(eager, jitted)) <= 1e-6


def test_compare_trees_reports_per_leaf():
    errs = testing.compare_trees({"a": np.array([1.0, 2.0]), "b": np.array(4.0)}, {"a": np.array([1.0, 2.5]), "b": 4.0})
    assert errs[0].path == "['a']" and errs[0].max_abs == 0.5 and errs[0].max_rel == 0.2
    assert errs[1].max_abs == 0.0


def test_assert_bitwise_equal_names_the_leaf():
    with pytest.raises(AssertionError, match=r"leaf \['x'\] differs"):
        testing.assert_bitwise_equal({"x": np.float32([1.0])}, {"x": np.float32([1.0000001])})
