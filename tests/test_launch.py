"""adamlab.multihost.launch on its own: environment, logs, failures and time limits (no JAX in the children)."""

import sys
import time

import pytest

from adamlab import multihost


def _run(code, processes=2, **kwargs):
    return multihost.launch([sys.executable, "-c", code], processes, **kwargs)


def test_each_process_gets_the_cluster_environment_and_its_own_log(tmp_path):
    code = (
        "import os; e = os.environ; print(e['ADAMLAB_PROCESS_ID'], e['ADAMLAB_NUM_PROCESSES'], "
        "e['ADAMLAB_COORDINATOR'].startswith('127.0.0.1:'), e['JAX_PLATFORMS'], e['XLA_FLAGS'])"
    )
    results = _run(code, 3, devices_per_process=2, log_dir=tmp_path, env={"XLA_FLAGS": "--foo=1"})
    assert [r.process_id for r in results] == [0, 1, 2]
    assert all(r.ok for r in results)
    assert [r.output.split()[:4] for r in results] == [[str(i), "3", "True", "cpu"] for i in range(3)]
    assert all(r.output.split()[4:] == ["--foo=1", "--xla_force_host_platform_device_count=2"] for r in results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["process_0.log", "process_1.log", "process_2.log"]


def test_the_first_failure_stops_the_others_at_once():
    code = "import os, sys, time\nif os.environ['ADAMLAB_PROCESS_ID'] == '1': sys.exit(3)\ntime.sleep(60)"
    start = time.monotonic()
    results = _run(code, timeout=60)
    assert time.monotonic() - start < 20
    assert results[1].returncode == 3 and not results[1].killed and not results[1].ok
    assert results[0].killed and results[0].returncode == -9


def test_without_stop_on_failure_the_others_run_to_their_end():
    code = "import os, sys, time\nif os.environ['ADAMLAB_PROCESS_ID'] == '1': sys.exit(3)\ntime.sleep(1); print('done')"
    results = _run(code, stop_on_failure=False, timeout=60)
    assert results[0].ok and results[0].output.strip() == "done"
    assert results[1].returncode == 3


def test_a_hung_process_is_killed_at_the_time_limit():
    start = time.monotonic()
    results = _run("import time; time.sleep(60)", timeout=1.5)
    assert time.monotonic() - start < 15
    assert all(r.killed and r.returncode == -9 for r in results)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="command must be a non-empty list"):
        multihost.launch("python train.py")
    with pytest.raises(ValueError, match="processes must be a positive int"):
        multihost.launch(["true"], 0)
    with pytest.raises(ValueError, match="devices_per_process must be a positive int"):
        multihost.launch(["true"], devices_per_process=True)
    with pytest.raises(ValueError, match="timeout must be positive"):
        multihost.launch(["true"], timeout=0)


def test_initialize_alone_is_one_process(monkeypatch):
    for key in ("ADAMLAB_COORDINATOR", "SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri", "PMIX_SERVER_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("TPU_WORKER_HOSTNAMES", raising=False)
    monkeypatch.delenv("JOBSET_NAME", raising=False)
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
    assert multihost.initialize() is False
