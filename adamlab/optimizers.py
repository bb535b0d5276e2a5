"""The usual optimizers, each a short chain of primitives: :func:`adamlab.sgd`, :func:`adamlab.rmsprop`,
:func:`adamlab.adam` and :func:`adamlab.adamw`.

Positional and keyword arguments are Optax 0.2.8's, in Optax's order, with its defaults and meanings;
adamlab's own additions (`state_dtype`, `nu_dtype`, `saturate`, and `weight_decay`/`mask` on `adam`) are
keyword-only.

``saturate=True`` (Adam, AdamW, RMSProp) keeps the second moment finite when ``g**2`` overflows float32
(``|g| > 1.8e19``): see `scale_by_rms`.

Read any of them to see how to build a variant: drop `bias_correct` for Adam
without bias correction, put `scale_by_ema` after `scale_by_rms` for
RMSProp with EMA momentum, and so on.

Each function returns an adamlab chain (a :class:`adamlab.GradientTransformation`) whose state is the tuple of
its stages' states, in chain order: for example ``(EmaState, CountState, RmsState, EmptyState, EmptyState)``
for ``adamw(1e-3)``. ``update(grads, state, params)`` returns descent steps to add with
:func:`adamlab.apply_updates`, in the dtype of the gradients it was given. Hyperparameters given as numbers
(or concrete arrays) are checked when the optimizer is built.

**State dtypes.** The formulas always run in float32, or wider for wider params: the dtype arguments choose
only how the moments are *stored* between steps.

- ``mu_dtype`` (Optax's name) sets the first moment ``m``, ``nu_dtype`` (adamlab's) the second moment ``v``,
  ``state_dtype`` both (``sgd``: the momentum). A moment-specific dtype wins over ``state_dtype``.
- ``None`` (the default): float32, or the param's own dtype when it is wider (float64 under x64). Complex
  params keep complex64 first moments and real float32 second moments.
- ``jnp.bfloat16``: half the memory of float32, with its exponent range. First moments (and momentum
  traces) are rounded to nearest; second moments are rounded *stochastically* (unbiased, with random bits
  keyed by the step count, so runs are reproducible), because rounded to nearest a ``v`` with
  ``b2 > 0.996`` stops decaying. Values beyond bfloat16's range saturate at its maximum.
- ``jnp.float16`` and other narrow floats: accepted for first moments only; a second moment needs float32's
  exponent range (``g**2`` overflows float16 above ``|g| = 256``), so it raises ValueError.
- ``jnp.int8``: 8-bit block-wise state (Dettmers et al., ICLR 2022), about 1.02 bytes an element. The
  moment of every real float leaf with at least 4096 elements is stored as one uint8 code per element plus
  one float32 scale per block along the last axis (256 or 128 elements where they divide it, else the whole
  last axis up to 1024, else a smaller divisor; failing that, 256 elements of the flattened leaf, the last
  block short). The code is a small float read off the float32 bit pattern ("analytic": sign + 4 exponent + 3
  mantissa bits over 15 binades for a first moment, 5 + 3 bits over 31 for a second one); the scale is a
  running bound ``b * s + (1 - b) * max|g|`` for EMA moments, the block's absmax otherwise. Encoding rounds
  stochastically, keyed by the step count (first moments then keep that count: the state becomes a
  :class:`adamlab.CountedEmaState` or :class:`adamlab.CountedTraceState`), and a nonzero ``v`` never rounds
  to 0. Smaller leaves, complex leaves and integer leaves keep float32 moments (or none). The codes live in
  ``adamlab.quantize`` (Dettmers' "dynamic" table stays available there by name).
"""

from __future__ import annotations

from adamlab import _checks
from adamlab.base import GradientTransformation, chain, identity
from adamlab.decay import Mask, add_coupled_weight_decay, add_decoupled_weight_decay
from adamlab.moments import bias_correct, scale_by_ema, scale_by_rms, trace
from adamlab.scaling import ScalarOrSchedule, Schedule, scale, scale_by_learning_rate
from adamlab.tree import check_state_dtype


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: float | None = None,
    nesterov: bool = False,
    accumulator_dtype=None,
    *,
    state_dtype=None,
    dampening: float | None = None,
    maximize: bool = False,
) -> GradientTransformation:
    """Stochastic gradient descent, optionally with heavy-ball or Nesterov momentum.

    ``p <- p - lr * g``; with `momentum`, heavy-ball ``t = g + momentum * t`` (or Nesterov) first::

        no momentum:   p <- p - lr * g_k
        momentum:      t_k = g_k + momentum * t_{k-1}            (t_0 = 0)
                       p  <- p - lr * t_k                         (nesterov=False)
                       p  <- p - lr * (g_k + momentum * t_k)      (nesterov=True)
        dampening d:   t_1 = g_1,  t_k = (1 - d) * g_k + momentum * t_{k-1}     (PyTorch's)
        maximize:      g_k <- -g_k                                (ascent)

    Built as ``chain(trace(momentum, nesterov, accumulator_dtype, dampening=dampening),
    scale_by_learning_rate(learning_rate))``, the `trace` stage (and its state) left out when `momentum` is
    None, and ``scale(-1.0)`` in front with `maximize`. It computes what ``optax.sgd`` does, and what
    ``torch.optim.SGD(params, lr, momentum, dampening, nesterov=..., maximize=...)`` does (PyTorch too scales
    the momentum buffer by the learning rate of the current step). There is no ``weight_decay`` argument: for
    PyTorch's (L2) form put :func:`adamlab.add_coupled_weight_decay` in front,
    ``adamlab.chain(adamlab.add_coupled_weight_decay(wd), adamlab.sgd(lr, momentum))`` (with `maximize`,
    PyTorch negates the gradient before adding the decay: ``chain(scale(-1.0), add_coupled_weight_decay(wd),
    sgd(lr, momentum))``).

    Args:
        learning_rate: The step size ``lr``: a number >= 0, or a schedule ``step -> lr`` (adamlab's or
            Optax's) evaluated at the number of steps already taken, so the first update uses
            ``schedule(0)``. No default. Optax: ``learning_rate``; PyTorch: ``lr``.
        momentum: The momentum coefficient in ``[0, 1]`` (1 sums the gradients), or None (the default) for
            plain SGD without state. Optax: ``momentum``; PyTorch: ``momentum``, whose default 0 is None here.
        nesterov: Use Nesterov's look-ahead ``g_k + momentum * t_k`` instead of ``t_k``. Default False. Needs a
            `momentum` (Optax ignores ``nesterov=True`` without one; adamlab raises). Optax and PyTorch:
            ``nesterov``.
        accumulator_dtype: Optax's name for the storage dtype of the momentum ``t``: the same setting as
            `state_dtype` (give one of them, or both equal). Default None.
        state_dtype: Storage dtype of the momentum ``t`` (see the module docstring): None (default: float32,
            or the param's dtype when wider), ``jnp.bfloat16`` (rounded to nearest) or ``jnp.int8`` (8-bit
            block-wise codes, rounded stochastically; the state is then a :class:`adamlab.CountedTraceState`).
            The arithmetic is float32 either way. No effect without `momentum`.
        dampening: The share ``d`` in ``[0, 1]`` of each gradient held back from the momentum after the first
            step (whose buffer is the gradient itself, undamped). Default None (or 0): none. Needs a
            `momentum`; not with `nesterov`. PyTorch: ``dampening`` (default 0).
        maximize: Ascend instead of descend: the gradient is negated before the momentum. Default False.
            PyTorch: ``maximize``.

    Returns:
        A :class:`adamlab.GradientTransformation`. Its state is a tuple: with `momentum`, a
        :class:`adamlab.TraceState` (``trace``: a tree like the params; a :class:`adamlab.CountedTraceState`
        with a `dampening`) first; then the learning rate's state, ``EmptyState()`` for a number or a
        :class:`adamlab.ScheduleState` (the step count) for a schedule.

    Raises:
        ValueError: If ``nesterov=True`` or a non-zero `dampening` without a `momentum`; if `momentum` or
            `dampening` is outside ``[0, 1]``; if both `nesterov` and a `dampening`; if `learning_rate` is a
            negative or non-finite number; if `accumulator_dtype` and `state_dtype` are different dtypes.
        TypeError: If `learning_rate` is neither a number, a scalar array nor a callable, if `momentum` is not
            a real number or scalar array, or if the storage dtype is not a float dtype or ``jnp.int8``.

    References:
        Polyak, *Some methods of speeding up the convergence of iteration methods*, USSR Computational
        Mathematics and Mathematical Physics, 1964.

        Sutskever, Martens, Dahl & Hinton, *On the importance of initialization and momentum in deep
        learning*, ICML 2013.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> params = {"w": jnp.array([1.0, 2.0])}
        >>> grads = {"w": jnp.array([1.0, -1.0])}
        >>> tx = adamlab.sgd(0.1)
        >>> updates, state = tx.update(grads, tx.init(params), params)
        >>> print(adamlab.apply_updates(params, updates)["w"])
        [0.9 2.1]

        With momentum the second step on the same gradient is ``1 + 0.9`` times the first:

        >>> tx = adamlab.sgd(0.1, momentum=0.9)
        >>> state = tx.init(params)
        >>> for _ in range(2):
        ...     updates, state = tx.update(grads, state, params)
        ...     print(updates["w"])
        [-0.1  0.1]
        [-0.19  0.19]

        PyTorch's dampening: the first step is undamped, later ones add ``(1 - d) * g``:

        >>> tx = adamlab.sgd(0.1, momentum=0.9, dampening=0.5)
        >>> state = tx.init(params)
        >>> for _ in range(2):
        ...     updates, state = tx.update(grads, state, params)
        ...     print(updates["w"])
        [-0.1  0.1]
        [-0.14  0.14]
    """
    if momentum is not None:
        _checks.check_decay("momentum", momentum, one_allowed=True)  # named as the caller wrote it, not trace's decay
    if nesterov and momentum is None:
        raise ValueError("nesterov=True needs a momentum value")
    if momentum is None and not (dampening is None or _checks.known_zero(dampening)):
        raise ValueError(f"dampening={dampening!r} damps the momentum: it needs a momentum value")
    return chain(
        _ascent(maximize),
        trace(momentum, nesterov, accumulator_dtype, state_dtype=state_dtype, dampening=dampening)
        if momentum is not None
        else identity(),
        scale_by_learning_rate(learning_rate),
        name="sgd",
    )


def _ascent(maximize: bool) -> GradientTransformation:
    """``scale(-1.0)`` in front of an optimizer for PyTorch's ``maximize=True`` (no stage otherwise): the gradient
    is negated before the moments and any coupled decay, as PyTorch does."""
    if not isinstance(maximize, bool):
        raise TypeError(f"maximize must be True or False, got {maximize!r}")
    return scale(-1.0) if maximize else identity()


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
    *,
    state_dtype=None,
    saturate: bool = False,
    lr_before_momentum: bool = True,
    maximize: bool = False,
) -> GradientTransformation:
    """RMSProp: gradient descent divided, per coordinate, by the root of a running mean of the squared gradient.

    RMSProp: ``p <- p - lr * g / sqrt(v + eps)`` with ``v`` the EMA of ``g**2``, started at `initial_scale`::

        v_t   = decay * v_{t-1} + (1 - decay) * g_t**2                 (v_0 = initial_scale)
        v_hat = v_t / (1 - decay**t) with bias_correction, else v_t
        centered:     mu_t = decay * mu_{t-1} + (1 - decay) * g_t,  v_hat <- max(v_hat - mu_hat**2, 0)
        eps_in_sqrt:  u_t = -lr * g_t / sqrt(v_hat + eps)              (Optax's default)
        otherwise:    u_t = -lr * g_t / (sqrt(v_hat) + eps)            (PyTorch's)
        momentum:     t_k = u_k + momentum * t_{k-1};  output t_k, or u_k + momentum * t_k (nesterov)
                      with u_k the scaled step -lr_k * g / ...   (lr_before_momentum=True, Optax's)
                      or   u_k = g / ..., output times -lr_k     (lr_before_momentum=False, PyTorch's)

    ``eps_in_sqrt=True`` (Optax's default) puts eps under the root;
    ``False`` gives ``g / (sqrt(v) + eps)``. `momentum` adds heavy-ball
    momentum on the scaled step, after the learning rate, as Optax does;
    ``lr_before_momentum=False`` applies the rate after the momentum, as PyTorch does.

    Built as ``chain(scale_by_rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered=centered),
    scale_by_learning_rate(learning_rate), trace(momentum, nesterov))``, the `trace` left out when `momentum`
    is None, the last two stages swapped with ``lr_before_momentum=False``, and ``scale(-1.0)`` in front with
    `maximize`. It computes what ``optax.rmsprop`` does (``centered=True`` is Optax's ``scale_by_stddev``).
    ``torch.optim.RMSprop(params, lr, alpha, eps, momentum=mu, centered=c)`` is
    ``rmsprop(lr, decay=alpha, eps=eps, eps_in_sqrt=False, centered=c, momentum=mu, lr_before_momentum=False)``;
    mind the defaults: PyTorch's ``alpha`` is 0.99, `decay` here (Optax's) 0.9. With a constant learning rate
    the two momentum orders agree; with a schedule PyTorch multiplies its buffer by the current rate, while
    Optax's order accumulates steps already scaled by their own step's rate. A zero gradient with ``eps = 0``
    gives a zero step, not 0/0.

    Args:
        learning_rate: The step size ``lr``: a number >= 0, or a schedule ``step -> lr`` evaluated at the
            number of steps already taken. No default. Optax: ``learning_rate``; PyTorch: ``lr``.
        decay: Decay of the EMA of ``g**2`` in ``[0, 1)``; it averages about ``1 / (1 - decay)`` steps.
            Default 0.9. Optax: ``decay``; PyTorch: ``alpha`` (default 0.99 there).
        eps: The constant >= 0 that keeps the division finite, under the root or added to it (see
            `eps_in_sqrt`). Default 1e-8. Optax and PyTorch: ``eps``.
        initial_scale: The start value ``v_0 >= 0`` of the second moment. Default 0.0 (PyTorch's; TF1
            used 1.0). Optax: ``initial_scale``.
        eps_in_sqrt: True (default, Optax's) divides by ``sqrt(v_hat + eps)``; False by
            ``sqrt(v_hat) + eps``, PyTorch's placement. Optax: ``eps_in_sqrt``.
        centered: Divide by the root of the variance ``v_hat - mu_hat**2`` (clipped at 0) instead of the
            second moment: Graves' centered RMSProp, which keeps an EMA of ``g`` too (the state's
            ``gradient_mean``). Default False. Optax: ``centered``; PyTorch: ``centered``.
        momentum: Heavy-ball momentum in ``[0, 1]`` applied to the scaled steps (after the learning rate), or
            None (default) for none. Optax: ``momentum``; PyTorch: ``momentum`` (0 there means none).
        nesterov: Nesterov's look-ahead for the momentum. Default False; ignored without `momentum`, as in
            Optax. Optax: ``nesterov``.
        bias_correction: Divide ``v`` (and, when centered, the mean) by ``1 - decay**t``, as Adam does, so that
            early steps are not too large. Default False (Optax's and PyTorch's RMSProp have none by default).
            Optax: ``bias_correction``.
        state_dtype: Storage dtype of ``v``, of the centered mean and of the momentum (see the module
            docstring): None (default: float32, or the param's dtype when wider), ``jnp.bfloat16`` (``v`` and
            the mean rounded stochastically, the momentum to nearest) or ``jnp.int8`` (8-bit block-wise codes;
            not with ``centered=True``). adamlab's. The arithmetic is float32 either way.
        saturate: Hold ``v`` at the float32 maximum instead of letting it become Inf when ``g**2`` overflows
            (``|g| > 1.8e19``), so that the weight's steps recover as ``v`` decays (one select per element,
            about 8% more compile time). Default False: as in Optax, such a weight's ``v`` is Inf and its
            step 0 from then on. adamlab's.
        lr_before_momentum: True (default, Optax's order) scales each step by its learning rate before the
            momentum accumulates it; False accumulates the unscaled steps and multiplies the momentum by the
            current rate, PyTorch's order. The same for a constant rate. No effect without `momentum`.
        maximize: Ascend instead of descend: the gradient is negated first. Default False. PyTorch:
            ``maximize``.

    Returns:
        A :class:`adamlab.GradientTransformation` whose state is a tuple: a :class:`adamlab.RmsState` (step
        count, ``second_moment``, and ``gradient_mean`` when centered, else ``()``), the learning rate's state
        (``EmptyState()``, or a :class:`adamlab.ScheduleState` for a schedule), and with `momentum` a
        :class:`adamlab.TraceState` (:class:`adamlab.CountedTraceState` for 8-bit state); with
        ``lr_before_momentum=False`` the last two in the other order.

    Raises:
        ValueError: If `decay` is outside ``[0, 1)`` or `momentum` outside ``[0, 1]`` (named ``decay`` in the
            message); if `eps`, `initial_scale` or `learning_rate` is a negative or non-finite number; if
            `state_dtype` lacks float32's exponent range (float16); if ``centered=True`` with
            ``state_dtype=jnp.int8``.
        TypeError: If a hyperparameter is not a real number or scalar array (a decay given as a bfloat16 or
            float16 array included), or `state_dtype` is not a float dtype or ``jnp.int8``.

    References:
        Tieleman & Hinton, *Lecture 6.5 -- RMSProp*, COURSERA: Neural Networks for Machine Learning, 2012.

        Graves, *Generating Sequences With Recurrent Neural Networks*, arXiv:1308.0850, 2013 (centered).

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> params = {"w": jnp.ones(3)}
        >>> grads = {"w": jnp.array([1.0, -1.0, 0.0])}
        >>> tx = adamlab.rmsprop(0.1)
        >>> updates, state = tx.update(grads, tx.init(params), params)
        >>> print(updates["w"].round(4))  # -lr * sign(g) / sqrt(1 - decay) on the first step
        [-0.3162  0.3162  0.    ]

        PyTorch's eps placement with Adam's bias correction makes the first step ``-lr * sign(g)``:

        >>> tx = adamlab.rmsprop(0.1, eps_in_sqrt=False, bias_correction=True)
        >>> updates, state = tx.update(grads, tx.init(params), params)
        >>> print(adamlab.apply_updates(params, updates)["w"])
        [0.9 1.1 1. ]
    """
    if momentum is not None:
        _checks.check_decay("momentum", momentum, one_allowed=True)
    rate = scale_by_learning_rate(learning_rate)
    heavy_ball = trace(momentum, nesterov, state_dtype=state_dtype) if momentum is not None else identity()
    return chain(
        _ascent(maximize),
        scale_by_rms(
            decay,
            eps,
            initial_scale,
            eps_in_sqrt,
            bias_correction,
            centered=centered,
            state_dtype=state_dtype,
            saturate=saturate,
        ),
        *((rate, heavy_ball) if lr_before_momentum else (heavy_ball, rate)),
        name="rmsprop",
    )


def _adam_direction(b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov, saturate, momentum_decay) -> tuple:
    """``m_hat / (sqrt(v_hat + eps_root) + eps)``: EMA of g, its bias correction, and division by the RMS of g."""
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    _checks.check_nonnegative("eps", eps)
    return (
        scale_by_ema(b1, state_dtype=mu_dtype),
        bias_correct(b1, nesterov=nesterov, momentum_decay=momentum_decay),
        scale_by_rms(b2, eps, bias_correction=True, eps_root=eps_root, state_dtype=nu_dtype, saturate=saturate),
    )


def _optional_decay(add_decay, weight_decay, mask) -> GradientTransformation:
    """`add_decay(weight_decay, mask)`, or no stage for a weight decay of None or a known 0 (decided in Python, so
    ``optax.inject_hyperparams``, whose arrays may hold anything, keeps the stage)."""
    if weight_decay is None or _checks.known_zero(weight_decay):
        return identity()
    return add_decay(weight_decay, mask)


def _moment_dtypes(mu_dtype, nu_dtype, state_dtype) -> tuple:
    """Optax's `mu_dtype` sets the first moment's dtype; `nu_dtype` the second's; `state_dtype` both. Each given
    one is checked here, so that a refusal names the argument the user passed."""
    mu_dtype = check_state_dtype(mu_dtype, name="mu_dtype")
    nu_dtype = check_state_dtype(nu_dtype, second_moment=True, name="nu_dtype")
    return (state_dtype if mu_dtype is None else mu_dtype), (state_dtype if nu_dtype is None else nu_dtype)


def adam(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
    *,
    nesterov: bool = False,
    weight_decay: ScalarOrSchedule | None = None,
    mask: Mask | None = None,
    nu_dtype=None,
    state_dtype=None,
    saturate: bool = False,
    momentum_decay: float | None = None,
    maximize: bool = False,
) -> GradientTransformation:
    """Adam: per-coordinate steps from bias-corrected estimates of the gradient's first and second moments.

    Adam: ``p <- p - lr * m_hat / (sqrt(v_hat + eps_root) + eps)``; NAdam with `nesterov`::

        weight_decay:  g_t <- g_t + wd * p                    (coupled L2, before the moments; mask True)
        m_t   = b1 * m_{t-1} + (1 - b1) * g_t,      m_hat = m_t / (1 - b1**t)
        v_t   = b2 * v_{t-1} + (1 - b2) * g_t**2,   v_hat = v_t / (1 - b2**t)
        nesterov:      m_hat = b1 * m_t / (1 - b1**(t+1)) + (1 - b1) * g_t / (1 - b1**t)
        momentum_decay psi (with nesterov; PyTorch's NAdam):
                       mu_t = b1 * (1 - 0.5 * 0.96**(t * psi)),   P_t = mu_1 * ... * mu_t
                       m_hat = mu_{t+1} * m_t / (1 - P_t * mu_{t+1}) + (1 - mu_t) * g_t / (1 - P_t)
        maximize:      g_t <- -g_t                            (first of all)
        p <- p - lr * m_hat / (sqrt(v_hat + eps_root) + eps)

    Built as ``chain(add_coupled_weight_decay(weight_decay, mask), scale_by_ema(b1), bias_correct(b1,
    nesterov=nesterov), scale_by_rms(b2, eps, bias_correction=True, eps_root=eps_root),
    scale_by_learning_rate(learning_rate))``, the decay stage left out when `weight_decay` is None or 0 (a
    decision made in Python, at build time), ``scale(-1.0)`` in front with `maximize`, and the bias correction
    ``bias_correct(b1, nesterov=True, momentum_decay=psi)`` with a `momentum_decay`. Without `weight_decay` it
    computes what ``optax.adam`` does.
    ``torch.optim.Adam(params, lr, betas=(b1, b2), eps=eps, weight_decay=wd)`` is
    ``adam(lr, b1, b2, eps, weight_decay=wd)``; its ``amsgrad=True`` is
    ``adamlab.amsgrad(lr, b1, b2, eps, max_of="raw")``. The first step is ``-lr * sign(g)`` up to `eps`,
    whatever the gradient's size.

    `weight_decay` is the coupled (L2) form, ``g <- g + wd * p`` before the
    moments, as ``torch.optim.Adam(weight_decay=...)``. For decay that is
    not divided by ``sqrt(v_hat)`` use `adamw`. Its default is None, not 0,
    so that ``optax.inject_hyperparams(adam)``, which turns every number into
    an array, leaves no decay stage in the state.

    Args:
        learning_rate: The step size ``lr``: a number >= 0, or a schedule ``step -> lr`` evaluated at the
            number of steps already taken (``schedule(0)`` first). Default 1e-3 (PyTorch's; ``optax.adam``
            has no default). Optax: ``learning_rate``; PyTorch: ``lr``.
        b1: Decay of the first moment (the EMA of ``g``), in ``[0, 1)`` and below 1 in float32. Default 0.9.
            Optax: ``b1``; PyTorch: ``betas[0]``.
        b2: Decay of the second moment (the EMA of ``g**2``), in ``[0, 1)`` and below 1 in float32. Default
            0.999. Optax: ``b2``; PyTorch: ``betas[1]``.
        eps: Added to ``sqrt(v_hat)``, outside the root as in the paper; it bounds the step where ``v_hat`` is
            tiny. A number >= 0, default 1e-8; with 0, a zero gradient still gives a zero step, not 0/0.
            Optax and PyTorch: ``eps`` (the same placement).
        eps_root: Added to ``v_hat`` under the root, ``sqrt(v_hat + eps_root)``: >= 0, default 0. A positive
            value keeps the derivative of the update finite where ``v_hat = 0``, which matters when
            differentiating through the optimizer (meta-learning). Optax: ``eps_root``; no PyTorch equivalent.
        mu_dtype: Storage dtype of the first moment ``m`` (any float dtype, or ``jnp.int8``); overrides
            `state_dtype` for ``m``. Default None: `state_dtype`'s choice. Optax: ``mu_dtype``.
        nesterov: NAdam's look-ahead in the bias-corrected first moment (formula above);
            :func:`adamlab.nadam` is ``adam(..., nesterov=True)``. Default False. Optax: ``nesterov``.
        weight_decay: Coefficient ``wd >= 0`` of the coupled (L2) decay, a number or a schedule
            ``count -> wd``: the gradient becomes ``g + wd * p`` before the moments, so the decay is divided by
            ``sqrt(v_hat) + eps`` like the rest of the gradient. Default None: no decay stage. PyTorch:
            ``torch.optim.Adam(weight_decay=...)``; ``optax.adam`` has none (Optax chains
            ``optax.add_decayed_weights`` in front). adamlab's.
        mask: Where `weight_decay` applies: a tree of bools like the params (True decays the leaf; a bool
            array shaped like its param selects elements), a prefix of one (``{"encoder": False, "head":
            True}`` covers every leaf under each key), or a callable ``params -> such a tree``, such as
            :func:`adamlab.weight_decay_mask` (decays matrices, not biases or norms' scales). Checked at
            ``init`` (TypeError for a leaf that is not a bool, ValueError for a tree that does not fit the
            params; see :func:`adamlab.resolve_mask`). Default None: every float leaf. Ignored without
            `weight_decay`; the moments cover every leaf either way. adamlab's.
        nu_dtype: Storage dtype of the second moment ``v``; overrides `state_dtype` for ``v``. It needs
            float32's exponent range: None, float32, ``jnp.bfloat16`` (rounded stochastically) or ``jnp.int8``
            (8-bit codes); float16 raises ValueError. Default None: `state_dtype`'s choice. adamlab's.
        state_dtype: Storage dtype of both moments, where `mu_dtype` or `nu_dtype` does not say otherwise:
            None (default: float32, or the param's dtype when wider), ``jnp.bfloat16`` (``m`` rounded to
            nearest, ``v`` stochastically) or ``jnp.int8`` (8-bit block-wise codes for leaves of at least
            4096 elements, rounded stochastically). The arithmetic always runs in float32 or wider; see the
            module docstring for what each choice stores. adamlab's.
        saturate: Hold ``v`` at the float32 maximum instead of letting it become Inf when ``g**2`` overflows
            (``|g| > 1.8e19``), so that the weight's steps recover as ``v`` decays (one select per element,
            about 8% more compile time). Default False: as in Optax, such a weight's ``v`` is Inf and its
            step 0 from then on. adamlab's.
        momentum_decay: With `nesterov`, the rate ``psi > 0`` of Dozat's momentum schedule ``mu_t = b1 * (1 -
            0.5 * 0.96**(t * psi))`` (see :func:`adamlab.bias_correct`): ``4e-3`` is PyTorch's NAdam default.
            Default None (or ``math.inf``): no schedule, ``mu_t = b1`` (Optax's NAdam). PyTorch: ``momentum_decay`` of
            ``torch.optim.NAdam``.
        maximize: Ascend instead of descend: the gradient is negated before the moments (and before a
            coupled decay), so the decay still pulls toward 0. Default False. PyTorch: ``maximize``.

    Returns:
        A :class:`adamlab.GradientTransformation` whose state is a tuple: ``EmptyState()`` for the decay (only
        with `weight_decay`), an :class:`adamlab.EmaState` holding ``m`` (:class:`adamlab.CountedEmaState`
        with 8-bit ``m``), a :class:`adamlab.CountState` (the bias correction's step; a
        :class:`adamlab.MomentumScheduleState` with a `momentum_decay`), an :class:`adamlab.RmsState` holding
        ``v``, and the learning rate's state (``EmptyState()``, or a :class:`adamlab.ScheduleState` for a
        schedule). `maximize` adds an ``EmptyState()`` first.

    Raises:
        ValueError: If `b1` or `b2` is outside ``[0, 1)`` (or rounds to 1 in float32); if `eps`, `eps_root`,
            `weight_decay` or `learning_rate` is a negative or non-finite number; if the second moment's
            dtype lacks float32's exponent range (float16); if `momentum_decay` is not > 0, or is finite
            without `nesterov`.
        TypeError: If a hyperparameter is not a real number or scalar array (`weight_decay` may also be a
            schedule), if `b1` or `b2` arrives as a bfloat16 or float16 array, or if a dtype is neither a
            float dtype nor ``jnp.int8``.

    References:
        Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015.

        Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop (``nesterov=True``).

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.adam(0.1)
        >>> params = {"w": jnp.ones(3)}
        >>> state = tx.init(params)
        >>> updates, state = tx.update({"w": jnp.array([0.5, -2.0, 0.0])}, state, params)
        >>> print(adamlab.apply_updates(params, updates)["w"])  # the first step is -lr * sign(g)
        [0.9 1.1 1. ]

        Both moments in bfloat16 (the arithmetic stays float32):

        >>> tx = adamlab.adam(0.1, state_dtype=jnp.bfloat16)
        >>> m, count, v, lr = tx.init(params)
        >>> print(m.moment["w"].dtype, v.second_moment["w"].dtype)
        bfloat16 bfloat16
    """
    mu, nu = _moment_dtypes(mu_dtype, nu_dtype, state_dtype)
    return chain(
        _ascent(maximize),
        _optional_decay(add_coupled_weight_decay, weight_decay, mask),
        *_adam_direction(b1, b2, eps, eps_root, mu, nu, nesterov, saturate, momentum_decay),
        scale_by_learning_rate(learning_rate),
        name="adam",
    )


def adamw(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask | None = None,
    *,
    nesterov: bool = False,
    schedule: Schedule | None = None,
    nu_dtype=None,
    state_dtype=None,
    saturate: bool = False,
    momentum_decay: float | None = None,
    maximize: bool = False,
) -> GradientTransformation:
    """AdamW: Adam with weight decay decoupled from the adaptive scaling.

    AdamW: ``p <- p - lr * (m_hat / (sqrt(v_hat + eps_root) + eps) + wd * p)``; NAdamW with `nesterov`::

        m_t   = b1 * m_{t-1} + (1 - b1) * g_t,      m_hat = m_t / (1 - b1**t)     (NAdam's with nesterov)
        v_t   = b2 * v_{t-1} + (1 - b2) * g_t**2,   v_hat = v_t / (1 - b2**t)
        adam  = m_hat / (sqrt(v_hat + eps_root) + eps)   (momentum_decay: as in adamlab.adam; maximize: g <- -g)
        p <- p - lr * (adam + wd * p)                          (schedule=None; wd only where mask is True)
        p <- p - eta_t * (alpha * adam + wd * p)               (schedule=eta, alpha = learning_rate)

    The decay is decoupled from the adaptive scaling: every (unmasked)
    weight shrinks by the same ``lr * wd`` per step (Optax's and PyTorch's
    form). With a `schedule` (a multiplier ``step -> eta_t``), the paper's
    Algorithm 2 (Loshchilov & Hutter, ICLR 2019): `learning_rate` is the base
    rate ``alpha`` and ``p <- p - eta_t * (alpha * adam + wd * p)``, so the
    decay per step, ``eta_t * wd``, does not move with ``alpha``.

    Built as ``chain(scale_by_ema(b1), bias_correct(b1), scale_by_rms(b2, eps, bias_correction=True),
    add_decoupled_weight_decay(weight_decay, mask), scale_by_learning_rate(learning_rate))``; with a
    `schedule`, ``chain(<the same three moment stages>, scale(learning_rate),
    add_decoupled_weight_decay(weight_decay, mask), scale_by_learning_rate(schedule))``. The decay stage is
    kept even for ``weight_decay=0``, so the state's structure does not depend on its value. `maximize` puts
    ``scale(-1.0)`` in front, `momentum_decay` goes to the bias correction as in :func:`adamlab.adam`. Without
    `schedule` it computes what ``optax.adamw`` does.
    ``torch.optim.AdamW(params, lr, betas=(b1, b2), eps=eps, weight_decay=wd)`` is
    ``adamw(lr, b1, b2, eps, weight_decay=wd)``, but mind the default: PyTorch's `weight_decay` is 1e-2,
    adamlab's and Optax's 1e-4.

    Args:
        learning_rate: The step size ``lr``: a number >= 0, or a schedule ``step -> lr`` evaluated at the
            number of steps already taken (``schedule(0)`` first). With `schedule`, the base rate ``alpha``
            instead, which must be a number. Default 1e-3 (PyTorch's; ``optax.adamw`` has no default). Optax:
            ``learning_rate``; PyTorch: ``lr``.
        b1: Decay of the first moment (the EMA of ``g``), in ``[0, 1)`` and below 1 in float32. Default 0.9.
            Optax: ``b1``; PyTorch: ``betas[0]``.
        b2: Decay of the second moment (the EMA of ``g**2``), in ``[0, 1)`` and below 1 in float32. Default
            0.999. Optax: ``b2``; PyTorch: ``betas[1]``.
        eps: Added to ``sqrt(v_hat)``, outside the root as in the paper; it bounds the step where ``v_hat`` is
            tiny. A number >= 0, default 1e-8; with 0, a zero gradient still gives a zero step, not 0/0.
            Optax and PyTorch: ``eps``.
        eps_root: Added to ``v_hat`` under the root, ``sqrt(v_hat + eps_root)``: >= 0, default 0. A positive
            value keeps the derivative of the update finite where ``v_hat = 0`` (differentiating through the
            optimizer). Optax: ``eps_root``; no PyTorch equivalent.
        mu_dtype: Storage dtype of the first moment ``m`` (any float dtype, or ``jnp.int8``); overrides
            `state_dtype` for ``m``. Default None: `state_dtype`'s choice. Optax: ``mu_dtype``.
        weight_decay: Coefficient ``wd >= 0`` of the decoupled decay, a number or a schedule ``count -> wd``
            (evaluated at the steps already taken, as Optax does; for a decay that follows the rate's schedule
            use `schedule` instead). Each step removes ``lr * wd * p`` (``eta_t * wd * p`` with `schedule`).
            Default 1e-4 (Optax's; PyTorch's is 1e-2).
            Optax and PyTorch: ``weight_decay``.
        mask: Where the decay applies: a tree of bools like the params (True decays the leaf; a bool array
            shaped like its param selects elements), a prefix of one (``{"encoder": False, "head": True}``
            covers every leaf under each key), or a callable ``params -> such a tree``, such as
            :func:`adamlab.weight_decay_mask` (decays matrices, not biases or norms' scales). Checked at
            ``init`` (TypeError for a leaf that is not a bool, ValueError for a tree that does not fit the
            params; see :func:`adamlab.resolve_mask`). Default None: every float leaf. The moments cover every
            leaf either way. Optax: ``mask``; PyTorch uses parameter groups instead.
        nesterov: NAdam's look-ahead in the bias-corrected first moment (see :func:`adamlab.adam`);
            :func:`adamlab.nadamw` is ``adamw(..., nesterov=True)``. Default False. Optax: ``nesterov``.
        schedule: The paper's schedule multiplier ``eta_t`` (Algorithm 2 of Loshchilov & Hutter): a callable
            ``step -> multiplier`` evaluated at the number of steps already taken, which scales both the Adam
            step ``alpha * adam`` and the decay. `learning_rate` is then the base rate ``alpha``, a number.
            Default None: the PyTorch/Optax form, in which the decay is multiplied by the full learning rate.
            adamlab's.
        nu_dtype: Storage dtype of the second moment ``v``; overrides `state_dtype` for ``v``. It needs
            float32's exponent range: None, float32, ``jnp.bfloat16`` (rounded stochastically) or ``jnp.int8``
            (8-bit codes); float16 raises ValueError. Default None: `state_dtype`'s choice. adamlab's.
        state_dtype: Storage dtype of both moments, where `mu_dtype` or `nu_dtype` does not say otherwise:
            None (default: float32, or the param's dtype when wider), ``jnp.bfloat16`` (``m`` rounded to
            nearest, ``v`` stochastically) or ``jnp.int8`` (8-bit block-wise codes for leaves of at least
            4096 elements, rounded stochastically). The arithmetic always runs in float32 or wider; see the
            module docstring for what each choice stores. adamlab's.
        saturate: Hold ``v`` at the float32 maximum instead of letting it become Inf when ``g**2`` overflows
            (``|g| > 1.8e19``), so that the weight's steps recover as ``v`` decays (one select per element,
            about 8% more compile time). Default False: as in Optax, such a weight's ``v`` is Inf and its
            step 0 from then on. adamlab's.
        momentum_decay: With `nesterov`, the rate ``psi > 0`` of Dozat's momentum schedule ``mu_t = b1 * (1 -
            0.5 * 0.96**(t * psi))`` (see :func:`adamlab.bias_correct`): ``4e-3`` is PyTorch's NAdam default.
            Default None (or ``math.inf``): no schedule, ``mu_t = b1`` (Optax's NAdam). PyTorch: ``momentum_decay`` of
            ``torch.optim.NAdam``.
        maximize: Ascend instead of descend: the gradient is negated before the moments (and before a
            coupled decay), so the decay still pulls toward 0. Default False. PyTorch: ``maximize``.

    Returns:
        A :class:`adamlab.GradientTransformation` whose state is a tuple: an :class:`adamlab.EmaState` holding
        ``m`` (:class:`adamlab.CountedEmaState` with 8-bit ``m``), a :class:`adamlab.CountState` (the bias
        correction's step), an :class:`adamlab.RmsState` holding ``v``, ``EmptyState()`` for the decay (and
        for ``scale(alpha)`` with `schedule`), and the learning rate's state (``EmptyState()``, or a
        :class:`adamlab.ScheduleState` for a schedule or `schedule`).

    Raises:
        ValueError: If `b1` or `b2` is outside ``[0, 1)`` (or rounds to 1 in float32); if `eps`, `eps_root`,
            `weight_decay` or `learning_rate` is a negative or non-finite number; if `learning_rate` is a
            schedule while `schedule` is given; if the second moment's dtype lacks float32's exponent range
            (float16); if `momentum_decay` is not > 0, or is finite without `nesterov`.
        TypeError: If `schedule` is not callable; if a hyperparameter is not a real number or scalar array
            (`weight_decay` may also be a schedule), if `b1` or `b2` arrives as a bfloat16 or float16 array,
            or if a dtype is neither a float dtype nor ``jnp.int8``.

    References:
        Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.

        Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.adamw(0.25, weight_decay=0.5)
        >>> params = {"w": jnp.ones(3)}
        >>> state = tx.init(params)
        >>> updates, state = tx.update({"w": jnp.array([1.0, -1.0, 0.0])}, state, params)
        >>> print(adamlab.apply_updates(params, updates)["w"].round(4))  # p - 0.25 * (sign(g) + 0.5 * p)
        [0.625 1.125 0.875]

        :func:`adamlab.weight_decay_mask` decays matrices and leaves biases alone:

        >>> params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
        >>> grads = {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}
        >>> tx = adamlab.adamw(0.25, weight_decay=0.5, mask=adamlab.weight_decay_mask)
        >>> updates, state = tx.update(grads, tx.init(params), params)
        >>> new = adamlab.apply_updates(params, updates)
        >>> print(new["w"][0], new["b"])
        [0.875 0.875] [1. 1.]

        The paper's form: the multiplier ``eta_t = 0.5`` scales the decay, the base rate ``alpha`` does not:

        >>> params = {"w": jnp.ones(2)}
        >>> for alpha in (0.5, 0.25):
        ...     tx = adamlab.adamw(alpha, weight_decay=0.5, schedule=adamlab.schedules.constant(0.5))
        ...     updates, state = tx.update({"w": jnp.array([1.0, 0.0])}, tx.init(params), params)
        ...     print(updates["w"].round(4))  # -0.5 * (alpha * sign(g) + 0.5 * p)
        [-0.5  -0.25]
        [-0.375 -0.25 ]
    """
    mu, nu = _moment_dtypes(mu_dtype, nu_dtype, state_dtype)
    if schedule is None:
        rate = (add_decoupled_weight_decay(weight_decay, mask), scale_by_learning_rate(learning_rate))
    else:
        if not callable(schedule):
            raise TypeError(f"schedule must be a function step -> multiplier, got {type(schedule).__name__}")
        _checks.check_schedule("schedule", schedule)
        if callable(learning_rate):
            raise ValueError(
                "adamw(learning_rate=<a schedule>, schedule=...): with `schedule`, learning_rate is the base rate "
                "alpha, a number, and the schedule multiplies both alpha and the decay; give one schedule"
            )
        _checks.check_nonnegative("learning_rate", learning_rate)
        rate = (scale(learning_rate), add_decoupled_weight_decay(weight_decay, mask), scale_by_learning_rate(schedule))
    direction = _adam_direction(b1, b2, eps, eps_root, mu, nu, nesterov, saturate, momentum_decay)
    return chain(_ascent(maximize), *direction, *rate, name="adamw")
