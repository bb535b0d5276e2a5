"""Several processes, one program: starting `jax.distributed` and running a real multi-process cluster on one machine.

JAX scales past one host with its multi-controller runtime: every process
(usually one per host) runs the same Python program, owns its local devices,
and sees one global mesh of all devices. ``jax.distributed.initialize``
connects the processes; on a managed cluster (SLURM, Open MPI, Cloud TPU, a
Kubernetes job set) it reads the launcher's environment by itself.

Two helpers:

- :func:`initialize` is ``jax.distributed.initialize`` with timeouts short
  enough that a process whose peer died exits instead of waiting: it reads the
  coordinator address, process count and process id that :func:`launch` sets,
  and otherwise leaves JAX to detect the cluster.
- :func:`launch` starts ``N`` copies of a command as a cluster on this machine
  (the CPU backend, a loopback coordinator, gloo collectives, ``devices_per_process``
  simulated devices each), with output to files. The first process that fails
  brings the others down, and a time limit ends a process that hangs: no
  caller ever waits forever. It is what the tests and
  ``examples/multihost_train.py --processes 2`` use to run multi-host code
  for real on one machine.

See the multi-host guide for what every process must call identically.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = ["ProcessResult", "free_port", "initialize", "launch"]

#: Environment variables :func:`launch` sets and :func:`initialize` reads.
COORDINATOR = "ADAMLAB_COORDINATOR"
NUM_PROCESSES = "ADAMLAB_NUM_PROCESSES"
PROCESS_ID = "ADAMLAB_PROCESS_ID"
_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now (the OS picks it).

    Returns:
      A port number, for the coordinator of a local cluster.

    Example:
      >>> from adamlab import multihost
      >>> 0 < multihost.free_port() < 65536
      True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def initialize(
    *,
    initialization_timeout: int = 60,
    heartbeat_timeout_seconds: int = 10,
    shutdown_timeout_seconds: int = 10,
) -> bool:
    """Connects this process to its cluster (``jax.distributed.initialize``); call it before any other JAX call.

    Under :func:`launch` (the ``ADAMLAB_COORDINATOR``, ``ADAMLAB_NUM_PROCESSES``
    and ``ADAMLAB_PROCESS_ID`` environment variables are set) it passes those
    as ``coordinator_address``, ``num_processes`` and ``process_id``, and binds
    the coordinator to the same loopback address. Otherwise, on a cluster
    whose launcher JAX recognises (SLURM, Open MPI, Cloud TPU, Kubernetes), it
    lets JAX read the environment. Outside either, it does nothing: one
    process.

    The timeouts are JAX's own arguments, shorter than its defaults (100 s
    heartbeat, 300 s shutdown) so that a process whose peer died gives up
    within seconds instead of minutes.

    Args:
      initialization_timeout: Seconds to wait for every process to connect. Default 60.
      heartbeat_timeout_seconds: Seconds without a heartbeat after which a process counts as dead
        and the others stop. Default 10.
      shutdown_timeout_seconds: Seconds a process waits for the others when it shuts down. Default 10.

    Returns:
      True if this process joined a cluster of several, False if it runs alone.

    Example:
      >>> import os
      >>> from adamlab import multihost
      >>> "ADAMLAB_COORDINATOR" in os.environ  # not started by launch: nothing to join
      False
    """
    import jax

    def connect(**where):
        jax.distributed.initialize(
            **where,
            initialization_timeout=initialization_timeout,
            heartbeat_timeout_seconds=heartbeat_timeout_seconds,
            shutdown_timeout_seconds=shutdown_timeout_seconds,
        )

    address = os.environ.get(COORDINATOR)
    if address:
        connect(
            coordinator_address=address,
            num_processes=int(os.environ[NUM_PROCESSES]),
            process_id=int(os.environ[PROCESS_ID]),
            coordinator_bind_address=address,
        )
        return True
    if _managed_cluster():
        connect()
        return jax.process_count() > 1
    return False


def _managed_cluster() -> bool:
    # The variables by which JAX's own cluster detection recognises SLURM, Open MPI, multi-host TPUs and
    # Kubernetes job sets; without one, initialize() would fail for want of a coordinator.
    keys = ("SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri", "PMIX_SERVER_URI", "TPU_WORKER_HOSTNAMES", "JOBSET_NAME")
    return any(k in os.environ for k in keys) or "JAX_COORDINATOR_ADDRESS" in os.environ


class ProcessResult(NamedTuple):
    """How one process of a :func:`launch` ended.

    Args:
      process_id: The process's index in the cluster, 0 to ``processes - 1``.
      returncode: Its exit status: 0 on success, negative for a signal (``-9``: killed).
      killed: True if the launcher killed it, because a peer failed first or the time limit passed.
      log: The file holding its stdout and stderr.

    Example:
      >>> from adamlab import multihost
      >>> r = multihost.ProcessResult(0, 0, False, "/tmp/process_0.log")
      >>> r.ok
      True
    """

    process_id: int
    returncode: int
    killed: bool
    log: str

    @property
    def ok(self) -> bool:
        """True if the process exited with status 0 on its own.

        Example:
          >>> from adamlab import multihost
          >>> multihost.ProcessResult(1, -9, True, "process_1.log").ok
          False
        """
        return self.returncode == 0 and not self.killed

    @property
    def output(self) -> str:
        """What the process printed (stdout and stderr, interleaved), read from `log`.

        Example:
          >>> import pathlib, tempfile
          >>> from adamlab import multihost
          >>> log = pathlib.Path(tempfile.mkdtemp()) / "process_0.log"
          >>> _ = log.write_text("step 1 loss 0.5\\n")
          >>> multihost.ProcessResult(0, 0, False, str(log)).output
          'step 1 loss 0.5\\n'
        """
        return Path(self.log).read_text(errors="replace")


def _with_device_count(flags: str, count: int) -> str:
    kept = [f for f in flags.split() if not f.startswith(_DEVICE_COUNT_FLAG)]
    return " ".join([*kept, f"{_DEVICE_COUNT_FLAG}={count}"])


def launch(
    command: Sequence[str],
    processes: int = 2,
    *,
    devices_per_process: int = 4,
    timeout: float = 300.0,
    log_dir: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    stop_on_failure: bool = True,
) -> list[ProcessResult]:
    """Runs `command` as a `processes`-process JAX cluster on this machine, and returns when every process is gone.

    Each process gets the environment :func:`initialize` reads (a free
    loopback port as coordinator, the process count, its id), the CPU
    backend (``JAX_PLATFORMS=cpu``) with `devices_per_process` devices
    (``--xla_force_host_platform_device_count``), and its own log file. The
    launcher polls: when one process exits non-zero, it kills the others at
    once (``SIGKILL`` to each process group); when `timeout` seconds pass,
    it kills all that remain. So the call returns within `timeout` (plus a
    fraction of a second) whatever the processes do. With
    ``stop_on_failure=False`` the survivors of a failure are left to end by
    themselves, as on a cluster without such a launcher: JAX's heartbeat
    timeout (see :func:`initialize`) is then what stops them.

    On the CPU backend, have each process wait for every step
    (``jax.block_until_ready``) before dispatching the next: processes that
    queue steps freely can deadlock in a collective (seen here with gloo,
    about one run in ten), which the time limit then ends.

    Args:
      command: The program and its arguments, e.g. ``[sys.executable, "train.py", "--steps", "10"]``;
        every process runs the same one (it calls :func:`initialize` first).
      processes: How many processes. Default 2.
      devices_per_process: Simulated CPU devices per process. Default 4.
      timeout: Seconds after which every process still running is killed. Default 300.
      log_dir: Where to write ``process_<i>.log``. Default None: a new temporary directory.
      env: The environment to start from. Default None: this process's ``os.environ``.
      stop_on_failure: Whether to kill the other processes as soon as one exits non-zero. Default True.

    Returns:
      One :class:`ProcessResult` per process, in process order.

    Raises:
      ValueError: If `processes` or `devices_per_process` is not a positive int, `timeout` is not
        positive, or `command` is empty or a single string.

    Example:
      >>> import sys
      >>> from adamlab import multihost
      >>> code = "import os; print('process', os.environ['ADAMLAB_PROCESS_ID'])"
      >>> results = multihost.launch([sys.executable, "-c", code], processes=2)
      >>> [(r.ok, r.output.strip()) for r in results]
      [(True, 'process 0'), (True, 'process 1')]
    """
    if isinstance(command, str) or not command:
        raise ValueError("launch: command must be a non-empty list of arguments, e.g. [sys.executable, 'train.py']")
    for name, value in (("processes", processes), ("devices_per_process", devices_per_process)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"launch: {name} must be a positive int, got {value!r}")
    if not timeout > 0:
        raise ValueError(f"launch: timeout must be positive, got {timeout!r}")
    logs = Path(tempfile.mkdtemp(prefix="adamlab-cluster-") if log_dir is None else log_dir)
    logs.mkdir(parents=True, exist_ok=True)
    base = dict(os.environ if env is None else env)
    base.update(
        {
            COORDINATOR: f"127.0.0.1:{free_port()}",
            NUM_PROCESSES: str(processes),
            "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": _with_device_count(base.get("XLA_FLAGS", ""), devices_per_process),
            "PYTHONUNBUFFERED": "1",
        }
    )
    running: list[subprocess.Popen] = []
    paths = []
    try:
        for i in range(processes):
            path = logs / f"process_{i}.log"
            paths.append(str(path))
            with open(path, "wb") as out:  # the child keeps its own descriptor
                running.append(
                    subprocess.Popen(
                        list(command),
                        env=dict(base, **{PROCESS_ID: str(i)}),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,  # a process group of its own, so a kill reaches its children
                    )
                )
        killed = _watch(running, time.monotonic() + timeout, stop_on_failure)
    finally:
        for p in running:  # also on KeyboardInterrupt: leave nothing behind
            if p.poll() is None:
                _kill(p)
    return [ProcessResult(i, p.wait(), i in killed, paths[i]) for i, p in enumerate(running)]


def _watch(running: Sequence[subprocess.Popen], deadline: float, stop_on_failure: bool) -> set[int]:
    """Waits for every process; kills the rest after the first failure or at the deadline; returns whom it killed."""
    killed: set[int] = set()
    while any(p.poll() is None for p in running):
        failed = stop_on_failure and any(p.poll() not in (None, 0) for p in running)
        if failed or time.monotonic() > deadline:
            for i, p in enumerate(running):
                if p.poll() is None:
                    _kill(p)
                    killed.add(i)
            break
        time.sleep(0.05)
    return killed


def _kill(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        p.kill()
    p.wait()
