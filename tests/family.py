"""The rest of Optax's first-order family (issue 22), one registry for every matrix that runs them.

Each entry builds an adamlab optimizer at small, generic hyperparameters with a learning rate schedule where the
optimizer takes one (so schedule counts are exercised), and its Optax counterpart with the same arguments. A matrix
(finite on extreme gradients, narrow state, the flat layout, the sharded mesh, skip_nonfinite, accumulation,
traced hyperparameters, float64) iterates over `FAMILY` and reads the flags it needs, so a new optimizer added here
is checked by all of them.

Flags:
- ``state``: the storage-dtype keyword of the moments (``"state_dtype"``, Optax's ``"accumulator_dtype"``, or
  ``"nu_dtype"`` for schedule_free_adamw, whose ``state_dtype`` stores the iterate ``z``), or
  None where the state is not a moment (sign_sgd, noisy_sgd, rprop's step sizes, schedule_free_sgd's z) or is an
  accumulator with no storage keyword (adagrad, adadelta: refused as an unexpected keyword).
- ``params``: ``"plain"`` (the params are the user's tree) or ``"lookahead"`` (``LookaheadParams(fast, slow)``,
  with gradients taken at ``params.fast``: a plain tree); `initial_params` makes them.

Every member agrees with its Optax counterpart bit for bit over 30 jitted steps on the mixed tree, except rprop
(adamlab takes the paper's first step; ``optax_lag=True`` gives Optax's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import optax

import adamlab

LR = adamlab.schedules.warmup_cosine_decay_schedule(0.0, 1e-2, 3, 30)  # Optax's arithmetic, bit for bit
OPTAX_LR = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 3, 30)
WD = 0.01


class Member(NamedTuple):
    make: Callable[..., Any]  # (**keywords) -> adamlab transformation
    optax: Callable[[], Any]  # () -> its Optax counterpart
    state: str | None = "state_dtype"
    params: str = "plain"


def _muon_dims(params):
    """Muon on every matrix, Adam on the rest, written out (Optax's default cannot read a dict of leaves)."""
    import jax

    return jax.tree.map(lambda p: optax.contrib.MuonDimensionNumbers() if p.ndim == 2 else None, params)


FAMILY: dict[str, Member] = {
    "adabelief": Member(lambda **k: adamlab.adabelief(LR, **k), lambda: optax.adabelief(OPTAX_LR)),
    "adadelta": Member(
        lambda **k: adamlab.adadelta(1.0, weight_decay=WD, **k), lambda: optax.adadelta(1.0, weight_decay=WD), None
    ),
    "adafactor": Member(lambda **k: adamlab.adafactor(LR, **k), lambda: optax.adafactor(OPTAX_LR)),
    "adagrad": Member(lambda **k: adamlab.adagrad(LR, **k), lambda: optax.adagrad(OPTAX_LR), None),
    "adamax": Member(lambda **k: adamlab.adamax(LR, **k), lambda: optax.adamax(OPTAX_LR)),
    "adamaxw": Member(
        lambda **k: adamlab.adamaxw(LR, weight_decay=WD, **k), lambda: optax.adamaxw(OPTAX_LR, weight_decay=WD)
    ),
    "adan": Member(lambda **k: adamlab.adan(LR, weight_decay=WD, **k), lambda: optax.adan(OPTAX_LR, weight_decay=WD)),
    "lamb": Member(lambda **k: adamlab.lamb(LR, weight_decay=WD, **k), lambda: optax.lamb(OPTAX_LR, weight_decay=WD)),
    "lars": Member(lambda **k: adamlab.lars(LR, weight_decay=WD, **k), lambda: optax.lars(OPTAX_LR, weight_decay=WD)),
    "novograd": Member(
        lambda **k: adamlab.novograd(LR, weight_decay=WD, **k), lambda: optax.novograd(OPTAX_LR, weight_decay=WD)
    ),
    "radam": Member(lambda **k: adamlab.radam(LR, **k), lambda: optax.radam(OPTAX_LR)),
    "yogi": Member(lambda **k: adamlab.yogi(LR, **k), lambda: optax.yogi(OPTAX_LR)),
    # the paper's first step; Optax's lags one step behind it (adamlab.rprop(..., optax_lag=True) is Optax's)
    "rprop": Member(lambda **k: adamlab.rprop(1e-3, **k), lambda: optax.rprop(1e-3), None),
    "sign_sgd": Member(lambda **k: adamlab.sign_sgd(LR, **k), lambda: optax.sign_sgd(OPTAX_LR), None),
    "signum": Member(lambda **k: adamlab.signum(LR, **k), lambda: optax.signum(OPTAX_LR), "accumulator_dtype"),
    "noisy_sgd": Member(lambda **k: adamlab.noisy_sgd(LR, **k), lambda: optax.noisy_sgd(OPTAX_LR), None),
    "optimistic_adam_v2": Member(
        lambda **k: adamlab.optimistic_adam_v2(LR, **k), lambda: optax.optimistic_adam_v2(OPTAX_LR)
    ),
    "adopt": Member(lambda **k: adamlab.adopt(LR, **k), lambda: optax.contrib.adopt(OPTAX_LR)),
    "simplified_ademamix": Member(
        lambda **k: adamlab.simplified_ademamix(LR, weight_decay=WD, **k),
        lambda: optax.contrib.simplified_ademamix(OPTAX_LR, weight_decay=WD),
    ),
    "schedule_free_adamw": Member(
        lambda **k: adamlab.schedule_free_adamw(1e-2, warmup_steps=3, weight_decay=WD, **k),
        lambda: optax.contrib.schedule_free_adamw(1e-2, warmup_steps=3, weight_decay=WD),
        "nu_dtype",  # Optax's state_dtype stores z, an iterate; v is the moment
    ),
    "schedule_free_sgd": Member(
        lambda **k: adamlab.schedule_free_sgd(1e-2, warmup_steps=3, **k),
        lambda: optax.contrib.schedule_free_sgd(1e-2, warmup_steps=3),
        None,  # z (state_dtype) is an iterate, not a moment
    ),
    "muon": Member(
        lambda **k: adamlab.muon(LR, weight_decay=WD, muon_weight_dimension_numbers=_muon_dims, **k),
        lambda: optax.contrib.muon(OPTAX_LR, weight_decay=WD, muon_weight_dimension_numbers=_muon_dims),
    ),
    "lookahead_adamw": Member(
        lambda **k: adamlab.lookahead(adamlab.adamw(LR, weight_decay=WD, **k), 5, 0.5),
        lambda: optax.lookahead(optax.adamw(OPTAX_LR, weight_decay=WD), 5, 0.5),
        params="lookahead",
    ),
}


def build(name: str, **keywords) -> Any:
    """The adamlab member `name`; a ``state_dtype=`` keyword goes to the member's own storage keyword."""
    member = FAMILY[name]
    if "state_dtype" in keywords:
        dtype = keywords.pop("state_dtype")
        if member.state is None:
            raise ValueError(f"{name} keeps no moment state a dtype could narrow")
        keywords[member.state] = dtype
    return member.make(**keywords)


def with_state() -> list[str]:
    """The members whose state is a moment, in registry order."""
    return [n for n, m in FAMILY.items() if m.state is not None]


def initial_params(name: str, params: Any) -> Any:
    """The params member `name` steps from a plain tree: the tree itself, or a synced lookahead pair."""
    return adamlab.LookaheadParams.init_synced(params) if FAMILY[name].params == "lookahead" else params


def trajectory(tx: Any, params: Any, stream: Any) -> Any:
    """``((final params, final state), (params, state) after every step)`` of `tx` over `stream`, one jitted scan."""
    import jax

    @jax.jit
    def go(p, stream):
        def step(carry, g):
            p, s = carry
            u, s = tx.update(g, s, p)
            carry = (adamlab.apply_updates(p, u), s)
            return carry, carry

        return jax.lax.scan(step, (p, tx.init(p)), stream)

    return go(params, stream)
