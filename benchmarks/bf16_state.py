"""bfloat16 optimizer state: which storage of AdamW's moments holds the float32 loss curve on the demo model.

Trains the demo's character-level transformer (`adamlab.demo`: same data order, seed, warmup-cosine schedule and
masked weight decay for every run) with AdamW whose moments are stored as

- ``float32``       both moments float32 (the default; the reference curve),
- ``bf16-nearest``  both moments bfloat16, rounded to nearest (the naive option, Optax's behaviour for
                    bfloat16 state): ``b2 * v`` rounds back to ``v`` once ``1 - b2`` is under half a bfloat16
                    ulp (b2 > 0.996), so ``v`` can rise but never decay,
- ``bf16-m/f32-v``  first moment bfloat16, second moment kept float32 (6 bytes of state per weight, not 4),
- ``bf16-stoch``    both moments bfloat16, the second rounded stochastically (``adamw(state_dtype=bfloat16)``),

for each requested ``b2`` (the demo uses 0.99; LLM recipes 0.95-0.999), and prints, per run, the final training
and validation losses and the gap to the float32 curve: the mean and the largest ``|loss - loss_f32|`` over the
last half of the run, where the training loss is smoothed over 10 steps.

    python benchmarks/bf16_state.py                       # 300 steps, b2 in {0.99, 0.999}
    python benchmarks/bf16_state.py --steps 1000 --b2 0.999 --variants bf16-stoch --json bf16.json
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
from adamlab.demo import data, train

B1, EPS = train.B1, train.EPS


def variants(b2: float) -> dict:
    bf16 = jnp.bfloat16
    mask = adamlab.weight_decay_mask

    def build(m_dtype, v_dtype, rounding):
        return lambda s, wd: adamlab.chain(
            adamlab.scale_by_ema(B1, state_dtype=m_dtype),
            adamlab.bias_correct(B1),
            adamlab.scale_by_rms(b2, EPS, bias_correction=True, state_dtype=v_dtype, rounding=rounding),
            adamlab.add_decoupled_weight_decay(wd, mask),
            adamlab.scale_by_learning_rate(s),
        )

    return {
        "float32": lambda s, wd: adamlab.adamw(s, B1, b2, EPS, weight_decay=wd, mask=mask),
        "bf16-nearest": build(bf16, bf16, "nearest"),
        "bf16-m/f32-v": build(bf16, None, "nearest"),
        "bf16-stoch": lambda s, wd: adamlab.adamw(s, B1, b2, EPS, weight_decay=wd, mask=mask, state_dtype=bf16),
    }


def smooth(x: np.ndarray, k: int = 10) -> np.ndarray:
    return np.convolve(x, np.ones(k) / k, mode="valid")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--b2", type=lambda s: [float(v) for v in s.split(",")], default=[0.99, 0.999])
    p.add_argument(
        "--variants",
        type=lambda s: s.split(","),
        default=None,
        help="a subset of float32,bf16-nearest,bf16-m/f32-v,bf16-stoch (float32 always runs: the reference)",
    )
    p.add_argument("--json", default=None, help="write every curve and figure here")
    args = p.parse_args(argv)

    cfg = train.TrainConfig(steps=args.steps)
    corpus = data.train_val_split()
    print(
        f"# {datetime.date.today()} {platform.node()} {jax.devices()[0].platform} x{os.cpu_count()} cores, "
        f"jax {jax.__version__}; demo model d_model={cfg.d_model} layers={cfg.layers}, {cfg.steps} steps, "
        f"peak lr {train.OPTIMIZERS['adamw'].peak_lr:g}, wd {cfg.weight_decay}"
    )
    out: dict = {"config": cfg._asdict(), "runs": {}}
    for b2 in args.b2:
        print(f"\nb2 = {b2}")
        print(f"{'state':>14} {'train':>7} {'val':>7} {'mean gap':>9} {'max gap':>8} {'val gap':>8} {'ms/step':>8}")
        curves = {}
        for name, build in variants(b2).items():
            if args.variants and name != "float32" and name not in args.variants:
                continue
            spec = train.OptimizerSpec(name, name, train.OPTIMIZERS["adamw"].peak_lr, "decoupled", build, "k")
            result = train.train(spec, cfg, corpus, progress=False)
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
                "step_ms": result.step_ms,
                "train_loss": tr.tolist(),
                "val_loss": va.tolist(),
            }
            out["runs"][f"b2={b2}/{name}"] = row
            print(
                f"{name:>14} {row['final_train']:7.4f} {row['final_val']:7.4f} {row['mean_gap']:9.4f} "
                f"{row['max_gap']:8.4f} {row['val_gap']:+8.4f} {row['step_ms']:8.1f}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)
        print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
