"""Checks that need 8 devices, run in a process of their own (`tests/test_sharding.py` starts it).

JAX fixes its device count when it initialises, so the 8 simulated CPU devices
(``--xla_force_host_platform_device_count=8``) must be asked for before the
first JAX call: this script sets the flag, runs every check and prints one
line ``RESULTS {json}`` mapping each check's name to the facts it measured (or
to ``{"error": traceback}``). The assertions live in the pytest module.

    python tests/sharded_checks.py [check ...]
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import adamlab  # noqa: E402
from adamlab import checkpoint, flat  # noqa: E402
from adamlab import sharding as shd  # noqa: E402
from adamlab.accumulate import accumulate_gradients  # noqa: E402
from adamlab.groups import Cut  # noqa: E402

STEPS = 2
ONE_DEVICE_COMPARED = (
    "adamw",
    "clip_adam",
    "accumulate",
    "amsgrad",
    "ademamix",
    "lion",
    "adam_atan2",
    "cautious_adamw",
    "stable_adamw",
)


def auto_mesh(shape, names):
    return jax.make_mesh(shape, names, axis_types=(AxisType.Auto,) * len(shape))


def mixed_params():
    """FSDP-split, tensor-parallel, 2-D split, replicated and integer leaves on a (data=2, model=4) mesh."""
    mesh = auto_mesh((2, 4), ("data", "model"))
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    specs = {
        "embed": P("data", None),
        "mlp": {"w": P(None, "model"), "bias": P()},
        "attn": P("data", "model"),
        "ln": {"scale": P()},
        "steps": P(),
    }
    values = {
        "embed": jax.random.normal(k[0], (16, 8)),
        "mlp": {"w": jax.random.normal(k[1], (8, 12)), "bias": jnp.zeros(12)},
        "attn": jax.random.normal(k[2], (8, 8)),
        "ln": {"scale": jnp.ones(8)},
        "steps": jnp.arange(4, dtype=jnp.int32),
    }
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs)
    return jax.device_put(values, shardings), shardings


def grads_like(params, seed, scale=1.0):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    out = [
        scale * jax.random.normal(k, p.shape, p.dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p
        for k, p in zip(keys, leaves)
    ]
    return jax.device_put(jax.tree.unflatten(treedef, out), jax.tree.map(lambda p: p.sharding, params))


def optimizers():
    return {
        "adamw": adamlab.adamw(1e-2, weight_decay=0.1, mask=adamlab.weight_decay_mask),
        "sgd_nesterov": adamlab.sgd(1e-2, momentum=0.9, nesterov=True),
        "rmsprop_centered": adamlab.rmsprop(1e-2, centered=True, momentum=0.9),
        "clip_adam": adamlab.chain(adamlab.clip_by_global_norm(1.0), adamlab.adam(1e-2)),
        "optax_adam": adamlab.chain(optax.adam(1e-2)),
        "accumulate": accumulate_gradients(adamlab.adamw(1e-2), 2),
        "schedule_bf16": adamlab.adamw(
            adamlab.schedules.warmup_cosine_decay(0.0, 1e-2, 2, 10), state_dtype=jnp.bfloat16
        ),
        "amsgrad": adamlab.amsgrad(1e-2, max_of="raw"),
        "ademamix": adamlab.ademamix(
            1e-2,
            b3=adamlab.schedules.ademamix_b3(0.9999, 10),
            alpha=adamlab.schedules.ademamix_alpha(5.0, 10),
            weight_decay=0.1,
        ),
        "lion": adamlab.lion(1e-3, weight_decay=0.1, mask=adamlab.weight_decay_mask),
        "adam_atan2": adamlab.adam_atan2(1e-2),
        "cautious_adamw": adamlab.cautious(adamlab.adamw(1e-2, weight_decay=0.1)),
        "stable_adamw": adamlab.stable_adamw(1e-2, weight_decay=0.1, mask=adamlab.weight_decay_mask),
    }


def _is_cut(x) -> bool:
    return isinstance(x, Cut)


def _like_params(node, p_def) -> bool:
    """Whether `node` is a tree over the params: their structure, a Cut where a partition keeps a leaf elsewhere."""
    return jax.tree.structure(node, is_leaf=_is_cut) == p_def and bool(jax.tree.leaves(node))


def moment_mismatches(state, params) -> list[str]:
    """Paths of state leaves shaped like a param but not sharded like it (matched by tree structure)."""
    bad = []
    p_def = jax.tree.structure(params)
    p_leaves = jax.tree.leaves(params)

    def walk(node, where):
        if isinstance(node, jax.Array):
            return
        if _like_params(node, p_def):
            for (path, m), p in zip(jax.tree_util.tree_flatten_with_path(node, is_leaf=_is_cut)[0], p_leaves):
                if _is_cut(m):
                    continue
                if m.shape == p.shape and not m.sharding.is_equivalent_to(p.sharding, p.ndim):
                    bad.append(where + jax.tree_util.keystr(path) + f": {m.sharding} vs {p.sharding}")
            return
        for path, child in jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)[0]:
            walk(child, where + jax.tree_util.keystr(path))

    walk(state, "")
    return bad


def n_moment_leaves(state, params) -> int:
    p_def = jax.tree.structure(params)
    count = 0

    def walk(node):
        nonlocal count
        if isinstance(node, jax.Array):
            return
        if _like_params(node, p_def):
            count += 1
            return
        for child in jax.tree.leaves(node, is_leaf=lambda x: x is not node):
            walk(child)

    walk(state)
    return count


def other_specs(state, params) -> dict[str, str]:
    """The specs of the state leaves that are not shaped like their param (factored rows and columns, per-tensor
    scalars), by path; counters and placeholders left out."""
    p_def = jax.tree.structure(params)
    p_leaves = jax.tree.leaves(params)
    out = {}

    def walk(node, where):
        if isinstance(node, jax.Array):
            return
        if _like_params(node, p_def):
            for (path, m), p in zip(jax.tree_util.tree_flatten_with_path(node, is_leaf=_is_cut)[0], p_leaves):
                if not _is_cut(m) and m.shape != p.shape and m.shape != (0,):
                    out[where + jax.tree_util.keystr(path)] = f"{m.shape} {m.sharding.spec}"
            return
        for path, child in jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)[0]:
            walk(child, where + jax.tree_util.keystr(path))

    walk(state, "")
    return out


def bitwise(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        x.shape == y.shape and x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(la, lb)
    )


def max_rel(a, b) -> float:
    out = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x.size:
            out = max(out, float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-30)))
    return out


# -- checks ---------------------------------------------------------------------------------------------------------


def check_follow_params():
    """Every moment of several optimizers takes its param's sharding: eager init, `init`, and after jitted steps."""
    params, shardings = mixed_params()
    local = jax.device_put(params, jax.devices()[0])
    grads = [grads_like(params, seed) for seed in range(STEPS)]
    out = {}
    for name, tx in optimizers().items():
        r = {}
        eager = tx.init(params)
        built = shd.init(tx, params)
        r["moments"] = n_moment_leaves(built, params)
        r["eager_mismatches"] = moment_mismatches(eager, params)
        r["init_mismatches"] = moment_mismatches(built, params)
        r["state_shardings_match_init"] = all(
            s.is_equivalent_to(x.sharding, x.ndim)
            for s, x in zip(jax.tree.leaves(shd.state_shardings(tx, params)), jax.tree.leaves(built))
        )

        def step(p, s, g, tx=tx):
            u, s = tx.update(g, s, p)
            return adamlab.apply_updates(p, u), s

        # No out_shardings: the shardings must survive the compiler's own choices.
        fn = jax.jit(step)
        compiled = fn.lower(params, built, grads[0]).compile()
        stats = shd.collectives(compiled)
        r["collectives"] = stats.counts
        r["collective_bytes"] = stats.bytes
        p, s = params, built
        for g in grads:
            try:  # the compiled step again, which takes only the shardings it was compiled for
                p, s = compiled(p, s, g)
            except TypeError:  # optax.adam turns the int32 moment of an int param into float32 after one step
                p, s = fn(p, s, g)
        r["step_mismatches"] = moment_mismatches(s, params)
        r["param_mismatches"] = [
            jax.tree_util.keystr(k)
            for (k, a), b in zip(jax.tree_util.tree_flatten_with_path(p)[0], jax.tree.leaves(params))
            if not a.sharding.is_equivalent_to(b.sharding, b.ndim)
        ]
        if name in ONE_DEVICE_COMPARED:
            lp, ls = local, tx.init(local)
            for g in grads:
                lp, ls = jax.jit(step)(lp, ls, jax.device_put(g, jax.devices()[0]))
            r["bitwise_vs_one_device"] = bitwise((p, s), (lp, ls))
            r["max_rel_vs_one_device"] = max_rel(p, lp)
        out[name] = r
    return out


# Members whose step reduces over a whole tensor (trust ratios, per-tensor norms, block RMSs, factored means,
# Newton-Schulz products): each is compiled alone, so its collectives are its own. The others are elementwise and
# share one program, whose collectives (none expected) are then every one of theirs.
# Programs compiled once and run twice: LLVM's expensive passes would cost more time than they save. The members
# compared bit for bit keep LLVM's other optimisations: without them (level 0) the mesh's program and the
# one-device one round adagrad's step differently. Those that reduce over a tensor agree to rounding either way.
FAST_COMPILE = {"xla_llvm_disable_expensive_passes": True}
FASTEST_COMPILE = {**FAST_COMPILE, "xla_backend_optimization_level": 0}
FAMILY_REDUCING = ("adafactor", "adafactor_factored", "lamb", "lars", "novograd", "muon")


def check_family():
    """The rest of Optax's first-order family (tests/family.py) on the (data=2, model=4) mesh: state placed by
    `state_shardings` and kept by jitted steps, the collectives of each step, and params and state against the
    one-device run. Adafactor also with its matrices factored, so that its rows and columns are placed too."""
    import family  # tests/ is this script's directory

    params, _ = mixed_params()
    local = jax.device_put(params, jax.devices()[0])
    grads = [grads_like(params, seed) for seed in range(STEPS)]
    members = {name: family.build(name) for name in family.FAMILY}
    members["adafactor_factored"] = family.build("adafactor", min_dim_size_to_factor=8)
    member_of = lambda name: name.removesuffix("_factored")  # noqa: E731
    start = {name: family.initial_params(member_of(name), params) for name in members}
    plain = {n: p.fast if isinstance(p, adamlab.LookaheadParams) else p for n, p in start.items()}
    shardings = {name: shd.state_shardings(tx, start[name]) for name, tx in members.items()}
    # One compiled init for all members, each state placed as `shd.init` places it.
    built = jax.jit(lambda ps: {n: members[n].init(ps[n]) for n in members}, out_shardings=shardings)(start)

    def stepper(names):
        def step(ps, ss, g):
            out = {}
            for n in names:
                u, s = members[n].update(g, ss[n], ps[n])
                out[n] = (adamlab.apply_updates(ps[n], u), s)
            return {n: o[0] for n, o in out.items()}, {n: o[1] for n, o in out.items()}

        return jax.jit(step)

    def keyless(tree):
        return jax.tree.map(
            lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x, tree
        )

    groups = [[n for n in members if n not in FAMILY_REDUCING]] + [[n] for n in FAMILY_REDUCING]
    local_start = {n: family.initial_params(member_of(n), local) for n in members}
    out = {"reducing": list(FAMILY_REDUCING), "elementwise": groups[0]}
    for names in groups:
        fn = stepper(names)
        ps, ss = {n: start[n] for n in names}, {n: built[n] for n in names}
        # No out_shardings: the placement must survive the compiler's own choices.
        options = FAST_COMPILE if names == groups[0] else FASTEST_COMPILE
        compiled = fn.lower(ps, ss, grads[0]).compile(options)
        stats = shd.collectives(compiled)
        for g in grads:
            ps, ss = compiled(ps, ss, g)
        # The one-device run is compiled as the mesh's: the same members side by side in one program.
        lp = {n: local_start[n] for n in names}
        ls = jax.device_put({n: members[n].init(local_start[n]) for n in names}, jax.devices()[0])
        one_device = fn.lower(lp, ls, jax.device_put(grads[0], jax.devices()[0])).compile(options)
        for g in grads:
            lp, ls = one_device(lp, ls, jax.device_put(g, jax.devices()[0]))
        for n in names:
            out[n] = {
                "moments": n_moment_leaves(built[n], plain[n]),
                "init_mismatches": moment_mismatches(built[n], plain[n]),
                "other_specs": other_specs(built[n], plain[n]),
                "step_mismatches": moment_mismatches(ss[n], plain[n]),
                "shardings_kept": all(
                    a.sharding.is_equivalent_to(b.sharding, b.ndim)
                    for a, b in zip(jax.tree.leaves((ps[n], ss[n])), jax.tree.leaves((start[n], built[n])))
                ),
                "collectives": stats.counts,
                "collective_bytes": stats.bytes,
                "bitwise_vs_one_device": bitwise(keyless((ps[n], ss[n])), keyless((lp[n], ls[n]))),
                "max_rel_vs_one_device": max(max_rel(ps[n], lp[n]), max_rel(keyless(ss[n]), keyless(ls[n]))),
            }
    # What Muon's Newton-Schulz products move, per device and step: compared with the bytes of its matrices.
    out["muon"]["matrix_bytes"] = sum(x.nbytes for x in jax.tree.leaves(params) if x.ndim == 2)
    return out


def check_explicit_mesh():
    """A mesh of Explicit axes (jax.make_mesh's default): eager init, `init` and jitted steps keep the shardings."""
    mesh = jax.make_mesh((8,), ("fsdp",), axis_types=(AxisType.Explicit,))
    params = {"w": jnp.ones((16, 4)), "v": jnp.ones((8,)), "b": jnp.zeros(3)}
    shardings = {
        "w": NamedSharding(mesh, P("fsdp", None)),
        "v": NamedSharding(mesh, P("fsdp")),
        "b": NamedSharding(mesh, P()),
    }
    params = jax.device_put(params, shardings)
    tx = adamlab.adamw(1e-2)
    built = shd.init(tx, params)
    with jax.sharding.use_mesh(mesh) if hasattr(jax.sharding, "use_mesh") else jax.set_mesh(mesh):
        fn = jax.jit(lambda p, s, g: tx.update(g, s, p))
        u, s = fn(params, built, params)
        stats = shd.collectives(fn.lower(params, built, params).compile())
    # ZeRO-1 on the same mesh: explicit axes make the gather of the updates part of the update.
    tree = {"w": jnp.arange(39.0).reshape(13, 3) / 10, "b": jnp.ones(3)}
    fp = jax.device_put(flat.flatten(tree), NamedSharding(mesh, P()))
    ztx = shd.zero1(tx, mesh, "fsdp")
    with jax.set_mesh(mesh):
        zu, zs = jax.jit(ztx.update)(fp, shd.init(ztx, fp), fp)
    local = flat.flatten(tree)
    ru, _ = jax.jit(tx.update)(local, tx.init(local), local)
    return {
        "init_mismatches": moment_mismatches(built, params),
        "eager_mismatches": moment_mismatches(tx.init(params), params),
        "step_mismatches": moment_mismatches(s, params),
        "collectives": stats.counts,
        "zero1_bitwise": bitwise(zu.unpad(), ru),
        "zero1_specs": sorted({str(b.sharding.spec) for b in jax.tree.leaves(zs) if b.ndim == 1 and b.size}),
    }


def check_explicit_types():
    """On a mesh of Explicit axes the state's types (dtype and spec of every leaf) are one thing: what
    ``jax.eval_shape(tx.init, abstract params)`` says, and what init, an eager update and a jitted update give.
    The jitted update's types are its traced output types, which on Explicit axes are what it returns (compiling
    every program would take a minute)."""

    def transforms() -> dict:
        """Every optimizer in each state dtype, and wrappers of float32 and int8 adamw, by ``name/state dtype``."""
        dtypes = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "int8": jnp.int8}
        optimizers = {
            "adam": lambda d: adamlab.adam(1e-2, state_dtype=d),
            "adamw": lambda d: adamlab.adamw(1e-2, weight_decay=0.1, state_dtype=d),
            "sgd_momentum": lambda d: adamlab.sgd(1e-2, momentum=0.9, state_dtype=d),
            "sgd_nesterov": lambda d: adamlab.sgd(1e-2, momentum=0.9, nesterov=True, state_dtype=d),
            "rmsprop_momentum": lambda d: adamlab.rmsprop(1e-2, momentum=0.9, state_dtype=d),
            "amsgrad": lambda d: adamlab.amsgrad(1e-2, state_dtype=d),
            "lion": lambda d: adamlab.lion(1e-3, state_dtype=d),
            "nadam": lambda d: adamlab.nadam(1e-2, state_dtype=d),
            "nadamw": lambda d: adamlab.nadamw(1e-2, state_dtype=d),
            "nadam_torch": lambda d: adamlab.nadam(1e-2, momentum_decay=4e-3, state_dtype=d),
            "sgd_dampening": lambda d: adamlab.sgd(1e-2, momentum=0.9, dampening=0.5, state_dtype=d),
            "ademamix": lambda d: adamlab.ademamix(1e-2, state_dtype=d),
            "adam_atan2": lambda d: adamlab.adam_atan2(1e-2, state_dtype=d),
            "stable_adamw": lambda d: adamlab.stable_adamw(1e-2, state_dtype=d),
            "cautious_adamw": lambda d: adamlab.cautious(adamlab.adamw(1e-2, state_dtype=d)),
            "clip_adamw": lambda d: adamlab.chain(adamlab.clip_by_global_norm(1.0), adamlab.adamw(1e-2, state_dtype=d)),
        }
        wrappers = {
            "skip_nonfinite": lambda d: adamlab.skip_nonfinite(adamlab.adamw(1e-2, state_dtype=d), max_consecutive=3),
            "accumulate_gradients": lambda d: accumulate_gradients(adamlab.adamw(1e-2, state_dtype=d), 2),
            "partition": lambda d: adamlab.partition(
                {"a": adamlab.adamw(1e-2, state_dtype=d), "s": adamlab.sgd(1e-2, momentum=0.9, state_dtype=d)},
                {"w": "s", "b": "s", "e": "a"},
            ),
            "masked": lambda d: adamlab.masked(adamlab.adamw(1e-2, state_dtype=d), {"w": True, "b": False, "e": True}),
            "packed": lambda d: flat.packed(adamlab.adamw(1e-2, state_dtype=d)),
        }
        out = {f"{name}/{k}": make(d) for name, make in optimizers.items() for k, d in dtypes.items()}
        out.update({f"{name}/{k}": make(dtypes[k]) for name, make in wrappers.items() for k in ("float32", "int8")})
        # Centered, the variance v - mean**2 has no 8-bit code; the EMA of the params has no int8 storage either.
        for k in ("float32", "bfloat16"):
            out[f"rmsprop_centered/{k}"] = adamlab.rmsprop(1e-2, centered=True, momentum=0.9, state_dtype=dtypes[k])
            out[f"parameter_ema/{k}"] = adamlab.parameter_ema(0.99, state_dtype=dtypes[k])
        out["parameter_ema_bias_correction/float32"] = adamlab.parameter_ema(0.99, bias_correction=True)
        return out

    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
    # In 8 bits w has 2 blocks a row, fewer than the devices along its last axis; e's last axis has no block length
    # (its codes run in rows of 256 across the leaf); b keeps float32 moments. Each more leaf compiles every op again.
    specs = {"w": P("data", "model"), "b": P(None), "e": P("model", None)}
    shapes = {"w": (16, 512), "b": (8,), "e": (4096 + 64, 4)}

    def types(tree):
        # An abstract scalar may have no sharding: replicated.
        return [
            (jax.tree_util.keystr(path), str(x.dtype), str(getattr(x.sharding, "spec", P())))
            for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]
        ]

    def mismatches(a, b):
        if len(a) != len(b):
            return [f"{len(a)} leaves vs {len(b)}"]
        return [f"{x[0]}: {x[1:]} vs {y[1:]}" for x, y in zip(a, b) if x != y]

    out = {}
    with jax.set_mesh(mesh):
        sds = {k: jax.ShapeDtypeStruct(shapes[k], jnp.float32, sharding=NamedSharding(mesh, specs[k])) for k in shapes}
        params = {k: jax.device_put(jnp.full(shapes[k], 0.5), NamedSharding(mesh, specs[k])) for k in shapes}
        grads = jax.tree.map(lambda p: p * 0.1, params)
        for name, tx in transforms().items():
            r: dict = {"abstract_init": False}
            try:
                abstract = types(jax.eval_shape(tx.init, sds))
                r["abstract_init"] = True
                state = tx.init(params)
                init = types(state)
                r["eval_shape_vs_init"] = mismatches(abstract, init)
                r["init_vs_eager_update"] = mismatches(init, types(tx.update(grads, state, params)[1]))
                jitted = jax.jit(tx.update).trace(grads, state, params).out_info[1]
                r["init_vs_jitted_update"] = mismatches(init, types(jitted))
            except Exception as e:  # one failing transformation should not hide the others
                r["error"] = f"{type(e).__name__}: {str(e)[:500]}"
            out[name] = r
    return out


def check_fsdp_memory():
    """FSDP placement by `fsdp_shardings`: each device holds 1/8 of params and state (replicated small leaves aside)."""
    mesh = auto_mesh((8,), ("fsdp",))
    k = jax.random.split(jax.random.PRNGKey(1), 3)
    params = {"w1": jax.random.normal(k[0], (64, 32)), "w2": jax.random.normal(k[1], (32, 64)), "b": jnp.zeros(32)}
    params = jax.device_put(params, shd.fsdp_shardings(params, mesh, "fsdp", min_elements=256))
    tx = adamlab.adamw(1e-3)
    state = shd.init(tx, params)
    per_dev = shd.bytes_per_device(state)
    full = sum(x.nbytes for x in jax.tree.leaves(state))
    return {
        "specs": {k: str(v.sharding.spec) for k, v in params.items()},
        "devices": len(per_dev),
        "max_state_bytes": max(per_dev.values()),
        "full_state_bytes": full,
        "replicated_bytes": 2 * 32 * 4 + 2 * 4,
    }


def check_fsdp_loss():
    """`fsdp_loss`: the plain loss and gradient on the whole batch, each gradient split like its param."""
    mesh = auto_mesh((8,), ("fsdp",))
    k = jax.random.split(jax.random.PRNGKey(2), 4)
    params = {
        "w1": jax.random.normal(k[0], (16, 64)) * 0.3,
        "b1": jnp.zeros(64),
        "w2": jax.random.normal(k[1], (64, 8)) * 0.3,
    }
    x = jax.random.normal(k[2], (32, 16))
    y = jax.random.normal(k[3], (32, 8))

    def mse(p, x, y):
        return jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] - y) ** 2)

    sh = shd.fsdp_shardings(params, mesh, "fsdp", min_elements=256)
    placed = jax.device_put(params, sh)
    batch_sh = NamedSharding(mesh, P("fsdp", None))
    xs, ys = jax.device_put(x, batch_sh), jax.device_put(y, batch_sh)
    loss = shd.fsdp_loss(mse, sh, "fsdp")
    compiled = jax.jit(jax.value_and_grad(loss)).lower(placed, xs, ys).compile()
    value, grads = compiled(placed, xs, ys)
    ref_value, ref_grads = jax.value_and_grad(mse)(params, x, y)
    errors = {}
    for name, call in {
        "odd_batch": lambda: loss(placed, x[:12], y[:12]),
        "bad_axis": lambda: shd.fsdp_loss(mse, sh, "data"),
        "not_shardings": lambda: shd.fsdp_loss(mse, {"w": P("fsdp")}, "fsdp"),
    }.items():
        try:
            call()
            errors[name] = None
        except (ValueError, TypeError) as e:
            errors[name] = f"{type(e).__name__}: {e}"
    return {
        "value": float(value),
        "ref_value": float(ref_value),
        "grad_max_rel": max(max_rel(grads[n], ref_grads[n]) for n in params),
        "param_specs": {n: str(s.spec) for n, s in sh.items()},
        "grads_split_like_params": {n: g.sharding.is_equivalent_to(sh[n], g.ndim) for n, g in grads.items()},
        "collectives": sorted(shd.collectives(compiled).counts),
        "errors": errors,
    }


def _flat_setup(group):
    mesh = auto_mesh((8,), ("data",))
    k = jax.random.split(jax.random.PRNGKey(2), 4)
    tree = {
        "w": jax.random.normal(k[0], (13, 7)),
        "b": jax.random.normal(k[1], (7,)),
        "blocks": [{"kernel": jax.random.normal(k[2], (5, 3))}, {"scale": jnp.ones(3)}],
        "steps": jnp.arange(3, dtype=jnp.int32),
    }
    params = flat.flatten(tree, group=group)
    rep = NamedSharding(mesh, P())
    return mesh, tree, jax.device_put(params, rep), rep


def _zero1_case(group) -> dict:
    mesh, tree, params, rep = _flat_setup(group)
    tx = adamlab.adamw(1e-2, weight_decay=0.1, mask=adamlab.weight_decay_mask)
    ztx = shd.zero1(tx, mesh, "data")
    state = shd.init(ztx, params)
    state_sh = shd.state_shardings(ztx, params)

    def grads(seed):
        g = grads_like(tree, seed)
        g["steps"] = tree["steps"]
        return g

    def step(p, s, g):
        u, s = ztx.update(p.layout.flatten(g), s, p)
        return adamlab.apply_updates(p, u), s

    def ref_step(p, s, g):
        u, s = tx.update(p.layout.flatten(g) if isinstance(p, flat.Flat) else g, s, p)
        return adamlab.apply_updates(p, u), s

    fn = jax.jit(step, out_shardings=(jax.tree.map(lambda _: rep, params), state_sh), donate_argnums=(0, 1))
    ref_fn = jax.jit(ref_step)
    # Data parallel: every device holds the (all-reduced) gradient.
    stats = shd.collectives(fn.lower(params, state, jax.device_put(grads(0), rep)).compile())
    p, s = params, state
    fp, fs = flat.flatten(tree, group=group), tx.init(flat.flatten(tree, group=group))
    tp, ts = tree, tx.init(tree)
    for i in range(STEPS):
        g = grads(10 + i)
        p, s = fn(p, s, jax.device_put(g, rep))
        fp, fs = ref_fn(fp, fs, g)
        tp, ts = ref_fn(tp, ts, g)
    moments = [b for b in jax.tree.leaves(s) if b.ndim == 1 and b.shape[0] > 0]
    per_dev = shd.bytes_per_device(s)
    return {
        "layout": repr(params.layout),
        "moment_shard_fractions": [b.addressable_shards[0].data.shape[0] / b.shape[0] for b in moments],
        "moment_specs": sorted({str(b.sharding.spec) for b in moments}),
        "state_bytes_per_device": sorted(set(per_dev.values())),
        "unsharded_state_bytes": sum(x.nbytes for x in jax.tree.leaves(fs)),
        "padded_float_bytes": sum(b.nbytes for b in jax.tree.leaves(s[0]) if b.size),
        "collectives": stats.counts,
        "collective_bytes": stats.bytes,
        "bitwise_vs_flat": bitwise(p, fp) and bitwise(shd.zero1_state_to_flat(s), fs),
        "max_rel_vs_tree": max_rel(p.unflatten(), tp),
        "bitwise_vs_tree": bitwise(p.unflatten(), tp) and bitwise(flat.state_to_tree(shd.zero1_state_to_flat(s)), ts),
    }


def check_zero1():
    """ZeRO-1 over the flat layout: each device holds 1/8 of every moment; params equal the unsharded runs."""
    out = {"grouped": _zero1_case(adamlab.weight_decay_mask), "mixed": _zero1_case(None)}
    # Pytree params through packed(zero1(tx)): the caller never sees a flat buffer.
    mesh, tree, _, rep = _flat_setup(adamlab.weight_decay_mask)
    tx = adamlab.adamw(1e-2, weight_decay=0.1, mask=adamlab.weight_decay_mask)
    ptx = flat.packed(shd.zero1(tx, mesh, "data"), solo_above=10**9)
    rtree = jax.device_put(tree, rep)
    s = shd.init(ptx, rtree)
    g = grads_like(tree, 3)
    g["steps"] = tree["steps"]
    u, s = jax.jit(ptx.update)(jax.device_put(g, rep), s, rtree)
    ru, _ = jax.jit(tx.update)(g, tx.init(tree), tree)
    out["packed"] = {
        "bitwise_updates": bitwise(u, ru),
        "moment_specs": sorted({str(b.sharding.spec) for b in jax.tree.leaves(s) if b.ndim == 1 and b.shape[0] > 0}),
    }
    return out


def check_accumulate():
    """The accumulator follows the params' sharding; a micro-step compiles without collectives."""
    params, _ = mixed_params()
    tx = accumulate_gradients(adamlab.adamw(1e-2), 4)
    state = shd.init(tx, params)
    fn = jax.jit(lambda p, s, g: tx.update(g, s, p))
    stats = shd.collectives(fn.lower(params, state, params).compile())
    _, s = fn(params, state, grads_like(params, 0))
    return {
        "mismatches": moment_mismatches(state, params),
        "after_step": moment_mismatches(s, params),
        "accumulator_is_matched": n_moment_leaves(state.accumulator, params),
        "collectives": stats.counts,
    }


def check_groups():
    """adamlab.partition on the mesh: each group's moments take their params' shardings (the other leaves are cut
    out of its state), the step compiles without collectives and equals the one-device run."""
    params, _ = mixed_params()
    labels = {"embed": "frozen", "mlp": "trained", "attn": "trained", "ln": "frozen", "steps": "frozen"}
    tx = adamlab.partition({"frozen": adamlab.set_to_zero(), "trained": adamlab.adamw(1e-2)}, labels)
    state = shd.init(tx, params)
    fn = jax.jit(lambda p, s, g: (lambda u, s: (adamlab.apply_updates(p, u), s))(*tx.update(g, s, p)))
    stats = shd.collectives(fn.lower(params, state, params).compile())
    p, s = params, state
    for i in range(3):
        p, s = fn(p, s, grads_like(params, i))
    local = jax.tree.map(lambda x: jax.device_put(x, jax.devices()[0]), params)
    lp, ls = local, tx.init(local)
    for i in range(3):
        lp, ls = fn(lp, ls, grads_like(local, i))
    bad, matched = [], 0
    for name, st in (("init", state), ("after", s)):
        trained = st.inner_states["trained"]
        for moment in (trained[0].moment, trained[2].second_moment):
            for (path, m), (_, par) in zip(
                jax.tree_util.tree_flatten_with_path(moment)[0],
                jax.tree_util.tree_flatten_with_path({"mlp": params["mlp"], "attn": params["attn"]})[0],
            ):
                matched += 1
                if not m.sharding.is_equivalent_to(par.sharding, par.ndim):
                    bad.append(f"{name}{jax.tree_util.keystr(path)}: {m.sharding} vs {par.sharding}")
    return {
        "mismatches": bad,
        "matched": matched,
        "collectives": stats.counts,
        "bitwise": bitwise(p, lp),
        "frozen_unchanged": bitwise(p["embed"], params["embed"]),
    }


def check_checkpoint():
    """Sharded state saved (npz, Orbax) and restored onto the template's shardings; resume is bit-identical."""
    params, _ = mixed_params()
    tx = adamlab.adamw(adamlab.schedules.cosine_decay(1e-2, 20), weight_decay=0.1, mask=adamlab.weight_decay_mask)
    grads = [grads_like(params, 100 + i) for i in range(2 * STEPS)]

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return adamlab.apply_updates(p, u), s

    fn = jax.jit(step)
    p, s = params, shd.init(tx, params)
    for g in grads:
        p, s = fn(p, s, g)
    full = (p, s)
    out = {}
    tmp = tempfile.mkdtemp()
    for fmt in ("npz", "orbax"):
        p, s = params, shd.init(tx, params)
        for g in grads[:STEPS]:
            p, s = fn(p, s, g)
        like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), (p, s))
        if fmt == "npz":
            path = checkpoint.save_npz(os.path.join(tmp, "ck.npz"), {"params": p, "opt": s})
            restored = checkpoint.load_npz(path, {"params": like[0], "opt": like[1]})
        else:
            path = checkpoint.save_orbax(os.path.join(tmp, "ck_orbax"), {"params": p, "opt": s})
            restored = checkpoint.restore_orbax(path, {"params": like[0], "opt": like[1]})
        rp, rs = restored["params"], restored["opt"]
        same_sharding = all(
            a.sharding.is_equivalent_to(b.sharding, b.ndim)
            for a, b in zip(jax.tree.leaves((rp, rs)), jax.tree.leaves((p, s)))
        )
        same_types = jax.tree.structure((rp, rs)) == jax.tree.structure((p, s))
        for g in grads[STEPS:]:
            rp, rs = fn(rp, rs, g)
        out[fmt] = {
            "same_sharding": same_sharding,
            "same_types": same_types,
            "resumed_bitwise": bitwise((rp, rs), full),
        }
    # ZeRO-1 state through Orbax, restored onto its 1/8 shards.
    mesh, tree, fparams, _ = _flat_setup(adamlab.weight_decay_mask)
    ztx = shd.zero1(adamlab.adamw(1e-2), mesh, "data")
    zs = shd.init(ztx, fparams)
    path = checkpoint.save_orbax(os.path.join(tmp, "zero1"), zs)
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), zs)
    back = checkpoint.restore_orbax(path, like)
    out["zero1"] = {
        "bitwise": bitwise(back, zs),
        "same_types": jax.tree.structure(back) == jax.tree.structure(zs),
        "specs": sorted({str(b.sharding.spec) for b in jax.tree.leaves(back) if b.ndim == 1 and b.size}),
    }
    return out


def check_int8():
    """8-bit moments on a (data=2, model=4) mesh: codes sharded like their params, scales along the blocks; the
    step's collectives; the params equal the one-device run."""
    mesh = auto_mesh((2, 4), ("data", "model"))
    k = jax.random.split(jax.random.PRNGKey(3), 3)
    specs = {"fsdp": P("data", None), "tp_wide": P(None, "model"), "both": P("data", "model")}
    values = {
        "fsdp": jax.random.normal(k[0], (512, 64)),
        "tp_wide": jax.random.normal(k[1], (16, 4096)),
        "both": jax.random.normal(k[2], (256, 2048)),
    }
    params = jax.device_put(values, jax.tree.map(lambda s: NamedSharding(mesh, s), specs))
    tx = adamlab.adamw(1e-2, weight_decay=0.1, state_dtype=jnp.int8)
    state = shd.init(tx, params)
    q = jax.tree.leaves(state, is_leaf=lambda x: type(x).__name__ == "Quantized")
    q = [x for x in q if type(x).__name__ == "Quantized"]
    grads = [grads_like(params, seed) for seed in range(3)]

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return adamlab.apply_updates(p, u), s

    compiled = jax.jit(step).lower(params, state, grads[0]).compile()
    p, s = params, state
    for g in grads:
        p, s = compiled(p, s, g)
    local_p = jax.device_put(values, jax.devices()[0])
    lp, ls = local_p, tx.init(local_p)
    for g in grads:
        lp, ls = jax.jit(step)(lp, ls, jax.device_put(g, jax.devices()[0]))
    # ZeRO-1 over a flat layout: buffers padded to whole blocks per device, codes and scales split along `data`.
    zmesh = auto_mesh((8,), ("data",))
    ztree = jax.device_put(values, NamedSharding(zmesh, P()))
    fp = flat.flatten(ztree, group=None)
    ztx = shd.zero1(tx, zmesh, "data")
    zstate = shd.init(ztx, fp)
    zq = [
        x
        for x in jax.tree.leaves(zstate, is_leaf=lambda x: type(x).__name__ == "Quantized")
        if type(x).__name__ == "Quantized"
    ]
    zstep = jax.jit(lambda p, s, g: (lambda u, s: (adamlab.apply_updates(p, u), s))(*ztx.update(g, s, p)))
    zp, zs = fp, zstate
    for g in grads:
        zp, zs = zstep(zp, zs, fp.layout.flatten(jax.device_put(g, NamedSharding(zmesh, P()))))
    return {
        "zero1_quantized": len(zq),
        "zero1_code_specs": sorted({str(x.codes.sharding.spec) for x in zq}),
        "zero1_scale_specs": sorted({str(x.scales.sharding.spec) for x in zq}),
        "zero1_lengths_whole_blocks": all(x.codes.shape[0] % (8 * 256) == 0 for x in zq),
        "zero1_finite": bool(all(jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(zp))),
        "quantized_leaves": len(q),
        "code_mismatches": moment_mismatches(s, params),
        "scale_specs": [
            str(x.scales.sharding.spec)
            for x in jax.tree.leaves(s, is_leaf=lambda x: type(x).__name__ == "Quantized")
            if type(x).__name__ == "Quantized"
        ],
        "collectives": shd.collectives(compiled).counts,
        "bitwise_vs_one_device": bitwise(p, lp),
        "max_rel_vs_one_device": max_rel(p, lp),
    }


def check_step_helpers():
    """update_step/train_step on one process with a mesh: shardings kept, one compilation over many steps."""
    mesh = auto_mesh((8,), ("fsdp",))
    k = jax.random.split(jax.random.PRNGKey(5), 2)
    # Host values: each run places fresh arrays (the donated ones are gone, and a replicated put can share a buffer).
    params = {"w": jax.random.normal(k[0], (64, 32)), "b": jnp.zeros(32), "e": jax.random.normal(k[1], (16, 8))}
    params = jax.tree.map(np.asarray, params)
    shardings = shd.fsdp_shardings(params, mesh, "fsdp", min_elements=128)
    tx = adamlab.adamw(1e-2, weight_decay=0.1)
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, _, **kw: compiles.append(event) if event == "/jax/core/compile/backend_compile_duration" else None
    )
    x = jax.device_put(jnp.ones((16, 64)), NamedSharding(mesh, P("fsdp")))
    loss = lambda q, x: jnp.mean((x @ q["w"] + q["b"]) ** 2) + jnp.sum(q["e"] ** 2)
    out = {}
    for name in ("update_step", "train_step"):
        p = jax.device_put(params, shardings)
        s = shd.init(tx, p)
        want = jax.tree.map(lambda a: a.sharding, (p, s))
        if name == "update_step":
            fn = adamlab.step.update_step(tx)
        else:
            fn = adamlab.step.train_step(loss, tx)
        grads = [grads_like(p, i) for i in range(6)]
        before = len(compiles)
        for g in grads:
            if name == "update_step":
                p, s = fn(p, s, g)
            else:
                p, s, _ = fn(p, s, x)
        got = jax.tree.map(lambda a: a.sharding, (p, s))
        out[name] = {
            "compiles": len(compiles) - before,
            "changed": [
                jax.tree_util.keystr(path)
                for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(want))
                if not a.is_equivalent_to(b, 2)
            ],
        }
    return out


CHECKS = {name[len("check_") :]: fn for name, fn in list(globals().items()) if name.startswith("check_")}


def main(names) -> dict:
    results = {}
    for name in names or CHECKS:
        start = time.perf_counter()
        try:
            results[name] = CHECKS[name]()
        except Exception:  # report and go on: one broken check should not hide the others
            results[name] = {"error": traceback.format_exc()}
        results[name]["seconds"] = round(time.perf_counter() - start, 2)
    return results


if __name__ == "__main__":
    print("RESULTS " + json.dumps(main(sys.argv[1:]), default=str))
