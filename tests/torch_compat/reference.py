"""An independent float64 NumPy reference of what ``torch.optim`` documents for Adam, AdamW, NAdam, SGD and RMSprop.

What it is for: the tests in ``tests/torch_compat/`` compare adamlab against these functions, and
``benchmarks/torch_parity.py`` compares these functions against ``torch.optim`` itself (where torch is installed),
so that adamlab is tied to torch's semantics without torch being a test dependency. Nothing here imports torch,
Optax or adamlab.

What it follows: the pseudo-code of each class in the PyTorch 2.x documentation (the stable pages of 2025) and,
where the pseudo-code leaves the order of operations open, the single-tensor code path of
``torch/optim/{adam,nadam,sgd,rmsprop}.py`` on PyTorch's main branch of 2025 (``foreach=False``,
``capturable=False``, ``differentiable=False``: what ``torch.optim`` runs for CPU tensors; AdamW there is Adam with
``decoupled_weight_decay=True``). NAdam's ``maximize`` needs a PyTorch newer than 2.2.
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
