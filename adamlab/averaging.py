"""Parameter EMA (Polyak averaging) for evaluation weights.

``theta_ema_t = decay * theta_ema_{t-1} + (1 - decay) * theta_t``. Averaged
weights usually evaluate better than the last iterate: they smooth out the
noise of the final steps over about ``effective_window(decay)`` steps.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import GradientTransformation, stage
from adamlab.moments import bias_correction_term
from adamlab.tree import has_gradient, increment, init_moment, leafwise, store, upcast


class ParameterEmaState(NamedTuple):
    count: jax.Array
    ema: Any  # float32 (or wider) average of the params


def parameter_ema(decay: float, *, bias_correction: bool = False, state_dtype=None) -> GradientTransformation:
    """Tracks an EMA of the params: ``update(params, state) -> (averaged params, state)``.

    Without `bias_correction` the average starts at the initial params; with
    it, it starts at zero and is divided by ``1 - decay**t``, so early
    averages are not pulled toward the initial weights. The averaged params
    come back in each param's dtype; non-float leaves pass through.

    Use it beside the optimizer, not in its chain::

        ema = adamlab.parameter_ema(0.999)
        ema_state = ema.init(params)
        ...
        eval_params, ema_state = ema.update(params, ema_state)
    """
    _checks.check_decay("decay", decay)

    def init(params):
        if bias_correction:
            avg = init_moment(params, state_dtype)
        else:
            avg = jax.tree.map(
                lambda p, z: p.astype(z.dtype) if has_gradient(p) else z, params, init_moment(params, state_dtype)
            )
        return ParameterEmaState(jnp.zeros((), jnp.int32), avg)

    def update(params, state, unused_params=None, **extra):
        del unused_params, extra
        _checks.check_same_tree(params, state.ema, "parameter_ema: params", "the params given to init")
        count = increment(state.count)

        def average(p, e):
            p, e = upcast(p, e)
            return (1 - decay) * p + decay * e

        new = leafwise(average, params, state.ema)
        bc = bias_correction_term(decay, count) if bias_correction else None
        debiased = new if bc is None else leafwise(lambda n: n / bc, new)
        out = jax.tree.map(lambda n, p: n.astype(p.dtype) if has_gradient(p) else p, debiased, params)
        return out, ParameterEmaState(count, jax.tree.map(store, new, state.ema))

    return stage("parameter_ema", init, update)
