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
from adamlab.tree import has_gradient, increment, init_moment, leafwise, per_precision, store, upcast


class ParameterEmaState(NamedTuple):
    """State of :func:`adamlab.parameter_ema`: the step count and the running average of the params.

    Args:
        count: An int32 scalar, the number of ``update`` calls so far (saturating at the int32
            maximum); the bias correction divides by ``1 - decay**count``.
        ema: The running average, a tree like the params: in ``state_dtype`` (default float32, or the
            param's dtype when wider), starting from the initial params (or from zeros with
            ``bias_correction=True``, then stored before the correction); a ``(0,)`` float32
            placeholder at each non-float leaf.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> state = adamlab.parameter_ema(0.99).init({"w": jnp.ones(2, jnp.bfloat16)})
        >>> print(state.count, state.ema["w"], state.ema["w"].dtype)
        0 [1. 1.] float32
    """

    # int32 number of updates
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
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

    ::

        e_t = decay * e_{t-1} + (1 - decay) * p_t          (e_0 = p_0; e_0 = 0 with bias_correction)
        output: e_t,  or  e_t / (1 - decay**t)  with bias_correction

    The averaging is computed in float32 (or wider); the average comes back in each param's dtype,
    while the state keeps it in `state_dtype`. Call ``update`` with the params after each optimizer
    step (or every few steps: each call is one averaging step). It ignores its third argument and
    extra keywords, so it is not meant for a chain's ``updates``. Optax: ``optax.ema(decay,
    debias=True)`` applied to the params is the ``bias_correction=True`` variant; PyTorch:
    ``torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))``, which
    starts from the params like the default.

    Args:
        decay: The EMA's decay in ``[0, 1)`` (and below 1 in float32); the average spans about
            ``1 / (1 - decay)`` steps (:func:`adamlab.effective_window`), e.g. 1,000 for 0.999. Optax:
            ``decay`` of ``optax.ema``; PyTorch: ``decay`` of ``get_ema_multi_avg_fn``.
        bias_correction: Keyword-only. False (the default) starts the average at the initial params;
            True starts it at zero and divides by ``1 - decay**t``, so that the first averages are
            means of the params seen so far rather than pulled toward the initial weights. Optax:
            ``debias``.
        state_dtype: Keyword-only. Storage dtype of the average, a float dtype (``jnp.bfloat16`` halves
            its memory but rounds away changes smaller than its resolution, which for ``decay`` near
            1 are most of them). Default None: float32, or the param's dtype when wider. It is not
            validated; integer dtypes fail in ``init`` or ``update``.

    Returns:
        A `GradientTransformation` whose state is a :class:`adamlab.ParameterEmaState` and whose
        ``update(params, state)`` returns ``(averaged params, state)``.

    Raises:
        ValueError: If `decay` is outside ``[0, 1)`` or rounds to 1 in float32; in ``update``, if the
            params' tree differs from the one given to ``init``.
        TypeError: If `decay` is not a real number or scalar array, or is a bfloat16/float16 array.

    References:
        Polyak & Juditsky, *Acceleration of Stochastic Approximation by Averaging*, SIAM Journal on
        Control and Optimization, 1992.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> ema = adamlab.parameter_ema(0.9)
        >>> state = ema.init({"w": jnp.zeros(2)})
        >>> avg, state = ema.update({"w": jnp.ones(2)}, state)
        >>> print(avg["w"], state.count)
        [0.1 0.1] 1
        >>> debiased = adamlab.parameter_ema(0.9, bias_correction=True)
        >>> avg, _ = debiased.update({"w": jnp.ones(2)}, debiased.init({"w": jnp.zeros(2)}))
        >>> print(avg["w"])
        [1. 1.]
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
        bc = per_precision(lambda: bias_correction_term(decay, count))
        debiased = leafwise(lambda n: n / bc(n), new) if bias_correction else new
        out = jax.tree.map(lambda n, p: n.astype(p.dtype) if has_gradient(p) else p, debiased, params)
        return out, ParameterEmaState(count, jax.tree.map(store, new, state.ema))

    return stage("parameter_ema", init, update)
