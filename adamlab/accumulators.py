"""Per-coordinate step sizes from accumulated statistics: Adagrad, Adadelta and Rprop.

Each primitive is its formula for one leaf, built with :func:`adamlab.moment_stage` (tree checks, ``(0,)``
placeholders for integer leaves, float32 arithmetic or wider); each optimizer a short chain ending in
:func:`adamlab.scale_by_learning_rate`::

    adagrad  = chain(scale_by_rss(initial_accumulator_value, eps), lr)
    adadelta = chain(add_coupled_weight_decay(wd), scale_by_adadelta(rho, eps), lr)
    rprop    = chain(scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size),
                     scale_by_learning_rate(1.0))

(``lr`` stands for ``scale_by_learning_rate(learning_rate)``.) Names, positional arguments and defaults are
Optax's (0.2.8); the keyword-only switches give PyTorch's conventions where `torch.optim` differs
(``Adagrad``'s ``lr_decay`` and ``eps`` outside the root, ``Rprop``'s clipped first step). Two differences from
Optax on purpose: `optax.rprop` applies each step one step late (``optax_lag=True`` reproduces it), and
`optax.adadelta()` without a learning rate ascends (here None means 1.0). Like Optax's, these primitives read the
incoming updates: place them first in a chain (or after gradient stages such as clipping).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import GradientTransformation, chain
from adamlab.decay import Mask, add_coupled_weight_decay
from adamlab.optimizers import _ascent, _optional_decay
from adamlab.scaling import ScalarOrSchedule, scale_by_learning_rate
from adamlab.stage_builder import moment_stage
from adamlab.tree import abs_sq


class ScaleByRssState(NamedTuple):
    """State of :func:`adamlab.accumulators.scale_by_rss`: the running sum of squared updates (Optax's name).

    Args:
      sum_of_squares: ``s_t = s_0 + sum |u_i|**2``, a tree like the params: real float32 (or the param's wider
        real dtype) for each float leaf, starting at ``initial_accumulator_value``; ``(0,)`` placeholders for
        integer and bool leaves. Optax: ``sum_of_squares`` of `optax.ScaleByRssState`; PyTorch: ``sum`` of
        `torch.optim.Adagrad`'s state.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.accumulators import scale_by_rss
      >>> scale_by_rss().init({"w": jnp.zeros(2)})
      ScaleByRssState(sum_of_squares={'w': Array([0.1, 0.1], dtype=float32)})
    """

    sum_of_squares: Any


def scale_by_rss(
    initial_accumulator_value: float = 0.1, eps: float = 1e-7, *, eps_in_sqrt: bool = True
) -> GradientTransformation:
    """Divides the updates by the root of the sum of all their squares so far: Adagrad's scaling.

    ::

        s_t    = s_{t-1} + |u_t|**2                    (s_0 = initial_accumulator_value)
        output = u_t / sqrt(s_t + eps)                  (eps_in_sqrt=True, Optax's)
                 u_t / (sqrt(s_t) + eps)                (eps_in_sqrt=False, PyTorch's)
                 0 where s_t = 0

    Each coordinate's step shrinks as its squared updates pile up: rarely-seen coordinates keep larger steps.
    With ``eps_in_sqrt=True`` it computes what `optax.scale_by_rss` does, in its order (``rsqrt(s_t + eps) *
    u_t``): bit for bit. The sum is kept real (``|u|**2``) also for complex params.

    Args:
      initial_accumulator_value: ``s_0``, a number ``>= 0``. Default 0.1. Optax: ``initial_accumulator_value``;
        PyTorch: ``initial_accumulator_value`` of `torch.optim.Adagrad` (whose default is 0).
      eps: ``>= 0``, added inside the root (or outside it without `eps_in_sqrt`). Default 1e-7. Optax:
        ``eps``; PyTorch: ``eps`` (default 1e-10, outside the root).
      eps_in_sqrt: Keyword-only. True (default): ``sqrt(s_t + eps)``, Optax's. False: ``sqrt(s_t) + eps``,
        PyTorch's. adamlab's.

    Returns:
      A `GradientTransformation` whose state is a :class:`adamlab.accumulators.ScaleByRssState`.

    Raises:
      ValueError: If `initial_accumulator_value` or `eps` is a negative or non-finite number.
      TypeError: If either is not a real number or scalar array.

    References:
      Duchi, Hazan & Singer, *Adaptive Subgradient Methods for Online Learning and Stochastic Optimization*,
      JMLR 2011.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.accumulators import scale_by_rss
      >>> tx = scale_by_rss(initial_accumulator_value=0.0, eps=0.0)
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> for g in ([3.0, 0.0], [4.0, 0.0]):  # s = 9, then 25; a coordinate never updated stays at 0
      ...     updates, state = tx.update({"w": jnp.array(g)}, state)
      ...     print(updates["w"], state.sum_of_squares["w"])
      [1. 0.] [9. 0.]
      [0.8 0. ] [25.  0.]
    """
    _checks.check_nonnegative("initial_accumulator_value", initial_accumulator_value)
    _checks.check_nonnegative("eps", eps)
    if not isinstance(eps_in_sqrt, bool):
        raise TypeError(f"eps_in_sqrt must be True or False, got {eps_in_sqrt!r}")

    def rss(u, s):
        s = abs_sq(u) + s
        if eps_in_sqrt:
            return jnp.where(s > 0, jax.lax.rsqrt(s + eps), 0.0) * u, s
        return jnp.where(s > 0, u / (jnp.sqrt(s) + eps), 0.0), s

    return moment_stage(
        "scale_by_rss",
        ScaleByRssState,
        rss,
        holds_squares=True,
        real=("sum_of_squares",),
        initial={"sum_of_squares": initial_accumulator_value},
    )


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
    *,
    eps_in_sqrt: bool = True,
    lr_decay: float = 0.0,
    weight_decay: ScalarOrSchedule | None = None,
    maximize: bool = False,
) -> GradientTransformation:
    """Adagrad (Duchi et al., JMLR 2011): SGD with each coordinate's step divided by the root of its summed
    squared gradients.

    ::

        s_t = s_{t-1} + g_t**2                       (s_0 = initial_accumulator_value)
        p  <- p - lr_t * g_t / sqrt(s_t + eps)         (Optax's; sqrt(s_t) + eps with eps_in_sqrt=False)
        lr_t = lr / (1 + (t - 1) * lr_decay)           (lr_decay, PyTorch's; t = 1 on the first step)

    Built as ``chain(scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate))``:
    what `optax.adagrad` computes, bit for bit. PyTorch's ``torch.optim.Adagrad(params, lr, lr_decay,
    weight_decay, initial_accumulator_value, eps)`` is ``adagrad(lr, initial_accumulator_value, eps,
    eps_in_sqrt=False, lr_decay=lr_decay, weight_decay=weight_decay)`` (torch's defaults: 0 and 1e-10).

    Args:
      learning_rate: The step size ``lr``: a number ``>= 0`` or a schedule of the steps already taken. No
        default. Optax: ``learning_rate``; PyTorch: ``lr``.
      initial_accumulator_value: ``s_0 >= 0``. Default 0.1. Optax and PyTorch: ``initial_accumulator_value``.
      eps: ``>= 0``, inside the root (outside without `eps_in_sqrt`). Default 1e-7. Optax and PyTorch: ``eps``.
      eps_in_sqrt: Keyword-only. Default True (Optax's); False puts `eps` outside the root (PyTorch's).
      lr_decay: Keyword-only. PyTorch's decay of the step size, ``lr / (1 + (t - 1) * lr_decay)``, applied to
        the learning rate (a schedule's value too). Default 0: none. PyTorch: ``lr_decay``.
      weight_decay: Keyword-only. Coupled (L2) decay ``g + weight_decay * p`` before the sum, a number ``>= 0``.
        Default None: none. PyTorch: ``weight_decay``.
      maximize: Keyword-only. Ascend: the gradient is negated first. Default False. PyTorch: ``maximize``.

    Returns:
      A :class:`adamlab.GradientTransformation` whose state is a tuple: a
      :class:`adamlab.accumulators.ScaleByRssState` and the learning rate's state (a
      :class:`adamlab.ScheduleState` for a schedule or a `lr_decay`, else an :class:`adamlab.EmptyState`);
      `weight_decay` adds an ``EmptyState()`` before them, `maximize` one first.

    Raises:
      ValueError: If `learning_rate`, `initial_accumulator_value`, `eps`, `lr_decay` or `weight_decay` is a
        negative or non-finite number.
      TypeError: If a hyperparameter is not a real number or scalar array (`learning_rate` may be a schedule).

    References:
      Duchi, Hazan & Singer, *Adaptive Subgradient Methods for Online Learning and Stochastic Optimization*,
      JMLR 2011.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.accumulators import adagrad
      >>> tx = adagrad(0.1, initial_accumulator_value=0.0, eps=0.0)
      >>> params = {"w": jnp.ones(2)}
      >>> state = tx.init(params)
      >>> for _ in range(4):  # a constant gradient: steps of 0.1 / sqrt(t)
      ...     updates, state = tx.update({"w": jnp.full(2, 2.0)}, state, params)
      >>> print(updates["w"])
      [-0.05 -0.05]
    """
    _checks.check_nonnegative("lr_decay", lr_decay)
    _checks.check_rate("learning_rate", learning_rate)
    if weight_decay is not None:
        _checks.check_rate("weight_decay", weight_decay)
    lr = learning_rate
    if not _checks.known_zero(lr_decay):
        lr = _torch_lr_decay(learning_rate, lr_decay)
    return chain(
        _ascent(maximize),
        _optional_decay(add_coupled_weight_decay, weight_decay, None),
        scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt=eps_in_sqrt),
        scale_by_learning_rate(lr),
        name="adagrad",
    )


def _torch_lr_decay(learning_rate, lr_decay):
    """``lr / (1 + count * lr_decay)``, count the steps already taken: torch.optim.Adagrad's ``clr``."""
    if callable(learning_rate):
        schedule = learning_rate
        return lambda count: schedule(count) / (1 + count * lr_decay)
    return lambda count: learning_rate / (1 + count * lr_decay)


class ScaleByAdaDeltaState(NamedTuple):
    """State of :func:`adamlab.accumulators.scale_by_adadelta`: the two running averages of Adadelta (Optax's
    names).

    Args:
      e_g: ``E[g**2]_t``, the EMA of the squared updates: a tree like the params (real float32, or the param's
        wider real dtype; ``(0,)`` placeholders for integer and bool leaves). PyTorch: ``square_avg``.
      e_x: ``E[dx**2]_t``, the EMA of the squared outputs, likewise. PyTorch: ``acc_delta``.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.accumulators import scale_by_adadelta
      >>> scale_by_adadelta().init({"w": jnp.zeros(1)})
      ScaleByAdaDeltaState(e_g={'w': Array([0.], dtype=float32)}, e_x={'w': Array([0.], dtype=float32)})
    """

    e_g: Any
    e_x: Any


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta's scaling (Zeiler, 2012): the ratio of the RMS of past outputs to the RMS of the updates.

    ::

        E[g**2]_t  = rho * E[g**2]_{t-1} + (1 - rho) * |u_t|**2
        dx_t       = sqrt(E[dx**2]_{t-1} + eps) / sqrt(E[g**2]_t + eps) * u_t        (output)
        E[dx**2]_t = rho * E[dx**2]_{t-1} + (1 - rho) * |dx_t|**2

    The numerator carries the units of a parameter step, so the output needs no learning rate (1.0 gives the
    paper's method). In Optax's order: bit for bit with `optax.scale_by_adadelta`; `torch.optim.Adadelta`
    computes the same formula. The averages are real (``|u|**2``) also for complex params.

    Args:
      rho: The decay of both averages, in ``[0, 1]``. Default 0.9. Optax and PyTorch: ``rho``.
      eps: ``> 0``, inside both roots (with 0 the first output, and so every later one, would be 0). Default
        1e-6. Optax and PyTorch: ``eps``.

    Returns:
      A `GradientTransformation` whose state is a :class:`adamlab.accumulators.ScaleByAdaDeltaState`.

    Raises:
      ValueError: If `rho` is a number outside ``[0, 1]``, or `eps` is not a positive number.
      TypeError: If either is not a real number or scalar array.

    References:
      Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, arXiv:1212.5701, 2012.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.accumulators import scale_by_adadelta
      >>> tx = scale_by_adadelta(rho=0.5, eps=1e-2)
      >>> updates, state = tx.update({"w": jnp.array([1.0])}, tx.init({"w": jnp.zeros(1)}))
      >>> print(updates["w"].round(4), state.e_g["w"], state.e_x["w"].round(4))  # sqrt(0.01) / sqrt(0.51)
      [0.14] [0.5] [0.0098]
    """
    _checks.check_decay("rho", rho, one_allowed=True)
    _checks.check_positive("eps", eps)

    def adadelta(u, e_g, e_x):
        e_g = (1 - rho) * abs_sq(u) + rho * e_g
        dx = (jnp.sqrt(e_x + eps) / jnp.sqrt(e_g + eps)) * u
        e_x = (1 - rho) * abs_sq(dx) + rho * e_x
        return dx, e_g, e_x

    return moment_stage("scale_by_adadelta", ScaleByAdaDeltaState, adadelta, holds_squares=True, real=("e_g", "e_x"))


def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Mask | None = None,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Adadelta (Zeiler, 2012): steps sized by the RMS of past steps over the RMS of past gradients.

    ::

        g_t       <- g_t + weight_decay * p              (coupled decay, where weight_decay_mask is True)
        E[g**2]_t  = rho * E[g**2]_{t-1} + (1 - rho) * g_t**2
        dx_t       = sqrt(E[dx**2]_{t-1} + eps) / sqrt(E[g**2]_t + eps) * g_t
        E[dx**2]_t = rho * E[dx**2]_{t-1} + (1 - rho) * dx_t**2
        p         <- p - lr * dx_t

    Built as ``chain(add_coupled_weight_decay(weight_decay, weight_decay_mask), scale_by_adadelta(rho, eps),
    scale_by_learning_rate(learning_rate))`` (no decay stage for a weight decay of 0): what `optax.adadelta`
    computes, bit for bit, for a given learning rate. ``torch.optim.Adadelta(params, lr, rho, eps,
    weight_decay)`` is ``adadelta(lr, rho, eps, weight_decay)``.

    One difference from Optax on purpose: with ``learning_rate=None`` (the default) Optax leaves out the
    learning-rate stage, sign flip included, so `optax.adadelta()` returns ``+dx`` and
    ``optax.apply_updates`` ascends; here None means 1.0, the paper's descent step (PyTorch's default lr).

    Args:
      learning_rate: The step size: a number ``>= 0``, a schedule of the steps already taken, or None (default)
        for 1.0. Optax: ``learning_rate``; PyTorch: ``lr`` (default 1.0).
      rho: The decay of both averages, in ``[0, 1]``. Default 0.9. Optax and PyTorch: ``rho``.
      eps: ``> 0``, inside both roots. Default 1e-6. Optax and PyTorch: ``eps``.
      weight_decay: Coupled (L2) decay, a number ``>= 0`` or a schedule ``count -> wd``. Default 0.0: none.
        Optax and PyTorch: ``weight_decay``.
      weight_decay_mask: Where to decay (True = decay): a bool tree like the params, a prefix of one, or a
        callable ``params -> such a tree``. Default None: every float leaf. Optax: ``weight_decay_mask``.
      maximize: Keyword-only. Ascend: the gradient is negated first. Default False. PyTorch: ``maximize``.

    Returns:
      A :class:`adamlab.GradientTransformation` whose state is a tuple: an ``EmptyState()`` for the weight
      decay (only when it is not 0), a :class:`adamlab.accumulators.ScaleByAdaDeltaState` and the learning
      rate's state; `maximize` adds an ``EmptyState()`` first.

    Raises:
      ValueError: If `rho` is outside ``[0, 1]``, `eps` is not positive, or `learning_rate` or `weight_decay`
        is a negative or non-finite number.
      TypeError: If a hyperparameter is not a real number or scalar array (`learning_rate` may be a schedule).

    References:
      Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, arXiv:1212.5701, 2012.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.accumulators import adadelta
      >>> tx = adadelta()
      >>> params = {"w": jnp.array([1.0, -1.0])}
      >>> updates, state = tx.update({"w": jnp.array([2.0, -2.0])}, tx.init(params), params)
      >>> print(updates["w"].round(6))  # -sqrt(1e-6) / sqrt(0.4 + 1e-6) * g: a descent step
      [-0.003162  0.003162]
    """
    return chain(
        _ascent(maximize),
        _optional_decay(add_coupled_weight_decay, weight_decay, weight_decay_mask),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(1.0 if learning_rate is None else learning_rate),
        name="adadelta",
    )


class ScaleByRpropState(NamedTuple):
    """State of :func:`adamlab.accumulators.scale_by_rprop` (Optax's names).

    Args:
      step_sizes: Each coordinate's current step size, a tree like the params (real float32, or the param's
        wider real dtype), starting at the `learning_rate`. PyTorch: ``step_size``.
      prev_updates: The previous output, ``step_size * sign(u)``, or 0 where the sign flipped: a tree like the
        params. Only its sign is read. PyTorch keeps the previous gradient (``prev``), of the same sign.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.accumulators import scale_by_rprop
      >>> scale_by_rprop(0.01).init({"w": jnp.zeros(1)})
      ScaleByRpropState(step_sizes={'w': Array([0.01], dtype=float32)}, prev_updates={'w': Array([0.], dtype=float32)})
    """

    step_sizes: Any
    prev_updates: Any


def scale_by_rprop(
    learning_rate: float,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
    *,
    clip_initial_step_size: bool = False,
    optax_lag: bool = False,
) -> GradientTransformation:
    """Rprop's sign-based steps (Riedmiller & Braun, 1993; Igel & Hüsken's Rprop-, 2003): each coordinate's step
    size grows while its update keeps its sign and shrinks when it flips.

    ::

        s     = u_t * prev_{t-1}                    (the sign agreement; prev_0 = 0)
        step  = step                                where s = 0
                clip(eta_plus  * step, min_step_size, max_step_size)   where s > 0
                clip(eta_minus * step, min_step_size, max_step_size)   where s < 0
        prev_t = 0 where s < 0, else step * sign(u_t)
        output = prev_t                             (no step right after a sign flip)

    ``step`` starts at `learning_rate`. The output points along the update: follow it with
    ``scale_by_learning_rate(1.0)`` (a sign flip) for descent, as :func:`adamlab.accumulators.rprop` does.
    For complex params ``s`` is ``Re(u * conj(prev))`` and ``sign(u) = u / |u|``.

    One difference from Optax on purpose: `optax.scale_by_rprop` (0.2.8) computes ``prev_t`` as above but
    outputs ``prev_{t-1}`` (0 where ``s < 0``), the previous step's step: its first output is 0 and each
    later one lags the gradient by a step (two zero steps after a flip). Here the output is ``prev_t``, the
    paper's and `torch.optim.Rprop`'s step; ``optax_lag=True`` outputs Optax's, bit for bit.

    Args:
      learning_rate: The initial step size, a number ``>= 0`` (not a schedule). No default. Optax:
        ``learning_rate``; PyTorch: ``lr`` of `torch.optim.Rprop` (default 0.01).
      eta_minus: The factor in ``(0, 1]`` a step size is multiplied by when its sign flips. Default 0.5.
        Optax: ``eta_minus``; PyTorch: ``etas[0]``.
      eta_plus: The factor ``>= 1`` when the sign is kept. Default 1.2. Optax: ``eta_plus``; PyTorch:
        ``etas[1]``.
      min_step_size: The smallest step size, ``>= 0``. Default 1e-6. Optax: ``min_step_size``; PyTorch:
        ``step_sizes[0]``.
      max_step_size: The largest step size, ``>= min_step_size``. Default 50.0. Optax: ``max_step_size``;
        PyTorch: ``step_sizes[1]``.
      clip_initial_step_size: Keyword-only. Default False: the step sizes start at `learning_rate` even when
        it lies outside ``[min_step_size, max_step_size]``, and are clipped only when they change (Optax's).
        True: they start at `learning_rate` clipped to that range, as `torch.optim.Rprop` clamps its step
        sizes on every step. The two agree when `learning_rate` lies within the bounds. adamlab's.
      optax_lag: Keyword-only. Default False: the output is this step's ``prev_t``. True: the previous step's
        ``prev_{t-1}``, zeroed where the sign flipped, as `optax.scale_by_rprop` 0.2.8 outputs. adamlab's.

    Returns:
      A `GradientTransformation` whose state is a :class:`adamlab.accumulators.ScaleByRpropState`.

    Raises:
      ValueError: If a hyperparameter given as a number is out of its range above (negative, non-finite,
        `eta_minus` outside ``(0, 1]``, `eta_plus` below 1, or `max_step_size` below `min_step_size`).
      TypeError: If a hyperparameter is not a real number or scalar array.

    References:
      Riedmiller & Braun, *A Direct Adaptive Method for Faster Backpropagation Learning: the RPROP Algorithm*,
      IEEE ICNN 1993. Igel & Hüsken, *Empirical evaluation of the improved Rprop learning algorithms*,
      Neurocomputing 2003.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.accumulators import scale_by_rprop
      >>> tx = scale_by_rprop(0.1)
      >>> state = tx.init({"w": jnp.zeros(1)})
      >>> for g in (1.0, 2.0, -1.0, -1.0):  # grow by 1.2, flip: no step and shrink by 0.5, then go on
      ...     updates, state = tx.update({"w": jnp.array([g])}, state)
      ...     print(updates["w"].round(4), state.step_sizes["w"].round(4))
      [0.1] [0.1]
      [0.12] [0.12]
      [0.] [0.06]
      [-0.06] [0.06]
    """
    _checks.check_nonnegative("learning_rate", learning_rate)
    _checks.check_positive("eta_minus", eta_minus)
    _checks.check_nonnegative("eta_plus", eta_plus)
    _checks.check_nonnegative("min_step_size", min_step_size)
    _checks.check_nonnegative("max_step_size", max_step_size)
    known = [_checks.is_number(x) for x in (eta_minus, eta_plus, min_step_size, max_step_size)]
    if known[0] and float(eta_minus) > 1.0:
        raise ValueError(f"eta_minus must be in (0, 1]: it shrinks the step after a sign flip; got {eta_minus!r}")
    if known[1] and float(eta_plus) < 1.0:
        raise ValueError(f"eta_plus must be >= 1: it grows the step while the sign holds; got {eta_plus!r}")
    if known[2] and known[3] and float(max_step_size) < float(min_step_size):
        raise ValueError(f"max_step_size ({max_step_size!r}) must be >= min_step_size ({min_step_size!r})")
    for flag, value in (("clip_initial_step_size", clip_initial_step_size), ("optax_lag", optax_lag)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be True or False, got {value!r}")
    start = learning_rate
    if clip_initial_step_size and all(_checks.is_number(x) for x in (learning_rate, min_step_size, max_step_size)):
        start = min(max(float(learning_rate), float(min_step_size)), float(max_step_size))
    elif clip_initial_step_size:  # arrays (optax.inject_hyperparams): clipped when init runs
        start = jnp.clip(jnp.asarray(learning_rate), min_step_size, max_step_size)

    def rprop(u, step, prev):
        s = (u * jnp.conj(prev)).real if jnp.iscomplexobj(u) else u * prev
        grown = jnp.clip(step * jnp.where(s > 0, eta_plus, eta_minus), min=min_step_size, max=max_step_size)
        step = jnp.where(s == 0, step, grown)
        direction = jnp.sign(u)
        new_prev = jnp.where(s < 0, jnp.zeros_like(direction), step * direction)
        if optax_lag:  # Optax 0.2.8 outputs the previous step's prev_updates, not this step's
            return jnp.where(s < 0, jnp.zeros_like(prev), prev), step, new_prev
        return new_prev, step, new_prev

    return moment_stage(
        "scale_by_rprop",
        ScaleByRpropState,
        rprop,
        real=("step_sizes",),
        initial={"step_sizes": start},
    )


def rprop(
    learning_rate: float,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
    *,
    clip_initial_step_size: bool = False,
    optax_lag: bool = False,
    maximize: bool = False,
) -> GradientTransformation:
    """Rprop (Riedmiller & Braun, 1993), in Optax's Rprop- form: a step of each coordinate's own size against
    the gradient's sign, the size grown while the sign holds and shrunk (with no step) when it flips.

    ::

        s     = g_t * prev_{t-1}
        step  = clip(eta_plus * step) where s > 0;  clip(eta_minus * step) where s < 0;  unchanged where s = 0
        prev_t = 0 where s < 0, else step * sign(g_t)
        p    <- p - prev_t

    Built as ``chain(scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size),
    scale_by_learning_rate(1.0))`` (Optax's ``scale(-1.0)``). `optax.rprop` (0.2.8) applies each step one step
    late (``prev_{t-1}``; its first step is 0): ``optax_lag=True`` computes that, bit for bit, and the default
    the paper's step (see :func:`adamlab.accumulators.scale_by_rprop`).
    ``torch.optim.Rprop(params, lr, etas=(eta_minus, eta_plus), step_sizes=(min_step_size, max_step_size))``
    is ``rprop(lr, eta_minus, eta_plus, min_step_size, max_step_size, clip_initial_step_size=True)``.

    Args:
      learning_rate: The initial step size, a number ``>= 0``. No default. Optax: ``learning_rate``; PyTorch:
        ``lr``.
      eta_minus: The factor in ``(0, 1]`` after a sign flip. Default 0.5. Optax: ``eta_minus``; PyTorch:
        ``etas[0]``.
      eta_plus: The factor ``>= 1`` while the sign holds. Default 1.2. Optax: ``eta_plus``; PyTorch: ``etas[1]``.
      min_step_size: Default 1e-6. Optax: ``min_step_size``; PyTorch: ``step_sizes[0]``.
      max_step_size: Default 50.0. Optax: ``max_step_size``; PyTorch: ``step_sizes[1]``.
      clip_initial_step_size: Keyword-only. True clips the initial step size into the bounds, PyTorch's
        convention; default False (Optax's). See :func:`adamlab.accumulators.scale_by_rprop`.
      optax_lag: Keyword-only. True applies the previous step's step, as `optax.rprop` 0.2.8 does; default
        False (the paper's and PyTorch's).
      maximize: Keyword-only. Ascend: the gradient is negated first. Default False. PyTorch: ``maximize``.

    Returns:
      A :class:`adamlab.GradientTransformation` whose state is a tuple: a
      :class:`adamlab.accumulators.ScaleByRpropState` and an ``EmptyState()``; `maximize` adds an
      ``EmptyState()`` first.

    Raises:
      ValueError: As :func:`adamlab.accumulators.scale_by_rprop`.
      TypeError: As :func:`adamlab.accumulators.scale_by_rprop`.

    References:
      Riedmiller & Braun, *A Direct Adaptive Method for Faster Backpropagation Learning: the RPROP Algorithm*,
      IEEE ICNN 1993. Igel & Hüsken, *Empirical evaluation of the improved Rprop learning algorithms*,
      Neurocomputing 2003.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.accumulators import rprop
      >>> tx = rprop(0.01)
      >>> params = {"w": jnp.zeros(2)}
      >>> state = tx.init(params)
      >>> for _ in range(3):
      ...     updates, state = tx.update({"w": jnp.array([1.0, -1.0])}, state, params)
      ...     print(updates["w"].round(4))
      [-0.01  0.01]
      [-0.012  0.012]
      [-0.0144  0.0144]
    """
    return chain(
        _ascent(maximize),
        scale_by_rprop(
            learning_rate,
            eta_minus,
            eta_plus,
            min_step_size,
            max_step_size,
            clip_initial_step_size=clip_initial_step_size,
            optax_lag=optax_lag,
        ),
        scale_by_learning_rate(1.0),
        name="rprop",
    )


__all__ = [
    "ScaleByAdaDeltaState",
    "ScaleByRpropState",
    "ScaleByRssState",
    "adadelta",
    "adagrad",
    "rprop",
    "scale_by_adadelta",
    "scale_by_rprop",
    "scale_by_rss",
]
