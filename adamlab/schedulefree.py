"""Schedule-free learning (Defazio et al., 2024): interpolation and averaging in place of momentum and a decay.

Three sequences share one base optimizer: ``z`` takes its steps, ``x`` is the running weighted average of the
``z`` iterates (the weights to evaluate), and the params the gradient is taken at are ``y``, between the two::

    y_t     = (1 - b1) * z_t + b1 * x_t                 (the params: gradients are computed here)
    z_{t+1} = z_t + base_update(g(y_t))                 (the base optimizer's step, e.g. -lr * g)
    c_{t+1} = lr_max**p / sum_{i <= t} lr_max_i**p      (p = weight_lr_power, lr_max the largest lr so far)
    x_{t+1} = (1 - c_{t+1}) * x_t + c_{t+1} * z_{t+1}

Only ``z`` is stored: ``x`` is recovered from the params and ``z`` as ``(y - (1 - b1) * z) / b1``, so the state
costs one copy of the params beside the base optimizer's (whose momentum should be switched off: the
interpolation replaces it). Evaluate at :func:`adamlab.schedule_free_eval_params`, which returns ``x``.

The functions mirror ``optax.contrib``: :func:`adamlab.schedule_free` wraps any optimizer (adamlab's or Optax's);
:func:`adamlab.schedule_free_adamw` and :func:`adamlab.schedule_free_sgd` are the two usual bases, built from adamlab's
primitives. Names, argument order and defaults are Optax 0.2.8's, and so are the state's fields, so
``optax.contrib.schedule_free_eval_params`` reads adamlab's state and the other way round.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adamlab import _checks, schedules
from adamlab.base import GradientTransformation, Transformation, _accepts_extra, chain, identity, stage, stage_info
from adamlab.decay import add_coupled_weight_decay, add_decoupled_weight_decay
from adamlab.moments import scale_by_rms
from adamlab.optimizers import _optional_decay, sgd
from adamlab.scaling import ScalarOrSchedule, scale_by_learning_rate
from adamlab.tree import check_state_dtype, has_gradient, increment, per_precision, precision, scalar, upcast


class ScheduleFreeState(NamedTuple):
    """State of :func:`adamlab.schedule_free`: the averaging's scalars, the base optimizer's state and ``z``.

    The fields and their order are those of ``optax.contrib.ScheduleFreeState``.

    Args:
        b1: The interpolation weight `b1` as a scalar array (read by :func:`adamlab.schedule_free_eval_params`).
        weight_sum: The sum of the averaging weights ``lr_max**weight_lr_power`` so far, a scalar.
        step_count: An int32 scalar, 1 before the first step (Optax's convention), incremented (saturating)
            by every update; a schedule `learning_rate` is evaluated at it for the averaging weight.
        max_lr: The largest learning rate seen so far, a scalar (0 before the first step).
        base_optimizer_state: The base optimizer's state.
        z: The base optimizer's iterates, a tree like the params in their dtype (or `state_dtype`), starting
            at the initial params; a ``(0,)`` float32 placeholder at each integer or bool leaf.

    The scalars are float32, or float64 when a param is float64 (under ``jax_enable_x64``).

    Example:
        >>> import jax.numpy as jnp
        >>> from adamlab.schedulefree import schedule_free_adamw
        >>> state = schedule_free_adamw().init({"w": jnp.ones(2)})
        >>> print(state.step_count, state.max_lr, state.z["w"])
        1 0.0 [1. 1.]
    """

    b1: jax.Array
    weight_sum: jax.Array
    step_count: jax.Array
    max_lr: jax.Array
    base_optimizer_state: Any
    z: Any


def _scalar_dtype(params) -> np.dtype:
    """float64 when some float leaf is (under x64), else float32: the averaging's scalars keep float64 leaves
    float64-exact, and each leaf gets them rounded to its own precision."""
    wide = [precision(p) for p in jax.tree.leaves(params) if has_gradient(p)]
    return max(wide, key=lambda d: d.itemsize, default=np.dtype(np.float32))


def _check_b1(b1) -> None:
    v = _checks._value("b1", b1)
    if v is not None and not 0.0 < v <= 1.0:
        raise ValueError(f"b1 must be in (0, 1] (x is recovered by dividing by b1), got {b1!r}")


def _check_state_dtype(state_dtype):
    if state_dtype is None:
        return None
    try:
        dtype = jnp.dtype(state_dtype)
    except TypeError:
        raise TypeError(f"state_dtype must be a float dtype such as jnp.float32, got {state_dtype!r}") from None
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"state_dtype must be a float dtype such as jnp.float32, got {dtype}: it stores z, an iterate; 8-bit "
            "codes are for moments (schedule_free_adamw's nu_dtype)"
        )
    return dtype


def schedule_free(
    base_optimizer: Transformation,
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    weight_lr_power: float = 2.0,
    state_dtype=None,
) -> GradientTransformation:
    """Makes `base_optimizer` schedule-free: its steps move ``z``, the params are ``y``, evaluation uses ``x``.

    ::

        lr_t    = learning_rate(step_count) or learning_rate        (step_count = t, 1 on the first step)
        lr_max  = max(lr_max, lr_t);   w = lr_max**weight_lr_power;   W = W + w
        c       = w / W                                             (0 while W = 0)
        z_new   = z + base_optimizer.update(g, params=y)
        x       = (y - (1 - b1) * z) / b1                           (recovered, not stored)
        x_new   = (1 - c) * x + c * z_new
        y_new   = b1 * x_new + (1 - b1) * z_new;   output y_new - y

    The base optimizer gets the gradient and the params ``y`` as they are; its momentum should be off (the
    interpolation stands in for it). A schedule is evaluated twice per step: by the base optimizer at its own
    count (0 on the first step) for ``z``'s step, and here at ``step_count`` (1 on the first step) for the
    averaging weight, one step ahead: Optax's convention, kept. Computed in float32 (wider for wider leaves),
    with Optax's order of operations; the scalars ``lr_max``, ``W`` and ``c`` in float64 when a param is
    float64 (Optax: in the params' lowest float dtype), each leaf using them in its own precision. Optax:
    ``optax.contrib.schedule_free``, bit for bit on the same base optimizer.

    Args:
        base_optimizer: The optimizer whose steps move ``z``: any transformation (adamlab's or Optax's)
            returning descent steps, with its momentum switched off (``b1=0`` for Adam, no ``momentum`` for
            SGD). Extra keyword arguments of ``update`` are passed on when it accepts them. Optax:
            ``base_optimizer``.
        learning_rate: The base optimizer's learning rate (a number ``>= 0`` or a schedule ``step -> lr``,
            typically a warmup without decay), used here for the averaging weights. Optax: ``learning_rate``.
        b1: The interpolation weight in ``(0, 1]``: ``y = (1 - b1) * z + b1 * x``. Default 0.9 (0.95 and 0.98
            also work well). Optax: ``b1``; the paper's ``beta``.
        weight_lr_power: The power ``p >= 0`` of ``lr_max`` in the averaging weights; 2 (the default) keeps the
            warmup's early iterates from dominating the average. Optax: ``weight_lr_power``.
        state_dtype: Storage dtype of ``z``, a float dtype. Default None: the params' dtype. Optax:
            ``state_dtype``.

    Returns:
        A `GradientTransformation` whose state is a :class:`ScheduleFreeState` and whose ``update`` needs the
        params: ``update(grads, state, params)``.

    Raises:
        ValueError: If `b1` is not in ``(0, 1]``, or `weight_lr_power` or a numeric `learning_rate` is negative
            or not finite; in ``update``, if the params are missing or the updates' tree is not the params'.
        TypeError: If `base_optimizer` has no ``init`` and ``update``, `state_dtype` is not a float dtype, or a
            hyperparameter is not a real number (or, for `learning_rate`, a function of the step).

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, *The Road Less Scheduled*, NeurIPS 2024.

    Example:
        Schedule-free SGD on ``f(w) = w**2 / 2``, evaluated at ``x``:

        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> from adamlab.schedulefree import schedule_free, schedule_free_eval_params
        >>> tx = schedule_free(adamlab.sgd(0.5), 0.5)
        >>> params = {"w": jnp.array([4.0])}
        >>> state = tx.init(params)
        >>> for _ in range(3):
        ...     updates, state = tx.update(params, state, params)  # the gradient of w**2 / 2 is w
        ...     params = adamlab.apply_updates(params, updates)
        >>> print(params["w"].round(4), schedule_free_eval_params(state, params)["w"].round(4), state.z["w"])
        [1.01] [1.0917] [0.27500004]
    """
    if not (callable(getattr(base_optimizer, "init", None)) and callable(getattr(base_optimizer, "update", None))):
        raise TypeError(f"base_optimizer must be a GradientTransformation, got {type(base_optimizer).__name__}")
    _checks.check_rate("learning_rate", learning_rate)
    _check_b1(b1)
    _checks.check_nonnegative("weight_lr_power", weight_lr_power)
    z_dtype = _check_state_dtype(state_dtype)
    passes_extra = _accepts_extra(base_optimizer.update)

    def init(params):
        _checks.check_leaves(params, "params")
        dtype = _scalar_dtype(params)

        def start(p):  # a copy, so that z and the params can both be donated
            if not has_gradient(p):
                return jnp.zeros((0,), jnp.float32)
            return jnp.array(p, dtype=z_dtype or p.dtype, copy=True)

        return ScheduleFreeState(
            b1=jnp.asarray(b1, dtype),
            weight_sum=jnp.zeros((), dtype),
            step_count=jnp.ones((), jnp.int32),
            max_lr=jnp.zeros((), dtype),
            base_optimizer_state=base_optimizer.init(params),
            z=jax.tree.map(start, params),
        )

    def update(updates, state, params=None, **extra):
        if params is None:
            raise ValueError("schedule_free needs the params: call update(grads, state, params)")
        _checks.check_same_tree(updates, state.z, "schedule_free: updates", "the params given to init")
        lr = learning_rate(state.step_count) if callable(learning_rate) else learning_rate
        max_lr = jnp.maximum(state.max_lr, jnp.asarray(lr, state.max_lr.dtype))
        weight = max_lr**weight_lr_power
        weight_sum = state.weight_sum + weight
        # 0 / 0 while no learning rate has been positive: no averaging step yet (Optax's guard, NaNs kept).
        c = jnp.where(
            jnp.isnan(weight) | jnp.isnan(weight_sum),
            jnp.full(weight.shape, jnp.nan, weight.dtype),
            jnp.nan_to_num(weight / weight_sum, nan=0.0, posinf=jnp.inf),
        )
        kw = extra if passes_extra else {}
        steps, base_state = base_optimizer.update(updates, state.base_optimizer_state, params, **kw)

        def coefficients():
            ck = scalar(c)
            return scalar(b1), scalar(1.0 - b1), ck, 1.0 - ck

        coef = per_precision(coefficients)

        def new_z(z, s):
            z_wide, s = upcast(z, s)
            return (z_wide + s).astype(z.dtype)

        z = jax.tree.map(lambda z, s, p: new_z(z, s) if has_gradient(p) else z, state.z, steps, params)

        def step(u, y, z_old, z_new):
            if not has_gradient(y):
                return u
            beta, one_minus_beta, ck, one_minus_ck = coef(y)
            y, z_old, z_new = upcast(y, z_old, z_new)
            x = (y - one_minus_beta * z_old) / beta
            x = one_minus_ck * x + ck * z_new
            return (beta * x + one_minus_beta * z_new - y).astype(jnp.result_type(u))

        out = jax.tree.map(step, updates, params, state.z, z)
        new_state = ScheduleFreeState(state.b1, weight_sum, increment(state.step_count), max_lr, base_state, z)
        return out, new_state

    return stage("schedule_free", init, update, role=stage_info(base_optimizer).role)


def _find_state(state) -> Any:
    """The ScheduleFreeState in `state` (itself, or inside a chain's tuple of states), or None."""
    if hasattr(state, "b1") and hasattr(state, "z"):
        return state
    if isinstance(state, (tuple, list)):
        for s in state:
            found = _find_state(s)
            if found is not None:
                return found
    return None


def schedule_free_eval_params(state, params):
    """The params to evaluate a schedule-free model at: the average ``x = (y - (1 - b1) * z) / b1``.

    ::

        x = (y - (1 - b1) * z) / b1          (y: the params trained on; b1 and z from the state)

    Train at ``y`` (the params the optimizer's updates are applied to) and evaluate, checkpoint for
    inference, or report the loss at ``x``. Float leaves only (the others are returned as they are), each
    computed in float32 (or wider) and returned in its param's dtype. Optax:
    ``optax.contrib.schedule_free_eval_params``, bit for bit; it reads Optax's state too.

    Args:
        state: The state of :func:`adamlab.schedule_free` (or :func:`adamlab.schedule_free_adamw`,
            :func:`adamlab.schedule_free_sgd`), or a chain's state holding one (the first found is used);
            Optax's ``ScheduleFreeState`` works too. Its ``b1`` is the one used, as in Optax.
        params: The current params ``y``, a tree like the one the optimizer was initialized with.

    Returns:
        A tree like `params`: ``x`` at every float leaf.

    Raises:
        ValueError: If `state` holds no schedule-free state (no ``b1`` and ``z`` fields).

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> from adamlab.schedulefree import schedule_free_adamw, schedule_free_eval_params
        >>> tx = schedule_free_adamw(0.1)
        >>> params = {"w": jnp.array([1.0, -1.0])}
        >>> state = tx.init(params)
        >>> for g in ([1.0, 1.0], [1.0, -1.0]):
        ...     updates, state = tx.update({"w": jnp.array(g)}, state, params)
        ...     params = adamlab.apply_updates(params, updates)
        >>> x = schedule_free_eval_params(state, params)
        >>> print([round(v, 4) for v in params["w"].tolist()], [round(v, 4) for v in x["w"].tolist()])
        [0.845, -1.045] [0.85, -1.05]
    """
    found = _find_state(state)
    if found is None or found.b1 is None or found.z is None:
        raise ValueError(
            "schedule_free_eval_params needs the state of schedule_free (a ScheduleFreeState, with b1 and z), "
            f"got {type(state).__name__}"
        )
    b1 = found.b1
    coef = per_precision(lambda: (scalar(b1), 1 - scalar(b1)))

    def average(y, z):
        if not has_gradient(y):
            return y
        beta, one_minus_beta = coef(y)
        y_wide, z = upcast(jnp.asarray(y), jnp.asarray(z))
        return ((y_wide - one_minus_beta * z) / beta).astype(jnp.result_type(y))

    return jax.tree.map(average, params, found.z)


def _warmup(peak: float, warmup_steps: int | None) -> ScalarOrSchedule:
    """`peak`, or a linear warmup from 0 to it over `warmup_steps` steps and constant after:
    ``schedules.warmup_constant_schedule(0, peak, warmup_steps)``, Optax's arithmetic (for bit parity)."""
    if warmup_steps is None:
        return peak
    if isinstance(warmup_steps, (jax.Array, np.ndarray)):
        # The schedule's length is fixed when it is built; a traced value has none yet.
        raise TypeError(
            f"warmup_steps must be a Python int or None, got an array ({type(warmup_steps).__name__}); with "
            "optax.inject_hyperparams, pass static_args=('warmup_steps',)"
        )
    if not isinstance(warmup_steps, (int, np.integer)) or isinstance(warmup_steps, bool) or warmup_steps < 1:
        # Optax takes 0 (and negatives) as "constant at the initial value": a learning rate of 0 for ever.
        raise ValueError(f"warmup_steps must be a positive int or None, got {warmup_steps!r}")
    return schedules.warmup_constant_schedule(0.0, peak, int(warmup_steps))


def schedule_free_adamw(
    learning_rate: float = 0.0025,
    warmup_steps: int | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_lr_power: float = 2.0,
    state_dtype=None,
    *,
    nu_dtype=None,
) -> GradientTransformation:
    """Schedule-free AdamW (Algorithm 1 of Defazio et al.): AdamW without momentum, made schedule-free.

    ::

        lr_k   = learning_rate * min(1, k / warmup_steps)           (k = 0, 1, ...; learning_rate without warmup)
        v      = b2 * v + (1 - b2) * g**2;   v_hat = v / (1 - b2**t)
        z      <- z - lr_k * (g / (sqrt(v_hat) + eps) + weight_decay * y)
        then the interpolation and averaging of schedule_free (b1, weight_lr_power)

    Built as ``schedule_free(chain(scale_by_rms(b2, eps, bias_correction=True), add_decoupled_weight_decay(
    weight_decay), scale_by_learning_rate(lr)), lr, b1, weight_lr_power, state_dtype)``, the decay stage left
    out for ``weight_decay=0`` (a decision made in Python), with ``lr`` the warmup when `warmup_steps` is given.
    The gradient and the decay are taken at the params ``y``; evaluate at :func:`adamlab.schedule_free_eval_params`.
    Optax: ``optax.contrib.schedule_free_adamw``, within 1e-6: adamlab divides by ``sqrt(v_hat) + eps`` where
    Optax multiplies by its reciprocal (a rounding per step). The reference implementation's
    ``AdamWScheduleFree`` warms up one step earlier (its first step has ``lr / warmup_steps``, Optax's 0).

    Args:
        learning_rate: The peak learning rate, a number ``>= 0``. Default 0.0025. Optax: ``learning_rate``;
            reference implementation: ``lr``.
        warmup_steps: The length of the linear warmup from 0, a positive int, or None (the default) for none.
            Optax: ``warmup_steps``.
        b1: The interpolation weight in ``(0, 1]`` (see :func:`adamlab.schedule_free`). Default 0.9. Optax: ``b1``;
            reference implementation: ``betas[0]``.
        b2: The decay of the second moment, in ``[0, 1)``. Default 0.999. Optax: ``b2``; reference
            implementation: ``betas[1]``.
        eps: Added to ``sqrt(v_hat)``, ``>= 0``. Default 1e-8. Optax: ``eps``.
        weight_decay: The decoupled decay ``>= 0`` (multiplied by the learning rate, taken at ``y``). Default 0.
            Optax: ``weight_decay``.
        weight_lr_power: The power of ``lr_max`` in the averaging weights, ``>= 0``. Default 2. Optax:
            ``weight_lr_power``.
        state_dtype: Storage dtype of ``z`` (a float dtype: ``z`` is an iterate, not a moment). Default None: the
            params' dtype. Optax: ``state_dtype``.
        nu_dtype: Storage dtype of the second moment ``v``: ``jnp.bfloat16`` or ``jnp.int8`` (8-bit codes),
            as in :func:`adamlab.scale_by_rms`. Default None: float32. adamlab's.

    Returns:
        A `GradientTransformation` whose state is a :class:`ScheduleFreeState`; its ``base_optimizer_state`` is
        the inner chain's tuple: an :class:`adamlab.RmsState` (``v``), ``EmptyState()`` for the decay (only
        with `weight_decay`) and the learning rate's state (:class:`adamlab.ScheduleState` with a warmup).

    Raises:
        ValueError: If `b1` is not in ``(0, 1]`` or `b2` not in ``[0, 1)``; if `learning_rate`, `eps`,
            `weight_decay` or `weight_lr_power` is negative or not finite; if `warmup_steps` is not a positive
            int or None; if `nu_dtype` lacks float32's exponent range (float16).
        TypeError: If a hyperparameter is not a real number, `state_dtype` not a float dtype, or `nu_dtype` not
            a float dtype or ``jnp.int8``; if `warmup_steps` is an array (traced or not: it fixes the schedule when
            the optimizer is built).

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, *The Road Less Scheduled*, NeurIPS 2024.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> from adamlab.schedulefree import schedule_free_adamw, schedule_free_eval_params
        >>> loss = lambda p: jnp.sum(p["w"] ** 2)
        >>> tx = schedule_free_adamw(0.5)
        >>> params = {"w": jnp.array([1.0, 2.0, 3.0])}
        >>> state = tx.init(params)
        >>> for _ in range(20):
        ...     updates, state = tx.update(jax.grad(loss)(params), state, params)
        ...     params = adamlab.apply_updates(params, updates)
        >>> print(float(loss(schedule_free_eval_params(state, params))) < 0.1 * 14.0)
        True
    """
    _checks.check_decay("b2", b2)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("learning_rate", learning_rate)
    lr = _warmup(learning_rate, warmup_steps)
    base = chain(
        scale_by_rms(
            b2, eps, bias_correction=True, state_dtype=check_state_dtype(nu_dtype, second_moment=True, name="nu_dtype")
        ),
        _optional_decay(add_decoupled_weight_decay, weight_decay, None),
        scale_by_learning_rate(lr),
        name="schedule_free_adamw",
    )
    return schedule_free(base, lr, b1, weight_lr_power, state_dtype)


def schedule_free_sgd(
    learning_rate: float = 1.0,
    warmup_steps: int | None = None,
    b1: float = 0.9,
    weight_decay: ScalarOrSchedule | None = None,
    weight_lr_power: float = 2.0,
    state_dtype=None,
) -> GradientTransformation:
    """Schedule-free SGD: plain SGD steps on ``z``, interpolation and averaging as in :func:`adamlab.schedule_free`.

    ::

        lr_k = learning_rate * min(1, k / warmup_steps)     (k = 0, 1, ...; learning_rate without warmup)
        z   <- z - lr_k * (g + weight_decay * y)            (coupled decay, at the params y)
        then the interpolation and averaging of schedule_free (b1, weight_lr_power)

    Built as ``schedule_free(chain(add_coupled_weight_decay(weight_decay), sgd(lr)), lr, b1, weight_lr_power,
    state_dtype)``, the decay stage left out when `weight_decay` is None. Optax:
    ``optax.contrib.schedule_free_sgd``, bit for bit.

    Args:
        learning_rate: The peak learning rate, a number ``>= 0``. Default 1.0. Optax: ``learning_rate``.
        warmup_steps: The length of the linear warmup from 0, a positive int, or None (the default) for none.
            Optax: ``warmup_steps``.
        b1: The interpolation weight in ``(0, 1]``. Default 0.9. Optax: ``b1``.
        weight_decay: The coupled (L2) decay ``>= 0``, multiplied by the learning rate like the gradient, or
            None (the default) for none. Optax: ``weight_decay``.
        weight_lr_power: The power of ``lr_max`` in the averaging weights, ``>= 0``. Default 2. Optax:
            ``weight_lr_power``.
        state_dtype: Storage dtype of ``z`` (a float dtype). Default None: the params' dtype. Optax:
            ``state_dtype``.

    Returns:
        A `GradientTransformation` whose state is a :class:`ScheduleFreeState`; its ``base_optimizer_state`` is
        the inner chain's tuple (``EmptyState()`` for the decay, when given, and the learning rate's state).

    Raises:
        ValueError: If `b1` is not in ``(0, 1]``; if `learning_rate`, `weight_decay` or `weight_lr_power` is
            negative or not finite; if `warmup_steps` is not a positive int or None.
        TypeError: If a hyperparameter is not a real number, or `state_dtype` not a float dtype; if
            `warmup_steps` is an array (traced or not: it fixes the schedule when the optimizer is built).

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, *The Road Less Scheduled*, NeurIPS 2024.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> from adamlab.schedulefree import schedule_free_sgd, schedule_free_eval_params
        >>> tx = schedule_free_sgd(0.5, warmup_steps=2)
        >>> params = {"w": jnp.array([4.0])}
        >>> state = tx.init(params)
        >>> for _ in range(3):
        ...     updates, state = tx.update(params, state, params)  # the gradient of w**2 / 2 is w
        ...     params = adamlab.apply_updates(params, updates)
        >>> print(state.z["w"].round(4), schedule_free_eval_params(state, params)["w"].round(4))
        [1.41] [2.4044]
    """
    _checks.check_nonnegative("learning_rate", learning_rate)
    lr = _warmup(learning_rate, warmup_steps)
    base = chain(
        identity() if weight_decay is None else add_coupled_weight_decay(weight_decay),
        sgd(lr),
        name="schedule_free_sgd",
    )
    return schedule_free(base, lr, b1, weight_lr_power, state_dtype)


__all__ = [
    "ScheduleFreeState",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
]
