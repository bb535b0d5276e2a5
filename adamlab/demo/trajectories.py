"""Optimizer paths on two 2-D surfaces: the "ball rolling down the hill" picture.

A ravine, ``f(x, y) = x**2 / 200 + 2 * y**2`` (curvatures 0.01 and 4: a valley 400x more curved across
than along), and Rosenbrock's banana, ``f(x, y) = (1 - x)**2 + 100 * (y - x**2)**2``. Plain SGD zig-zags across
the ravine and crawls along it; momentum builds speed along the floor; RMSProp and Adam divide each
coordinate's step by its gradient RMS, so both coordinates move at about the same rate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import adamlab


def ravine(x, y):
    return x**2 / 200 + 2 * y**2


def rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def path(f: Callable, start: tuple[float, float], tx: adamlab.GradientTransformation, steps: int) -> np.ndarray:
    """The ``(steps + 1, 2)`` points visited by `tx` minimising ``f(x, y)`` from `start`."""
    loss = lambda p: f(p[0], p[1])

    def step(carry, _):
        p, s = carry
        u, s = tx.update(jax.grad(loss)(p), s, p)
        p = adamlab.apply_updates(p, u)
        return (p, s), p

    p0 = jnp.asarray(start, jnp.float32)
    _, pts = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps))(p0)
    return np.concatenate([np.asarray(p0)[None], np.asarray(pts)])


# (label, colour, optimizer) per surface; learning rates chosen by hand so that each method shows its
# typical behaviour within the step budget (SGD on the ravine near its stability limit 2 / 4 across the valley).
def surfaces(steps: int = 150) -> list[dict[str, Any]]:
    ravine_opts = [
        ("SGD, lr 0.45", "tab:gray", adamlab.sgd(0.45)),
        ("SGD+momentum 0.9, lr 0.2", "tab:orange", adamlab.sgd(0.2, momentum=0.9)),
        ("RMSProp, lr 0.1", "tab:purple", adamlab.rmsprop(0.1)),
        ("Adam, lr 0.3", "tab:blue", adamlab.adam(0.3)),
    ]
    rosen_opts = [
        ("SGD, lr 1e-3", "tab:gray", adamlab.sgd(1e-3)),
        ("SGD+momentum 0.9, lr 1e-3", "tab:orange", adamlab.sgd(1e-3, momentum=0.9)),
        ("RMSProp, lr 1e-2", "tab:purple", adamlab.rmsprop(1e-2)),
        ("Adam, lr 0.1", "tab:blue", adamlab.adam(0.1)),
    ]
    out = []
    for f, title, start, minimum, xlim, ylim, opts, n, legend in [
        (
            ravine,
            f"ravine  x²/200 + 2y²,  {steps} steps",
            (-9.0, 1.6),
            (0.0, 0.0),
            (-10, 2),
            (-2.2, 2.2),
            ravine_opts,
            steps,
            "lower right",
        ),
        (
            rosenbrock,
            f"Rosenbrock  (1-x)² + 100(y-x²)²,  {steps * 4} steps",
            (-1.2, 1.0),
            (1.0, 1.0),
            (-1.6, 1.6),
            (-0.6, 1.6),
            rosen_opts,
            steps * 4,
            "lower right",
        ),
    ]:
        paths = {label: (path(f, start, tx, n), color) for label, color, tx in opts}
        out.append(
            {
                "f": f,
                "title": title,
                "start": start,
                "minimum": minimum,
                "xlim": xlim,
                "ylim": ylim,
                "paths": paths,
                "legend": legend,
            }
        )
    return out


def final_values(surfs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each optimizer's final loss on each surface, for the JSON summary."""
    return {s["title"]: {label: float(s["f"](*pts[-1])) for label, (pts, _) in s["paths"].items()} for s in surfs}
