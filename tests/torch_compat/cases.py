"""Named ``torch.optim`` configurations and a shared problem, for the tests in ``tests/torch_compat/`` and for
``benchmarks/torch_parity.py``.

Each :class:`Case` names a ``torch.optim`` class, the keyword arguments it is built with, the float64 reference of
``reference.py`` that transcribes it, and optionally a ``torch.optim.lr_scheduler.LambdaLR`` factor. The reference
functions take torch's argument names, so one ``torch_kwargs`` dict drives both sides and they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from inspect import signature
from typing import Any

import numpy as np

from . import reference

SHAPES = {"w": (5, 3), "b": (3,), "kernel": (2, 3, 2)}
# Gradient scale per leaf: unit, small and large gradients, so eps and the second moments work at three magnitudes.
GRAD_SCALES = {"w": 1.0, "b": 0.1, "kernel": 10.0}


def make_problem(seed: int = 0, steps: int = 200) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    """Float64 initial params (leaves of shapes (5, 3), (3,), (2, 3, 2)) and ``steps`` float64 gradient dicts.

    Everything is drawn from ``np.random.default_rng(seed)``: params standard normal, each step's gradients standard
    normal times ``GRAD_SCALES``. The gradients do not depend on the params (a fixed stream), so torch, adamlab and
    the reference all see the same gradients however their params drift.
    """
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(shape) for k, shape in SHAPES.items()}
    grads = [{k: GRAD_SCALES[k] * rng.standard_normal(shape) for k, shape in SHAPES.items()} for _ in range(steps)]
    return params, grads


def inverse_time(k: int) -> float:
    """LambdaLR factor ``1 / (1 + 0.01 k)``."""
    return 1.0 / (1.0 + 0.01 * k)


def warmup10(k: int) -> float:
    """LambdaLR factor ``min(1, (k + 1) / 10)``: linear warmup over the first 10 steps."""
    return min(1.0, (k + 1) / 10)


@dataclass(frozen=True)
class Case:
    """One ``torch.optim`` configuration and its float64 reference.

    Attributes:
        name: Identifier (test id, benchmark row).
        torch_class: Name of the ``torch.optim`` class, e.g. ``"Adam"``.
        torch_kwargs: Keyword arguments of that class (``lr`` is the base lr when ``schedule`` is set). The same
            names are the reference function's keyword arguments.
        reference: The function of ``reference.py`` that transcribes ``torch_class``.
        schedule: Optional LambdaLR factor ``k -> float``; with ``scheduler.step()`` after each
            ``optimizer.step()``, step ``t`` (1-based) runs at ``base_lr * schedule(t - 1)``.
    """

    name: str
    torch_class: str
    torch_kwargs: dict[str, Any]
    reference: Callable[..., dict[str, np.ndarray]]
    schedule: Callable[[int], float] | None = None

    @property
    def base_lr(self) -> float:
        """``torch_kwargs["lr"]``, or torch's default lr of the class (the reference function's default)."""
        if "lr" in self.torch_kwargs:
            return float(self.torch_kwargs["lr"])
        return float(signature(self.reference).parameters["lr"].default)

    def lr(self) -> float | Callable[[int], float]:
        """The reference's ``lr`` argument: the base lr, or ``k -> base_lr * schedule(k)`` (k = t - 1)."""
        base, schedule = self.base_lr, self.schedule
        if schedule is None:
            return base
        return lambda k: base * schedule(k)

    def reference_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``reference``: ``torch_kwargs`` with ``lr`` replaced by :meth:`lr`."""
        return {**self.torch_kwargs, "lr": self.lr()}

    def run_reference(
        self, params: Mapping[str, np.ndarray], grads: Sequence[Mapping[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """Final float64 params of the reference after one step per entry of ``grads``."""
        return self.reference(params, grads, **self.reference_kwargs())


CASES: list[Case] = [
    Case("adam_default", "Adam", {}, reference.adam),
    Case("adam_l2", "Adam", {"weight_decay": 1e-2}, reference.adam),
    Case("adam_amsgrad", "Adam", {"amsgrad": True}, reference.adam),
    Case("adam_maximize", "Adam", {"maximize": True}, reference.adam),
    Case("adam_inverse_time", "Adam", {"lr": 1e-2}, reference.adam, schedule=inverse_time),
    Case("adamw_default", "AdamW", {}, reference.adamw),
    Case("adamw_wd0.1", "AdamW", {"weight_decay": 0.1}, reference.adamw),
    Case("nadam_default", "NAdam", {}, reference.nadam),
    Case("nadamw", "NAdam", {"weight_decay": 1e-2, "decoupled_weight_decay": True}, reference.nadam),
    Case("sgd_momentum_dampening", "SGD", {"lr": 1e-2, "momentum": 0.9, "dampening": 0.1}, reference.sgd),
    Case(
        "sgd_nesterov_l2", "SGD", {"lr": 1e-2, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}, reference.sgd
    ),
    Case(
        "sgd_maximize_l2", "SGD", {"lr": 1e-2, "momentum": 0.9, "weight_decay": 1e-2, "maximize": True}, reference.sgd
    ),
    Case("rmsprop_centered_momentum", "RMSprop", {"lr": 1e-3, "centered": True, "momentum": 0.9}, reference.rmsprop),
    Case("rmsprop_alpha_eps", "RMSprop", {"alpha": 0.9, "eps": 1e-6}, reference.rmsprop),
    Case("rmsprop_momentum_warmup", "RMSprop", {"lr": 1e-3, "momentum": 0.9}, reference.rmsprop, schedule=warmup10),
]

CASES_BY_NAME: dict[str, Case] = {case.name: case for case in CASES}
