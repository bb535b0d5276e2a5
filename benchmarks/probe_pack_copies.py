"""Probe: what packing pytree leaves into one buffer costs on this backend, per call.

The pytree path (`adamlab.flat.packed`) concatenates the gradient and param leaves of a bucket into one buffer on
every step. This probe times, for N float32 leaves of a given shape:

- ``concat``: ``jnp.concatenate`` of the leaves into a new buffer (what packing does);
- ``pass_fresh``: ``x * 1.0001`` over a buffer of the same bytes into a new buffer (not donated);
- ``pass_donated``: the same, donated (the output reuses the input's memory).

and reports each as GB/s (bytes read + written). On the CPU backend a new buffer is new memory on every call, and
its first touch costs page faults: compare ``pass_fresh`` and ``pass_donated``, and rerun with
``MALLOC_MMAP_THRESHOLD_=2000000000 MALLOC_TRIM_THRESHOLD_=4000000000`` (glibc then keeps freed memory for reuse).

    python -m benchmarks.probe_pack_copies [--leaves 500] [--shape 32x256] [--reps 30]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np


def median_time(fn, arg, reps: int, donate: bool) -> float:
    out = jax.block_until_ready(fn(arg))
    ts = []
    for _ in range(reps):
        x = out if donate else arg
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(x))
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaves", type=int, default=500)
    ap.add_argument("--shape", default="32x256")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split("x"))
    leaves = [jnp.full(shape, i, jnp.float32) for i in range(args.leaves)]
    n = args.leaves * int(np.prod(shape))
    nbytes = 2 * 4 * n  # read + write
    concat = jax.jit(lambda ls: jnp.concatenate([x.reshape(-1) for x in ls]))
    fresh = jax.jit(lambda x: x * 1.0001)
    donated = jax.jit(lambda x: x * 1.0001, donate_argnums=0)
    big = jnp.ones((n,), jnp.float32)
    results = {
        "concat": median_time(concat, leaves, args.reps, donate=False),
        "pass_fresh": median_time(fresh, big, args.reps, donate=False),
        "pass_donated": median_time(donated, jnp.copy(big), args.reps, donate=True),
    }
    malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    print(
        f"{args.leaves} leaves of {shape}: {4 * n / 2**20:.1f} MiB per buffer; {jax.default_backend()}; "
        f"malloc settings: {malloc or 'default'}"
    )
    for name, t in results.items():
        print(f"{name:13} {t * 1e3:7.2f} ms  {nbytes / t / 1e9:6.1f} GB/s")


if __name__ == "__main__":
    main()
