"""Named ``torch.optim`` configurations, the adamlab call for each, and a shared problem, for the tests in
``tests/torch_compat/``, ``benchmarks/torch_parity.py`` and the "Coming from PyTorch" guide's table.

Each :class:`Case` names a ``torch.optim`` class, the keyword arguments it is built with, the float64 reference of
``reference.py`` that transcribes it, optionally a ``torch.optim.lr_scheduler.LambdaLR`` factor, and the adamlab
expression that computes the same update. The reference functions take torch's argument names, so one
``torch_kwargs`` dict drives both torch and the reference; ``test_adamlab.py`` holds each adamlab expression to the
reference at 1e-12 in float64, and ``test_guide_table_is_generated_from_the_cases`` holds the guide's table to
:func:`guide_table`.
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


# How the guide writes each LambdaLR factor.
SCHEDULE_TEXT = {inverse_time: "lambda k: 1 / (1 + 0.01 * k)", warmup10: "lambda k: min(1, (k + 1) / 10)"}


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
    adamlab: str
    note: str = ""
    schedule: Callable[[int], float] | None = None

    @property
    def torch_call(self) -> str:
        """The torch side as the guide shows it, e.g. ``Adam(params, weight_decay=0.01)`` (plus the LambdaLR)."""
        args = "".join(f", {k}={v!r}" for k, v in self.torch_kwargs.items())
        call = f"{self.torch_class}(params{args})"
        if self.schedule is not None:
            call += f" + LambdaLR({SCHEDULE_TEXT[self.schedule]})"
        return call

    def build(self):
        """The adamlab transformation: ``adamlab`` evaluated with ``adamlab`` imported."""
        import adamlab

        return eval(self.adamlab, {"adamlab": adamlab})

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


L2 = "adamlab.add_coupled_weight_decay"
CASES: list[Case] = [
    Case("adam_default", "Adam", {}, reference.adam, "adamlab.adam(1e-3)"),
    Case("adam_l2", "Adam", {"weight_decay": 1e-2}, reference.adam, "adamlab.adam(1e-3, weight_decay=1e-2)", "L2"),
    Case(
        "adam_amsgrad",
        "Adam",
        {"amsgrad": True},
        reference.adam,
        'adamlab.amsgrad(1e-3, max_of="raw")',
        "torch keeps the maximum of the raw `v`; Optax's default the maximum of `v_hat`",
    ),
    Case("adam_maximize", "Adam", {"maximize": True}, reference.adam, "adamlab.adam(1e-3, maximize=True)"),
    Case(
        "adam_inverse_time",
        "Adam",
        {"lr": 1e-2},
        reference.adam,
        "adamlab.adam(lambda k: 1e-2 / (1 + 0.01 * k))",
        "a schedule is a function of the steps taken, `k = t - 1`, as LambdaLR steps it",
        schedule=inverse_time,
    ),
    Case(
        "adamw_default",
        "AdamW",
        {},
        reference.adamw,
        "adamlab.adamw(1e-3, weight_decay=1e-2)",
        "torch's default `weight_decay` is 1e-2, adamlab's (Optax's) 1e-4: pass it",
    ),
    Case("adamw_wd0.1", "AdamW", {"weight_decay": 0.1}, reference.adamw, "adamlab.adamw(1e-3, weight_decay=0.1)"),
    Case(
        "adamw_warmup",
        "AdamW",
        {"weight_decay": 0.1},
        reference.adamw,
        "adamlab.adamw(adamlab.schedules.linear_warmup(1e-4, 1e-3, 9), weight_decay=0.1)",
        "the decay per step is `lr_t * wd`, on both sides",
        schedule=warmup10,
    ),
    Case(
        "nadam_default",
        "NAdam",
        {},
        reference.nadam,
        "adamlab.nadam(2e-3, momentum_decay=4e-3)",
        "torch's defaults (`lr=2e-3`, `momentum_decay=4e-3`) must be passed; `momentum_decay=inf` is Optax's NAdam",
    ),
    Case(
        "nadamw",
        "NAdam",
        {"weight_decay": 1e-2, "decoupled_weight_decay": True},
        reference.nadam,
        "adamlab.nadamw(2e-3, weight_decay=1e-2, momentum_decay=4e-3)",
    ),
    Case(
        "nadam_maximize",
        "NAdam",
        {"maximize": True},
        reference.nadam,
        "adamlab.nadam(2e-3, momentum_decay=4e-3, maximize=True)",
    ),
    Case("sgd_plain", "SGD", {"lr": 1e-2}, reference.sgd, "adamlab.sgd(1e-2)"),
    Case(
        "sgd_momentum_dampening",
        "SGD",
        {"lr": 1e-2, "momentum": 0.9, "dampening": 0.1},
        reference.sgd,
        "adamlab.sgd(1e-2, momentum=0.9, dampening=0.1)",
        "torch's first momentum step is undamped; so is adamlab's",
    ),
    Case(
        "sgd_nesterov_l2",
        "SGD",
        {"lr": 1e-2, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
        reference.sgd,
        f"adamlab.chain({L2}(1e-3), adamlab.sgd(1e-2, momentum=0.9, nesterov=True))",
        "torch's SGD decay is L2: added to the gradient",
    ),
    Case(
        "sgd_maximize_l2",
        "SGD",
        {"lr": 1e-2, "momentum": 0.9, "weight_decay": 1e-2, "maximize": True},
        reference.sgd,
        f"adamlab.chain(adamlab.scale(-1.0), {L2}(1e-2), adamlab.sgd(1e-2, momentum=0.9))",
        "torch negates the gradient before adding the decay: `scale(-1.0)` goes first",
    ),
    Case(
        "rmsprop_alpha_eps",
        "RMSprop",
        {"alpha": 0.9, "eps": 1e-6},
        reference.rmsprop,
        "adamlab.rmsprop(1e-2, decay=0.9, eps=1e-6, eps_in_sqrt=False)",
        "torch puts eps outside the root; `rmsprop`'s default (Optax's) inside",
    ),
    Case(
        "rmsprop_centered_momentum",
        "RMSprop",
        {"lr": 1e-3, "centered": True, "momentum": 0.9},
        reference.rmsprop,
        "adamlab.rmsprop(1e-3, decay=0.99, eps=1e-8, eps_in_sqrt=False, centered=True, momentum=0.9)",
        "torch's `alpha` defaults to 0.99, `decay` (Optax's) to 0.9",
    ),
    Case(
        "rmsprop_momentum_warmup",
        "RMSprop",
        {"lr": 1e-3, "momentum": 0.9},
        reference.rmsprop,
        "adamlab.rmsprop(adamlab.schedules.linear_warmup(1e-4, 1e-3, 9), decay=0.99, eps=1e-8, "
        "eps_in_sqrt=False, momentum=0.9, lr_before_momentum=False)",
        "torch scales the momentum buffer by the current lr (`lr_before_momentum=False`); Optax's order scales "
        "each step before the momentum: equal for a constant lr",
        schedule=warmup10,
    ),
    Case(
        "rmsprop_l2",
        "RMSprop",
        {"weight_decay": 1e-2},
        reference.rmsprop,
        f"adamlab.chain({L2}(1e-2), adamlab.rmsprop(1e-2, decay=0.99, eps=1e-8, eps_in_sqrt=False))",
        "L2, as torch",
    ),
    Case(
        "adagrad_default",
        "Adagrad",
        {},
        reference.adagrad,
        "adamlab.adagrad(1e-2, 0.0, 1e-10, eps_in_sqrt=False)",
        "torch's `initial_accumulator_value` is 0 and `eps` 1e-10, outside the root; Optax's 0.1 and 1e-7, inside",
    ),
    Case(
        "adagrad_lr_decay_l2",
        "Adagrad",
        {"lr_decay": 1e-2, "weight_decay": 1e-2, "initial_accumulator_value": 0.1},
        reference.adagrad,
        "adamlab.adagrad(1e-2, 0.1, 1e-10, eps_in_sqrt=False, lr_decay=1e-2, weight_decay=1e-2)",
        "`lr_decay`: step t runs at `lr / (1 + (t - 1) * lr_decay)`; the decay is L2",
    ),
    Case("adadelta_default", "Adadelta", {}, reference.adadelta, "adamlab.adadelta(1.0)"),
    Case(
        "adadelta_rho_l2_maximize",
        "Adadelta",
        {"lr": 0.5, "rho": 0.95, "weight_decay": 1e-2, "maximize": True},
        reference.adadelta,
        "adamlab.adadelta(0.5, rho=0.95, weight_decay=1e-2, maximize=True)",
        "L2, added after the gradient is negated",
    ),
    Case(
        "rprop_default",
        "Rprop",
        {},
        reference.rprop,
        "adamlab.rprop(1e-2)",
        "`lr` is the initial step size; `optax.rprop` applies each step one step late, adamlab's does not",
    ),
    Case(
        "rprop_etas_step_sizes",
        "Rprop",
        {"lr": 0.1, "etas": (0.3, 1.5), "step_sizes": (1e-3, 0.05)},
        reference.rprop,
        "adamlab.rprop(0.1, 0.3, 1.5, 1e-3, 0.05, clip_initial_step_size=True)",
        "torch clips the step sizes from the first step on, so an `lr` above `step_sizes[1]` starts at the bound",
    ),
    Case(
        "adamax_default",
        "Adamax",
        {},
        reference.adamax,
        "adamlab.adamax(2e-3)",
        "torch's default lr is 2e-3",
    ),
    Case(
        "adamax_l2_maximize",
        "Adamax",
        {"weight_decay": 1e-2, "maximize": True},
        reference.adamax,
        "adamlab.adamax(2e-3, weight_decay=1e-2, maximize=True)",
        "L2, added after the gradient is negated",
    ),
    Case(
        "radam_default",
        "RAdam",
        {},
        reference.radam,
        "adamlab.radam(1e-3, eps_before_bias_correction=True)",
        "torch adds `eps` to `sqrt(v)` before the bias correction; Optax to `sqrt(v_hat)`",
    ),
    Case(
        "radam_l2",
        "RAdam",
        {"weight_decay": 1e-2},
        reference.radam,
        "adamlab.radam(1e-3, eps_before_bias_correction=True, weight_decay=1e-2)",
        "L2, as torch's default",
    ),
    Case(
        "radamw_warmup",
        "RAdam",
        {"weight_decay": 1e-2, "decoupled_weight_decay": True},
        reference.radam,
        "adamlab.radam(adamlab.schedules.linear_warmup(1e-4, 1e-3, 9), eps_before_bias_correction=True, "
        "weight_decay=1e-2, decoupled_weight_decay=True)",
        "the decoupled decay per step is `lr_t * wd`, on both sides",
        schedule=warmup10,
    ),
]

CASES_BY_NAME: dict[str, Case] = {case.name: case for case in CASES}


def run_adamlab(tx, params, grads) -> dict[str, np.ndarray]:
    """Final float64 params of adamlab transformation `tx` after one jitted step per gradient dict, under x64."""
    import jax
    import jax.numpy as jnp

    from adamlab import testing

    with jax.enable_x64(True):
        p = {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}
        stream = {k: jnp.asarray(np.stack([g[k] for g in grads]), jnp.float64) for k in params}
        out = testing.run(tx, p, stream)
        if not all(v.dtype == jnp.float64 for v in out.values()):
            raise AssertionError(f"params left float64: {[v.dtype for v in out.values()]}")
        return {k: np.asarray(v) for k, v in out.items()}


def guide_table() -> str:
    """The "Coming from PyTorch" guide's table of optimizers: one row per case, in `CASES` order (markdown)."""
    rows = ["| `torch.optim` | adamlab | notes |", "|---|---|---|"]
    for case in CASES:
        rows.append(f"| `{case.torch_call}` | `{case.adamlab}` | {case.note} |")
    return "\n".join(rows) + "\n"
