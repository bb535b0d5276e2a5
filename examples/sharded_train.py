"""FSDP training on a device mesh: the demo transformer, its params and AdamW state split N ways.

    python examples/sharded_train.py                  # 8 simulated CPU devices, or every GPU/TPU present
    python examples/sharded_train.py --devices 4 --steps 200
    python examples/sharded_train.py --zero1          # ZeRO-1 instead: replicated params, state split N ways

FSDP ("fully sharded data parallel"): every large param is split along one
dimension over the mesh axis ``fsdp`` (`adamlab.sharding.fsdp_shardings`),
the batch is split over the same axis, and `jax.jit` inserts the collectives:
an all-gather of each param where the forward pass needs it whole, a
reduce-scatter of each gradient back to its shard. The optimizer state is
built in place with `adamlab.sharding.init`, each moment exactly where its
param lives, and the optimizer step itself moves no data between devices
(the printed collectives are the model's, and the global-norm clipping's
scalar all-reduce).

On a CPU the devices are simulated (``--xla_force_host_platform_device_count``,
set here before JAX starts): they share the processor, so they show placement
and memory, not speed. Where GPUs or TPUs are present, those are used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

_DEFAULT_DEVICES = 8


def _early_device_count(argv) -> int:
    """--devices, read before JAX is imported: the simulated device count is fixed when JAX starts."""
    for i, arg in enumerate(argv):
        if arg == "--devices" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--devices="):
            return int(arg.split("=", 1)[1])
    return _DEFAULT_DEVICES


if __name__ == "__main__" and "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    # Affects only the host (CPU) platform: with GPUs or TPUs present, those remain JAX's devices.
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count="
        f"{max(_early_device_count(sys.argv[1:]), 1)}"
    ).strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import adamlab  # noqa: E402
from adamlab import flat  # noqa: E402
from adamlab import sharding as shd  # noqa: E402
from adamlab.demo import data, model  # noqa: E402


def _mib(n: float) -> str:
    return f"{n / 2**20:.3f} MiB"


def main(
    steps: int = 100,
    devices: int = _DEFAULT_DEVICES,
    *,
    batch: int = 32,
    d_model: int = 128,
    layers: int = 2,
    context: int = 64,
    zero1: bool = False,
    log_every: int = 10,
) -> dict:
    available = jax.devices()
    if devices > len(available):
        raise ValueError(
            f"--devices {devices} but JAX sees {len(available)} ({available[0].platform}); on a CPU run "
            "this script directly so that it can ask for simulated devices"
        )
    if batch % devices:
        raise ValueError(f"batch ({batch}) must be divisible by the device count ({devices})")
    mesh = Mesh(np.array(available[:devices]), ("fsdp",))
    config = model.ModelConfig(vocab_size=len(data.VOCAB), context=context, d_model=d_model, layers=layers, heads=4)
    params = model.init_params(config, seed=0)
    schedule = adamlab.schedules.warmup_cosine_decay(0.0, 3e-3, max(steps // 10, 1), max(steps, 2))
    tx = adamlab.chain(
        adamlab.clip_by_global_norm(1.0), adamlab.adamw(schedule, weight_decay=0.1, mask=adamlab.weight_decay_mask)
    )
    replicated = NamedSharding(mesh, P())

    if zero1:  # replicated params in a flat layout; the optimizer state split N ways along its buffers
        params = jax.device_put(flat.flatten(params), replicated)
        tx = shd.zero1(tx, mesh, "fsdp")
        param_sh = jax.tree.map(lambda _: replicated, params)

        def loss_fn(p, x, y):
            return model.loss_fn(p.unflatten(), x, y, config)
    else:  # FSDP: params split along their largest divisible dimension (small leaves replicated)
        param_sh = shd.fsdp_shardings(params, mesh, "fsdp", min_elements=1024)
        params = jax.device_put(params, param_sh)

        # Each device runs the model on its slice of the batch with the weights gathered whole; the gradient of
        # each weight arrives summed over the batch and split like its param (a reduce-scatter).
        loss_fn = shd.fsdp_loss(lambda p, x, y: model.loss_fn(p, x, y, config), param_sh, "fsdp")

    state = shd.init(tx, params)  # every moment created on its param's devices, as shards only
    state_sh = shd.state_shardings(tx, params)
    batch_sh = NamedSharding(mesh, P("fsdp", None))

    def train_step(p, s, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        # The gradient lives where its param does (replicated in ZeRO-1, after the data-parallel all-reduce).
        grads = jax.lax.with_sharding_constraint(grads, param_sh)
        updates, s = tx.update(grads, s, p)
        return adamlab.apply_updates(p, updates), s, loss

    step = jax.jit(train_step, out_shardings=(param_sh, state_sh, replicated), donate_argnums=(0, 1))

    train_ids, _ = data.train_val_split()
    offsets = data.batch_offsets(len(train_ids), context, batch, steps, seed=0)
    windows = np.arange(context + 1)

    def get_batch(i):
        seqs = train_ids[offsets[i][:, None] + windows].astype(np.int32)
        return jax.device_put(seqs[:, :-1], batch_sh), jax.device_put(seqs[:, 1:], batch_sh)

    x0, y0 = get_batch(0)
    comms = shd.collectives(step.lower(params, state, x0, y0).compile())
    update_comms = shd.collectives(jax.jit(lambda g, s, p: tx.update(g, s, p)).lower(params, state, params).compile())

    p_dev, s_dev = shd.bytes_per_device(params), shd.bytes_per_device(state)
    p_total = sum(x.nbytes for x in jax.tree.leaves(params))
    s_total = sum(x.nbytes for x in jax.tree.leaves(state))
    print(
        f"{devices} x {available[0].platform} devices, mesh {dict(mesh.shape)}, "
        f"{'ZeRO-1' if zero1 else 'FSDP'}, {model.count_params(params if not zero1 else params.unflatten()):,} "
        "params"
    )
    print(
        f"params           : {_mib(p_total)} in all, {_mib(max(p_dev.values()))} on the fullest device "
        f"({p_total / max(p_dev.values()):.2f}x split)"
    )
    print(
        f"optimizer state  : {_mib(s_total)} in all, {_mib(max(s_dev.values()))} on the fullest device "
        f"({s_total / max(s_dev.values()):.2f}x split)"
    )
    print(f"train step collectives : {comms}")
    print(f"optimizer update alone : {update_comms}")

    losses = []
    p, s = params, state
    for i in range(steps):
        x, y = (x0, y0) if i == 0 else get_batch(i)
        p, s, loss = step(p, s, x, y)
        losses.append(float(loss))
        if (i + 1) % log_every == 0 or i == 0 or i + 1 == steps:
            print(f"step {i + 1:5d}  loss {losses[-1]:.4f}")
    return {
        "devices": devices,
        "platform": available[0].platform,
        "mode": "zero1" if zero1 else "fsdp",
        "param_bytes_total": p_total,
        "param_bytes_max_device": max(p_dev.values()),
        "state_bytes_total": s_total,
        "state_bytes_max_device": max(s_dev.values()),
        "state_bytes_min_device": min(s_dev.values()),
        "collectives": comms.counts,
        "collective_bytes": comms.bytes,
        "update_collectives": update_comms.counts,
        "update_collective_bytes": update_comms.bytes,
        "first_loss": losses[0],
        "final_loss": losses[-1],
        "state_specs": sorted({str(getattr(x.sharding, "spec", x.sharding)) for x in jax.tree.leaves(s)}),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=int(os.environ.get("ADAMLAB_EXAMPLE_STEPS", 100)))
    parser.add_argument(
        "--devices",
        type=int,
        default=None,
        help=f"mesh size (default: every GPU/TPU, or {_DEFAULT_DEVICES} simulated CPU devices)",
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--zero1", action="store_true", help="ZeRO-1 (flat layout) instead of FSDP")
    parser.add_argument("--json", help="also write the summary as JSON to this file")
    args = parser.parse_args()
    n = args.devices or (len(jax.devices()) if jax.default_backend() != "cpu" else _DEFAULT_DEVICES)
    summary = main(
        args.steps,
        n,
        batch=args.batch,
        d_model=args.d_model,
        layers=args.layers,
        context=args.context,
        zero1=args.zero1,
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
