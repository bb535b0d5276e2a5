"""A real `jax.distributed` cluster on this machine: 2 processes x 4 CPU devices, loopback coordinator, gloo.

`adamlab.multihost.launch` starts `tests/multihost_checks.py` in every
process; each writes what it measured to a JSON file, and the tests below
assert on both processes' reports. Launches: the checks, a train-save-SIGKILL
run and the fresh cluster that restores it, and processes that die while
their peer waits in a collective.
"""

import json
import pathlib
import sys
import threading
import time

import pytest

from adamlab import multihost

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKER = str(ROOT / "tests" / "multihost_checks.py")


def _launch(mode, out, *args, timeout=240, **kwargs):
    start = time.monotonic()
    results = multihost.launch(
        [sys.executable, WORKER, mode, str(out), *args], 2, timeout=timeout, log_dir=out / f"logs_{mode}", **kwargs
    )
    return results, time.monotonic() - start


def _reports(mode, out):
    return [json.loads((out / f"{mode}_{i}.json").read_text()) for i in range(2)]


def _logs(results):
    return "\n".join(f"--- process {r.process_id} (exit {r.returncode}):\n{r.output[-3000:]}" for r in results)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Runs the check cluster beside the save/restore and dying clusters; returns every launch's outcome."""
    out = tmp_path_factory.mktemp("multihost")
    launches = {}

    def checks():
        launches["checks"] = _launch("checks", out)

    thread = threading.Thread(target=checks)
    thread.start()
    launches["save"] = _launch("save", out)
    launches["restore"] = _launch("restore", out)
    launches["die_1"] = _launch("die", out, "1", timeout=60)
    launches["die_0_alone"] = _launch("die", out, "0", timeout=60, stop_on_failure=False)
    thread.join()
    return out, launches


@pytest.fixture(scope="module")
def checks(cluster):
    out, launches = cluster
    results, _ = launches["checks"]
    assert all(r.ok for r in results), _logs(results)
    reports = _reports("checks", out)
    return reports


def test_fsdp_adamw_and_low_precision_state_equal_the_one_process_run_bit_for_bit(checks):
    for report in checks:
        for name in ("adamw", "bfloat16", "int8"):
            r = report["fsdp"][name]
            assert r["bitwise"], name
            assert r["state_mismatches"] == [], name  # every moment (8-bit codes and scales too) split like its param
            assert r["param_specs"] == {"b": "P(None,)", "e": "P('fsdp', None)", "w": "P('fsdp', None)"}


def test_a_clipping_chain_agrees_to_rounding(checks):
    for report in checks:
        assert report["fsdp"]["clip_adamw"]["max_rel"] < 1e-6  # gloo sums the global norm in another order


def test_zero1_is_bit_for_bit_for_every_bucket_size(checks):
    for report in checks:
        sizes = {int(n): r for n, r in report["zero1"].items() if n != "seconds"}
        assert any(r["padded_length"] == n for n, r in sizes.items())  # exact buckets
        assert any(r["padded_length"] > n >= 4096 for n, r in sizes.items())  # padded to whole 8-bit blocks
        assert all(r["bitwise"] for r in sizes.values()), sizes


def test_skip_nonfinite_raises_on_every_process(checks):
    for report in checks:
        assert report["skip_nonfinite"] == {
            "raised_at_step": 2,
            "names_the_error": True,
            "seconds": report["skip_nonfinite"]["seconds"],
        }


def test_load_npz_keeps_nan_and_inf_on_a_sharding_of_both_processes(checks):
    for report in checks:
        assert report["load_npz"]["equal"] and report["load_npz"]["shardings_kept"]


def test_zero1_state_resumes_from_a_restore_without_shardings(checks):
    for report in checks:
        assert "SingleDeviceSharding" in report["zero1_restore"]["restored_on"]  # what restore_orbax gave
        assert report["zero1_restore"]["bitwise"]


def test_leafless_params_state_is_readable_on_every_process(checks):
    for report in checks:
        assert report["leafless"]["count"] == 1 and report["leafless"]["addressable"]


def test_step_helpers_keep_shardings_and_compile_once(checks):
    for report in checks:
        for name in ("update_step", "train_step"):
            assert report["steps"][name] == {"compiles": 1, "shardings_kept": True}, name


def test_bytes_per_device_and_parity_helpers_see_both_processes(checks):
    for report in checks:
        m = report["measurements"]
        assert m["devices"] == 8 and m["processes_counted"] == [0, 1]
        assert m["bytes"] == [m["expected_bytes"]]
        assert m["compare_max_rel"] == 0.0 and m["compare_rel_other"] > 1e-3


def test_orbax_checkpoint_survives_sigkill_and_resumes_bit_for_bit(cluster):
    out, launches = cluster
    saved, _ = launches["save"]
    assert all(r.returncode == -9 for r in saved), _logs(saved)  # each killed itself after saving
    assert all(r["saved"] for r in _reports("save", out))
    restored, _ = launches["restore"]
    assert all(r.ok for r in restored), _logs(restored)
    for report in _reports("restore", out):
        assert report["bitwise"]  # equal to the uninterrupted run
        assert report["max_rel_one_process"] < 1e-6  # and, to the global norm's rounding, to one process


def test_a_dead_process_does_not_leave_its_peer_hanging(cluster):
    _, launches = cluster
    results, seconds = launches["die_1"]
    assert seconds < 30
    assert results[1].returncode == -9 and not results[1].killed
    assert results[0].killed  # stopped by the launcher, at once
    # Without a launcher that stops peers, JAX's heartbeat ends the survivor (here process 1, whose coordinator
    # died with process 0) within the heartbeat timeout.
    results, seconds = launches["die_0_alone"]
    assert seconds < 30, _logs(results)
    assert results[0].returncode == -9 and results[1].returncode != 0 and not results[1].killed, _logs(results)
