"""Checks run by every process of a real `jax.distributed` cluster (2 processes x 4 CPU devices, one machine).

`tests/test_multihost.py` starts the cluster with `adamlab.multihost.launch`:

    python tests/multihost_checks.py MODE OUT_DIR

Every process runs the same program (as on a real multi-host job), writes what
it measured to ``OUT_DIR/MODE_<process>.json``, and lets any error end it with
a traceback and a non-zero status (the launcher then stops its peer). The
one-process references are computed in each worker on its first local
device, from the same host values: the same update, unsplit.

Modes: ``checks`` (every fix and parity check), ``save`` (train, save with
Orbax, then SIGKILL itself), ``restore`` (fresh processes restore and
continue), ``die K`` (process K dies while the other waits in a collective).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from adamlab import multihost

multihost.initialize(initialization_timeout=60, heartbeat_timeout_seconds=5, shutdown_timeout_seconds=5)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import adamlab  # noqa: E402
from adamlab import checkpoint, flat, testing  # noqa: E402
from adamlab import sharding as shd  # noqa: E402

MODE, OUT = sys.argv[1], sys.argv[2]
PID = jax.process_index()
LOCAL = jax.local_devices()[0]
MESH = jax.make_mesh((8,), ("fsdp",), axis_types=(jax.sharding.AxisType.Auto,))
REPLICATED = NamedSharding(MESH, P())
STEPS = 3
ZERO1_SIZES = (91, 4096, 4160, 5120, 6144, 10496)  # exact and padded buckets, below and above the 8-bit block rule


def host_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "w": rng.standard_normal((64, 32), np.float32),
        "e": rng.standard_normal((16, 8), np.float32),
        "b": np.zeros(32, np.float32),
    }


def host_grads(tree, step):
    rng = np.random.default_rng(1000 + step)
    return jax.tree.map(lambda x: rng.standard_normal(x.shape, np.float32), tree)


def to_global(tree, shardings):
    """Host values placed on global shardings: each process fills its own devices' shards."""
    return jax.tree.map(lambda x, s: jax.make_array_from_callback(x.shape, s, lambda i, x=x: x[i]), tree, shardings)


def wait(outputs):
    # Every step finished before the next is dispatched: on the CPU backend, processes that queue steps freely
    # can deadlock in a collective (a device's in-flight limit reached while its peers wait for it).
    return jax.block_until_ready(outputs)


def to_local(tree):
    return jax.device_put(tree, LOCAL)


def fsdp_placement(tree):
    return shd.fsdp_shardings(tree, MESH, "fsdp", min_elements=128)


def step_fn(tx):
    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return adamlab.apply_updates(p, u), s

    return step


def run_global(tx, host, steps, first=0, params=None, state=None):
    shardings = fsdp_placement(host)
    params = to_global(host, shardings) if params is None else params
    state = shd.init(tx, params) if state is None else state
    fn = jax.jit(step_fn(tx), out_shardings=(shardings, shd.state_shardings(tx, params)), donate_argnums=(0, 1))
    for i in range(first, first + steps):
        params, state = wait(fn(params, state, to_global(host_grads(host, i), shardings)))
    return params, state


def run_local(tx, host, steps):
    params = to_local(host)
    state = tx.init(params)
    fn = jax.jit(step_fn(tx))
    for i in range(steps):
        params, state = fn(params, state, to_local(host_grads(host, i)))
    return params, state


def bitwise(a, b) -> bool:
    try:
        testing.assert_bitwise_equal(a, b)  # gathers the arrays that span processes (every process calls it)
        return True
    except AssertionError:
        return False


def max_rel(a, b) -> float:
    return max((e.max_rel for e in testing.compare_trees(a, b)), default=0.0)


def moment_mismatches(state, params) -> list[str]:
    """State leaves shaped like a param whose sharding is not the param's."""
    by_shape = {}
    for p in jax.tree.leaves(params):
        by_shape.setdefault(p.shape, []).append(p.sharding)
    bad = []
    for path, x in jax.tree_util.tree_flatten_with_path(state, is_leaf=lambda x: hasattr(x, "codes"))[0]:
        for leaf in [x.codes, x.scales] if hasattr(x, "codes") else [x]:
            if leaf.shape in by_shape and leaf.ndim and leaf.size > 1:
                if not any(leaf.sharding.is_equivalent_to(s, leaf.ndim) for s in by_shape[leaf.shape]):
                    bad.append(jax.tree_util.keystr(path))
    return bad


# -- checks ---------------------------------------------------------------------------------------------------------


def check_fsdp():
    """FSDP AdamW, a clipping chain and low-precision state against the unsplit run."""
    host = host_params()
    out = {}
    cases = {
        "adamw": adamlab.adamw(1e-2, weight_decay=0.1, mask=adamlab.weight_decay_mask),
        "clip_adamw": adamlab.chain(adamlab.clip_by_global_norm(0.5), adamlab.adamw(1e-2, weight_decay=0.1)),
        "bfloat16": adamlab.adamw(1e-2, state_dtype=jnp.bfloat16),
        "int8": adamlab.adamw(1e-2, state_dtype=jnp.int8),
    }
    for name, tx in cases.items():
        gp, gs = run_global(tx, host, STEPS)
        lp, ls = run_local(tx, host, STEPS)
        out[name] = {
            "bitwise": bitwise((gp, gs), (lp, ls)),
            "max_rel": max_rel(gp, lp),
            "state_mismatches": moment_mismatches(gs, gp),
            "param_specs": {k: str(v.sharding.spec) for k, v in gp.items()},
        }
    return out


def check_zero1():
    """ZeRO-1 over flat buffers on the 8 devices of both processes, bit for bit for every bucket size."""
    out = {}
    tx = adamlab.adamw(1e-2, weight_decay=0.1)
    for n in ZERO1_SIZES:
        host = {"w": np.random.default_rng(n).standard_normal(n, np.float32)}
        ztx = shd.zero1(tx, MESH, "fsdp")
        fp = flat.flatten(to_global(host, {"w": REPLICATED}))
        state = shd.init(ztx, fp)
        fn = jax.jit(step_fn(ztx), out_shardings=(jax.tree.map(lambda _: REPLICATED, fp), shd.state_shardings(ztx, fp)))
        lfp = flat.flatten(to_local(host))
        ls = tx.init(lfp)
        lfn = jax.jit(step_fn(tx))
        for i in range(STEPS):
            g = host_grads(host, i)
            fp, state = wait(fn(fp, state, fp.layout.flatten(to_global(g, {"w": REPLICATED}))))
            lfp, ls = lfn(lfp, ls, lfp.layout.flatten(to_local(g)))
        out[str(n)] = {
            "padded_length": int(state[0].moment.buckets[0].shape[0]),
            "bitwise": bitwise(fp, lfp) and bitwise(shd.zero1_state_to_flat(state), ls),
        }
    return out


def check_load_npz():
    """A checkpoint with NaN and Inf loads onto a sharding of both processes, values kept."""
    host = host_params()
    host["w"][0, :3] = [np.nan, np.inf, -np.inf]
    path = os.path.join(OUT, "with_nan.npz")
    if PID == 0:
        checkpoint.save_npz(path, host)
    multihost_utils.sync_global_devices("npz written")
    like = to_global(jax.tree.map(np.zeros_like, host), fsdp_placement(host))
    loaded = checkpoint.load_npz(path, like)
    back = {k: np.asarray(multihost_utils.process_allgather(v, tiled=True)) for k, v in loaded.items()}
    return {
        "equal": all(np.array_equal(back[k], host[k], equal_nan=True) for k in host),
        "shardings_kept": all(loaded[k].sharding == like[k].sharding for k in host),
    }


def check_zero1_restore():
    """A ZeRO-1 state saved as a flat state, restored without shardings (one local device), resumes exactly."""
    host = {"w": np.random.default_rng(7).standard_normal(5000, np.float32), "b": np.ones(3, np.float32)}
    tx = adamlab.adamw(1e-2)
    ztx = shd.zero1(tx, MESH, "fsdp")
    fp = flat.flatten(to_global(host, {"w": REPLICATED, "b": REPLICATED}))
    state = shd.init(ztx, fp)
    step = jax.jit(step_fn(ztx), out_shardings=(jax.tree.map(lambda _: REPLICATED, fp), shd.state_shardings(ztx, fp)))
    lfp = flat.flatten(to_local(host))
    ls = tx.init(lfp)
    lstep = jax.jit(step_fn(tx))
    for i in range(2 * STEPS):
        g = host_grads(host, i)
        lfp, ls = lstep(lfp, ls, lfp.layout.flatten(to_local(g)))
        if i < STEPS:
            fp, state = wait(step(fp, state, fp.layout.flatten(to_global(g, {"w": REPLICATED, "b": REPLICATED}))))
    directory = checkpoint.save_orbax(os.path.join(OUT, "zero1_flat"), shd.zero1_state_to_flat(state), force=True)
    restored = checkpoint.restore_orbax(directory, tx.init(flat.flatten(to_local(host))))  # no shardings
    state = shd.zero1_state_from_flat(restored, jax.eval_shape(ztx.init, fp))
    for i in range(STEPS, 2 * STEPS):
        g = host_grads(host, i)
        fp, state = wait(step(fp, state, fp.layout.flatten(to_global(g, {"w": REPLICATED, "b": REPLICATED}))))
    return {
        "restored_on": str(jax.tree.leaves(restored)[1].sharding),
        "bitwise": bitwise(fp, lfp) and bitwise(shd.zero1_state_to_flat(state), ls),
    }


def check_leafless():
    """Params without an array leaf: the state lives where every process can read it."""
    tx = adamlab.adam(1e-3)
    state = shd.init(tx, {})
    _, state = jax.jit(lambda s: tx.update({}, s, {}))(state)
    count = adamlab.diagnostics.step_count(state)
    replicated = jax.tree.leaves(state)[0].is_fully_replicated
    return {"count": None if count is None else int(count), "addressable": replicated}


def check_steps():
    """update_step and train_step keep the shardings they are given and compile once over many steps."""
    host = host_params()
    shardings = fsdp_placement(host)
    tx = adamlab.adamw(1e-2, weight_decay=0.1)
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, _, **kw: compiles.append(event) if event == "/jax/core/compile/backend_compile_duration" else None
    )
    out = {}
    for name in ("update_step", "train_step"):
        params = to_global(host, shardings)
        state = shd.init(tx, params)
        want = (jax.tree.map(lambda x: x.sharding, params), jax.tree.map(lambda x: x.sharding, state))
        x = jax.make_array_from_callback((16, 64), NamedSharding(MESH, P("fsdp")), lambda i: np.ones((16, 64))[i])
        if name == "update_step":
            step = adamlab.step.update_step(tx)
        else:
            loss = lambda p, x: jnp.mean((x @ p["w"] + p["b"]) ** 2) + jnp.sum(p["e"] ** 2)
            train = adamlab.step.train_step(loss, tx)
        before = len(compiles)
        for i in range(6):
            if name == "update_step":
                params, state = wait(step(params, state, to_global(host_grads(host, i), shardings)))
            else:
                params, state, _ = wait(train(params, state, x))
        got = (jax.tree.map(lambda x: x.sharding, params), jax.tree.map(lambda x: x.sharding, state))
        out[name] = {
            "compiles": len(compiles) - before,
            "shardings_kept": all(a == b for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want))),
        }
    return out


def check_measurements():
    """bytes_per_device sees all 8 devices; the parity helpers take arrays spanning both processes."""
    host = host_params()
    params = to_global(host, fsdp_placement(host))
    per_device = shd.bytes_per_device(params)
    tx = adamlab.adamw(1e-2)
    report = testing.compare(tx, adamlab.adamw(1e-2), params, steps=3)
    return {
        "devices": len(per_device),
        "processes_counted": sorted({d.process_index for d in per_device}),
        "bytes": sorted(set(per_device.values())),
        "expected_bytes": (64 * 32 + 16 * 8) * 4 // 8 + 32 * 4,
        "compare_max_rel": report.max_rel,
        "compare_rel_other": testing.compare(tx, adamlab.adamw(1e-2, b1=0.8), params, steps=3).max_rel,
    }


def check_skip_nonfinite():
    """on_limit="raise" under jit: every process raises at the limit, none carries on."""
    host = host_params()
    tx = adamlab.skip_nonfinite(adamlab.adamw(1e-2), max_consecutive=1)
    shardings = fsdp_placement(host)
    params = to_global(host, shardings)
    state = shd.init(tx, params)
    fn = jax.jit(lambda p, s, g: tx.update(g, s, p))
    bad = to_global(jax.tree.map(lambda x: np.full_like(x, np.nan), host), shardings)
    raised_at, message = None, ""
    for i in range(4):
        try:
            _, state = fn(params, state, bad)
            jax.block_until_ready(state)
        except Exception as e:  # raised in a host callback: the runtime wraps the error
            raised_at, message = i + 1, str(e)
            break
    multihost_utils.sync_global_devices("after skip_nonfinite")  # both still here, in step
    return {"raised_at_step": raised_at, "names_the_error": "NonFiniteGradientError" in message}


# -- modes ----------------------------------------------------------------------------------------------------------


def checks():
    results = {}
    for name, fn in [(k, v) for k, v in globals().items() if k.startswith("check_")]:
        start = time.perf_counter()
        results[name[len("check_") :]] = fn()
        results[name[len("check_") :]]["seconds"] = round(time.perf_counter() - start, 2)
    return results


TRAIN = adamlab.chain(adamlab.clip_by_global_norm(1.0), adamlab.adamw(1e-2, weight_decay=0.1))


def save():
    params, state = run_global(TRAIN, host_params(), STEPS)
    checkpoint.save_orbax(os.path.join(OUT, "run"), {"params": params, "state": state}, force=True)
    multihost_utils.sync_global_devices("saved")
    write({"saved": True})
    os.kill(os.getpid(), signal.SIGKILL)  # as a preempted job would end: no cleanup, no shutdown


def restore():
    host = host_params()
    params = to_global(host, fsdp_placement(host))
    like = {"params": params, "state": shd.init(TRAIN, params)}
    tree = checkpoint.restore_orbax(os.path.join(OUT, "run"), like)
    gp, gs = run_global(TRAIN, host, STEPS, first=STEPS, params=tree["params"], state=tree["state"])
    up, us = run_global(TRAIN, host, 2 * STEPS)  # the same cluster, never interrupted
    lp, _ = run_local(TRAIN, host, 2 * STEPS)
    return {"bitwise": bitwise((gp, gs), (up, us)), "max_rel_one_process": max_rel(gp, lp)}


def die():
    if PID == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    multihost_utils.sync_global_devices("never reached by the dead process")  # the other waits here for its peer
    return {"passed_the_barrier": True}


def write(result):
    with open(os.path.join(OUT, f"{MODE}_{PID}.json"), "w") as f:
        json.dump(result, f, default=str)


if __name__ == "__main__":
    write({"checks": checks, "save": save, "restore": restore, "die": die}[MODE]())
    jax.distributed.shutdown()
