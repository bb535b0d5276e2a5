"""8-bit optimizer state: does AdamW with block-wise 8-bit moments hold the float32 loss curve on the demo model?

Trains the demo's character-level transformer (`adamlab.demo`: same data order, seed, warmup-cosine schedule and
masked weight decay in every run) with AdamW whose moments are stored as

- ``float32``           the default; the reference curve,
- ``int8``              ``adamw(state_dtype=jnp.int8)``: the analytic code (`adamlab.quantize`, the default), both
                        moments rounded stochastically, block scales kept as running bounds,
- ``int8-dynamic``      the same state in Dettmers' "dynamic" table (``quantize.recode`` of the initial state: the
                        optimizer keeps each moment's code), block absmax scales,
- ``int8-log``          the same in the "log" table,
- ``int8-nearest``      the analytic code with both moments rounded to nearest (the trap: `tests/test_quantize.py`),
- ``int4``              experimental 4-bit state: the 8-bit state re-encoded in "log4" (octave steps, two codes
                        a byte; leaves whose first axis is odd stay 8-bit),

for each seed, and prints per run the final training and validation losses, the gap to the float32 curve of the
same seed (mean and largest ``|loss - loss_f32|`` over the last half of the run, training loss smoothed over 10
steps; and the final validation loss minus float32's), the state's bytes per parameter and the step time. Then,
on the float32 run's final moments, the relative error of one encode/decode round trip, per table (quantiles over
the elements of the quantized leaves), and of the Adam direction ``m_hat / (sqrt(v_hat) + eps)`` rebuilt from
the decoded moments.

    python benchmarks/int8_state.py                                  # 1000 steps, seeds 0 and 1
    python benchmarks/int8_state.py --steps 300 --seeds 0 --variants int8,int8-log --json int8.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

import jax
import jax.numpy as jnp
import numpy as np

import adamlab
from adamlab import quantize
from adamlab.demo import data, train

B1, B2, EPS = train.B1, train.B2, train.EPS
VARIANTS = ("float32", "int8", "int8-dynamic", "int8-log", "int8-nearest", "int4")


def build(name: str):
    """`adamw(state_dtype=jnp.int8)` in the named code, both moments rounded stochastically (the default), or to
    nearest (``-nearest``)."""
    mask = adamlab.weight_decay_mask
    code = (
        "log4"
        if name == "int4"
        else name.split("-")[1]
        if name.count("-") and not name.endswith("-nearest")
        else "analytic"
    )

    def make(s, wd):
        if name == "float32":
            return adamlab.adamw(s, B1, B2, EPS, weight_decay=wd, mask=mask)
        if not name.endswith("-nearest"):
            tx = adamlab.adamw(s, B1, B2, EPS, weight_decay=wd, mask=mask, state_dtype=jnp.int8)
        else:
            tx = adamlab.chain(
                adamlab.scale_by_ema(B1, state_dtype=jnp.int8, rounding="nearest"),
                adamlab.bias_correct(B1),
                adamlab.scale_by_rms(B2, EPS, bias_correction=True, state_dtype=jnp.int8, rounding="nearest"),
                adamlab.add_decoupled_weight_decay(wd, mask),
                adamlab.scale_by_learning_rate(s),
            )
        return adamlab.GradientTransformation(lambda params: quantize.recode(tx.init(params), code), tx.update)

    return make


def state_bytes(state) -> int:
    return sum(int(np.size(x)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(state))


def smooth(x: np.ndarray, k: int = 10) -> np.ndarray:
    return np.convolve(x, np.ones(k) / k, mode="valid")


def round_trip(state, steps: int) -> dict:
    """Relative errors of encode/decode on the float32 run's final moments, per table, over quantizable leaves."""
    m_tree, v_tree = state[0].moment, state[2].second_moment
    leaves = [(m, v) for m, v in zip(jax.tree.leaves(m_tree), jax.tree.leaves(v_tree)) if quantize.quantizable(m)]
    bc1, bc2 = 1 - B1**steps, 1 - B2**steps
    out = {}
    for code in quantize.CODES:
        errs = {"m": [], "v": [], "direction": []}
        flushed = 0
        total = 0
        for m, v in leaves:
            if code in quantize.PACKED and not quantize.packable(m.shape):
                continue
            mq = np.asarray(quantize.decode(quantize.encode(m, True, code)))
            vq = np.asarray(quantize.decode(quantize.encode(v, False, code)))
            m, v = np.asarray(m, np.float64), np.asarray(v, np.float64)
            nz = m != 0
            errs["m"].append(np.abs(mq[nz] - m[nz]) / np.abs(m[nz]))
            flushed += int(np.sum((mq == 0) & nz))
            total += int(np.sum(nz))
            errs["v"].append(np.abs(vq[v > 0] - v[v > 0]) / v[v > 0])
            d = (m / bc1) / (np.sqrt(v / bc2) + EPS)
            dq = (mq / bc1) / (np.sqrt(vq / bc2) + EPS)
            # relative to the tensor's RMS direction: an element whose own direction is ~0 is judged on the scale
            # of its tensor, as its step is
            errs["direction"].append((np.abs(dq - d) / (np.sqrt(np.mean(d**2)) + 1e-30)).ravel())
        q = [0.5, 0.9, 0.99, 0.999, 1.0]
        out[code] = {
            k: [float(x) for x in np.quantile(np.concatenate([e.ravel() for e in v]), q)] for k, v in errs.items()
        }
        out[code]["m_flushed_to_zero"] = flushed / max(total, 1)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1])
    p.add_argument(
        "--variants",
        type=lambda s: s.split(","),
        default=["int8", "int8-dynamic"],
        help=f"of {','.join(VARIANTS[1:])} (float32 always runs: the reference)",
    )
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    corpus = data.train_val_split()
    out: dict = {
        "date": str(datetime.date.today()),
        "machine": f"{platform.machine()} x{os.cpu_count()}",
        "jax": jax.__version__,
        "steps": args.steps,
        "runs": {},
    }
    print(
        f"# {out['date']} {out['machine']} {jax.devices()[0].platform}, jax {jax.__version__}; demo model, "
        f"{args.steps} steps, AdamW b2={B2}"
    )
    print(
        f"{'seed':>4} {'state':>13} {'train':>7} {'val':>7} {'mean gap':>9} {'max gap':>8} {'val gap':>8} "
        f"{'B/param':>8} {'ms/step':>8}"
    )
    for seed in args.seeds:
        cfg = train.TrainConfig(steps=args.steps, seed=seed)
        curves = {}
        for name in ("float32", *args.variants):
            spec = train.OptimizerSpec(name, name, train.OPTIMIZERS["adamw"].peak_lr, "decoupled", build(name), "k")
            result = train.train(spec, cfg, corpus, progress=False)
            n_params = sum(int(np.size(x)) for x in jax.tree.leaves(result.params))
            h = result.history
            curves[name] = (np.asarray(h["train_loss"]), np.asarray(h["val_loss"]))
            ref_train, ref_val = curves["float32"]
            tr, va = curves[name]
            gap = np.abs(smooth(tr) - smooth(ref_train))
            gap = gap[len(gap) // 2 :]
            row = {
                "final_train": float(smooth(tr)[-1]),
                "final_val": float(va[-1]),
                "mean_gap": float(gap.mean()),
                "max_gap": float(gap.max()),
                "val_gap": float(va[-1] - ref_val[-1]),
                "bytes_per_param": state_bytes(result.opt_state) / n_params,
                "step_ms": result.step_ms,
                "train_loss": tr.tolist(),
                "val_loss": va.tolist(),
            }
            out["runs"][f"seed={seed}/{name}"] = row
            print(
                f"{seed:>4} {name:>13} {row['final_train']:7.4f} {row['final_val']:7.4f} {row['mean_gap']:9.4f} "
                f"{row['max_gap']:8.4f} {row['val_gap']:+8.4f} {row['bytes_per_param']:8.3f} "
                f"{row['step_ms']:8.1f}",
                flush=True,
            )
            if name == "float32" and seed == args.seeds[0]:
                out["round_trip"] = round_trip(result.opt_state, args.steps)
    print("\nround trip on the float32 run's final moments (relative error quantiles 50/90/99/99.9/100%):")
    for code, r in out["round_trip"].items():
        for k in ("m", "v", "direction"):
            print(f"  {code:>8} {k:>9}: " + " ".join(f"{x:.3g}" for x in r[k]))
        print(f"  {code:>8} m flushed to 0: {r['m_flushed_to_zero']:.2%} of nonzero elements")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)
        print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
