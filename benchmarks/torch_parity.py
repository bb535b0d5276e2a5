"""Parity of the float64 NumPy reference (tests/torch_compat/reference.py) and of adamlab with ``torch.optim`` itself.

Runs every case of ``tests/torch_compat/cases.py`` three ways on the same params and gradient stream
(``make_problem``): through ``torch.optim.<Class>(**torch_kwargs)`` on float64 CPU tensors, through the case's
reference function, and through the case's adamlab call (jitted, float64 params under ``jax_enable_x64``). It prints
per case the largest relative error of the reference and of adamlab against torch:
``max over leaves of max|x - torch| / max|torch|``. Each torch step assigns ``.grad`` from the stream, calls
``optimizer.step()``, then ``scheduler.step()`` for a case with a schedule (``torch.optim.lr_scheduler.LambdaLR``).
``torch.set_default_dtype(torch.float64)`` is set first, so torch's scalar state (step counts, NAdam's
``mu_product``) is float64 as in the reference.

Without torch installed, it prints one line saying so and exits 0. ``--table`` prints the guide's table
(docs/guides/from_pytorch.md, between its markers) from the cases, and needs no torch.

    python -m benchmarks.torch_parity [--steps 200] [--seed 0] [--rtol 1e-10] [--table]

Exit status 1 when a case's error exceeds ``--rtol``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_cases():
    """``tests/torch_compat/cases.py``, imported as ``torch_compat.cases`` with tests/ on the path, as pytest does."""
    tests_dir = os.path.join(ROOT, "tests")
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    from torch_compat import cases

    return cases


def run_torch(torch, case, params: dict[str, np.ndarray], grads: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Final params of ``torch.optim.<case.torch_class>`` after one step per gradient dict (float64, CPU)."""
    tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    optimizer = getattr(torch.optim, case.torch_class)(list(tensors.values()), **case.torch_kwargs)
    scheduler = None
    if case.schedule is not None:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=case.schedule)
    for grads_t in grads:
        for k, t in tensors.items():
            t.grad = torch.tensor(grads_t[k], dtype=torch.float64)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return {k: t.detach().numpy().copy() for k, t in tensors.items()}


def max_rel_err(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> float:
    """``max over leaves of max|ref - got| / max|got|`` (a leaf of zeros compares absolutely)."""
    errs = []
    for k, g in got.items():
        scale = float(np.max(np.abs(g))) or 1.0
        errs.append(float(np.max(np.abs(ref[k] - g))) / scale)
    return max(errs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rtol", type=float, default=1e-10, help="fail (exit 1) above this error")
    parser.add_argument("--table", action="store_true", help="print the guide's optimizer table and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(_load_cases().guide_table(), end="")
        return 0

    try:
        import torch
    except ImportError:
        print("torch_parity: torch is not installed; nothing to compare (skipped).")
        return 0

    torch.set_default_dtype(torch.float64)
    cases = _load_cases()
    params, grads = cases.make_problem(seed=args.seed, steps=args.steps)
    print(f"torch {torch.__version__}, {args.steps} steps, seed {args.seed}, rtol {args.rtol:g}")
    print(f"{'case':<28} {'class':<8} {'reference':>12} {'adamlab':>12}   (max rel err against torch.optim)")
    failed = []
    for case in cases.CASES:
        expected = run_torch(torch, case, params, grads)
        ref = max_rel_err(case.run_reference(params, grads), expected)
        ours = max_rel_err(cases.run_adamlab(case.build(), params, grads), expected)
        ok = max(ref, ours) <= args.rtol
        if not ok:
            failed.append(case.name)
        print(f"{case.name:<28} {case.torch_class:<8} {ref:>12.3e} {ours:>12.3e}{'' if ok else '  FAIL'}")
    if failed:
        print(f"{len(failed)} case(s) above rtol {args.rtol:g}: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
