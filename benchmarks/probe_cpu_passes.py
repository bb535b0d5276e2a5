"""Probe: how many bytes per parameter does XLA's CPU backend move for an AdamW step, and can blocking cut it?

AdamW must move 28 B/param (read p, g, m, v; write p, m, v). XLA's CPU backend emits one loop per output
(m, then v, then p reading the new m and v back): 40 B/param. This probe times, on one float32 buffer:

- ``xla``: the step as XLA compiles it (its loop fusions are printed);
- ``blocked<C>``: the same step over chunks of C elements in a ``fori_loop`` (in-place dynamic-update-slices),
  so that the new m and v of a chunk are still in cache when p is updated: 28 B/param from memory, if the
  loop's own cost allows.

Set ``XLA_FLAGS=--xla_backend_extra_options=xla_cpu_use_multi_output_fusion`` to see the CPU backend's optional
multi-output fusion: it merges the m and v loops (g read once: 36 B/param), not the p loop.

    python -m benchmarks.probe_cpu_passes [--n 16777216] [--chunks 32768,131072,524288] [--rounds 15]
"""

from __future__ import annotations

import argparse
import re
import time

import jax
import jax.numpy as jnp
import numpy as np

B1, B2, EPS, LR, WD = 0.9, 0.999, 1e-8, 1e-3, 0.1


def corrections(t):
    t = t.astype(jnp.float32)
    return 1 - B1**t, 1 - B2**t


def xla_step(p, m, v, t, g):
    t = t + 1
    c1, c2 = corrections(t)
    m = B1 * m + (1 - B1) * g
    v = B2 * v + (1 - B2) * g * g
    return p - LR * ((m / c1) / (jnp.sqrt(v / c2) + EPS) + WD * p), m, v, t


def blocked_step(n: int, chunk: int):
    def step(p, m, v, t, g):
        t = t + 1
        c1, c2 = corrections(t)

        def body(i, carry):
            p, m, v = carry
            at = (i * chunk,)

            def get(x):
                return jax.lax.dynamic_slice(x, at, (chunk,))

            def put(x, y):
                return jax.lax.dynamic_update_slice(x, y, at)

            gi = get(g)
            m = put(m, B1 * get(m) + (1 - B1) * gi)
            v = put(v, B2 * get(v) + (1 - B2) * gi * gi)
            # p reads the m and v just written (not the old ones): otherwise XLA copies m and v whole per chunk.
            pi = get(p)
            return put(p, pi - LR * ((get(m) / c1) / (jnp.sqrt(get(v) / c2) + EPS) + WD * pi)), m, v

        p, m, v = jax.lax.fori_loop(0, n // chunk, body, (p, m, v))
        return p, m, v, t

    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 24)
    ap.add_argument("--chunks", default="32768,131072,524288")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    n = args.n
    chunks = [int(c) for c in args.chunks.split(",") if n % int(c) == 0]
    variants = {"xla": xla_step, **{f"blocked{c}": blocked_step(n, c) for c in chunks}}
    g = jax.random.normal(jax.random.PRNGKey(0), (n,), jnp.float32)
    steps, states = {}, {}
    for name, fn in variants.items():
        steps[name] = jax.jit(fn, donate_argnums=(0, 1, 2))
        states[name] = (jnp.full((n,), 0.1), jnp.zeros((n,)), jnp.zeros((n,)), jnp.zeros((), jnp.int32))
        compiled = steps[name].lower(*states[name], g).compile()
        entry = compiled.as_text().split("ENTRY", 1)[1]
        loops = re.findall(rf"%(\S+) = \(?f32\[{n}\][^=]* fusion\(", entry)
        print(
            f"{name}: top-level loop fusions over the buffer: {loops or '(inside the while loop)'}; "
            f"temp {compiled.memory_analysis().temp_size_in_bytes / 1e6:.1f} MB"
        )
        states[name] = jax.block_until_ready(steps[name](*states[name], g))
    times = {k: [] for k in variants}
    for r in range(args.rounds):
        order = list(variants)[r % len(variants) :] + list(variants)[: r % len(variants)]
        for name in order:
            t0 = time.perf_counter()
            for _ in range(3):
                states[name] = steps[name](*states[name], g)
            jax.block_until_ready(states[name])
            times[name].append((time.perf_counter() - t0) / 3)
    ref = np.median(times["xla"])
    for name in variants:
        med = float(np.median(times[name]))
        diff = float(jnp.max(jnp.abs(states[name][0] - states["xla"][0])))
        print(
            f"{name:14} {med * 1e3:8.2f} ms  x{med / ref:.2f}  {28 * n / med / 1e9:5.1f} GB/s at 28 B/param  "
            f"max |p - p_xla| {diff:.1e}"
        )


if __name__ == "__main__":
    main()
