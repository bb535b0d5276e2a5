"""Probe (issue 23): an analytic 8-bit code read from the float32 bit pattern against the table codes.

The analytic code of a block-normalized magnitude ``y = |x| / scale`` in [0, 1], with ``E`` exponent bits and 3
mantissa bits (``E = 4`` for a signed first moment, whose 8th bit is the sign; ``E = 5`` for an unsigned second
moment)::

    z    = y + 2**-K                          K = 2**E - 1 binades (15 or 31); z in [2**-K, 1 + 2**-K]
    code = (bits(z) + r) >> 20  -  (127 - K) * 8       r: 20 random bits (stochastic) or 2**19 (nearest)
    y'   = float(((code + (127 - K) * 8) << 20)) - 2**-K

Adding ``2**-K`` makes the codes below ``2**-K`` evenly spaced (``2**-(K+3)`` apart, like float subnormals) and
gives 0 an exact code; shifting out 20 bits keeps the exponent and 3 mantissa bits, so a code is a float8 with a
bias. Adding random low bits before the shift rounds stochastically, unbiased within and across binades (the bit
pattern is linear in z within a binade and carries into the exponent at its end). No table, no lookup.

For each code it prints encode and decode time over ``--n`` elements (best of ``--reps``, jitted, one process), and
the round-trip relative error of moment-like values (a first moment: normal; a second moment: its square, over
``--decades`` decades within a block). Run alone on a quiet machine::

    python -m benchmarks.probe_analytic_code --n 4194304
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from adamlab import quantize  # noqa: E402
from adamlab.numerics import hash_bits  # noqa: E402

BLOCK = 256


def analytic_encode(x, signed: bool, bits=None):
    """(codes uint8, scales float32) of `x` (a multiple of BLOCK elements), blocks of BLOCK along the flat axis."""
    k = 15 if signed else 31
    blocks = x.reshape(-1, BLOCK)
    scales = jnp.max(jnp.abs(blocks), axis=-1)
    y = jnp.abs(blocks) / jnp.where(scales > 0, scales, 1.0)[:, None]
    z = jax.lax.bitcast_convert_type(y + np.float32(2.0**-k), jnp.uint32)
    r = jnp.uint32(1 << 19) if bits is None else bits.reshape(-1, BLOCK) >> 12
    code = jnp.minimum(((z + r) >> 20) - jnp.uint32((127 - k) * 8), jnp.uint32(8 * k))  # y' <= 1
    if signed:
        code = code | jnp.where(blocks < 0, jnp.uint32(0x80), jnp.uint32(0))
    else:
        code = jnp.where(y > 0, jnp.maximum(code, 1), code)  # a positive v never decodes as 0
    return code.astype(jnp.uint8).reshape(x.shape), scales


def analytic_decode(codes, scales, signed: bool):
    k = 15 if signed else 31
    c = codes.reshape(-1, BLOCK).astype(jnp.uint32)
    mag = c & 0x7F if signed else c
    y = jax.lax.bitcast_convert_type((mag + jnp.uint32((127 - k) * 8)) << 20, jnp.float32) - np.float32(2.0**-k)
    if signed:
        y = jnp.where(c >= 0x80, -y, y)
    return (y * scales[:, None]).reshape(codes.shape)


def best_time(fn, *args, reps: int) -> float:
    out = fn(*args)
    jax.block_until_ready(out)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t0)
    return min(ts)


def rel_errors(x, back) -> dict:
    x, back = np.asarray(x, np.float64), np.asarray(back, np.float64)
    nz = x != 0
    rel = np.abs(back[nz] - x[nz]) / np.abs(x[nz])
    return {
        "median_rel": float(np.median(rel)),
        "p99_rel": float(np.quantile(rel, 0.99)),
        "zeroed": float(np.mean(back[nz] == 0)),
        "mean_bias": float(np.mean(back[nz] - x[nz]) / np.mean(np.abs(x[nz]))),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4 * 1024 * 1024)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--decades", type=float, default=7.0, help="spread of a first moment's scale within a block")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    n = args.n - args.n % BLOCK
    rng = np.random.default_rng(0)
    spread = 10.0 ** rng.uniform(-args.decades, 0, n)
    m = jnp.asarray(rng.standard_normal(n) * spread, jnp.float32)
    v = m * m  # a second moment spans twice the decades
    bits = hash_bits((n,), 7)
    out = {"n": n, "decades_m": args.decades, "decades_v": 2 * args.decades, "codes": {}}
    for name in ("dynamic", "log"):
        for label, x, signed in (("m", m, True), ("v", v, False)):
            enc = jax.jit(lambda x, b, s=signed, c=name: quantize.encode(x, s, c, bits=b))
            dec = jax.jit(quantize.decode)
            q = enc(x, bits)
            out["codes"][f"{name}/{label}"] = {
                "encode_ms": round(best_time(enc, x, bits, reps=args.reps) * 1e3, 3),
                "decode_ms": round(best_time(dec, q, reps=args.reps) * 1e3, 3),
                **rel_errors(x, dec(q)),
            }
    for label, x, signed in (("m", m, True), ("v", v, False)):
        enc = jax.jit(lambda x, b, s=signed: analytic_encode(x, s, b))
        dec = jax.jit(lambda c, s_, s=signed: analytic_decode(c, s_, s))
        codes, scales = enc(x, bits)
        out["codes"][f"analytic/{label}"] = {
            "encode_ms": round(best_time(enc, x, bits, reps=args.reps) * 1e3, 3),
            "decode_ms": round(best_time(dec, codes, scales, reps=args.reps) * 1e3, 3),
            **rel_errors(x, dec(codes, scales)),
        }
    out["machine"] = f"{jax.devices()[0].device_kind}, {os.cpu_count()} cores, JAX {jax.__version__}"
    for k, r in out["codes"].items():
        print(
            f"{k:12s} encode {r['encode_ms']:8.3f} ms  decode {r['decode_ms']:8.3f} ms  median rel "
            f"{r['median_rel']:.4f}  p99 {r['p99_rel']:.3f}  zeroed {r['zeroed']:.4f}  bias {r['mean_bias']:+.1e}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
