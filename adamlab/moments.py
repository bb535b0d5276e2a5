"""Moments: exponential moving averages of the gradient and of its square, and their bias correction.

Every formula of Adam lives here::

    m_t     = b1 * m_{t-1} + (1 - b1) * g_t            scale_by_ema(b1)
    m_hat_t = m_t / (1 - b1**t)                          bias_correct(b1)
    v_t     = b2 * v_{t-1} + (1 - b2) * g_t**2          scale_by_rms(b2, eps, bias_correction=True)
    update  = m_hat_t / (sqrt(v_t / (1 - b2**t)) + eps)

Each primitive is its formula for one leaf; :func:`adamlab.moment_stage` does the
rest (tree checks, placeholders for integer leaves, float32 arithmetic,
storage dtypes, stochastic rounding). Moments are stored in float32 (or
wider) whatever the param dtype, unless ``state_dtype`` asks for less.

Range: every formula is exact for gradients whose square float32 holds
(``|g| < 1.8e19``). Beyond, as in Optax, ``v`` becomes Inf and its weight's
step is 0 from then on. The answers: :func:`adamlab.clip_by_global_norm` first (exact for
any finite gradient), :func:`adamlab.skip_nonfinite`, or ``saturate=True``, which keeps
``v`` at the float maximum so that the weight recovers as ``v`` decays (one
select per element; off by default because it costs 8% of the compile).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import GradientTransformation, stage
from adamlab.quantize import INT8
from adamlab.scaling import ScalarOrSchedule
from adamlab.stage_builder import countless_storage, moment_stage, require_gradient
from adamlab.tree import abs_sq, check_state_dtype, increment, leafwise, per_precision, scalar, upcast, widest_float


class EmaState(NamedTuple):
    """State of :func:`adamlab.scale_by_ema`: the moving average ``m``, stored without a step count.

    Used whenever the moment is rounded to nearest (float32, and ``bfloat16`` by default); a stochastically
    rounded moment needs a step count and uses :class:`adamlab.CountedEmaState` instead.

    Args:
      moment: ``m_t``, the EMA of the updates: a tree like the params. Each float leaf holds float32 (the param's
        dtype when wider, complex64 for a complex param, or the requested ``state_dtype``); each integer or bool
        leaf holds a ``(0,)`` float32 placeholder.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> adamlab.scale_by_ema(0.9).init({"w": jnp.zeros(2)})
      EmaState(moment={'w': Array([0., 0.], dtype=float32)})
    """

    moment: Any  # m


class CountedEmaState(NamedTuple):
    """State of :func:`adamlab.scale_by_ema` when its moment is rounded stochastically: ``m`` and a step count.

    Chosen at build time when ``rounding="stochastic"`` applies, i.e. for ``state_dtype=jnp.int8`` (8-bit codes,
    stochastic by default) or for ``bfloat16``/``float16`` with ``rounding="stochastic"``: the count seeds the
    random bits, so that runs are reproducible.

    Args:
      count: int32 scalar, the number of updates taken (saturating at ``2**31 - 1``), the seed of the rounding.
      moment: ``m_t``, a tree like the params, as in :class:`adamlab.EmaState`; a leaf stored in 8 bits is a
        block-wise quantized pytree node (uint8 codes and float32 scales), not an array.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.scale_by_ema(0.9, state_dtype=jnp.bfloat16, rounding="stochastic")
      >>> tx.init({"w": jnp.zeros(2)})
      CountedEmaState(count=Array(0, dtype=int32), moment={'w': Array([0, 0], dtype=bfloat16)})
    """

    # the step, which keys the stochastic rounding of a narrow moment
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    moment: Any


class CountState(NamedTuple):
    """State of :func:`adamlab.bias_correct`: only the step count ``t`` of the correction ``1 - decay**t``.

    Args:
      count: int32 scalar, the number of updates taken (0 after init), saturating at ``2**31 - 1`` instead of
        wrapping to a negative step.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.bias_correct(0.9)
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> _, state = tx.update({"w": jnp.ones(2)}, state)
      >>> state
      CountState(count=Array(1, dtype=int32))
    """

    # int32 steps taken, saturating at 2**31 - 1
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count


class MomentumScheduleState(NamedTuple):
    """State of ``bias_correct(decay, nesterov=True, momentum_decay=psi)``: the step count and ``prod mu_i``.

    Args:
      count: int32 scalar, the number of updates taken (0 after init), saturating at ``2**31 - 1``.
      momentum_product: ``P_t = mu_1 * ... * mu_t``, the product of the scheduled momenta so far (1 after
        init), a scalar in the widest float enabled (float64 under ``jax_enable_x64``, float32 otherwise).
        PyTorch: the ``mu_product`` of `torch.optim.NAdam`'s state.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.bias_correct(0.9, nesterov=True, momentum_decay=4e-3)
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> _, state = tx.update({"w": jnp.ones(2)}, state, gradient={"w": jnp.ones(2)})
      >>> print(state.count, round(float(state.momentum_product), 6))  # mu_1 = 0.9 * (1 - 0.5 * 0.96**0.004)
      1 0.450073
    """

    # int32 steps taken, saturating at 2**31 - 1
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    momentum_product: jax.Array


class RmsState(NamedTuple):
    """State of :func:`adamlab.scale_by_rms` and :func:`adamlab.scale_by_atan2_rms`: the second moment ``v``.

    Args:
      count: int32 scalar, the number of updates taken, saturating at ``2**31 - 1``: the ``t`` of the bias
        correction and the seed of stochastic rounding (kept even when neither is used).
      second_moment: ``v_t``, the EMA of the gradient's ``|g|**2``: a tree like the params, real (float32 also
        for complex params, or the ``state_dtype`` asked for; ``(0,)`` placeholders for integer and bool leaves).
        Starts at ``initial_scale``.
      gradient_mean: With ``centered=True``, the EMA of ``g`` itself (a tree like the params, in the params'
        real or complex kind); otherwise ``()``.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> adamlab.scale_by_rms(0.9, initial_scale=0.5).init({"w": jnp.zeros(2)})
      RmsState(count=Array(0, dtype=int32), second_moment={'w': Array([0.5, 0.5], dtype=float32)},
               gradient_mean=())
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    second_moment: Any  # v
    gradient_mean: Any  # EMA of g when centered, else ()


class TraceState(NamedTuple):
    """State of :func:`adamlab.trace` (heavy-ball momentum), stored without a step count.

    Used whenever the trace is rounded to nearest; a stochastically rounded trace uses
    :class:`adamlab.CountedTraceState`. Same name and field as Optax's `optax.TraceState`.

    Args:
      trace: ``t_k``, the momentum buffer: a tree like the params, float32 (or the param's wider dtype, or the
        ``state_dtype``/``accumulator_dtype`` asked for) for each float leaf, ``(0,)`` placeholders for the rest.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> adamlab.trace(0.9).init({"w": jnp.zeros(2)})
      TraceState(trace={'w': Array([0., 0.], dtype=float32)})
    """

    trace: Any


class CountedTraceState(NamedTuple):
    """State of :func:`adamlab.trace` when its buffer is rounded stochastically: the trace and a step count.

    Chosen at build time for ``state_dtype=jnp.int8`` (stochastic by default) or a 16-bit ``state_dtype`` with
    ``rounding="stochastic"``; the count seeds the random bits.

    Args:
      count: int32 scalar, the number of updates taken (saturating at ``2**31 - 1``), the seed of the rounding.
      trace: ``t_k``, a tree like the params, as in :class:`adamlab.TraceState` (8-bit leaves are quantized
        pytree nodes).

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.trace(0.9, state_dtype=jnp.bfloat16, rounding="stochastic")
      >>> tx.init({"w": jnp.zeros(2)})
      CountedTraceState(count=Array(0, dtype=int32), trace={'w': Array([0, 0], dtype=bfloat16)})
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    trace: Any


@functools.partial(jax.jit, inline=True)
def _one_minus_power(decay, count):
    return 1 - decay**count


def bias_correction_term(decay, count: jax.Array) -> jax.Array:
    """The bias-correction divisor ``1 - decay**t`` of an EMA started at zero (``t = count``), in the leaves' precision.

    ::

        bias_correction_term(decay, t) = 1 - decay**t
        m_hat_t = m_t / bias_correction_term(decay, t)      undoes the pull toward 0 of m_0 = 0

    An EMA ``m_t = decay * m_{t-1} + (1 - decay) * x_t`` started at ``m_0 = 0`` is, after ``t`` steps, a
    weighted mean of ``x_1 ... x_t`` whose weights sum to ``1 - decay**t``, not 1; dividing by this term makes
    them sum to 1. It is the divisor of :func:`adamlab.bias_correct`, of ``scale_by_rms(bias_correction=True)``
    and of :func:`adamlab.scale_by_max_rms`, and the function to call in the ``per_step`` of a moment of your
    own written with :func:`adamlab.moment_stage`, which passes ``t`` (1 on the first step).

    Computed with Optax's arithmetic in the widest float enabled (float64 under ``jax_enable_x64``, float32
    otherwise), then rounded to the precision of the leaves it divides: float32 for float32, bfloat16 and
    float16 moments (in bfloat16 ``0.999`` rounds to 1 and the term to 0), float64 for float64 ones. Inside
    :func:`adamlab.moment_stage` (its ``per_step`` and its formula) that precision is the leaf's, so each leaf
    of a mixed float32/float64 tree gets its own; called anywhere else it is float32. So adamlab's Adam is
    bit-identical to ``optax.adam`` with float32 params, and to ``optax.adam`` under x64 with float64 params.
    Compiled even outside `jax.jit`, so that eager and jitted runs agree. Exact at t = 1 (``1 - decay``
    rounded once), exactly 1 once ``decay**t`` underflows; in between ``pow`` carries a relative error of about
    ``eps / (1 - decay**t)`` of the precision it is computed in (float32: 6e-6 at t = 3 for 0.999; float64:
    1e-14).

    Args:
      decay: The EMA's decay rate, a Python float or a scalar array (a traced value works; a float32 array
        is computed in float32). Not checked here: a value in ``[0, 1)`` gives a term in ``(0, 1]``;
        ``decay = 1`` gives 0 and the correction would divide by it. Optax: the ``decay`` of
        `optax.tree.bias_correction`, which divides a moment tree by this same term.
      count: The step ``t``, an int32 scalar array (a Python int works): 1 on the first step, i.e. the count
        after its increment, as ``per_step`` receives it from :func:`adamlab.moment_stage`.

    Returns:
      A scalar array holding ``1 - decay**count``: float32, or float64 inside a moment stage's float64 leaves.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.moments import bias_correction_term
      >>> print(round(float(bias_correction_term(0.9, jnp.int32(1))), 4))
      0.1
      >>> print(round(float(bias_correction_term(0.999, jnp.int32(1000))), 4))
      0.6323
      >>> bias_correction_term(0.999, jnp.int32(1)).dtype
      dtype('float32')
    """
    if not isinstance(decay, jax.Array):
        decay = jnp.asarray(decay, widest_float())
    return scalar(_one_minus_power(decay, count))


def _saturated(v):
    # Only an Inf exceeds the maximum: a NaN stays NaN.
    big = jax.lax.full_like(v, jnp.finfo(v.dtype).max)
    return jax.lax.select(jax.lax.gt(v, big), big, v)


def scale_by_ema(
    decay: float, *, output_decay: float | None = None, state_dtype=None, rounding: str | None = None
) -> GradientTransformation:
    """Exponential moving average of the updates: the first moment of Adam.

    ::

        m_t = decay * m_{t-1} + (1 - decay) * u_t        (m_0 = 0)
        output: m_t
        with output_decay:  output_decay * m_{t-1} + (1 - output_decay) * u_t   (m_t still uses decay)

    Averages the incoming updates over an effective window of about
    ``1 / (1 - decay)`` steps (see :func:`adamlab.effective_window`). Starts at zero, so
    early outputs are biased toward 0: follow with ``bias_correct(decay)`` (:func:`adamlab.bias_correct`).
    It reads only the incoming updates, so it usually opens a chain, after any gradient clipping or coupled
    weight decay. With `output_decay` it is Lion's momentum: the output mixes the current update into the
    *previous* ``m`` with Lion's ``b1``, while ``m`` itself decays with Lion's ``b2`` (:func:`adamlab.lion`
    follows it with :func:`adamlab.scale_by_sign`). The state type (with or without a step count) is decided
    in Python at build time from `state_dtype` and `rounding`.

    Unlike Optax, which has no stand-alone first-moment stage (``optax.ema(decay, debias=False)`` is the
    closest, and it keeps a count), the moment is kept in float32 (or wider) whatever the param dtype unless
    `state_dtype` asks for less, and integer leaves pass through untouched.

    Args:
      decay: The EMA's decay ``b`` in ``[0, 1)`` (below 1 also once rounded to float32); the average spans about
        ``1 / (1 - decay)`` steps. No default. A float32 scalar array works too (e.g. under
        ``optax.inject_hyperparams``). Optax: ``b1`` of `optax.scale_by_adam`, ``decay`` of `optax.ema`;
        PyTorch: ``betas[0]`` of `torch.optim.Adam`.
      output_decay: Default None: the output is ``m_t``. A number in ``[0, 1)``: the output is
        ``output_decay * m_{t-1} + (1 - output_decay) * u_t`` (Lion's interpolation). Optax: ``b1`` of
        `optax.scale_by_lion` (whose ``b2`` is `decay` here).
      state_dtype: Storage dtype of ``m``: ``jnp.bfloat16`` or ``jnp.float16`` (16 bits), ``jnp.int8``
        (8-bit block-wise codes for real float leaves of at least 4096 elements, float32 for smaller ones), or
        a float dtype. Default None: float32, or the param's dtype when wider (complex64 for complex params).
        Arithmetic is always float32 or wider. Optax: ``mu_dtype`` of `optax.scale_by_adam`.
      rounding: How a new ``m`` is rounded into a `state_dtype` narrower than float32: ``"nearest"`` or
        ``"stochastic"`` (unbiased, reproducible, with random bits keyed by the step count, which the state
        then keeps). Default None: ``"stochastic"`` for ``jnp.int8``, ``"nearest"`` otherwise (a 16-bit first
        moment loses little rounded to nearest). Ignored for float32 storage. Optax always rounds to nearest.

    Returns:
      A `GradientTransformation` whose state is an :class:`adamlab.EmaState`, or an
      :class:`adamlab.CountedEmaState` when the rounding is stochastic (8-bit state by default).

    Raises:
      ValueError: If `decay` or `output_decay` is a number outside ``[0, 1)`` (or rounds to 1 in float32), or
        `rounding` is neither ``"nearest"`` nor ``"stochastic"``.
      TypeError: If `decay` or `output_decay` is not a real number or scalar array, or is a bfloat16/float16
        array; or if `state_dtype` is not a float dtype (nor ``jnp.int8``).

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015. Chen et al., *Symbolic Discovery of
      Optimization Algorithms*, NeurIPS 2023 (Lion, for `output_decay`).

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.scale_by_ema(0.9)
      >>> state = tx.init({"w": jnp.zeros(3)})
      >>> updates, state = tx.update({"w": jnp.ones(3)}, state)
      >>> print(updates["w"])
      [0.1 0.1 0.1]
      >>> lion_momentum = adamlab.scale_by_ema(0.99, output_decay=0.9)
      >>> updates, _ = lion_momentum.update({"w": jnp.ones(3)}, lion_momentum.init({"w": jnp.zeros(3)}))
      >>> print(updates["w"])
      [0.1 0.1 0.1]
    """
    _checks.check_decay("decay", decay)
    if output_decay is not None:
        _checks.check_decay("output_decay", output_decay)

    def ema(u, m):
        out = m if output_decay is None else (1 - output_decay) * u + output_decay * m
        m = (1 - decay) * u + decay * m
        return (m if output_decay is None else out), m

    rounding, state_type = countless_storage(state_dtype, rounding, EmaState, CountedEmaState)
    return moment_stage(
        "scale_by_ema",
        state_type,
        ema,
        state_dtype=state_dtype,
        rounding=rounding,
        recurrence={"moment": lambda u: (decay, 1 - decay, u)},
    )


class SlowMomentState(NamedTuple):
    """State of :func:`adamlab.add_slow_moment`: AdEMAMix's slow EMA ``m2`` and the step count.

    Args:
      count: int32 scalar, the number of updates taken (saturating at ``2**31 - 1``); schedules of ``decay`` and
        ``alpha`` are evaluated at its value before the update (0 on the first step), like Optax's ``count_m2``.
      slow_moment: ``m2_t``, the slow EMA of the gradient: a tree like the params, float32 (or the param's wider
        dtype, or the ``state_dtype`` asked for), ``(0,)`` placeholders for integer and bool leaves.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> adamlab.add_slow_moment(0.9999, 5.0).init({"w": jnp.zeros(2)})
      SlowMomentState(count=Array(0, dtype=int32), slow_moment={'w': Array([0., 0.], dtype=float32)})
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    slow_moment: Any  # AdEMAMix's m2


def add_slow_moment(
    decay: ScalarOrSchedule = 0.9999, alpha: ScalarOrSchedule = 5.0, *, state_dtype=None
) -> GradientTransformation:
    """AdEMAMix's slow EMA of the gradient, added to the updates (Pagliardini et al., ICLR 2025).

    ::

        m2_t   = decay * m2_{t-1} + (1 - decay) * g_t        (m2_0 = 0, not bias-corrected)
        output = u_t + alpha * m2_t

    ``g`` is the gradient :func:`adamlab.chain` hands to every stage, not the incoming updates: in
    :func:`adamlab.ademamix` the stage stands after ``scale_by_ema(b1), bias_correct(b1)``, so ``u_t`` is the
    fast, corrected ``m1_hat`` and the sum is then divided by ``sqrt(v_hat) + eps`` by :func:`adamlab.scale_by_rms`.

    `decay` and `alpha` are numbers or schedules of the steps already taken (see
    :func:`adamlab.schedules.ademamix_b3`, :func:`adamlab.schedules.ademamix_alpha`): a slow EMA started at zero
    with a large `alpha` would swamp early steps.

    Args:
      decay: The slow EMA's decay, a number in ``[0, 1)`` or a schedule ``step -> decay`` called with the
        number of steps already taken (0 on the first update). Default 0.9999 (a window of about 10,000 steps).
        Optax: ``b3`` of `optax.contrib.ademamix` / `optax.contrib.scale_by_ademamix`.
      alpha: The weight of the slow EMA in the sum, a number ``>= 0`` or a schedule of the steps already taken.
        Default 5.0 (as `optax.contrib.ademamix`; `optax.contrib.scale_by_ademamix` defaults to 6.0). Optax:
        ``alpha``.
      state_dtype: Storage dtype of ``m2`` (``jnp.bfloat16``, ``jnp.float16``, ``jnp.int8`` for 8-bit
        block-wise codes), always rounded to nearest: this stage has no ``rounding`` argument. Default None:
        float32, or the param's dtype when wider.
        Optax: ``mu_dtype`` of `optax.contrib.ademamix` (which also sets the fast EMA's dtype).

    Returns:
      A `GradientTransformation` whose state is a :class:`adamlab.SlowMomentState`. Its ``update`` needs the
      gradient: inside :func:`adamlab.chain` it gets it; called alone it needs
      ``update(updates, state, gradient=grads)``.

    Raises:
      ValueError: If a numeric `decay` lies outside ``[0, 1)`` or a numeric `alpha` is negative or not finite;
        at update time, if no gradient is given (outside an adamlab chain, without ``gradient=``).
      TypeError: If `decay` or `alpha` is neither a number, a scalar array nor a callable, or `state_dtype` is
        not a float dtype.

    References:
      Pagliardini, Ablin & Grangier, *The AdEMAMix Optimizer: Better, Faster, Older*, ICLR 2025.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.chain(adamlab.add_slow_moment(decay=0.5, alpha=2.0))
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> for _ in range(2):
      ...     updates, state = tx.update({"w": jnp.ones(2)}, state)
      ...     print(updates["w"], state[0].slow_moment["w"])
      [2. 2.] [0.5 0.5]
      [2.5 2.5] [0.75 0.75]
    """
    for name, value in (("decay", decay), ("alpha", alpha)):
        _checks.check_schedule(name, value)
        if not callable(value):
            (_checks.check_decay if name == "decay" else _checks.check_nonnegative)(name, value)

    def per_step(t):
        b3 = scalar(decay(t - 1)) if callable(decay) else decay
        a = scalar(alpha(t - 1)) if callable(alpha) else alpha

        def slow(u, g, m2):
            m2 = (1 - b3) * g + b3 * m2
            return u + a * m2, m2

        return slow

    return moment_stage(
        "add_slow_moment", SlowMomentState, per_step=per_step, reads_gradient=True, state_dtype=state_dtype
    )


def bias_correct(
    decay: float, *, nesterov: bool = False, momentum_decay: float | None = None
) -> GradientTransformation:
    """Bias correction: ``u_t / (1 - decay**t)``, t counting from 1.

    ::

        output = u_t / (1 - decay**t)
        with nesterov:  decay * u_t / (1 - decay**(t+1)) + (1 - decay) * g_t / (1 - decay**t)

        with nesterov and momentum_decay psi (Dozat's momentum schedule, PyTorch's NAdam):
        mu_t   = decay * (1 - 0.5 * 0.96**(t * psi)),    P_t = mu_1 * ... * mu_t
        output = mu_{t+1} * u_t / (1 - P_t * mu_{t+1}) + (1 - mu_t) * g_t / (1 - P_t)

    With ``psi = inf`` ``mu_t = decay`` and ``P_t = decay**t``: the line above it, which is what the default
    (None, or ``math.inf``) computes.

    Undoes the pull toward zero of an EMA started at zero with the same
    `decay`: place it right after ``scale_by_ema(decay)`` (:func:`adamlab.scale_by_ema`). The step counter is
    int32 and saturates at 2**31 - 1. With
    `nesterov` (NAdam; Dozat, 2016) the corrected moment looks one step ahead,
    mixing in the gradient ``g`` that :func:`adamlab.chain` hands to every stage. The divisor is
    :func:`adamlab.moments.bias_correction_term`, in float32 for float32 and narrower updates, float64 for
    float64 ones. Optax folds this
    step into `optax.scale_by_adam`; here it is a stage of its own, so that any EMA can be corrected.

    Args:
      decay: The decay of the EMA being corrected, in ``[0, 1)``: the `decay` of the preceding
        :func:`adamlab.scale_by_ema`. No default. Optax: ``b1`` of `optax.scale_by_adam`; PyTorch: ``betas[0]``
        of `torch.optim.Adam` (its ``bias_correction1``).
      nesterov: Default False. True: NAdam's look-ahead formula above (Optax: ``nesterov=True`` of
        `optax.scale_by_adam`, i.e. `optax.nadam`).
      momentum_decay: Keyword-only, with `nesterov`: the rate ``psi > 0`` of the momentum schedule above,
        which warms the momentum up from ``decay / 2`` toward `decay`. Default None (or ``math.inf``): no
        schedule (Optax's NAdam, with a `CountState`); an array (as ``optax.inject_hyperparams`` passes) takes
        the schedule. PyTorch: ``momentum_decay`` of `torch.optim.NAdam`, whose
        default is ``4e-3``.

    Returns:
      A `GradientTransformation` whose state is a :class:`adamlab.CountState`, or a
      :class:`adamlab.MomentumScheduleState` with a finite `momentum_decay`. With `nesterov` its ``update``
      needs the gradient: inside :func:`adamlab.chain` it gets it; called alone it needs
      ``update(updates, state, gradient=grads)``.

    Raises:
      ValueError: If `decay` is a number outside ``[0, 1)`` (or rounds to 1 in float32); if `momentum_decay`
        is not a positive number, or is finite without `nesterov`; at update time, with `nesterov`, if no
        gradient is given.
      TypeError: If `decay` is not a real number or scalar array, or is a bfloat16/float16 array.

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015. Dozat, *Incorporating Nesterov
      Momentum into Adam*, ICLR 2016 workshop (NAdam).

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.chain(adamlab.scale_by_ema(0.9), adamlab.bias_correct(0.9))
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> updates, state = tx.update({"w": jnp.ones(2)}, state)
      >>> print(jnp.round(updates["w"], 4))  # m_1 = 0.1, corrected by 1 - 0.9
      [1. 1.]
      >>> state[1]
      CountState(count=Array(1, dtype=int32))
    """
    _checks.check_decay("decay", decay)
    if momentum_decay is not None:
        _checks.check_positive("momentum_decay", momentum_decay)
    if not (momentum_decay is None or (_checks.is_number(momentum_decay) and momentum_decay == math.inf)):
        if not nesterov:
            raise ValueError(
                f"bias_correct(momentum_decay={momentum_decay!r}) schedules the Nesterov look-ahead's momentum: "
                "pass nesterov=True too (PyTorch's NAdam)"
            )
        return _momentum_schedule(decay, momentum_decay)

    def init(params):
        del params
        return CountState(jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        del params, extra
        count = increment(state.count)
        bc = per_precision(lambda: bias_correction_term(decay, count))
        if not nesterov:
            return leafwise(lambda u: upcast(u)[0] / bc(u), updates), CountState(count)
        require_gradient(
            "bias_correct(nesterov=True)",
            updates,
            gradient,
            "adamlab.chain(scale_by_ema(...), bias_correct(..., nesterov=True), ...)",
        )
        ahead = per_precision(lambda: bias_correction_term(decay, increment(count)))
        out = leafwise(
            lambda u, g: decay * (upcast(u)[0] / ahead(u)) + (1 - decay) * (upcast(g)[0] / bc(u)), updates, gradient
        )
        return out, CountState(count)

    return stage("bias_correct", init, update)


def _momentum_schedule(decay: float, psi: float) -> GradientTransformation:
    """NAdam's look-ahead with Dozat's schedule ``mu_t = decay * (1 - 0.5 * 0.96**(t * psi))`` (`bias_correct`)."""

    def mu(t):
        return decay * (1 - 0.5 * 0.96 ** (t.astype(widest_float()) * psi))

    def init(params):
        del params
        return MomentumScheduleState(jnp.zeros((), jnp.int32), jnp.ones((), widest_float()))

    def update(updates, state, params=None, *, gradient=None, **extra):
        del params, extra
        require_gradient(
            "bias_correct(nesterov=True)",
            updates,
            gradient,
            "adamlab.chain(scale_by_ema(...), bias_correct(..., nesterov=True), ...)",
        )
        count = increment(state.count)
        mu_t, mu_next = mu(count), mu(increment(count))
        product = state.momentum_product * mu_t
        ahead = per_precision(lambda: scalar(mu_next / (1 - product * mu_next)))
        now = per_precision(lambda: scalar((1 - mu_t) / (1 - product)))
        out = leafwise(lambda u, g: ahead(u) * upcast(u)[0] + now(u) * upcast(g)[0], updates, gradient)
        return out, MomentumScheduleState(count, product)

    return stage("bias_correct", init, update)


def scale_by_rms(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = False,
    bias_correction: bool = False,
    *,
    eps_root: float = 0.0,
    centered: bool = False,
    state_dtype=None,
    rounding: str = "stochastic",
    saturate: bool = False,
) -> GradientTransformation:
    """Divides the updates by the root mean square of the *gradient*: the second moment of Adam and RMSProp.

    ::

        v_t    = decay * v_{t-1} + (1 - decay) * |g_t|**2        (v_0 = initial_scale)
        v_hat  = v_t / (1 - decay**t)       with bias_correction, else v_t
        output = u_t / (sqrt(v_hat + eps_root) + eps)            (eps_in_sqrt=False, the default)
        output = u_t / sqrt(v_hat + eps)                         (eps_in_sqrt=True, Optax's default)
        centered:  mean_t = decay * mean_{t-1} + (1 - decay) * g_t
                   mean_hat = mean_t / (1 - decay**t)   with bias_correction, else mean_t
                   v_hat <- max(v_hat - |mean_hat|**2, 0)                  (the variance)

    With `centered`, ``v_hat`` becomes the variance (centered RMSProp). ``v`` starts at `initial_scale`.

    ``g`` is the gradient :func:`adamlab.chain` hands over, not the previous stage's output (in Adam, the first
    moment): ``chain(scale_by_ema(b1), bias_correct(b1), scale_by_rms(b2, eps, bias_correction=True))`` is
    Adam's direction, and ``scale_by_rms`` alone is RMSProp's. ``eps = 0`` and a zero gradient give 0, not 0/0.
    A bfloat16 `state_dtype` is rounded
    stochastically by default: rounded to nearest, ``v`` stops decaying once ``decay > 0.996``. `saturate`:
    ``v`` stops at the float maximum when ``g**2`` overflows (``|g| > 1.8e19``) instead of becoming Inf.
    Which moments are kept (``gradient_mean`` only when `centered`) and whether ``eps_root`` is added are decided
    in Python at build time.

    Args:
      decay: The decay of ``v`` in ``[0, 1)`` (below 1 also in float32). Default 0.9. Optax: ``decay`` of
        `optax.scale_by_rms` (``b2`` of `optax.scale_by_adam`); PyTorch: ``alpha`` of `torch.optim.RMSprop`
        (default 0.99 there), ``betas[1]`` of `torch.optim.Adam`.
      eps: The small constant of the denominator, ``>= 0``, added outside the square root, or inside it with
        `eps_in_sqrt`. Default 1e-8. Optax: ``eps``; PyTorch: ``eps`` (outside the root, as here by default).
      initial_scale: The start value of ``v``, ``>= 0``. Default 0.0. Optax: ``initial_scale``.
      eps_in_sqrt: Default False: ``u / (sqrt(v_hat + eps_root) + eps)``, as Adam and PyTorch's RMSprop.
        True: ``u / sqrt(v_hat + eps)`` (``eps_root`` is then ignored). Optax: ``eps_in_sqrt``, whose default
        is True: pass ``eps_in_sqrt=True`` to reproduce `optax.scale_by_rms` and `optax.rmsprop`.
      bias_correction: Default False (RMSProp). True: divide ``v`` by ``1 - decay**t`` (Adam). Optax:
        ``bias_correction``.
      eps_root: A constant ``>= 0`` added to ``v_hat`` inside the square root (used when `eps_in_sqrt` is
        False), e.g. to differentiate through the update. Default 0.0. Optax: ``eps_root`` of
        `optax.scale_by_adam`.
      centered: Default False. True: centered RMSProp, dividing by the root of the variance
        ``v_hat - |mean|**2`` (clipped at 0), which keeps an EMA of ``g`` in ``gradient_mean``. Optax:
        ``centered`` of `optax.rmsprop` (`optax.scale_by_stddev`, which does not clip at 0); PyTorch:
        ``centered`` of `torch.optim.RMSprop`.
      state_dtype: Storage dtype of the moments: ``jnp.bfloat16``, ``jnp.int8`` (8-bit block-wise codes for
        real float leaves of at least 4096 elements; not with `centered`), or a float dtype with float32's
        exponent range (``jnp.float16`` is refused: squared gradients overflow it). Default None: float32, or
        the param's real dtype when wider. Arithmetic is always float32 or wider. Optax has no such option
        (``v`` takes the param's dtype).
      rounding: How a new ``v`` is rounded into a `state_dtype` narrower than float32: ``"stochastic"``
        (default: unbiased, reproducible, keyed by the step count) or ``"nearest"``. Ignored for float32
        storage. Optax rounds to nearest.
      saturate: Default False. True: a ``v`` that overflows to Inf is held at the float maximum, so that the
        weight recovers as ``v`` decays instead of stepping by 0 forever (one select per element). No Optax
        or PyTorch counterpart.

    Returns:
      A `GradientTransformation` whose state is an :class:`adamlab.RmsState` (``gradient_mean = ()`` unless
      `centered`). Its ``update`` needs the gradient: inside :func:`adamlab.chain` it gets it; called alone it
      needs ``update(updates, state, gradient=grads)``.

    Raises:
      ValueError: If `decay` is a number outside ``[0, 1)`` (or rounds to 1 in float32); if `eps`, `eps_root`
        or `initial_scale` is negative or not finite; if `centered` is combined with ``state_dtype=jnp.int8``;
        if `state_dtype` lacks float32's exponent range (``jnp.float16``); if `rounding` is neither
        ``"stochastic"`` nor ``"nearest"``; at update time, if no gradient is given.
      TypeError: If a hyperparameter is not a real number or scalar array (or `decay` is a 16-bit array), or
        `state_dtype` is not a float dtype.

    References:
      Tieleman & Hinton, *Lecture 6.5 - RMSProp*, COURSERA: Neural Networks for Machine Learning, 2012.
      Graves, *Generating Sequences With Recurrent Neural Networks*, arXiv 2013 (centered RMSProp).
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> g = {"w": jnp.array([1.0, -2.0])}
      >>> tx = adamlab.scale_by_rms(0.9)
      >>> state = tx.init(g)
      >>> updates, state = tx.update(g, state, gradient=g)  # alone: the gradient is passed by hand
      >>> print(updates["w"], state.second_moment["w"])  # v = 0.1 * g**2, so u / sqrt(v) = sign(g) * sqrt(10)
      [ 3.1623 -3.1623] [0.1 0.4]
      >>> adam_rms = adamlab.chain(adamlab.scale_by_rms(0.999, bias_correction=True))
      >>> updates, _ = adam_rms.update(g, adam_rms.init(g))  # the chain hands the gradient over
      >>> print(jnp.round(updates["w"], 4))
      [ 1. -1.]
    """
    _checks.check_decay("decay", decay)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("eps_root", eps_root)
    _checks.check_nonnegative("initial_scale", initial_scale)
    zero_guard = not _checks.known_positive(eps)  # only eps = 0 (or a traced eps) can divide 0 by 0
    if centered and check_state_dtype(state_dtype) == INT8:
        raise ValueError(
            "scale_by_rms(centered=True) cannot keep its moments in 8 bits: the variance v - mean**2 is the "
            "difference of two moments that 8-bit codes hold to a few percent, and it cancels; use "
            "state_dtype=jnp.bfloat16 (or float32) for centered RMSProp"
        )

    # The EMA's input is |g|**2: its block maximum, for 8-bit scales, is that of |g| squared (the same reduction
    # as the first moment's), held at float32's largest like the input where saturate is set.
    top_square = (lambda t: _saturated(t * t)) if saturate else (lambda t: t * t)

    def per_step(t):
        bc = bias_correction_term(decay, t) if bias_correction else 1

        def rms(u, g, v, *mean):
            v = (1 - decay) * abs_sq(g) + decay * v
            v = _saturated(v) if saturate else v
            v_hat = v / bc if bias_correction else v
            if centered:
                mean = ((1 - decay) * g + decay * mean[0],)
                v_hat = jnp.maximum(v_hat - abs_sq(mean[0] / bc), 0)  # rounding can make it negative
            if not (eps_in_sqrt or _checks.known_zero(eps_root)):
                v_hat = v_hat + eps_root
            out = u * jax.lax.rsqrt(v_hat + eps) if eps_in_sqrt else u / (jnp.sqrt(v_hat) + eps)
            return (jnp.where(v_hat + eps == 0, 0, out) if zero_guard else out), v, *mean

        return rms

    return moment_stage(
        "scale_by_rms",
        RmsState,
        per_step=per_step,
        reads_gradient=True,
        state_dtype=state_dtype,
        holds_squares=True,
        rounding=rounding,
        absent=() if centered else ("gradient_mean",),
        real=("second_moment",),
        initial={"second_moment": initial_scale},
        recurrence={"second_moment": lambda u, g: (decay, 1 - decay, g, top_square)},
    )


class MaxRmsState(NamedTuple):
    """State of :func:`adamlab.scale_by_max_rms` (AMSGrad): the second moment and its running maximum.

    Args:
      count: int32 scalar, the number of updates taken (saturating at ``2**31 - 1``): the ``t`` of the bias
        correction and the seed of stochastic rounding.
      second_moment: ``v_t``, the EMA of the gradient's ``|g|**2``: a tree like the params, real float32 (or the
        ``state_dtype`` asked for), ``(0,)`` placeholders for integer and bool leaves.
      max_second_moment: ``v_max``, the running maximum AMSGrad divides by, a tree like ``second_moment``: the
        maximum of the bias-corrected ``v_hat`` (``max_of="bias_corrected"``, Optax's ``nu_max``) or of the raw
        ``v`` (``max_of="raw"`` or without bias correction, PyTorch's ``max_exp_avg_sq``).

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> adamlab.scale_by_max_rms(0.999).init({"w": jnp.zeros(2)})
      MaxRmsState(count=Array(0, dtype=int32), second_moment={'w': Array([0., 0.], dtype=float32)},
                  max_second_moment={'w': Array([0., 0.], dtype=float32)})
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    second_moment: Any  # v
    max_second_moment: Any  # the running maximum AMSGrad divides by


def scale_by_max_rms(
    decay: float = 0.999,
    eps: float = 1e-8,
    *,
    eps_root: float = 0.0,
    bias_correction: bool = True,
    max_of: str = "bias_corrected",
    state_dtype=None,
    rounding: str = "stochastic",
) -> GradientTransformation:
    """AMSGrad's denominator: divides by the root of the running maximum of the second moment.

    ``v_t = decay * v_{t-1} + (1 - decay) * g_t**2``, then the output ``u_t / (sqrt(v_max + eps_root) + eps)``::

        max_of="bias_corrected" (Optax):  v_max = max(v_max, v_t / (1 - decay**t))
        max_of="raw" (PyTorch):           v_max = max(v_max, v_t), divided by 1 - decay**t of the current step
        bias_correction=False (Reddi et al.'s paper): v_max = max(v_max, v_t), never corrected

    ``g`` is the gradient :func:`adamlab.chain` hands over (``g_t**2`` means ``|g_t|**2`` for complex
    params); ``u_t`` the incoming updates, in :func:`adamlab.amsgrad` the bias-corrected first moment. Because
    ``v_max`` never decreases, a weight whose gradient shrinks keeps a large denominator: its effective step
    size ``1 / sqrt(v_max)`` never grows, the property AMSGrad's convergence proof rests on. The two ``max_of``
    orders differ when the maximum was reached early, while ``1 - decay**t`` was small: the corrected maximum
    keeps that early ``v_hat``, the raw one the smaller raw ``v``.

    Args:
      decay: The decay of ``v`` in ``[0, 1)``. Default 0.999. Optax: ``b2`` of `optax.scale_by_amsgrad` /
        `optax.amsgrad`; PyTorch: ``betas[1]`` of ``torch.optim.Adam(amsgrad=True)``.
      eps: Added to the denominator outside the square root, ``>= 0``. Default 1e-8. Optax and PyTorch:
        ``eps``.
      eps_root: Added to ``v_max`` (corrected, for ``max_of="raw"``) inside the square root, ``>= 0``. Default
        0.0. Optax: ``eps_root``.
      bias_correction: Default True: ``v`` is corrected by ``1 - decay**t`` as `max_of` says. False: the paper's
        uncorrected maximum (then `max_of` changes nothing). Optax: ``bias_correction_nu``.
      max_of: ``"bias_corrected"`` (default, Optax's order: the maximum of the corrected ``v_hat``) or ``"raw"``
        (PyTorch's order: the maximum of the raw ``v``, corrected afterwards by the current step's term).
      state_dtype: Storage dtype of ``v`` and ``v_max``: ``jnp.bfloat16``, ``jnp.int8`` (8-bit block-wise
        codes) or a float dtype with float32's exponent range (``jnp.float16`` is refused). Default None:
        float32, or the param's real dtype when wider. Optax keeps them in the param's dtype.
      rounding: ``"stochastic"`` (default) or ``"nearest"``: how new moments are rounded into a `state_dtype`
        narrower than float32; ignored for float32 storage.

    Returns:
      A `GradientTransformation` whose state is a :class:`adamlab.MaxRmsState`. Its ``update`` needs the
      gradient: inside :func:`adamlab.chain` it gets it; called alone it needs
      ``update(updates, state, gradient=grads)``.

    Raises:
      ValueError: If `decay` is a number outside ``[0, 1)``; if `eps` or `eps_root` is negative or not finite;
        if `max_of` is neither ``"bias_corrected"`` nor ``"raw"``; if `rounding` is neither ``"stochastic"`` nor
        ``"nearest"``; if `state_dtype` lacks float32's exponent range; at update time, if no gradient is
        given.
      TypeError: If a hyperparameter is not a real number or scalar array, or `state_dtype` is not a float
        dtype.

    References:
      Reddi, Kale & Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.chain(adamlab.scale_by_max_rms(0.5, bias_correction=False))
      >>> state = tx.init({"w": jnp.zeros(1)})
      >>> for g in (1.0, 0.1):  # the gradient shrinks: v decays, v_max stays
      ...     updates, state = tx.update({"w": jnp.array([g])}, state)
      ...     print(updates["w"], state[0].second_moment["w"], state[0].max_second_moment["w"])
      [1.4142] [0.5] [0.5]
      [0.1414] [0.255] [0.5]
    """
    _checks.check_decay("decay", decay)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("eps_root", eps_root)
    if max_of not in ("bias_corrected", "raw"):
        raise ValueError(f"max_of must be 'bias_corrected' (Optax's AMSGrad) or 'raw' (PyTorch's), got {max_of!r}")
    raw = max_of == "raw" or not bias_correction

    def per_step(t):
        bc = bias_correction_term(decay, t) if bias_correction else 1

        def amsgrad(u, g, v, v_max):
            v = (1 - decay) * abs_sq(g) + decay * v
            v_max = jnp.maximum(v_max, v if raw else v / bc)
            v_hat = v_max / bc if raw and bias_correction else v_max
            return u / (jnp.sqrt(v_hat + eps_root) + eps), v, v_max

        return amsgrad

    return moment_stage(
        "scale_by_max_rms",
        MaxRmsState,
        per_step=per_step,
        reads_gradient=True,
        state_dtype=state_dtype,
        holds_squares=True,
        rounding=rounding,
        real=("second_moment", "max_second_moment"),
    )


def scale_by_atan2_rms(
    decay: float = 0.999,
    a: float = 1.27,
    b: float = 1.0,
    *,
    bias_correction: bool = True,
    state_dtype=None,
    rounding: str = "stochastic",
) -> GradientTransformation:
    """Adam-atan2's direction (Everett et al., ICML 2024): ``a * atan2(u_t, b * sqrt(v_hat_t))`` in place of
    ``u_t / (sqrt(v_hat_t) + eps)``: bounded by ``a * pi / 2``, no eps, and 0 (not 0/0) for a zero gradient.

    ::

        v_t    = decay * v_{t-1} + (1 - decay) * |g_t|**2
        v_hat  = v_t / (1 - decay**t)      with bias_correction, else v_t
        output = a * atan2(u_t, b * sqrt(v_hat))

    ``v`` as in :func:`adamlab.scale_by_rms`: the EMA of the gradient's ``|g|**2``, bias-corrected with
    `bias_correction`. For ``|u| << b * sqrt(v_hat)`` the output is ``(a / b) * u / sqrt(v_hat)``, Adam's
    direction scaled by ``a / b``; a coordinate whose ``v`` is tiny moves by at most ``a * pi / 2`` instead of
    ``u / eps``. :func:`adamlab.adam_atan2` places it where Adam has ``scale_by_rms``.

    Args:
      decay: The decay of ``v`` in ``[0, 1)``. Default 0.999. Optax has no Adam-atan2; PyTorch neither. The
        ``b2`` of Adam.
      a: The output scale, ``>= 0``; the output lies in ``[-a * pi / 2, a * pi / 2]``. Default 1.27, the
        paper's value, which makes the update's scale close to Adam's.
      b: The scale of ``sqrt(v_hat)`` inside ``atan2``, ``>= 0``. Default 1.0. ``b = 0`` gives
        ``a * pi / 2 * sign(u)``.
      bias_correction: Default True: ``v`` is divided by ``1 - decay**t``. False: raw ``v``.
      state_dtype: Storage dtype of ``v``: ``jnp.bfloat16``, ``jnp.int8`` (8-bit block-wise codes), or a float
        dtype with float32's exponent range (``jnp.float16`` is refused). Default None: float32, or the param's
        real dtype when wider.
      rounding: ``"stochastic"`` (default) or ``"nearest"``: how a new ``v`` is rounded into a `state_dtype`
        narrower than float32; ignored for float32 storage.

    Returns:
      A `GradientTransformation` whose state is an :class:`adamlab.RmsState` (``gradient_mean = ()``). Its
      ``update`` needs the gradient: inside :func:`adamlab.chain` it gets it; called alone it needs
      ``update(updates, state, gradient=grads)``.

    Raises:
      ValueError: If `decay` is a number outside ``[0, 1)``; if `a` or `b` is negative or not finite; if
        `rounding` is neither ``"stochastic"`` nor ``"nearest"``; if `state_dtype` lacks float32's exponent
        range; at update time, if no gradient is given.
      TypeError: If a hyperparameter is not a real number or scalar array, or `state_dtype` is not a float
        dtype.

    References:
      Everett et al., *Scaling Exponents Across Parameterizations and Optimizers*, ICML 2024.

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.chain(adamlab.scale_by_atan2_rms(0.999))
      >>> g = {"w": jnp.array([3.0, -0.5, 0.0])}
      >>> updates, _ = tx.update(g, tx.init(g))  # v_hat = g**2: atan2(g, |g|) = +-pi/4, and 0 for g = 0
      >>> print(updates["w"])
      [ 0.9975 -0.9975  0.    ]
    """
    _checks.check_decay("decay", decay)
    _checks.check_nonnegative("a", a)
    _checks.check_nonnegative("b", b)

    def per_step(t):
        bc = bias_correction_term(decay, t) if bias_correction else 1

        def atan2(u, g, v):
            v = (1 - decay) * abs_sq(g) + decay * v
            return a * jnp.arctan2(u, b * jnp.sqrt(v / bc)), v

        return atan2

    return moment_stage(
        "scale_by_atan2_rms",
        RmsState,
        per_step=per_step,
        reads_gradient=True,
        state_dtype=state_dtype,
        holds_squares=True,
        rounding=rounding,
        absent=("gradient_mean",),
        real=("second_moment",),
    )


def trace(
    decay: float,
    nesterov: bool = False,
    accumulator_dtype=None,
    *,
    state_dtype=None,
    rounding: str | None = None,
    dampening: float | None = None,
) -> GradientTransformation:
    """Heavy-ball momentum: ``t_k = u_k + decay * t_{k-1}``; outputs ``t_k``, or ``u_k + decay * t_k`` with
    `nesterov` (look-ahead).

    ::

        t_k    = u_k + decay * t_{k-1}        (t_0 = 0)
        output = t_k,  or  u_k + decay * t_k  with nesterov

        with dampening d (PyTorch's SGD):
        t_1    = u_1                          the first step is not damped
        t_k    = (1 - d) * u_k + decay * t_{k-1}

    Unlike :func:`adamlab.scale_by_ema` the input is not scaled by ``1 - decay``: on a constant gradient the step
    grows to ``u / (1 - decay)``; ``decay=1`` is the running sum of the updates. `accumulator_dtype` is Optax's
    name for `state_dtype`. Same arguments, in the same order, and same results as `optax.trace`;
    :func:`adamlab.sgd` uses it for ``momentum``. The state type (with or without a step count) is decided in
    Python at build time from `state_dtype` and `rounding`.

    Args:
      decay: The momentum coefficient in ``[0, 1]`` (1 allowed: the running sum). No default. Optax: ``decay``
        of `optax.trace` (``momentum`` of `optax.sgd`); PyTorch: ``momentum`` of `torch.optim.SGD` (with
        ``dampening=0``, its default).
      nesterov: Default False. True: Nesterov's look-ahead output ``u_k + decay * t_k``. Optax: ``nesterov``;
        PyTorch: ``nesterov`` of `torch.optim.SGD` (the same formula).
      accumulator_dtype: Optax's name for `state_dtype`; give one of the two (both only if they agree). Default
        None.
      state_dtype: Storage dtype of the trace: ``jnp.bfloat16``, ``jnp.float16``, ``jnp.int8`` (8-bit
        block-wise codes for real float leaves of at least 4096 elements) or a float dtype. Default None:
        float32, or the param's dtype when wider (Optax infers the params' dtype instead). Arithmetic is
        always float32 or wider.
      rounding: How a new trace is rounded into a `state_dtype` narrower than float32: ``"nearest"`` or
        ``"stochastic"`` (unbiased, keyed by the step count, which the state then keeps). Default None:
        ``"stochastic"`` for ``jnp.int8``, ``"nearest"`` otherwise. Ignored for float32 storage.
      dampening: Keyword-only. The share ``d`` in ``[0, 1]`` of each update held back from the trace after the
        first step, PyTorch's convention: the first step sets ``t_1 = u_1`` undamped, as
        ``torch.optim.SGD(dampening=d)`` starts its buffer at the first gradient. Default None (or 0): no
        dampening, Optax's trace, with no step count. Not with
        `nesterov` (PyTorch refuses the pair too). PyTorch: ``dampening``.

    Returns:
      A `GradientTransformation` whose state is an :class:`adamlab.TraceState`, or an
      :class:`adamlab.CountedTraceState` when the rounding is stochastic (8-bit state by default) or there is
      a `dampening` (its first step is told apart by the count).

    Raises:
      ValueError: If `decay` or `dampening` is a number outside ``[0, 1]``; if `dampening` is not 0 with
        `nesterov`; if `accumulator_dtype` and `state_dtype` are both given and differ; if `rounding` is
        neither ``"nearest"`` nor ``"stochastic"``.
      TypeError: If `decay` is not a real number or scalar array (or is a 16-bit array), or the storage dtype
        is not a float dtype.

    References:
      Polyak, *Some methods of speeding up the convergence of iteration methods*, USSR Computational
      Mathematics and Mathematical Physics, 1964. Sutskever et al., *On the importance of initialization and
      momentum in deep learning*, ICML 2013 (Nesterov momentum).

    Example:
      >>> import jax.numpy as jnp
      >>> import adamlab
      >>> tx = adamlab.trace(0.5)
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> for _ in range(3):  # a constant update: 1, 1.5, 1.75, ... -> 1 / (1 - 0.5)
      ...     updates, state = tx.update({"w": jnp.ones(2)}, state)
      ...     print(updates["w"])
      [1. 1.]
      [1.5 1.5]
      [1.75 1.75]
    """
    _checks.check_decay("decay", decay, one_allowed=True)
    if dampening is not None:
        _checks.check_decay("dampening", dampening, one_allowed=True)
    state_dtype = _one_dtype(accumulator_dtype, state_dtype, "accumulator_dtype")

    def momentum(u, t):
        t = u + decay * t
        return (u + decay * t if nesterov else t), t

    if dampening is None or _checks.known_zero(dampening):
        rounding, state_type = countless_storage(state_dtype, rounding, TraceState, CountedTraceState)
        return moment_stage("trace", state_type, momentum, state_dtype=state_dtype, rounding=rounding)
    if nesterov:
        raise ValueError(
            f"trace(nesterov=True) with dampening={dampening!r}: Nesterov momentum is defined without dampening "
            "(torch.optim.SGD refuses the pair too); pass dampening=0"
        )

    def per_step(k):
        kept = scalar(jnp.where(k == 1, 1.0, 1 - dampening))  # t_1 = u_1: torch's buffer starts undamped

        def damped(u, t):
            t = kept * u + decay * t
            return t, t

        return damped

    rounding, _ = countless_storage(state_dtype, rounding, TraceState, CountedTraceState)
    return moment_stage("trace", CountedTraceState, per_step=per_step, state_dtype=state_dtype, rounding=rounding)


def _one_dtype(optax_name_value, state_dtype, optax_name: str):
    if (
        optax_name_value is not None
        and state_dtype is not None
        and jnp.dtype(optax_name_value) != jnp.dtype(state_dtype)
    ):
        raise ValueError(f"{optax_name}={optax_name_value} and state_dtype={state_dtype} disagree: give one of them")
    return state_dtype if optax_name_value is None else optax_name_value


def effective_window(beta: float) -> float:
    """``1 / (1 - beta)``: roughly how many recent steps an EMA with decay `beta` averages.

    The weights ``(1 - beta) * beta**k`` of an EMA's past inputs sum to 1 and have mean age ``beta / (1 - beta)``;
    ``1 / (1 - beta)`` is the usual rule of thumb for its window: 10 steps for 0.9, 1000 for 0.999. A plain
    Python computation, for choosing hyperparameters.

    Args:
      beta: An EMA's decay rate in ``[0, 1)``, e.g. the `decay` of :func:`adamlab.scale_by_ema` (Adam's ``b1``)
        or of :func:`adamlab.scale_by_rms` (``b2``).

    Returns:
      The window length in steps, a Python float ``>= 1``.

    Raises:
      ValueError: If `beta` lies outside ``[0, 1)`` (or rounds to 1 in float32).
      TypeError: If `beta` is not a real number.

    Example:
      >>> import adamlab
      >>> print(round(adamlab.effective_window(0.9), 4), round(adamlab.effective_window(0.999), 4))
      10.0 1000.0
    """
    _checks.check_decay("beta", beta)
    return 1.0 / (1.0 - beta)


def half_life(beta: float) -> float:
    """``log(0.5) / log(beta)``: steps after which a gradient's weight in the EMA has halved.

    A gradient's weight in an EMA with decay ``beta`` is multiplied by ``beta`` each step, so it halves after
    ``h`` steps with ``beta**h = 0.5``. :func:`adamlab.schedules.ademamix_b3` ramps this half-life linearly.

    Args:
      beta: An EMA's decay rate in ``[0, 1)``; 0 forgets at once (half-life 0).

    Returns:
      The half-life in steps, a Python float ``>= 0`` (6.58 for 0.9, 692.8 for 0.999).

    Raises:
      ValueError: If `beta` lies outside ``[0, 1)`` (or rounds to 1 in float32).
      TypeError: If `beta` is not a real number.

    Example:
      >>> import adamlab
      >>> print(round(adamlab.half_life(0.9), 4), round(adamlab.half_life(0.999), 1))
      6.5788 692.8
    """
    _checks.check_decay("beta", beta)
    if beta == 0.0:
        return 0.0
    return math.log(0.5) / math.log(beta)


__all__ = [
    "CountState",
    "CountedEmaState",
    "CountedTraceState",
    "EmaState",
    "MaxRmsState",
    "MomentumScheduleState",
    "RmsState",
    "SlowMomentState",
    "TraceState",
    "add_slow_moment",
    "bias_correct",
    "bias_correction_term",
    "effective_window",
    "half_life",
    "scale_by_atan2_rms",
    "scale_by_ema",
    "scale_by_max_rms",
    "scale_by_rms",
    "trace",
]
