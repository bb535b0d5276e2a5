"""Writes the intersphinx inventories that docs/conf.py reads, so that the build links out without a network.

Each inventory lists only the objects of another project that adamlab's documentation names; the addresses
follow each project's published site. Run it again after naming a new outside object:

    python docs/_inventories/make_inventories.py
"""

from __future__ import annotations

import pathlib
import zlib

HERE = pathlib.Path(__file__).resolve().parent

# project -> {(name, role): page within the project's site ("$" anchors at the name)}
OBJECTS: dict[str, dict[tuple[str, str], str]] = {
    "python": {
        **{
            (n, "py:class"): "library/functions.html#$"
            for n in ("int", "float", "bool", "str", "tuple", "list", "dict", "complex", "object", "type")
        },
        **{(n, "py:function"): "library/functions.html#$" for n in ("callable", "isinstance", "print")},
        **{
            (n, "py:exception"): "library/exceptions.html#$"
            for n in ("ValueError", "TypeError", "RuntimeError", "Exception", "KeyError", "AssertionError")
        },
        ("None", "py:data"): "library/constants.html#$",
        **{
            (f"collections.abc.{n}", "py:class"): "library/collections.abc.html#$"
            for n in ("Callable", "Sequence", "Mapping", "Hashable", "Iterable", "Iterator")
        },
        **{
            (f"typing.{n}", "py:data" if n == "Any" else "py:class"): "library/typing.html#$"
            for n in ("Any", "NamedTuple", "Protocol")
        },
        ("os.PathLike", "py:class"): "library/os.html#$",
        ("pathlib.Path", "py:class"): "library/pathlib.html#$",
        ("contextlib.redirect_stdout", "py:class"): "library/contextlib.html#$",
        ("tempfile.TemporaryDirectory", "py:class"): "library/tempfile.html#$",
    },
    "numpy": {
        **{(f"numpy.{n}", "py:class"): f"reference/generated/numpy.{n}.html#$" for n in ("ndarray", "dtype")},
        **{
            (f"numpy.{n}", "py:function"): f"reference/generated/numpy.{n}.html#$"
            for n in ("asarray", "allclose", "array_equal", "isfinite", "quantile")
        },
    },
    "jax": {
        ("jax.Array", "py:class"): "_autosummary/jax.Array.html#$",
        ("jax.ShapeDtypeStruct", "py:class"): "_autosummary/jax.ShapeDtypeStruct.html#$",
        **{
            (f"jax.{n}", "py:function"): f"_autosummary/jax.{n}.html#$"
            for n in (
                "jit",
                "grad",
                "value_and_grad",
                "vmap",
                "device_put",
                "eval_shape",
                "make_mesh",
                "make_array_from_callback",
                "devices",
                "local_devices",
            )
        },
        **{
            (f"jax.sharding.{n}", "py:class"): "jax.sharding.html#$"
            for n in ("Mesh", "NamedSharding", "PartitionSpec", "Sharding", "SingleDeviceSharding")
        },
        **{
            (f"jax.lax.{n}", "py:function"): f"_autosummary/jax.lax.{n}.html#$"
            for n in ("cond", "with_sharding_constraint", "split")
        },
        ("jax.debug.callback", "py:function"): "_autosummary/jax.debug.callback.html#$",
        ("jax.distributed.initialize", "py:function"): "_autosummary/jax.distributed.initialize.html#$",
        **{
            (f"jax.tree_util.{n}", "py:function"): f"_autosummary/jax.tree_util.{n}.html#$"
            for n in ("tree_map", "tree_flatten", "tree_flatten_with_path", "keystr")
        },
        **{
            (f"jax.numpy.{n}", "py:function"): f"_autosummary/jax.numpy.{n}.html#$"
            for n in ("zeros", "zeros_like", "asarray", "float32", "bfloat16", "int8")
        },
    },
    "optax": {
        **{
            (f"optax.{n}", "py:function"): "api/optimizers.html#$"
            for n in ("adam", "adamw", "sgd", "rmsprop", "amsgrad", "nadam", "nadamw", "lion")
        },
        **{
            (f"optax.{n}", "py:function"): "api/transformations.html#$"
            for n in (
                "add_decayed_weights",
                "clip_by_global_norm",
                "global_norm",
                "identity",
                "scale",
                "scale_by_adam",
                "scale_by_amsgrad",
                "scale_by_learning_rate",
                "scale_by_lion",
                "scale_by_rms",
                "scale_by_sign",
                "set_to_zero",
                "trace",
                "ema",
            )
        },
        **{
            (f"optax.{n}", "py:class"): "api/transformations.html#$"
            for n in (
                "GradientTransformation",
                "GradientTransformationExtraArgs",
                "EmptyState",
                "TraceState",
                "ScaleByAdamState",
                "EmaState",
            )
        },
        **{(f"optax.{n}", "py:function"): "api/optimizer_wrappers.html#$" for n in ("apply_if_finite", "masked")},
        ("optax.MultiSteps", "py:class"): "api/optimizer_wrappers.html#$",
        ("optax.chain", "py:function"): "api/generated/optax.chain.html#$",
        ("optax.partition", "py:function"): "api/generated/optax.partition.html#$",
        ("optax.apply_updates", "py:function"): "api/apply_updates.html#$",
        **{
            (f"optax.{n}", "py:function"): "api/optimizer_schedules.html#$"
            for n in (
                "constant_schedule",
                "linear_schedule",
                "cosine_decay_schedule",
                "warmup_cosine_decay_schedule",
                "inject_hyperparams",
            )
        },
        ("optax.contrib.ademamix", "py:function"): "api/contrib.html#$",
    },
    "flax": {
        ("flax.nnx.Optimizer", "py:class"): "api_reference/flax.nnx/training/optimizer.html#$",
        ("flax.training.train_state.TrainState", "py:class"): "api_reference/flax.training.html#$",
    },
}


def write(project: str, objects: dict[tuple[str, str], str]) -> None:
    lines = [f"{name} {role} 1 {page} -" for (name, role), page in sorted(objects.items())]
    header = (
        f"# Sphinx inventory version 2\n# Project: {project}\n# Version: \n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    (HERE / f"{project}.inv").write_bytes(header + zlib.compress(("\n".join(lines) + "\n").encode()))


if __name__ == "__main__":
    for project, objects in OBJECTS.items():
        write(project, objects)
        print(f"{project}.inv: {len(objects)} objects")
