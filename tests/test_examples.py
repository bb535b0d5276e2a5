"""The examples run at a small size and show what their docstrings claim."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mlp_regression_trains():
    out = load("mlp_regression").main(steps=150)
    assert out["final_loss"] < out["first_loss"] / 20


def test_flax_training_with_adamlab_matches_optax_bit_for_bit():
    pytest.importorskip("flax")
    out = load("flax_nnx").main(steps=40)
    for name in ("nnx", "linen"):
        assert out[name]["identical_to_optax"], name
        assert np.isfinite(out[name]["final_loss"]) and out[name]["final_loss"] < 0.5


def test_custom_optimizers_agree_with_the_builtins():
    out = load("custom_optimizer").main(steps=40)
    assert out["adam_bitwise"] and out["adamw_bitwise"]
    assert out["no_bias_correction_first_step_ratio"] == pytest.approx(0.1 / np.sqrt(0.001), rel=1e-4)
    assert out["rmsprop_ema_vs_trace_max_rel"] < 1e-5


def test_parameter_ema_weights_evaluate_better_than_the_last_iterate():
    out = load("parameter_ema").main(steps=400)
    assert out["ema_loss"] < out["last_iterate_loss"]
    assert out["ema_loss"] < 1.1 * out["least_squares_loss"]


def test_logged_decay_is_uniform_under_adamw_and_spread_under_l2():
    out = load("log_diagnostics").main(steps=30, lr=3e-3, wd=0.05)
    np.testing.assert_allclose(out["AdamW"]["decay_quantiles"], [3e-3 * 0.05] * 3, rtol=1e-5)
    q05, _, q95 = out["Adam+L2"]["decay_quantiles"]
    assert q95 > 5 * q05


def test_multihost_train_runs_as_a_two_process_cluster(tmp_path):
    out = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "multihost_train.py"), "--processes", "2", "--steps", "30", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads(out.read_text())
    assert summary["process_count"] == 2 and summary["device_count"] == 8
    assert summary["loss_decreased"] and summary["final_loss"] < summary["first_loss"] / 2
    per_device = summary["state_bytes_per_device"]
    assert len(per_device) == 8  # both processes' devices, each holding its shards only
    assert max(per_device.values()) < summary["state_bytes_total"] / 4
