"""Multi-host FSDP training: one program on every process, one mesh over all their devices.

    python examples/multihost_train.py --processes 2     # a real 2-process x 4-device cluster on this machine
    python examples/multihost_train.py --processes 2 --steps 200 --checkpoint /tmp/ckpt --json out.json
    python examples/multihost_train.py                   # one plain process, on the devices it has
    srun python examples/multihost_train.py              # on a cluster: its launcher starts the processes

With ``--processes N`` the script starts ``N`` copies of itself with
`adamlab.multihost.launch` (CPU backend, ``--devices-per-process`` simulated
devices each, a loopback coordinator) and prints each one's log. Every copy,
like every process of a real multi-host job, calls
`adamlab.multihost.initialize` before anything else touches JAX, then runs
the same program:

- the mesh spans ``jax.devices()``, every device of every process, and
  each process holds the shards on its ``jax.local_devices()``;
- an MLP's params are split FSDP-style (`adamlab.sharding.fsdp_shardings`)
  and the AdamW state is built in place (`adamlab.sharding.init`);
- each process generates only its own rows of every batch (from the seed
  and ``jax.process_index()``), and `jax.make_array_from_process_local_data`
  assembles them into one global batch split over the mesh;
- `adamlab.step.train_step` runs the jitted step on every process;
- `adamlab.checkpoint.save_orbax` writes each process's shards
  (``--checkpoint``), and restoring onto the same shardings gives the same
  bits back;
- results are read with `process_allgather`, and printed on process 0.

The model fits a fixed random "teacher" MLP on Gaussian inputs: nothing is
downloaded, and the loss falls within a few dozen steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

# Importing JAX starts nothing: multihost.initialize() only has to come before the first computation.
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import adamlab
from adamlab import multihost
from adamlab import sharding as shd


def _launch(args: argparse.Namespace, worker_argv: list[str]) -> int:
    """Runs this script as an `args.processes`-process cluster; prints each process's log; returns the exit status."""
    log_dir = Path(tempfile.mkdtemp(prefix="adamlab-multihost-train-"))
    start = time.monotonic()
    results = multihost.launch(
        [sys.executable, str(Path(__file__).resolve()), *worker_argv],
        args.processes,
        devices_per_process=args.devices_per_process,
        timeout=args.timeout,
        log_dir=log_dir,
    )
    wall = time.monotonic() - start
    for r in results:
        outcome = "ok" if r.ok else ("killed" if r.killed else f"failed (exit status {r.returncode})")
        print(f"--- process {r.process_id}: {outcome}, log {r.log}")
        print(r.output.rstrip())
    failed = [r.process_id for r in results if not r.ok]
    print(f"--- {len(results)} processes in {wall:.1f} s: " + (f"failed: {failed}" if failed else "all ok"))
    return 1 if failed else 0


def main(
    steps: int = 60,
    *,
    seed: int = 0,
    rows_per_device: int = 16,
    width: int = 256,
    checkpoint: str | None = None,
    log_every: int = 20,
) -> dict:
    pid, n_proc = jax.process_index(), jax.process_count()
    leader = pid == 0
    say = print if leader else (lambda *a, **k: None)  # results once, not once per process

    # Auto axes, as in the sharding guide: the compiler places whatever the shardings leave open.
    mesh = jax.make_mesh((jax.device_count(),), ("fsdp",), (jax.sharding.AxisType.Auto,), devices=jax.devices())
    n_in, n_out = 16, 4

    # The same host values on every process (seeded), so the global params agree; each process fills its shards.
    rng = np.random.default_rng(seed)
    teacher = [rng.standard_normal((n_in, 64), np.float32) / 4, rng.standard_normal((64, n_out), np.float32) / 8]
    host_params = {
        "hidden": {
            "w": rng.standard_normal((n_in, width), np.float32) / np.sqrt(n_in),
            "b": np.zeros(width, np.float32),
        },
        "mid": {
            "w": rng.standard_normal((width, width), np.float32) / np.sqrt(width),
            "b": np.zeros(width, np.float32),
        },
        "out": {
            "w": rng.standard_normal((width, n_out), np.float32) / np.sqrt(width),
            "b": np.zeros(n_out, np.float32),
        },
    }
    param_sh = shd.fsdp_shardings(host_params, mesh, "fsdp")
    params = jax.tree.map(
        lambda x, s: jax.make_array_from_callback(x.shape, s, lambda index: x[index]), host_params, param_sh
    )

    def mlp(p, x):
        h = jnp.tanh(x @ p["hidden"]["w"] + p["hidden"]["b"])
        h = jnp.tanh(h @ p["mid"]["w"] + p["mid"]["b"])
        return h @ p["out"]["w"] + p["out"]["b"]

    def loss_fn(p, x, y):
        return jnp.mean((mlp(p, x) - y) ** 2)

    schedule = adamlab.schedules.warmup_cosine_decay(0.0, 3e-3, max(steps // 10, 1), max(steps, 2))
    tx = adamlab.chain(
        adamlab.clip_by_global_norm(1.0), adamlab.adamw(schedule, weight_decay=1e-4, mask=adamlab.weight_decay_mask)
    )
    state = shd.init(tx, params)  # on every process: it is a jitted program over the whole mesh
    step = adamlab.step.train_step(shd.fsdp_loss(loss_fn, param_sh, "fsdp"), tx)

    batch_sh = NamedSharding(mesh, P("fsdp"))
    local_rows = rows_per_device * jax.local_device_count()

    def local_batch(i: int):
        """This process's rows of batch `i` only: no process ever builds the global batch.

        Each device's block of rows has its own seed (its position in the global batch), so the global batch is
        the same however the devices are divided among processes: 2 x 4 devices and 1 x 8 train alike.
        """
        blocks = [b for b, d in enumerate(mesh.devices.flat) if d.process_index == pid]
        x = np.concatenate(
            [np.random.default_rng([seed, i, b]).standard_normal((rows_per_device, n_in), np.float32) for b in blocks]
        )
        y = np.tanh(x @ teacher[0]) @ teacher[1]
        return (
            jax.make_array_from_process_local_data(batch_sh, x),
            jax.make_array_from_process_local_data(batch_sh, y.astype(np.float32)),
        )

    local_shards = {d.id: tuple(s.data.shape) for s in params["mid"]["w"].addressable_shards for d in [s.device]}
    # The one line every process prints: what it holds, which only it can say.
    print(f"process {pid} of {n_proc}: local devices {sorted(local_shards)}, mid.w shards {local_shards}")
    say(
        f"mesh {dict(mesh.shape)} over {jax.device_count()} {jax.devices()[0].platform} devices of {n_proc} "
        f"process(es); global batch {local_rows * n_proc} rows, {local_rows} generated per process"
    )

    losses = []
    for i in range(steps):
        x, y = local_batch(i)
        params, state, loss = step(params, state, x, y)
        # Every process waits for its step to finish before dispatching the next. Without this wait, on the CPU
        # backend (gloo collectives, JAX 0.10.2), processes that dispatched steps ahead deadlocked inside an
        # all-gather in 1 run in 10 or more. Here the wait costs little.
        losses.append(loss.block_until_ready())
        if leader and ((i + 1) % log_every == 0 or i == 0 or i + 1 == steps):
            print(f"step {i + 1:4d}  loss {float(loss):.5f}")  # a replicated scalar: float() reads a local copy

    # A collective: every process calls it, and every process gets the same host values.
    host_losses, host_final = multihost_utils.process_allgather((jnp.stack(losses), params), tiled=True)
    state_bytes = shd.bytes_per_device(state)  # from the shardings: every device, other processes' included
    summary = {
        "process_count": n_proc,
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "steps": steps,
        "first_loss": float(host_losses[0]),
        "final_loss": float(host_losses[-1]),
        "loss_decreased": bool(host_losses[-1] < host_losses[0]),
        "param_count": int(sum(x.size for x in jax.tree.leaves(host_final))),
        "param_checksum": float(sum(np.abs(x).sum() for x in jax.tree.leaves(host_final))),
        "state_bytes_total": int(sum(x.nbytes for x in jax.tree.leaves(state))),
        "state_bytes_per_device": {str(d.id): n for d, n in sorted(state_bytes.items(), key=lambda kv: kv[0].id)},
    }
    say(
        f"AdamW state: {summary['state_bytes_total']:,} B in all; per device "
        + ", ".join(f"{d}: {n:,}" for d, n in summary["state_bytes_per_device"].items())
    )

    if checkpoint is not None:
        saved = {"params": params, "opt": state}
        directory = adamlab.checkpoint.save_orbax(checkpoint, saved, force=True)  # every process, same directory
        # A restart restores onto a template that carries the shardings: each process reads only its shards.
        like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), saved)
        restored = adamlab.checkpoint.restore_orbax(directory, like)
        adamlab.testing.assert_bitwise_equal(restored, saved)  # gathers across processes: every process calls it
        summary["checkpoint"] = str(directory)
        summary["checkpoint_restored_bitwise"] = True
        say(f"saved to {directory}; restored onto the same shardings: bit-identical")

    say(
        f"loss {summary['first_loss']:.5f} -> {summary['final_loss']:.5f} over {steps} steps; "
        f"params checksum {summary['param_checksum']:.4f}"
    )
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--processes", type=int, default=None, help="start this many processes on this machine (a local cluster)"
    )
    parser.add_argument("--devices-per-process", type=int, default=4, help="simulated CPU devices per process")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", help="save params and state with Orbax to this directory (overwritten)")
    parser.add_argument("--json", help="write the summary as JSON to this file (process 0)")
    parser.add_argument("--timeout", type=float, default=300.0, help="with --processes: seconds before all are killed")
    args = parser.parse_args()

    if args.processes is not None:
        # The workers get the same arguments without --processes (and --devices-per-process, which launch applies).
        worker = ["--steps", str(args.steps), "--seed", str(args.seed)]
        if args.checkpoint:
            worker += ["--checkpoint", str(Path(args.checkpoint).absolute())]
        if args.json:
            worker += ["--json", str(Path(args.json).absolute())]
        sys.exit(_launch(args, worker))

    multihost.initialize()  # before any other JAX call; alone (no launcher), one process
    summary = main(args.steps, seed=args.seed, checkpoint=args.checkpoint)
    if args.json and jax.process_index() == 0:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
