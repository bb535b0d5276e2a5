"""An independent float64 NumPy reference of what ``torch.optim`` documents for Adam, AdamW, NAdam, SGD, RMSprop,
Adagrad, Adadelta, Rprop, Adamax and RAdam.

What it is for: the tests in ``tests/torch_compat/`` compare adamlab against these functions, and
``benchmarks/torch_parity.py`` compares these functions against ``torch.optim`` itself (where torch is installed),
so that adamlab is tied to torch's semantics without torch being a test dependency. Nothing here imports torch,
Optax or adamlab.

What it follows: the pseudo-code of each class in the PyTorch 2.x documentation (the stable pages of 2025) and,
where the pseudo-code leaves the order of operations open, the single-tensor code path of
``torch/optim/{adam,nadam,sgd,rmsprop,adagrad,adadelta,rprop,adamax,radam}.py`` on PyTorch's main branch of 2025
(``foreach=False``, ``capturable=False``, ``differentiable=False``: what ``torch.optim`` runs for CPU tensors; AdamW
there is Adam with ``decoupled_weight_decay=True``). NAdam's ``maximize`` needs a PyTorch newer than 2.2.
Every hyperparameter keeps torch's name and default.

Conventions:

* ``params`` is a ``dict[str, np.ndarray]``; ``grads`` a list of such dicts, one per step. Everything is computed in
  float64 (Python floats for the scalars: step counts, bias corrections, NAdam's ``mu_product``). This equals torch
  run on float64 tensors with ``torch.set_default_dtype(torch.float64)``: under the float32 default, torch keeps its
  scalar state (``step``, NAdam's ``mu_product``) in float32 tensors.
* Steps are counted ``t = 1, 2, ...``. ``lr`` is a float or a callable of the 0-based step index ``k = t - 1``:
  step ``t`` uses ``lr(t - 1)``. ``torch.optim.lr_scheduler.LambdaLR(opt, factor)`` with ``scheduler.step()`` called
  after each ``optimizer.step()`` is ``lr=lambda k: base_lr * factor(k)``: the scheduler sets ``base_lr * factor(0)``
  when it is built, and ``base_lr * factor(t)`` after the t-th ``optimizer.step()``.
* ``maximize=True`` negates the gradient first; L2 ``weight_decay`` is then added to the (negated) gradient.

The arithmetic is written as the formulas read, not operation-for-operation as torch's kernels run (``lerp_``,
``addcmul_``), so results agree with torch to float64 rounding, not bitwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

Params = dict[str, np.ndarray]
LR = float | Callable[[int], float]


def _lr_at(lr: LR, t: int) -> float:
    """The learning rate of 1-based step ``t``: ``lr(t - 1)`` for a callable (LambdaLR semantics), else ``lr``."""
    return float(lr(t - 1)) if callable(lr) else float(lr)


def _copy(params: Mapping[str, np.ndarray]) -> Params:
    return {k: np.array(v, dtype=np.float64, copy=True) for k, v in params.items()}


def _zeros(p: Params) -> Params:
    return {k: np.zeros_like(v) for k, v in p.items()}


def _grad(grads_t: Mapping[str, np.ndarray], k: str, maximize: bool) -> np.ndarray:
    g = np.asarray(grads_t[k], dtype=np.float64)
    return -g if maximize else g


def _adam_family(params, grads, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled) -> Params:
    beta1, beta2 = betas
    p = _copy(params)
    m, v, v_max = _zeros(p), _zeros(p), _zeros(p)
    for t, grads_t in enumerate(grads, start=1):
        lr_t = _lr_at(lr, t)
        bias_correction1 = 1.0 - beta1**t
        bias_correction2 = 1.0 - beta2**t
        for k in p:
            g = _grad(grads_t, k, maximize)
            if weight_decay != 0:
                if decoupled:
                    p[k] = p[k] * (1.0 - lr_t * weight_decay)
                else:
                    g = g + weight_decay * p[k]
            m[k] = beta1 * m[k] + (1.0 - beta1) * g
            v[k] = beta2 * v[k] + (1.0 - beta2) * g * g
            if amsgrad:
                v_max[k] = np.maximum(v_max[k], v[k])
                second = v_max[k]
            else:
                second = v[k]
            denom = np.sqrt(second) / np.sqrt(bias_correction2) + eps
            p[k] = p[k] - (lr_t / bias_correction1) * m[k] / denom
    return p


def adam(
    params: Mapping[str, np.ndarray],
    grads: Sequence[Mapping[str, np.ndarray]],
    lr: LR = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    maximize: bool = False,
) -> Params:
    """``torch.optim.Adam``: Adam with L2 weight decay added to the gradient.

    For t = 1, 2, ...::

        g = -grad if maximize else grad;  g += weight_decay * p
        m = b1 * m + (1 - b1) * g;        v = b2 * v + (1 - b2) * g**2
        v_hat = max(v_hat, v) if amsgrad else v          # v_hat starts at 0
        p -= lr_t / (1 - b1**t) * m / (sqrt(v_hat) / sqrt(1 - b2**t) + eps)

    Args:
        params: Initial parameters (float64 leaves).
        grads: One gradient dict per step.
        lr: A float, or a callable of the 0-based step index (step t uses ``lr(t - 1)``).
        betas: ``(b1, b2)``.
        eps: Added to the bias-corrected root of the second moment.
        weight_decay: L2 coefficient added to the gradient.
        amsgrad: Divide by the running maximum of ``v`` instead of ``v``.
        maximize: Ascend instead of descend.

    Returns:
        The parameters after ``len(grads)`` steps (float64).
    """
    return _adam_family(params, grads, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled=False)


def adamw(
    params: Mapping[str, np.ndarray],
    grads: Sequence[Mapping[str, np.ndarray]],
    lr: LR = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
) -> Params:
    """``torch.optim.AdamW``: Adam with decoupled weight decay, applied to the parameters before the Adam step.

    For t = 1, 2, ...::

        g = -grad if maximize else grad
        p *= 1 - lr_t * weight_decay
        m = b1 * m + (1 - b1) * g;        v = b2 * v + (1 - b2) * g**2
        v_hat = max(v_hat, v) if amsgrad else v
        p -= lr_t / (1 - b1**t) * m / (sqrt(v_hat) / sqrt(1 - b2**t) + eps)

    Args:
        params: Initial parameters (float64 leaves).
        grads: One gradient dict per step.
        lr: A float, or a callable of the 0-based step index (step t uses ``lr(t - 1)``).
        betas: ``(b1, b2)``.
        eps: Added to the bias-corrected root of the second moment.
        weight_decay: Decoupled decay coefficient (scaled by the step's lr, as torch does).
        amsgrad: Divide by the running maximum of ``v`` instead of ``v``.
        maximize: Ascend instead of descend.

    Returns:
        The parameters after ``len(grads)`` steps (float64).
    """
    return _adam_family(params, grads, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled=True)


def nadam_mu(t: int, beta1: float = 0.9, momentum_decay: float = 4e-3) -> float:
    """NAdam's momentum coefficient of step ``t``: ``beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))``."""
    return beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))


def nadam(
    params: Mapping[str, np.ndarray],
    grads: Sequence[Mapping[str, np.ndarray]],
    lr: LR = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
) -> Params:
    """``torch.optim.NAdam``: Adam with Nesterov momentum and Dozat's momentum schedule ``mu_t``.

    For t = 1, 2, ...::

        g = -grad if maximize else grad
        if decoupled_weight_decay: p *= 1 - lr_t * weight_decay   else: g += weight_decay * p
        mu_t = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay));  mu_{t+1} likewise
        prod_t = mu_1 * ... * mu_t                               # torch's mu_product
        m = b1 * m + (1 - b1) * g;    v = b2 * v + (1 - b2) * g**2
        denom = sqrt(v / (1 - b2**t)) + eps
        p -= lr_t * (1 - mu_t) / (1 - prod_t) * g / denom
        p -= lr_t * mu_{t+1} / (1 - prod_t * mu_{t+1}) * m / denom

    The first moment ``m`` uses the constant ``b1``; the schedule enters only through the two step sizes.

    Args:
        params: Initial parameters (float64 leaves).
        grads: One gradient dict per step.
        lr: A float, or a callable of the 0-based step index (step t uses ``lr(t - 1)``).
        betas: ``(b1, b2)``.
        eps: Added to the root of the bias-corrected second moment.
        weight_decay: L2 coefficient, or the decoupled decay coefficient if ``decoupled_weight_decay``.
        momentum_decay: ``psi`` of the ``mu_t`` schedule.
        decoupled_weight_decay: Decay the parameters (NAdamW) instead of adding L2 to the gradient.
        maximize: Ascend instead of descend.

    Returns:
        The parameters after ``len(grads)`` steps (float64).
    """
    beta1, beta2 = betas
    p = _copy(params)
    m, v = _zeros(p), _zeros(p)
    mu_product = 1.0
    for t, grads_t in enumerate(grads, start=1):
        lr_t = _lr_at(lr, t)
        bias_correction2 = 1.0 - beta2**t
        mu = nadam_mu(t, beta1, momentum_decay)
        mu_next = nadam_mu(t + 1, beta1, momentum_decay)
        mu_product = mu_product * mu
        mu_product_next = mu_product * mu_next
        for k in p:
            g = _grad(grads_t, k, maximize)
            if weight_decay != 0:
                if decoupled_weight_decay:
                    p[k] = p[k] * (1.0 - lr_t * weight_decay)
                else:
                    g = g + weight_decay * p[k]
            m[k] = beta1 * m[k] + (1.0 - beta1) * g
            v[k] = beta2 * v[k] + (1.0 - beta2) * g * g
            denom = np.sqrt(v[k] / bias_correction2) + eps
            p[k] = p[k] - lr_t * (1.0 - mu) / (1.0 - mu_product) * g / denom
            p[k] = p[k] - lr_t * mu_next / (1.0 - mu_product_next) * m[k] / denom
    return p


def sgd(
    params: Mapping[str, np.ndarray],
    grads: Sequence[Mapping[str, np.ndarray]],
    lr: LR = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
) -> Params:
    """``torch.optim.SGD``: SGD with optional (damped, Nesterov) momentum and L2 weight decay.

    For t = 1, 2, ...::

        g = -grad if maximize else grad;  g += weight_decay * p
        if momentum != 0:
            buf = g if t == 1 else momentum * buf + (1 - dampening) * g   # first step: undamped copy of g
            d = g + momentum * buf if nesterov else buf
        else:
            d = g
        p -= lr_t * d

    Args:
        params: Initial parameters (float64 leaves).
        grads: One gradient dict per step.
        lr: A float, or a callable of the 0-based step index (step t uses ``lr(t - 1)``).
        momentum: Momentum factor (0 disables the buffer).
        dampening: Scales the gradient's share of the buffer from step 2 on.
        weight_decay: L2 coefficient added to the gradient.
        nesterov: Nesterov momentum (torch requires ``momentum > 0`` and ``dampening == 0``).
        maximize: Ascend instead of descend.

    Returns:
        The parameters after ``len(grads)`` steps (float64).

    Raises:
        ValueError: ``nesterov`` with ``momentum <= 0`` or ``dampening != 0``, which torch rejects.
    """
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    p = _copy(params)
    buf: Params = {}
    for t, grads_t in enumerate(grads, start=1):
        lr_t = _lr_at(lr, t)
        for k in p:
            g = _grad(grads_t, k, maximize)
            if weight_decay != 0:
                g = g + weight_decay * p[k]
            if momentum != 0:
                buf[k] = g.copy() if k not in buf else momentum * buf[k] + (1.0 - dampening) * g
                d = g + momentum * buf[k] if nesterov else buf[k]
            else:
                d = g
            p[k] = p[k] - lr_t * d
    return p


def rmsprop(
    params: Mapping[str, np.ndarray],
    grads: Sequence[Mapping[str, np.ndarray]],
    lr: LR = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    maximize: bool = False,
) -> Params:
    """``torch.optim.RMSprop``: RMSprop with eps added after the square root, optional centering and momentum.

    For t = 1, 2, ...::

        g = -grad if maximize else grad;  g += weight_decay * p
        v = alpha * v + (1 - alpha) * g**2
        if centered: g_avg = alpha * g_avg + (1 - alpha) * g;  avg = sqrt(v - g_avg**2) + eps
        else:        avg = sqrt(v) + eps
        if momentum > 0: buf = momentum * buf + g / avg;  p -= lr_t * buf     # buf starts at 0
        else:            p -= lr_t * g / avg

    No bias correction. The buffer holds ``g / avg`` without the lr, so a changing lr scales all of ``buf``.

    Args:
        params: Initial parameters (float64 leaves).
        grads: One gradient dict per step.
        lr: A float, or a callable of the 0-based step index (step t uses ``lr(t - 1)``).
        alpha: Smoothing constant of the squared-gradient (and, if centered, gradient) averages.
        eps: Added to the square root.
        weight_decay: L2 coefficient added to the gradient.
        momentum: Momentum factor (0 disables the buffer).
        centered: Normalize by an estimate of the gradient's variance instead of its second moment.
        maximize: Ascend instead of descend.

    Returns:
        The parameters after ``len(grads)`` steps (float64).
    """
    p = _copy(params)
    v, g_avg, buf = _zeros(p), _zeros(p), _zeros(p)
    for t, grads_t in enumerate(grads, start=1):
        lr_t = _lr_at(lr, t)
        for k in p:
            g = _grad(grads_t, k, maximize)
            if weight_decay != 0:
                g = g + weight_decay * p[k]
            v[k] = alpha * v[k] + (1.0 - alpha) * g * g
            if centered:
                g_avg[k] = alpha * g_avg[k] + (1.0 - alpha) * g
                avg = np.sqrt(v[k] - g_avg[k] * g_avg[k]) + eps
            else:
                avg = np.sqrt(v[k]) + eps
            if momentum > 0:
                buf[k] = momentum * buf[k] + g / avg
                p[k] = p[k] - lr_t * buf[k]
            else:
                p[k] = p[k] - lr_t * g / avg
    return p


def adagrad(
    params: Mapping[str, np.ndarray],
    grads: Sequence[Mapping[str, np.ndarray]],
    lr: LR = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    maximize: bool = False,
) -> Params:
    """``torch.optim.Adagrad``: steps divided by the root of the summed squared gradients, eps outside the root.

    For t = 1, 2, ...::

        g = -grad if maximize else grad;  g += weight_decay * p
        clr = lr_t / (1 + (t - 1) * lr_decay)
        s += g**2                                   # s starts at initial_accumulator_value
        p -= clr * g / (sqrt(s) + eps)

    Args:
        params: Initial parameters (float64 leaves).
        grads: One gradient dict per step.
        lr: A float, or a callable of the 0-based step index (step t uses ``lr(t - 1)``).
        lr_decay: Divides the step's lr by ``1 + (t - 1) * lr_decay``.
        weight_decay: L2 coefficient added to the gradient.
        initial_accumulator_value: The starting value of the sum of squares.
        eps: Added to the root of the sum.
        maximize: Ascend instead of descend.

    Returns:
        The parameters after ``len(grads)`` steps (float64).
    """
    p = _copy(params)
    s = {k: np.full_like(v, initial_accumulator_value) for k, v in p.items()}
    for t, grads_t in enumerate(grads, start=1):
        clr = _lr_at(lr, t) / (1.0 + (t - 1) * lr_decay)
        for k in p:
            g = _grad(grads_t, k, maximize)
            if weight_decay != 0:
                g = g + weight_decay * p[k]
            s[k] = s[k] + g * g
            p[k] = p[k] - clr * g / (np.sqrt(s[k]) + eps)
    return p


def adadelta(
    params: Mapping[str, np.ndarray],
    grads: Sequence[Mapping[str, np.ndarray]],
    lr: LR = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> Params:
    """``torch.optim.Adadelta``: steps sized by the RMS of past steps over the RMS of past gradients.

    For t = 1, 2, ...::

        g = -grad if maximize else grad;  g += weight_decay * p
        v = rho * v + (1 - rho) * g**2                       # square_avg, starts at 0
        delta = sqrt(u + eps) / sqrt(v + eps) * g            # u: acc_delta, starts at 0
        u = rho * u + (1 - rho) * delta**2
        p -= lr_t * delta

    Args:
        params: Initial parameters (float64 leaves).
        grads: One gradient dict per step.
        lr: A float, or a callable of the 0-based step index (step t uses ``lr(t - 1)``).
        rho: Decay of both running averages.
        eps: Added inside both roots.
        weight_decay: L2 coefficient added to the gradient.
        maximize: Ascend instead of descend.

    Returns:
        The parameters after ``len(grads)`` steps (float64).
    """
    p = _copy(params)
    v, u = _zeros(p), _zeros(p)
    for t, grads_t in enumerate(grads, start=1):
        lr_t = _lr_at(lr, t)
        for k in p:
            g = _grad(grads_t, k, maximize)
            if weight_decay != 0:
                g = g + weight_decay * p[k]
            v[k] = rho * v[k] + (1.0 - rho) * g * g
            delta = np.sqrt(u[k] + eps) / np.sqrt(v[k] + eps) * g
            u[k] = rho * u[k] + (1.0 - rho) * delta * delta
            p[k] = p[k] - lr_t * delta
    return p


def rprop(
    params: Mapping[str, np.ndarray],
    grads: Sequence[Mapping[str, np.ndarray]],
    lr: float = 1e-2,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50.0),
    maximize: bool = False,
) -> Params:
    """``torch.optim.Rprop``: sign steps of per-coordinate sizes, grown while the sign holds, shrunk on a flip.

    For t = 1, 2, ...::

        g = -grad if maximize else grad
        s = sign(g * prev)                                   # prev starts at 0
        factor = etaplus where s > 0, etaminus where s < 0, 1 where s = 0
        size = clip(size * factor, step_size_min, step_size_max)     # size starts at lr
        g = 0 where s < 0                                    # no step right after a flip
        p -= sign(g) * size;   prev = g

    The size is clipped on every step, the first included, so an ``lr`` outside ``step_sizes`` is clipped at once.
    ``lr`` is the initial step size, not a rate: torch's ``LambdaLR`` does not scale Rprop's steps after the
    first, so this reference takes a float only.

    Args:
        params: Initial parameters (float64 leaves).
        grads: One gradient dict per step.
        lr: The initial step size.
        etas: ``(etaminus, etaplus)``, the factors on a sign flip and on a kept sign.
        step_sizes: ``(step_size_min, step_size_max)``.
        maximize: Ascend instead of descend.

    Returns:
        The parameters after ``len(grads)`` steps (float64).
    """
    etaminus, etaplus = etas
    size_min, size_max = step_sizes
    p = _copy(params)
    prev = _zeros(p)
    size = {k: np.full_like(v, float(lr)) for k, v in p.items()}
    for grads_t in grads:
        for k in p:
            g = _grad(grads_t, k, maximize)
            s = np.sign(g * prev[k])
            factor = np.where(s > 0, etaplus, np.where(s < 0, etaminus, 1.0))
            size[k] = np.clip(size[k] * factor, size_min, size_max)
            g = np.where(s < 0, 0.0, g)
            p[k] = p[k] - np.sign(g) * size[k]
            prev[k] = g
    return p


def adamax(
    params: Mapping[str, np.ndarray],
    grads: Sequence[Mapping[str, np.ndarray]],
    lr: LR = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> Params:
    """``torch.optim.Adamax``: Adam with the exponentially weighted infinity norm in place of the RMS.

    For t = 1, 2, ...::

        g = -grad if maximize else grad;  g += weight_decay * p
        m = b1 * m + (1 - b1) * g;        u = max(b2 * u, |g| + eps)       # both start at 0
        p -= lr_t / (1 - b1**t) * m / u

    Args:
        params: Initial parameters (float64 leaves).
        grads: One gradient dict per step.
        lr: A float, or a callable of the 0-based step index (step t uses ``lr(t - 1)``).
        betas: ``(b1, b2)``.
        eps: Added to ``|g|`` inside the maximum.
        weight_decay: L2 coefficient added to the gradient.
        maximize: Ascend instead of descend.

    Returns:
        The parameters after ``len(grads)`` steps (float64).
    """
    beta1, beta2 = betas
    p = _copy(params)
    m, u = _zeros(p), _zeros(p)
    for t, grads_t in enumerate(grads, start=1):
        lr_t = _lr_at(lr, t)
        bias_correction1 = 1.0 - beta1**t
        for k in p:
            g = _grad(grads_t, k, maximize)
            if weight_decay != 0:
                g = g + weight_decay * p[k]
            m[k] = beta1 * m[k] + (1.0 - beta1) * g
            u[k] = np.maximum(beta2 * u[k], np.abs(g) + eps)
            p[k] = p[k] - (lr_t / bias_correction1) * m[k] / u[k]
    return p


def radam_rho(t: int, beta2: float = 0.999) -> float:
    """RAdam's length of the approximated SMA at step ``t``: ``rho_inf - 2 t b2**t / (1 - b2**t)``."""
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    return rho_inf - 2.0 * t * beta2**t / (1.0 - beta2**t)


def radam(
    params: Mapping[str, np.ndarray],
    grads: Sequence[Mapping[str, np.ndarray]],
    lr: LR = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
) -> Params:
    """``torch.optim.RAdam``: Adam with its adaptive step rectified, plain momentum while ``rho_t <= 5``.

    For t = 1, 2, ...::

        g = -grad if maximize else grad
        if decoupled_weight_decay: p *= 1 - lr_t * weight_decay   else: g += weight_decay * p
        m = b1 * m + (1 - b1) * g;    v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        rho_inf = 2 / (1 - b2) - 1;   rho_t = rho_inf - 2 t b2**t / (1 - b2**t)
        if rho_t > 5:
            r_t = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
            p -= lr_t * m_hat * r_t * sqrt(1 - b2**t) / (sqrt(v) + eps)   # eps on the raw root
        else:
            p -= lr_t * m_hat

    Args:
        params: Initial parameters (float64 leaves).
        grads: One gradient dict per step.
        lr: A float, or a callable of the 0-based step index (step t uses ``lr(t - 1)``).
        betas: ``(b1, b2)``.
        eps: Added to the root of the uncorrected second moment, before its bias correction.
        weight_decay: L2 coefficient, or the decoupled decay coefficient if ``decoupled_weight_decay``.
        decoupled_weight_decay: Decay the parameters (RAdamW) instead of adding L2 to the gradient.
        maximize: Ascend instead of descend.

    Returns:
        The parameters after ``len(grads)`` steps (float64).
    """
    beta1, beta2 = betas
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    p = _copy(params)
    m, v = _zeros(p), _zeros(p)
    for t, grads_t in enumerate(grads, start=1):
        lr_t = _lr_at(lr, t)
        bias_correction1 = 1.0 - beta1**t
        bias_correction2 = 1.0 - beta2**t
        rho_t = radam_rho(t, beta2)
        for k in p:
            g = _grad(grads_t, k, maximize)
            if weight_decay != 0:
                if decoupled_weight_decay:
                    p[k] = p[k] * (1.0 - lr_t * weight_decay)
                else:
                    g = g + weight_decay * p[k]
            m[k] = beta1 * m[k] + (1.0 - beta1) * g
            v[k] = beta2 * v[k] + (1.0 - beta2) * g * g
            m_hat = m[k] / bias_correction1
            if rho_t > 5.0:
                rect = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                p[k] = p[k] - lr_t * m_hat * rect * np.sqrt(bias_correction2) / (np.sqrt(v[k]) + eps)
            else:
                p[k] = p[k] - lr_t * m_hat
    return p
