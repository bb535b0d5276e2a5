"""The Adam family beyond Adam and AdamW, each a short chain of primitives.

Keyword names and defaults are Optax's where Optax has the optimizer (core or ``optax.contrib``), else the
paper's::

    amsgrad      = chain(scale_by_ema(b1), bias_correct(b1), scale_by_max_rms(b2, eps), lr)
    nadam        = adam(..., nesterov=True)
    ademamix     = chain(scale_by_ema(b1), bias_correct(b1), add_slow_moment(b3, alpha),
                         scale_by_rms(b2, eps, bias_correction=True), add_decoupled_weight_decay(wd), lr)
    lion         = chain(scale_by_ema(b2, output_decay=b1), scale_by_sign(), add_decoupled_weight_decay(wd), lr)
    adam_atan2   = chain(scale_by_ema(b1), bias_correct(b1), scale_by_atan2_rms(b2, a, b),
                         add_decoupled_weight_decay(wd), lr)
    stable_adamw = chain(scale_by_ema(b1), bias_correct(b1),
                         clip_by_rms_ratio(chain(scale_by_rms(b2, eps, bias_correction=True),
                                                 add_decoupled_weight_decay(wd)), b2, eps), lr)
    cautious(tx) = tx with cautious_mask() after its moments, before its decay and learning rate

(``lr`` stands for ``scale_by_learning_rate(learning_rate)``.) Each returns an adamlab chain, a
:class:`adamlab.GradientTransformation` whose state is the tuple of its stages' states. The optimizers take
the dtype arguments of :func:`adamlab.adam` (Lion, with one moment, has no ``nu_dtype``): ``mu_dtype``
(Optax's) stores the first moment(s), ``nu_dtype`` the second moment, ``state_dtype`` both, where the
specific one does not say otherwise; ``jnp.bfloat16`` and
``jnp.int8`` (8-bit block-wise codes) are described in the ``adamlab.optimizers`` module docstring.
Hyperparameters given as numbers are checked when the optimizer is built; a weight decay is always a
number here (Optax also takes a schedule).
"""

from __future__ import annotations

from adamlab import _checks
from adamlab.base import GradientTransformation, Transformation, chain, identity, stage_info
from adamlab.decay import Mask, add_decoupled_weight_decay
from adamlab.directions import cautious_mask, clip_by_rms_ratio, scale_by_sign
from adamlab.moments import (
    add_slow_moment,
    bias_correct,
    scale_by_atan2_rms,
    scale_by_ema,
    scale_by_max_rms,
    scale_by_rms,
)
from adamlab.optimizers import _ascent, _moment_dtypes, _optional_decay, adam, adamw
from adamlab.scaling import ScalarOrSchedule, Schedule, scale_by_learning_rate


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    max_of: str = "bias_corrected",
    nu_dtype=None,
    state_dtype=None,
    maximize: bool = False,
) -> GradientTransformation:
    """AMSGrad (Reddi et al., ICLR 2018): Adam dividing by the running maximum of the second moment.

    ``max_of="bias_corrected"`` (Optax's, the default) keeps the maximum of ``v_hat``; ``"raw"``
    (``torch.optim.Adam(amsgrad=True)``) the maximum of ``v``, bias-corrected afterwards: see
    `scale_by_max_rms`. Without bias corrections (both False) it is the paper's::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t;  m_hat = m_t / (1 - b1**t)  (bias_correction_mu, else m_t)
        v_t = b2 * v_{t-1} + (1 - b2) * g_t**2
        max_of="bias_corrected":   v_max = max(v_max, v_t / (1 - b2**t));  D = v_max
        max_of="raw":              v_max = max(v_max, v_t);                D = v_max / (1 - b2**t)
        bias_correction_nu=False:  v_max = max(v_max, v_t);                D = v_max
        p <- p - lr * m_hat / (sqrt(D + eps_root) + eps)

    The denominator never shrinks (up to the bias correction), so a large gradient keeps damping its
    coordinate's later steps: the change that restores Adam's convergence guarantee. Built as
    ``chain(scale_by_ema(b1), bias_correct(b1), scale_by_max_rms(b2, eps, eps_root=eps_root,
    bias_correction=bias_correction_nu, max_of=max_of), scale_by_learning_rate(learning_rate))``, the
    `bias_correct` stage left out without `bias_correction_mu`. With the default ``max_of`` it computes
    what ``optax.amsgrad`` does; ``torch.optim.Adam(params, lr, betas=(b1, b2), eps=eps, amsgrad=True)`` is
    ``amsgrad(lr, b1, b2, eps, max_of="raw")``.

    Args:
        learning_rate: The step size ``lr``: a number >= 0, or a schedule ``step -> lr`` evaluated at the
            number of steps already taken. No default. Optax: ``learning_rate``; PyTorch: ``lr``.
        b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``; PyTorch: ``betas[0]``.
        b2: Decay of the second moment, in ``[0, 1)``. Default 0.999. Optax: ``b2``; PyTorch: ``betas[1]``.
        eps: Added to the root of the denominator, outside it: >= 0, default 1e-8. Optax and PyTorch:
            ``eps``.
        eps_root: Added under the root, ``sqrt(D + eps_root)``: >= 0, default 0 (for differentiating through
            the optimizer). Optax: ``eps_root``.
        mu_dtype: Storage dtype of the first moment ``m`` (any float dtype, or ``jnp.int8``); overrides
            `state_dtype` for ``m``. Default None. Optax: ``mu_dtype``.
        bias_correction_mu: Divide ``m`` by ``1 - b1**t``. Default True; False is the paper's. Optax:
            ``bias_correction_mu``.
        bias_correction_nu: Bias-correct the second moment, before or after the maximum as `max_of` says.
            Default True; False is the paper's, and then `max_of` has no effect. Optax: ``bias_correction_nu``.
        max_of: What the running maximum is taken of: ``"bias_corrected"`` (default, Optax's) the corrected
            ``v_t / (1 - b2**t)``, or ``"raw"`` (PyTorch's) ``v_t`` itself, corrected after the maximum with
            the current step's ``1 - b2**t``. adamlab's.
        nu_dtype: Storage dtype of ``v`` and of its running maximum; overrides `state_dtype` for them. None,
            float32, ``jnp.bfloat16`` (rounded stochastically) or ``jnp.int8``; float16 raises ValueError.
            Default None. adamlab's.
        state_dtype: Storage dtype of all three moments where `mu_dtype` or `nu_dtype` does not say
            otherwise: None (default: float32, or the param's dtype when wider), ``jnp.bfloat16`` or
            ``jnp.int8``. The arithmetic is float32 either way. adamlab's.
        maximize: Ascend instead of descend: ``scale(-1.0)`` in front negates the gradient. Default False.
            PyTorch: ``maximize`` of ``torch.optim.Adam``.

    Returns:
        A :class:`adamlab.GradientTransformation` whose state is a tuple: an :class:`adamlab.EmaState`
        (``m``; :class:`adamlab.CountedEmaState` with 8-bit ``m``), a :class:`adamlab.CountState` (only with
        `bias_correction_mu`), a :class:`adamlab.MaxRmsState` (``second_moment`` and ``max_second_moment``)
        and the learning rate's state; `maximize` adds an ``EmptyState()`` first.

    Raises:
        ValueError: If `b1` or `b2` is outside ``[0, 1)``; if `eps`, `eps_root` or `learning_rate` is a
            negative or non-finite number; if `max_of` is neither ``"bias_corrected"`` nor ``"raw"``; if the
            second moment's dtype lacks float32's exponent range (float16).
        TypeError: If a hyperparameter is not a real number or scalar array, or a dtype is neither a float
            dtype nor ``jnp.int8``.

    References:
        Reddi, Kale & Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018.

    Example:
        After a large gradient and a small one, Optax's form still divides by the large ``v_hat``:

        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> params = {"w": jnp.ones(2)}
        >>> for max_of in ("bias_corrected", "raw"):
        ...     tx = adamlab.amsgrad(0.1, max_of=max_of)
        ...     state = tx.init(params)
        ...     for g in (1.0, 0.1):
        ...         updates, state = tx.update({"w": jnp.full(2, g)}, state, params)
        ...     print(max_of, state[2].max_second_moment["w"].round(4), updates["w"].round(4))
        bias_corrected [1. 1.] [-0.0526 -0.0526]
        raw [0.001 0.001] [-0.0741 -0.0741]
    """
    mu, nu = _moment_dtypes(mu_dtype, nu_dtype, state_dtype)
    return chain(
        _ascent(maximize),
        scale_by_ema(b1, state_dtype=mu),
        bias_correct(b1) if bias_correction_mu else identity(),
        scale_by_max_rms(b2, eps, eps_root=eps_root, bias_correction=bias_correction_nu, max_of=max_of, state_dtype=nu),
        scale_by_learning_rate(learning_rate),
        name="amsgrad",
    )


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
    *,
    nesterov: bool = True,
    weight_decay: ScalarOrSchedule | None = None,
    mask: Mask | None = None,
    nu_dtype=None,
    state_dtype=None,
    saturate: bool = False,
    momentum_decay: float | None = None,
    maximize: bool = False,
) -> GradientTransformation:
    """NAdam (Dozat, 2016): `adam` with the Nesterov look-ahead in the bias-corrected first moment.

    ::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t,    v_t = b2 * v_{t-1} + (1 - b2) * g_t**2
        m_hat = b1 * m_t / (1 - b1**(t+1)) + (1 - b1) * g_t / (1 - b1**t),    v_hat = v_t / (1 - b2**t)
        p <- p - lr * m_hat / (sqrt(v_hat + eps_root) + eps)

    Exactly ``adamlab.adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=True, ...)``: the
    chain ``chain(scale_by_ema(b1), bias_correct(b1, nesterov=True), scale_by_rms(b2, eps,
    bias_correction=True, eps_root=eps_root), scale_by_learning_rate(learning_rate))``, as ``optax.nadam``
    (``functools.partial(optax.adam, nesterov=True)``). ``torch.optim.NAdam(params, lr, betas, eps,
    momentum_decay=psi)`` multiplies ``b1`` by a warm-up schedule: ``nadam(lr, b1, b2, eps,
    momentum_decay=psi)`` (its default ``4e-3`` must be passed; the default here, None, is Optax's
    NAdam, torch's ``momentum_decay=float("inf")``)::

        mu_t = b1 * (1 - 0.5 * 0.96**(t * psi)),   P_t = mu_1 * ... * mu_t
        m_hat = mu_{t+1} * m_t / (1 - P_t * mu_{t+1}) + (1 - mu_t) * g_t / (1 - P_t)

    Args:
        learning_rate: The step size ``lr``: a number >= 0, or a schedule ``step -> lr``. No default (unlike
            :func:`adamlab.adam`'s 1e-3). Optax: ``learning_rate``; PyTorch: ``lr``.
        b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``; PyTorch: ``betas[0]``.
        b2: Decay of the second moment, in ``[0, 1)``. Default 0.999. Optax: ``b2``; PyTorch: ``betas[1]``.
        eps: Added to ``sqrt(v_hat)`` outside the root: >= 0, default 1e-8. Optax and PyTorch: ``eps``.
        eps_root: Added to ``v_hat`` under the root: >= 0, default 0. Optax: ``eps_root``.
        mu_dtype: Storage dtype of the first moment ``m``; overrides ``state_dtype`` for it. Default None.
            Optax: ``mu_dtype``.
        nesterov: The look-ahead; default True. False gives plain :func:`adamlab.adam`. Optax: ``nesterov``.
        weight_decay: Coupled (L2) decay added to the gradient, as :func:`adamlab.adam`'s. Default None.
            PyTorch: ``weight_decay`` of ``torch.optim.NAdam``.
        mask: Where the decay applies, as :func:`adamlab.adam`'s. Default None: every float leaf.
        nu_dtype: Storage dtype of ``v``, as :func:`adamlab.adam`'s. Default None.
        state_dtype: Storage dtype of both moments, as :func:`adamlab.adam`'s. Default None.
        saturate: Hold ``v`` at the float32 maximum instead of Inf, as :func:`adamlab.adam`'s. Default False.
        momentum_decay: ``psi`` of PyTorch's momentum schedule above. Default None: none (Optax's NAdam).
            PyTorch: ``momentum_decay`` (default ``4e-3`` there).
        maximize: Ascend instead of descend. Default False. PyTorch: ``maximize``.

    Returns:
        A :class:`adamlab.GradientTransformation`, with the state of :func:`adamlab.adam`.

    Raises:
        ValueError: As :func:`adamlab.adam`: a decay outside ``[0, 1)``, a negative `eps`, `eps_root` or
            learning rate, or a second-moment dtype without float32's range.
        TypeError: As :func:`adamlab.adam`.

    References:
        Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop.

    Example:
        The first step is ``1 + b1 * (1 - b1) / (1 - b1**2) = 1.4737`` times Adam's ``-lr * sign(g)``:

        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.nadam(0.01)
        >>> params = {"w": jnp.ones(3)}
        >>> updates, state = tx.update({"w": jnp.array([0.5, -2.0, 0.0])}, tx.init(params), params)
        >>> print((updates["w"] / 0.01).round(4))
        [-1.4737  1.4737  0.    ]
    """
    return chain(
        adam(
            learning_rate,
            b1,
            b2,
            eps,
            eps_root,
            mu_dtype,
            nesterov=nesterov,
            weight_decay=weight_decay,
            mask=mask,
            nu_dtype=nu_dtype,
            state_dtype=state_dtype,
            saturate=saturate,
            momentum_decay=momentum_decay,
            maximize=maximize,
        ),
        name="nadam",
    )


def nadamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask | None = None,
    *,
    nesterov: bool = True,
    schedule: Schedule | None = None,
    nu_dtype=None,
    state_dtype=None,
    saturate: bool = False,
    momentum_decay: float | None = None,
    maximize: bool = False,
) -> GradientTransformation:
    """NAdamW: `adamw` with NAdam's look-ahead.

    ::

        m_hat = b1 * m_t / (1 - b1**(t+1)) + (1 - b1) * g_t / (1 - b1**t),    v_hat = v_t / (1 - b2**t)
        p <- p - lr * (m_hat / (sqrt(v_hat + eps_root) + eps) + wd * p)

    Exactly ``adamlab.adamw(learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask,
    nesterov=True, ...)``: the chain ``chain(scale_by_ema(b1), bias_correct(b1, nesterov=True),
    scale_by_rms(b2, eps, bias_correction=True, eps_root=eps_root), add_decoupled_weight_decay(weight_decay,
    mask), scale_by_learning_rate(learning_rate))``, as ``optax.nadamw``. PyTorch:
    ``torch.optim.NAdam(params, lr, betas, eps, weight_decay=wd, momentum_decay=psi,
    decoupled_weight_decay=True)`` is ``nadamw(lr, b1, b2, eps, weight_decay=wd, momentum_decay=psi)``, with
    the momentum schedule of :func:`adamlab.nadam`.

    Args:
        learning_rate: The step size ``lr``: a number >= 0, or a schedule ``step -> lr``; with a `schedule`
            given, the base rate ``alpha`` (a number). No default. Optax: ``learning_rate``.
        b1: Decay of the first moment, in ``[0, 1)``. Default 0.9. Optax: ``b1``.
        b2: Decay of the second moment, in ``[0, 1)``. Default 0.999. Optax: ``b2``.
        eps: Added to ``sqrt(v_hat)`` outside the root: >= 0, default 1e-8. Optax: ``eps``.
        eps_root: Added to ``v_hat`` under the root: >= 0, default 0. Optax: ``eps_root``.
        mu_dtype: Storage dtype of the first moment ``m``; overrides ``state_dtype`` for it. Default None.
            Optax: ``mu_dtype``.
        weight_decay: Decoupled decay coefficient ``wd >= 0``, a number. Default 1e-4. Optax:
            ``weight_decay``.
        mask: Where the decay applies: a bool tree like the params, a prefix of one, or a callable ``params ->
            mask`` such as :func:`adamlab.weight_decay_mask`. Default None: every float leaf. Optax: ``mask``.
        nesterov: The look-ahead; default True. False gives plain :func:`adamlab.adamw`. Optax: ``nesterov``.
        schedule: The paper's schedule multiplier ``eta_t``, as :func:`adamlab.adamw`'s. Default None.
        nu_dtype: Storage dtype of ``v``, as :func:`adamlab.adamw`'s. Default None.
        state_dtype: Storage dtype of both moments, as :func:`adamlab.adamw`'s. Default None.
        saturate: Hold ``v`` at the float32 maximum instead of Inf, as :func:`adamlab.adamw`'s. Default False.
        momentum_decay: ``psi`` of PyTorch's momentum schedule (:func:`adamlab.nadam`). Default None: none
            (Optax's NAdamW). PyTorch: ``momentum_decay`` of ``torch.optim.NAdam`` (default ``4e-3`` there).
        maximize: Ascend instead of descend. Default False. PyTorch: ``maximize``.

    Returns:
        A :class:`adamlab.GradientTransformation`, with the state of :func:`adamlab.adamw`.

    Raises:
        ValueError: As :func:`adamlab.adamw`.
        TypeError: As :func:`adamlab.adamw`.

    References:
        Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop.

        Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.nadamw(0.01, weight_decay=0.0)
        >>> params = {"w": jnp.ones(3)}
        >>> updates, state = tx.update({"w": jnp.array([0.5, -2.0, 0.0])}, tx.init(params), params)
        >>> print((updates["w"] / 0.01).round(4))  # NAdam's first step, as in adamlab.nadam
        [-1.4737  1.4737  0.    ]
    """
    return chain(
        adamw(
            learning_rate,
            b1,
            b2,
            eps,
            eps_root,
            mu_dtype,
            weight_decay,
            mask,
            nesterov=nesterov,
            schedule=schedule,
            nu_dtype=nu_dtype,
            state_dtype=state_dtype,
            saturate=saturate,
            momentum_decay=momentum_decay,
            maximize=maximize,
        ),
        name="nadamw",
    )


def ademamix(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 5.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Mask | None = None,
    *,
    nu_dtype=None,
    state_dtype=None,
) -> GradientTransformation:
    """AdEMAMix (Pagliardini et al., ICLR 2025): ``p <- p - lr * ((m1_hat + alpha * m2) / (sqrt(v_hat) + eps)
    + wd * p)`` with a fast EMA ``m1`` (b1) and a slow one ``m2`` (b3, not bias-corrected).

    ::

        m1_t = b1 * m1_{t-1} + (1 - b1) * g_t,      m1_hat = m1_t / (1 - b1**t)
        m2_t = b3 * m2_{t-1} + (1 - b3) * g_t                     (not bias-corrected)
        v_t  = b2 * v_{t-1} + (1 - b2) * g_t**2,    v_hat = v_t / (1 - b2**t)
        p <- p - lr * ((m1_hat + alpha * m2_t) / (sqrt(v_hat + eps_root) + eps) + wd * p)

    `b3` and `alpha` may be schedules: the paper warms both up (`schedules.ademamix_b3`,
    `schedules.ademamix_alpha`). `mu_dtype` sets both first moments' dtype.

    The slow EMA remembers gradients over about ``1 / (1 - b3) = 10,000`` steps; it pays off in long runs
    (the paper suggests a smaller `b3` for short ones). Built as ``chain(scale_by_ema(b1), bias_correct(b1),
    add_slow_moment(b3, alpha), scale_by_rms(b2, eps, bias_correction=True, eps_root=eps_root),
    add_decoupled_weight_decay(weight_decay, mask), scale_by_learning_rate(learning_rate))``, the decay stage
    left out for ``weight_decay=0``. Same arguments and defaults as ``optax.contrib.ademamix``; no PyTorch
    optimizer.

    Args:
        learning_rate: The step size ``lr``: a number >= 0, or a schedule ``step -> lr``. No default. Optax:
            ``learning_rate``.
        b1: Decay of the fast EMA ``m1``, in ``[0, 1)``. Default 0.9. Optax: ``b1``; paper: ``beta_1``.
        b2: Decay of the second moment ``v``, in ``[0, 1)``. Default 0.999. Optax: ``b2``; paper: ``beta_2``.
        b3: Decay of the slow EMA ``m2``: a number in ``[0, 1)``, or a schedule ``step -> b3`` evaluated at
            the number of steps already taken, such as :func:`adamlab.schedules.ademamix_b3`. Default 0.9999.
            Optax: ``b3``; paper: ``beta_3``.
        alpha: Weight ``>= 0`` of the slow EMA in the step, or a schedule such as
            :func:`adamlab.schedules.ademamix_alpha`. Default 5.0. Optax: ``alpha``.
        eps: Added to ``sqrt(v_hat)`` outside the root: >= 0, default 1e-8. Optax: ``eps``.
        eps_root: Added to ``v_hat`` under the root: >= 0, default 0. Optax: ``eps_root``.
        mu_dtype: Storage dtype of both first moments, ``m1`` and ``m2``; overrides `state_dtype` for them.
            Default None. Optax: ``mu_dtype``. With ``jnp.int8``, ``m1`` is rounded stochastically and ``m2``
            to nearest.
        weight_decay: Decoupled decay coefficient ``wd >= 0``, a number. Default 0.0: no decay stage. Optax:
            ``weight_decay``.
        mask: Where the decay applies: a bool tree like the params, a prefix of one, or a callable ``params ->
            mask`` such as :func:`adamlab.weight_decay_mask`. Default None: every float leaf. Optax: ``mask``.
        nu_dtype: Storage dtype of the second moment ``v``; overrides `state_dtype` for it. None, float32,
            ``jnp.bfloat16`` (rounded stochastically) or ``jnp.int8``. Default None. adamlab's.
        state_dtype: Storage dtype of all three moments where `mu_dtype` or `nu_dtype` does not say
            otherwise: None (default: float32, or the param's dtype when wider), ``jnp.bfloat16`` or
            ``jnp.int8``. adamlab's.

    Returns:
        A :class:`adamlab.GradientTransformation` whose state is a tuple: an :class:`adamlab.EmaState`
        (``m1``), a :class:`adamlab.CountState`, a :class:`adamlab.SlowMomentState` (``slow_moment``, the
        ``m2``), an :class:`adamlab.RmsState` (``v``), ``EmptyState()`` for the decay (with a weight decay)
        and the learning rate's state.

    Raises:
        ValueError: If `b1`, `b2` or a numeric `b3` is outside ``[0, 1)`` (the message calls `b3` ``decay``);
            if `eps`, `eps_root`, `weight_decay`, `learning_rate` or a numeric `alpha` is negative or not
            finite; if the second moment's dtype lacks float32's exponent range (float16).
        TypeError: If a hyperparameter is not a real number, scalar array or (where allowed) schedule, or a
            dtype is neither a float dtype nor ``jnp.int8``.

    References:
        Pagliardini, Ablin & Grangier, *The AdEMAMix Optimizer: Better, Faster, Older*, ICLR 2025.

    Example:
        The slow EMA adds ``alpha * (1 - b3) = 5e-4`` of ``sign(g)`` to Adam's first step:

        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> params = {"w": jnp.ones(2)}
        >>> tx = adamlab.ademamix(0.1)
        >>> updates, state = tx.update({"w": jnp.array([0.5, -2.0])}, tx.init(params), params)
        >>> print((updates["w"] / 0.1).round(4))
        [-1.0005  1.0005]

        With the paper's warm-ups, ``alpha`` starts at 0:

        >>> tx = adamlab.ademamix(0.1, b3=adamlab.schedules.ademamix_b3(0.9999, 1000),
        ...                       alpha=adamlab.schedules.ademamix_alpha(5.0, 1000))
        >>> updates, state = tx.update({"w": jnp.array([0.5, -2.0])}, tx.init(params), params)
        >>> print((updates["w"] / 0.1).round(4))
        [-1.  1.]
    """
    if not callable(b3):
        _checks.check_decay("b3", b3)  # add_slow_moment calls it decay
    mu, nu = _moment_dtypes(mu_dtype, nu_dtype, state_dtype)
    return chain(
        scale_by_ema(b1, state_dtype=mu),
        bias_correct(b1),
        add_slow_moment(b3, alpha, state_dtype=mu),
        scale_by_rms(b2, eps, bias_correction=True, eps_root=eps_root, state_dtype=nu),
        _optional_decay(add_decoupled_weight_decay, weight_decay, mask),
        scale_by_learning_rate(learning_rate),
        name="ademamix",
    )


def lion(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype=None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Mask | None = None,
    *,
    state_dtype=None,
) -> GradientTransformation:
    """Lion (Chen et al., 2023): ``p <- p - lr * (sign(b1 * m + (1 - b1) * g) + wd * p)``, then
    ``m <- b2 * m + (1 - b2) * g``.

    ::

        c_t = b1 * m_{t-1} + (1 - b1) * g_t
        p  <- p - lr * (sign(c_t) + wd * p)
        m_t = b2 * m_{t-1} + (1 - b2) * g_t

    Every coordinate moves by exactly ``lr`` (plus the decay), in the direction of an interpolation between
    the momentum and the current gradient; a coordinate with ``c_t = 0`` does not move. One moment, so half
    Adam's state. Lion's steps are larger than AdamW's: the paper uses a learning rate 3-10x smaller and a
    weight decay 3-10x larger, keeping ``lr * wd`` about the same. Built as ``chain(scale_by_ema(b2,
    output_decay=b1), scale_by_sign(), add_decoupled_weight_decay(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``, the decay stage left out for ``weight_decay=0``. It computes
    what ``optax.lion`` does; there is no PyTorch optimizer.

    Args:
        learning_rate: The step size ``lr`` of every coordinate: a number >= 0, or a schedule
            ``step -> lr``. No default. Optax: ``learning_rate``.
        b1: How much of the momentum (against the current gradient) the sign is taken of, in ``[0, 1)``.
            Default 0.9. Optax: ``b1``; paper: ``beta_1``.
        b2: Decay of the momentum ``m``, in ``[0, 1)``. Default 0.99. Optax: ``b2``; paper: ``beta_2``.
        mu_dtype: Storage dtype of ``m`` (any float dtype, or ``jnp.int8``); overrides `state_dtype`.
            Default None. Optax: ``mu_dtype``.
        weight_decay: Decoupled decay coefficient ``wd >= 0``, a number or a schedule ``count -> wd``.
            Default 1e-3. Optax: ``weight_decay``.
        mask: Where the decay applies: a bool tree like the params, a prefix of one, or a callable ``params ->
            mask`` such as :func:`adamlab.weight_decay_mask`. Default None: every float leaf. Optax: ``mask``.
        state_dtype: Storage dtype of ``m`` when `mu_dtype` is None: None (default: float32, or the param's
            dtype when wider), ``jnp.bfloat16`` (rounded to nearest) or ``jnp.int8`` (8-bit block-wise codes,
            rounded stochastically; the state is then a :class:`adamlab.CountedEmaState`). adamlab's.

    Returns:
        A :class:`adamlab.GradientTransformation` whose state is a tuple: an :class:`adamlab.EmaState` holding
        ``m`` (:class:`adamlab.CountedEmaState` for 8-bit state), ``EmptyState()`` for the sign and the decay,
        and the learning rate's state.

    Raises:
        ValueError: If `b1` or `b2` is outside ``[0, 1)`` (the messages call them ``output_decay`` and
            ``decay``); if `weight_decay` or `learning_rate` is a negative or non-finite number.
        TypeError: If a hyperparameter is not a real number or scalar array (`weight_decay` may also be a
            schedule), or a dtype is neither a float dtype nor ``jnp.int8``.

    References:
        Chen, Liang, Huang, Real, Wang, Pham, Dong, Luong, Hsieh, Lu & Le, *Symbolic Discovery of
        Optimization Algorithms*, NeurIPS 2023.

    Example:
        Sign steps of ``lr = 0.1``; on the second step the new gradient outweighs the momentum in the first
        coordinate (``0.9 * 0.005 < 0.1 * 0.1``), which turns back:

        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.lion(0.1, weight_decay=0.0)
        >>> params = {"w": jnp.ones(3)}
        >>> state = tx.init(params)
        >>> for g in ([0.5, -2.0, 0.0], [-0.1, -0.1, -0.1]):
        ...     updates, state = tx.update({"w": jnp.array(g)}, state, params)
        ...     params = adamlab.apply_updates(params, updates)
        ...     print([round(x, 4) for x in params["w"].tolist()])
        [0.9, 1.1, 1.0]
        [1.0, 1.2, 1.1]
    """
    _checks.check_decay("b1", b1)  # named as the caller wrote them (the stages call them output_decay and decay)
    _checks.check_decay("b2", b2)
    return chain(
        scale_by_ema(b2, output_decay=b1, state_dtype=_moment_dtypes(mu_dtype, None, state_dtype)[0]),
        scale_by_sign(),
        _optional_decay(add_decoupled_weight_decay, weight_decay, mask),
        scale_by_learning_rate(learning_rate),
        name="lion",
    )


def adam_atan2(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    a: float = 1.27,
    b: float = 1.0,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask | None = None,
    *,
    mu_dtype=None,
    nu_dtype=None,
    state_dtype=None,
) -> GradientTransformation:
    """Adam-atan2 (Everett et al., ICML 2024): AdamW with ``a * atan2(m_hat, b * sqrt(v_hat))`` in place of
    ``m_hat / (sqrt(v_hat) + eps)``: no eps to tune, and a step bounded by ``lr * a * pi / 2``.

    ::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t,      m_hat = m_t / (1 - b1**t)
        v_t = b2 * v_{t-1} + (1 - b2) * g_t**2,   v_hat = v_t / (1 - b2**t)
        p <- p - lr * (a * atan2(m_hat, b * sqrt(v_hat)) + wd * p)

    For ``|m_hat| << b * sqrt(v_hat)``, ``atan2`` is the ratio itself, so the step is Adam's times ``a / b``;
    it saturates smoothly at ``a * pi / 2`` instead of blowing up where ``v_hat`` is tiny, and a zero
    gradient gives a zero step (``atan2(0, 0) = 0``), so no eps is needed. Built as ``chain(scale_by_ema(b1),
    bias_correct(b1), scale_by_atan2_rms(b2, a, b), add_decoupled_weight_decay(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``, the decay stage left out for ``weight_decay=0``. Neither Optax
    0.2.8 nor PyTorch has it.

    Args:
        learning_rate: The step size ``lr``: a number >= 0, or a schedule ``step -> lr``. Default 1e-3.
        b1: Decay of the first moment, in ``[0, 1)``. Default 0.9 (AdamW's ``b1``).
        b2: Decay of the second moment, in ``[0, 1)``. Default 0.999 (AdamW's ``b2``).
        a: Output scale ``>= 0``: the step is at most ``lr * a * pi / 2`` per coordinate. Default 1.27, the
            paper's, which makes the first step ``lr * a * atan2(1, 1) = 0.9975 * lr`` (Adam's: ``lr``).
        b: Scale ``>= 0`` of ``sqrt(v_hat)`` inside the ``atan2``. Default 1.0, the paper's.
        weight_decay: Decoupled decay coefficient ``wd >= 0``, a number. Default 1e-4 (AdamW's).
        mask: Where the decay applies: a bool tree like the params, a prefix of one, or a callable ``params ->
            mask`` such as :func:`adamlab.weight_decay_mask`. Default None: every float leaf.
        mu_dtype: Storage dtype of the first moment ``m``; overrides `state_dtype` for it. Default None.
            Optax's name, as in :func:`adamlab.adam`.
        nu_dtype: Storage dtype of the second moment ``v``; overrides `state_dtype` for it. None, float32,
            ``jnp.bfloat16`` (rounded stochastically) or ``jnp.int8``. Default None.
        state_dtype: Storage dtype of both moments where `mu_dtype` or `nu_dtype` does not say otherwise:
            None (default: float32, or the param's dtype when wider), ``jnp.bfloat16`` or ``jnp.int8``.

    Returns:
        A :class:`adamlab.GradientTransformation` whose state is a tuple: an :class:`adamlab.EmaState`
        (``m``), a :class:`adamlab.CountState`, an :class:`adamlab.RmsState` (``v``; ``gradient_mean`` is
        ``()``), ``EmptyState()`` for the decay (with a weight decay) and the learning rate's state.

    Raises:
        ValueError: If `b1` or `b2` is outside ``[0, 1)``; if `a`, `b`, `weight_decay` or `learning_rate` is
            a negative or non-finite number; if the second moment's dtype lacks float32's exponent range.
        TypeError: If a hyperparameter is not a real number or scalar array, or a dtype is neither a float
            dtype nor ``jnp.int8``.

    References:
        Everett, Xiao, Wortsman, Alemi, Novak, Liu, Gur, Sohl-Dickstein, Kaelbling, Lee & Pennington,
        *Scaling Exponents Across Parameterizations and Optimizers*, ICML 2024.

    Example:
        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.adam_atan2(0.1, weight_decay=0.0)
        >>> params = {"w": jnp.ones(3)}
        >>> updates, state = tx.update({"w": jnp.array([0.5, -2.0, 0.0])}, tx.init(params), params)
        >>> print((updates["w"] / 0.1).round(4))  # -1.27 * atan2(sign(g), 1); 0 for a zero gradient
        [-0.9975  0.9975  0.    ]
    """
    mu, nu = _moment_dtypes(mu_dtype, nu_dtype, state_dtype)
    return chain(
        scale_by_ema(b1, state_dtype=mu),
        bias_correct(b1),
        scale_by_atan2_rms(b2, a, b, state_dtype=nu),
        _optional_decay(add_decoupled_weight_decay, weight_decay, mask),
        scale_by_learning_rate(learning_rate),
        name="adam_atan2",
    )


def stable_adamw(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.99,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask | None = None,
    *,
    mu_dtype=None,
    nu_dtype=None,
    state_dtype=None,
) -> GradientTransformation:
    """StableAdamW (Wortsman et al., NeurIPS 2023): AdamW whose step, decay included, is divided per tensor by
    ``max(1, RMS_t)``, ``RMS_t = sqrt(mean(g**2 / max(v_hat, eps**2)))`` (`clip_by_rms_ratio`): a gradient that
    outgrows what ``v`` remembers shrinks the step instead of spiking the loss. b2 = 0.99 and eps = 1e-6 are
    optimi's defaults for it; the decay is AdamW's.

    ::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t,      m_hat = m_t / (1 - b1**t)
        v_t = b2 * v_{t-1} + (1 - b2) * g_t**2,   v_hat = v_t / (1 - b2**t)
        RMS_t = sqrt(mean over the tensor of g_t**2 / max(v_hat, eps**2))
        p <- p - lr * (m_hat / (sqrt(v_hat) + eps) + wd * p) / max(1, RMS_t)

    The clip is Adafactor's update clipping, applied per tensor (per leaf, also on the flat layout) and to
    the decay as well: it acts as a per-tensor learning rate.
    Built as ``chain(scale_by_ema(b1), bias_correct(b1), clip_by_rms_ratio(chain(scale_by_rms(b2, eps,
    bias_correction=True), add_decoupled_weight_decay(weight_decay, mask)), b2, eps),
    scale_by_learning_rate(learning_rate))``, the decay stage left out for ``weight_decay=0``. Not in Optax
    0.2.8 or torch.optim; ``optimi.StableAdamW`` is the PyTorch implementation whose defaults these are.

    Args:
        learning_rate: The step size ``lr``: a number >= 0, or a schedule ``step -> lr``. Default 1e-3.
        b1: Decay of the first moment, in ``[0, 1)``. Default 0.9.
        b2: Decay of the second moment, in ``[0, 1)``; also the decay the clip bias-corrects ``v`` with.
            Default 0.99 (optimi's; AdamW's is 0.999).
        eps: Added to ``sqrt(v_hat)`` in the denominator, and ``eps**2`` is the floor of ``v_hat`` in
            ``RMS_t``; must be > 0. Default 1e-6 (optimi's).
        weight_decay: Decoupled decay coefficient ``wd >= 0``, a number, clipped with the step. Default 1e-4.
        mask: Where the decay applies: a bool tree like the params, a prefix of one, or a callable ``params ->
            mask`` such as :func:`adamlab.weight_decay_mask`. Default None: every float leaf.
        mu_dtype: Storage dtype of the first moment ``m``; overrides `state_dtype` for it. Default None.
            Optax's name, as in :func:`adamlab.adam`.
        nu_dtype: Storage dtype of the second moment ``v``; overrides `state_dtype` for it. None, float32,
            ``jnp.bfloat16`` (rounded stochastically) or ``jnp.int8``. Default None.
        state_dtype: Storage dtype of both moments where `mu_dtype` or `nu_dtype` does not say otherwise:
            None (default: float32, or the param's dtype when wider), ``jnp.bfloat16`` or ``jnp.int8``.

    Returns:
        A :class:`adamlab.GradientTransformation` whose state is a tuple: an :class:`adamlab.EmaState`
        (``m``), a :class:`adamlab.CountState`, the clip's state (the inner chain's tuple: an
        :class:`adamlab.RmsState` holding ``v``, then ``EmptyState()`` for the decay when there is one) and
        the learning rate's state.

    Raises:
        ValueError: If `b1` or `b2` is outside ``[0, 1)``; if `eps` is not > 0; if `weight_decay` or
            `learning_rate` is a negative or non-finite number; if the second moment's dtype lacks float32's
            exponent range.
        TypeError: If a hyperparameter is not a real number or scalar array, or a dtype is neither a float
            dtype nor ``jnp.int8``.

    References:
        Wortsman, Dettmers, Zettlemoyer, Morcos, Farhadi & Schmidt, *Stable and low-precision training for
        large-scale vision-language models*, NeurIPS 2023.

    Example:
        A gradient spike in one coordinate shrinks the whole tensor's step, where AdamW takes it in full:

        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> params = {"w": jnp.ones(2)}
        >>> def last_step(tx):
        ...     state = tx.init(params)
        ...     for g in ([1.0, 1.0], [100.0, 1.0]):
        ...         updates, state = tx.update({"w": jnp.array(g)}, state, params)
        ...     return [round(x, 4) for x in updates["w"].tolist()]
        >>> print(last_step(adamlab.adamw(0.1, b2=0.99, eps=1e-6, weight_decay=0.0)))
        [-0.0749, -0.1]
        >>> print(last_step(adamlab.stable_adamw(0.1, weight_decay=0.0)))
        [-0.0613, -0.0818]
    """
    mu, nu = _moment_dtypes(mu_dtype, nu_dtype, state_dtype)
    return chain(
        scale_by_ema(b1, state_dtype=mu),
        bias_correct(b1),
        clip_by_rms_ratio(
            chain(
                scale_by_rms(b2, eps, bias_correction=True, state_dtype=nu),
                _optional_decay(add_decoupled_weight_decay, weight_decay, mask),
            ),
            b2,
            eps,
        ),
        scale_by_learning_rate(learning_rate),
        name="stable_adamw",
    )


_AFTER_DIRECTION = ("add_decoupled_weight_decay", "scale_by_learning_rate", "scale")


def cautious(tx: Transformation, eps: float = 1.0) -> GradientTransformation:
    """`tx`'s cautious variant (C-AdamW, C-Lion; Liang et al., 2024): `cautious_mask` inserted where `tx`'s
    update direction is complete, after its last moment stage and before its decoupled decay and learning rate.

    ::

        u    = tx's direction after its last moment stage (Adam's m_hat / (sqrt(v_hat) + eps), Lion's sign)
        mask = (u * g > 0)                             per element: the direction agrees with the gradient
        u   <- u * mask * n / (sum(mask) + eps)        per tensor, n its number of elements
        then tx's remaining stages (decoupled decay, learning rate) as before

    Coordinates where the update would go against the current gradient are skipped, and the others scaled
    up so that the tensor's step keeps about its size. With ``eps = 1`` a small tensor whose signs all
    agree still steps ``n / (n + 1)`` of the uncautious step.

    `tx` must be an adamlab chain with a moment stage and no learning rate before it (``rmsprop(momentum=...)``
    scales before its momentum: put `cautious_mask` in such a chain by hand).

    The insertion point is found from the stages' names and roles (:func:`adamlab.stage_info`) when
    `cautious` is called: the first ``add_decoupled_weight_decay``, ``scale_by_learning_rate`` or ``scale``
    after the last moment stage, else the end. For :func:`adamlab.stable_adamw`, whose decay lives inside its
    clipping stage (a moment stage), the mask therefore comes after the decay and applies to it too. Works
    for :func:`adamlab.adamw`, :func:`adamlab.adam`, :func:`adamlab.lion`, :func:`adamlab.amsgrad`,
    :func:`adamlab.sgd` with momentum and any chain of adamlab primitives of that shape.

    Args:
        tx: The optimizer to make cautious: an adamlab chain (as the optimizers here return) with at least one
            moment stage (``scale_by_ema``, ``scale_by_rms``, ``trace``, ...) and no ``scale`` or
            ``scale_by_learning_rate`` before its last one. Not modified; a new chain is returned.
        eps: The constant ``> 0`` in the renormalization ``n / (sum(mask) + eps)``; it keeps a tensor with no
            agreeing sign at a zero step. Default 1.0, the reference implementation's.

    Returns:
        A new :class:`adamlab.GradientTransformation`: `tx`'s stages with :func:`adamlab.cautious_mask`
        inserted, so its state is `tx`'s state tuple with one more ``EmptyState()`` at the insertion point.

    Raises:
        ValueError: If `tx` has no adamlab moment stage (an Optax transformation, or ``sgd`` without
            momentum); if a ``scale`` or ``scale_by_learning_rate`` stands before its last moment stage (as in
            ``rmsprop(momentum=...)``); if `eps` is not > 0.
        TypeError: If `eps` is not a real number or scalar array.

    References:
        Liang, Chen, Liu & Liu, *Cautious Optimizers: Improving Training with One Line of Code*,
        arXiv:2411.16085, 2024.

    Example:
        The mask goes between AdamW's moments and its decay:

        >>> import jax.numpy as jnp
        >>> import adamlab
        >>> tx = adamlab.cautious(adamlab.adamw(0.1, weight_decay=0.0))
        >>> print([adamlab.stage_info(s).name for s in adamlab.stage_info(tx).stages])
        ['scale_by_ema', 'bias_correct', 'scale_by_rms', 'cautious_mask', 'add_decoupled_weight_decay', 'scale']

        On the second step the momentum still points along the old gradient in the first coordinate, against
        the new one: that coordinate does not move (AdamW would step it by ``-0.0593``):

        >>> params = {"w": jnp.ones(2)}
        >>> state = tx.init(params)
        >>> for g in ([1.0, 1.0], [-0.1, 1.0]):
        ...     updates, state = tx.update({"w": jnp.array(g)}, state, params)
        >>> print([round(x, 4) for x in updates["w"].tolist()])
        [-0.0, -0.1]
    """
    stages = list(stage_info(tx).stages) or [tx]
    infos = [stage_info(s) for s in stages]
    moments = [i for i, s in enumerate(infos) if s.role == "moment"]
    if not moments:
        raise ValueError(
            "cautious: the transformation has no moment stage (scale_by_ema, scale_by_rms, trace, ...) "
            "to be cautious about; build it with adamlab's primitives"
        )
    at = next((i for i in range(moments[-1] + 1, len(stages)) if infos[i].name in _AFTER_DIRECTION), len(stages))
    scaled = [s.name for s in infos[:at] if s.name in ("scale_by_learning_rate", "scale")]
    if scaled:
        raise ValueError(
            f"cautious: {scaled[0]} stands before the last moment stage, so the direction there is "
            "already scaled (and flipped); insert adamlab.cautious_mask() into the chain by hand"
        )
    return chain(*stages[:at], cautious_mask(eps), *stages[at:], name="cautious")


__all__ = ["adam_atan2", "ademamix", "amsgrad", "cautious", "lion", "nadam", "nadamw", "stable_adamw"]
