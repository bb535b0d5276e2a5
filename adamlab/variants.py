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
"""

from __future__ import annotations

from adamlab.base import GradientTransformation, chain, identity, stage_info
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
from adamlab.optimizers import _moment_dtypes, _optional_decay, adam, adamw
from adamlab.scaling import ScalarOrSchedule, scale_by_learning_rate


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
) -> GradientTransformation:
    """AMSGrad (Reddi et al., ICLR 2018): Adam dividing by the running maximum of the second moment.

    ``max_of="bias_corrected"`` (Optax's, the default) keeps the maximum of ``v_hat``; ``"raw"``
    (``torch.optim.Adam(amsgrad=True)``) the maximum of ``v``, bias-corrected afterwards: see
    `scale_by_max_rms`. Without bias corrections (both False) it is the paper's.
    """
    mu, nu = _moment_dtypes(mu_dtype, nu_dtype, state_dtype)
    return chain(
        scale_by_ema(b1, state_dtype=mu),
        bias_correct(b1) if bias_correction_mu else identity(),
        scale_by_max_rms(b2, eps, eps_root=eps_root, bias_correction=bias_correction_nu, max_of=max_of,
                         state_dtype=nu),
        scale_by_learning_rate(learning_rate),
    )


def nadam(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          eps_root: float = 0.0, mu_dtype=None, *, nesterov: bool = True, **kwargs) -> GradientTransformation:
    """NAdam (Dozat, 2016): `adam` with the Nesterov look-ahead in the bias-corrected first moment."""
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, **kwargs)


def nadamw(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
           eps_root: float = 0.0, mu_dtype=None, weight_decay: float = 1e-4, mask: Mask | None = None, *,
           nesterov: bool = True, **kwargs) -> GradientTransformation:
    """NAdamW: `adamw` with NAdam's look-ahead."""
    return adamw(learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask, nesterov=nesterov, **kwargs)


def ademamix(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 5.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
    weight_decay: float = 0.0,
    mask: Mask | None = None,
    *,
    nu_dtype=None,
    state_dtype=None,
) -> GradientTransformation:
    """AdEMAMix (Pagliardini et al., ICLR 2025): ``p <- p - lr * ((m1_hat + alpha * m2) / (sqrt(v_hat) + eps)
    + wd * p)`` with a fast EMA ``m1`` (b1) and a slow one ``m2`` (b3, not bias-corrected).

    `b3` and `alpha` may be schedules: the paper warms both up (`schedules.ademamix_b3`,
    `schedules.ademamix_alpha`). `mu_dtype` sets both first moments' dtype.
    """
    mu, nu = _moment_dtypes(mu_dtype, nu_dtype, state_dtype)
    return chain(
        scale_by_ema(b1, state_dtype=mu),
        bias_correct(b1),
        add_slow_moment(b3, alpha, state_dtype=mu),
        scale_by_rms(b2, eps, bias_correction=True, eps_root=eps_root, state_dtype=nu),
        _optional_decay(add_decoupled_weight_decay, weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def lion(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype=None,
    weight_decay: float = 1e-3,
    mask: Mask | None = None,
    *,
    state_dtype=None,
) -> GradientTransformation:
    """Lion (Chen et al., 2023): ``p <- p - lr * (sign(b1 * m + (1 - b1) * g) + wd * p)``, then
    ``m <- b2 * m + (1 - b2) * g``."""
    return chain(
        scale_by_ema(b2, output_decay=b1, state_dtype=_moment_dtypes(mu_dtype, None, state_dtype)[0]),
        scale_by_sign(),
        _optional_decay(add_decoupled_weight_decay, weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def adam_atan2(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    a: float = 1.27,
    b: float = 1.0,
    weight_decay: float = 1e-4,
    mask: Mask | None = None,
    *,
    mu_dtype=None,
    nu_dtype=None,
    state_dtype=None,
) -> GradientTransformation:
    """Adam-atan2 (Everett et al., ICML 2024): AdamW with ``a * atan2(m_hat, b * sqrt(v_hat))`` in place of
    ``m_hat / (sqrt(v_hat) + eps)``: no eps to tune, and a step bounded by ``lr * a * pi / 2``."""
    mu, nu = _moment_dtypes(mu_dtype, nu_dtype, state_dtype)
    return chain(
        scale_by_ema(b1, state_dtype=mu),
        bias_correct(b1),
        scale_by_atan2_rms(b2, a, b, state_dtype=nu),
        _optional_decay(add_decoupled_weight_decay, weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def stable_adamw(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.99,
    eps: float = 1e-6,
    weight_decay: float = 1e-4,
    mask: Mask | None = None,
    *,
    mu_dtype=None,
    nu_dtype=None,
    state_dtype=None,
) -> GradientTransformation:
    """StableAdamW (Wortsman et al., NeurIPS 2023): AdamW whose step, decay included, is divided per tensor by
    ``max(1, RMS_t)``, ``RMS_t = sqrt(mean(g**2 / max(v_hat, eps**2)))`` (`clip_by_rms_ratio`): a gradient that
    outgrows what ``v`` remembers shrinks the step instead of spiking the loss. b2 = 0.99 and eps = 1e-6 are
    optimi's defaults for it; the decay is AdamW's."""
    mu, nu = _moment_dtypes(mu_dtype, nu_dtype, state_dtype)
    return chain(
        scale_by_ema(b1, state_dtype=mu),
        bias_correct(b1),
        clip_by_rms_ratio(chain(scale_by_rms(b2, eps, bias_correction=True, state_dtype=nu),
                                _optional_decay(add_decoupled_weight_decay, weight_decay, mask)), b2, eps),
        scale_by_learning_rate(learning_rate),
    )


_AFTER_DIRECTION = ("add_decoupled_weight_decay", "scale_by_learning_rate", "scale")


def cautious(tx: GradientTransformation, eps: float = 1.0) -> GradientTransformation:
    """`tx`'s cautious variant (C-AdamW, C-Lion; Liang et al., 2024): `cautious_mask` inserted where `tx`'s
    update direction is complete, after its last moment stage and before its decoupled decay and learning rate.

    `tx` must be an adamlab chain with a moment stage and no learning rate before it (``rmsprop(momentum=...)``
    scales before its momentum: put `cautious_mask` in such a chain by hand).
    """
    stages = list(stage_info(tx).stages) or [tx]
    infos = [stage_info(s) for s in stages]
    moments = [i for i, s in enumerate(infos) if s.role == "moment"]
    if not moments:
        raise ValueError("cautious: the transformation has no moment stage (scale_by_ema, scale_by_rms, trace, ...) "
                         "to be cautious about; build it with adamlab's primitives")
    at = next((i for i in range(moments[-1] + 1, len(stages)) if infos[i].name in _AFTER_DIRECTION), len(stages))
    scaled = [s.name for s in infos[:at] if s.name in ("scale_by_learning_rate", "scale")]
    if scaled:
        raise ValueError(f"cautious: {scaled[0]} stands before the last moment stage, so the direction there is "
                         "already scaled (and flipped); insert adamlab.cautious_mask() into the chain by hand")
    return chain(*stages[:at], cautious_mask(eps), *stages[at:])


__all__ = ["adam_atan2", "ademamix", "amsgrad", "cautious", "lion", "nadam", "nadamw", "stable_adamw"]
