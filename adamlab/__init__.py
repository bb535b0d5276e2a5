"""adamlab: composable, pure gradient transformations for JAX.

Each primitive is a `GradientTransformation(init, update)` over pytrees;
optimizers are short chains of them (see `adamlab.optimizers`).
"""

from adamlab import checkpoint, diagnostics, flat, multihost, numerics, schedules, sharding, step, testing
from adamlab.accumulate import AccumulateState, accumulate_gradients
from adamlab.averaging import ParameterEmaState, parameter_ema
from adamlab.base import EmptyState, GradientTransformation, StageInfo, apply_updates, chain, identity, stage_info
from adamlab.decay import (
    add_coupled_weight_decay,
    add_decoupled_weight_decay,
    decay_timescale,
    resolve_mask,
    weight_decay_for_timescale,
    weight_decay_mask,
)
from adamlab.directions import cautious_mask, clip_by_rms_ratio, scale_by_sign
from adamlab.groups import freeze, masked, partition, set_to_zero
from adamlab.moments import (
    CountedEmaState,
    CountedTraceState,
    CountState,
    EmaState,
    MaxRmsState,
    MomentumScheduleState,
    RmsState,
    SlowMomentState,
    TraceState,
    add_slow_moment,
    bias_correct,
    effective_window,
    half_life,
    scale_by_atan2_rms,
    scale_by_ema,
    scale_by_max_rms,
    scale_by_rms,
    trace,
)
from adamlab.numerics import NonFiniteGradientError, SkipNonfiniteState, skip_nonfinite, stochastic_round
from adamlab.optimizers import adam, adamw, rmsprop, sgd
from adamlab.scaling import ScheduleState, clip_by_global_norm, global_norm, scale, scale_by_learning_rate
from adamlab.stage_builder import moment_stage
from adamlab.variants import adam_atan2, ademamix, amsgrad, cautious, lion, nadam, nadamw, stable_adamw

__version__ = "0.1.0"

__all__ = [
    "AccumulateState",
    "CountState",
    "CountedEmaState",
    "CountedTraceState",
    "EmaState",
    "EmptyState",
    "GradientTransformation",
    "MaxRmsState",
    "MomentumScheduleState",
    "NonFiniteGradientError",
    "ParameterEmaState",
    "RmsState",
    "ScheduleState",
    "SkipNonfiniteState",
    "SlowMomentState",
    "StageInfo",
    "TraceState",
    "accumulate_gradients",
    "adam",
    "adam_atan2",
    "adamw",
    "add_coupled_weight_decay",
    "add_decoupled_weight_decay",
    "add_slow_moment",
    "ademamix",
    "amsgrad",
    "apply_updates",
    "bias_correct",
    "cautious",
    "cautious_mask",
    "chain",
    "checkpoint",
    "clip_by_global_norm",
    "clip_by_rms_ratio",
    "decay_timescale",
    "diagnostics",
    "effective_window",
    "flat",
    "freeze",
    "global_norm",
    "half_life",
    "identity",
    "lion",
    "masked",
    "moment_stage",
    "multihost",
    "nadam",
    "nadamw",
    "numerics",
    "parameter_ema",
    "partition",
    "resolve_mask",
    "rmsprop",
    "scale",
    "scale_by_atan2_rms",
    "scale_by_ema",
    "scale_by_learning_rate",
    "scale_by_max_rms",
    "scale_by_rms",
    "scale_by_sign",
    "schedules",
    "set_to_zero",
    "sgd",
    "sharding",
    "skip_nonfinite",
    "stable_adamw",
    "stage_info",
    "step",
    "stochastic_round",
    "testing",
    "trace",
    "weight_decay_for_timescale",
    "weight_decay_mask",
]
