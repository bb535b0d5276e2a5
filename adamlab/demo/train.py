"""Training runs: one model, one data order, one seed and one warmup-cosine schedule, several optimizers."""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import adamlab
from adamlab import diagnostics
from adamlab.demo import data, model
from adamlab.scaling import Schedule

# Adam's b2 for every Adam-family run: 0.99 averages over ~100 steps, which suits runs of a few hundred steps
# (LLM recipes use 0.95-0.999); the diagnostics must use the same value to compute v_hat.
B1, B2, EPS = 0.9, 0.99, 1e-8


class TrainConfig(NamedTuple):
    steps: int = 150
    batch: int = 16
    context: int = 64
    d_model: int = 144
    layers: int = 4
    heads: int = 4
    seed: int = 0
    weight_decay: float = 0.1
    warmup_fraction: float = 0.1
    final_lr_fraction: float = 0.1  # the cosine ends at this fraction of the peak, as LLM schedules do
    eval_every: int = 0  # 0: about 10 evaluations per run
    eval_batches: int = 4

    def validate(self) -> None:
        for name in ("steps", "batch", "context", "d_model", "layers", "heads", "eval_batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.steps < 2:
            raise ValueError(f"steps must be >= 2 (the first step compiles), got {self.steps}")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise ValueError(f"eval_every must be an int >= 0, got {self.eval_every!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must be in [0, 1], got {self.final_lr_fraction!r}")
        self.model_config().validate()

    def model_config(self) -> model.ModelConfig:
        return model.ModelConfig(len(data.VOCAB), self.context, self.d_model, self.layers, self.heads)

    def eval_interval(self) -> int:
        return self.eval_every or max(1, self.steps // 10)

    def schedule(self, peak_lr: float, shape: str = "warmup_cosine") -> Schedule:
        """Linear warmup over `warmup_fraction` of the steps, then cosine to ``final_lr_fraction * peak``.

        `shape` ``"warmup_constant"`` holds the peak after the warmup (schedule-free methods replace the decay);
        ``"constant"`` is the peak from the first step.
        """
        warmup = int(self.warmup_fraction * self.steps)
        if shape == "constant" or (shape == "warmup_constant" and warmup == 0):  # a warmup of 0 steps stays at 0
            return adamlab.schedules.constant(peak_lr)
        if shape == "warmup_constant":
            return adamlab.schedules.warmup_constant_schedule(0.0, peak_lr, warmup)
        if shape != "warmup_cosine":
            raise ValueError(f"unknown schedule shape {shape!r}")
        return adamlab.schedules.warmup_cosine_decay(
            0.0, peak_lr, warmup, self.steps, end_value=self.final_lr_fraction * peak_lr
        )


class OptimizerSpec(NamedTuple):
    name: str  # the command-line name
    label: str  # the name in plots and the table
    peak_lr: float
    decay: str  # "none", "coupled" (L2 on the gradient) or "decoupled" (AdamW)
    build: Callable[[Callable, float], Any]  # (schedule, weight_decay) -> transformation
    color: str
    requires: str | None = None  # an optional package
    lr_shape: str = "warmup_cosine"  # the shape of `build`'s schedule: see TrainConfig.schedule
    # Optimizers whose params are not the model's tree (lookahead's fast and slow weights) or are not what is
    # evaluated (schedule-free's average): the params stepped from the model's initial tree, the tree the gradient
    # is taken at, and the model's tree to evaluate given (params, optimizer state). None: the model's tree.
    init_params: Callable[[Any], Any] | None = None
    grad_params: Callable[[Any], Any] | None = None
    eval_params: Callable[[Any, Any], Any] | None = None

    def at_gradient(self, params):
        return params if self.grad_params is None else self.grad_params(params)

    def at_evaluation(self, params, opt_state):
        return params if self.eval_params is None else self.eval_params(params, opt_state)


def _lookahead_pair(params):
    """Synced fast and slow weights in buffers of their own: the training step donates both."""
    return adamlab.LookaheadParams(fast=params, slow=jax.tree.map(jnp.copy, params))


LOOKAHEAD = {
    "init_params": _lookahead_pair,
    "grad_params": lambda p: p.fast,
    "eval_params": lambda p, s: p.slow,
}
SCHEDULE_FREE = {"lr_shape": "warmup_constant", "eval_params": lambda p, s: adamlab.schedule_free_eval_params(s, p)}


def _schedule_free_adamw(schedule, wd):
    """Optax's schedule_free_adamw(peak, warmup_steps) with the demo's b2 and decay mask (it takes neither)."""
    base = adamlab.chain(
        adamlab.scale_by_rms(B2, EPS, bias_correction=True),
        adamlab.add_decoupled_weight_decay(wd, mask=adamlab.weight_decay_mask),
        adamlab.scale_by_learning_rate(schedule),
    )
    return adamlab.schedule_free(base, schedule, B1)


def _rprop(schedule, wd):
    """Rprop's rate is its initial step size, a number: the (constant) schedule's value, even while traced."""
    with jax.ensure_compile_time_eval():
        return adamlab.rprop(float(schedule(0)))


def _muon(schedule, wd):
    """Muon on every matrix at the schedule's rate, AdamW at Adam's (1/20 of Muon's 0.02), lr*wd kept."""
    return adamlab.muon(
        schedule,
        weight_decay=wd / 20,
        weight_decay_mask=adamlab.weight_decay_mask,
        adam_learning_rate=lambda count: schedule(count) / 20,
    )


def _optax_adamw(schedule, wd):
    import optax

    return optax.adamw(schedule, b1=B1, b2=B2, eps=EPS, weight_decay=wd, mask=adamlab.weight_decay_mask)


# Peak learning rates: the best final validation loss of a sweep on the default configuration (150 steps):
# SGD+momentum {0.01, 0.03, 0.1, 0.3, 1}, RMSProp {1e-4, 3e-4, 1e-3, 3e-3}, Adam {3e-4, 1e-3, 2e-3, 3e-3, 1e-2}.
# The weight-decayed Adam runs share Adam's rate, so the only difference between them is where the decay enters.
OPTIMIZERS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in [
        OptimizerSpec("sgd", "SGD+momentum", 0.03, "none", lambda s, wd: adamlab.sgd(s, momentum=0.9), "tab:gray"),
        OptimizerSpec(
            "rmsprop", "RMSProp", 3e-4, "none", lambda s, wd: adamlab.rmsprop(s, decay=B2, eps=EPS), "tab:purple"
        ),
        OptimizerSpec("adam", "Adam", 1e-3, "none", lambda s, wd: adamlab.adam(s, B1, B2, EPS), "tab:blue"),
        OptimizerSpec(
            "adam_l2",
            "Adam+L2",
            1e-3,
            "coupled",
            lambda s, wd: adamlab.adam(s, B1, B2, EPS, weight_decay=wd, mask=adamlab.weight_decay_mask),
            "tab:red",
        ),
        OptimizerSpec(
            "adamw",
            "AdamW",
            1e-3,
            "decoupled",
            lambda s, wd: adamlab.adamw(s, B1, B2, EPS, weight_decay=wd, mask=adamlab.weight_decay_mask),
            "tab:green",
        ),
        OptimizerSpec("optax_adamw", "Optax AdamW", 1e-3, "decoupled", _optax_adamw, "black", requires="optax"),
        # The Adam family (python -m adamlab.demo --optimizers amsgrad,lion,...): Adam's rate, not swept; Lion at a
        # third of it with 3x the decay (its paper: 3-10x smaller lr, lr*wd kept). AdEMAMix with b3 = 0.999 and
        # alpha warmed up over 100 steps: the paper's 0.9999 averages over more steps than a demo run has.
        OptimizerSpec("amsgrad", "AMSGrad", 1e-3, "none", lambda s, wd: adamlab.amsgrad(s, B1, B2, EPS), "tab:orange"),
        OptimizerSpec(
            "nadamw",
            "NAdamW",
            1e-3,
            "decoupled",
            lambda s, wd: adamlab.nadamw(s, B1, B2, EPS, weight_decay=wd, mask=adamlab.weight_decay_mask),
            "tab:brown",
        ),
        OptimizerSpec(
            "ademamix",
            "AdEMAMix",
            1e-3,
            "decoupled",
            lambda s, wd: adamlab.ademamix(
                s,
                B1,
                B2,
                0.999,
                adamlab.schedules.ademamix_alpha(5.0, 100),
                EPS,
                weight_decay=wd,
                mask=adamlab.weight_decay_mask,
            ),
            "tab:pink",
        ),
        OptimizerSpec(
            "lion",
            "Lion",
            3e-4,
            "decoupled",
            lambda s, wd: adamlab.lion(s, weight_decay=3 * wd, mask=adamlab.weight_decay_mask),
            "tab:olive",
        ),
        OptimizerSpec(
            "adam_atan2",
            "Adam-atan2",
            1e-3,
            "decoupled",
            lambda s, wd: adamlab.adam_atan2(s, B1, B2, weight_decay=wd, mask=adamlab.weight_decay_mask),
            "tab:cyan",
        ),
        OptimizerSpec(
            "cautious_adamw",
            "C-AdamW",
            1e-3,
            "decoupled",
            lambda s, wd: adamlab.cautious(
                adamlab.adamw(s, B1, B2, EPS, weight_decay=wd, mask=adamlab.weight_decay_mask)
            ),
            "gold",
        ),
        OptimizerSpec(
            "stable_adamw",
            "StableAdamW",
            1e-3,
            "decoupled",
            lambda s, wd: adamlab.stable_adamw(s, B1, B2, weight_decay=wd, mask=adamlab.weight_decay_mask),
            "tab:blue",
        ),
        # The rest of Optax's first-order family (python -m adamlab.demo --optimizers adafactor,lamb,...): rates
        # from each paper's or Optax's usual range, not swept; the demo's B1 and B2 where the method has them.
        # Layer-wise methods scale each tensor's step to its norm, so their rate is a relative step (LAMB), times
        # LARS's trust coefficient 1e-3. Simplified AdEMAMix sums its momentum without (1 - b1), 100x Adam's at
        # b1 = 0.99: 1/100 of Adam's rate, 100x the decay. rprop's rate is its initial step size (constant).
        OptimizerSpec("adabelief", "AdaBelief", 1e-3, "none", lambda s, wd: adamlab.adabelief(s, B1, B2), "tab:purple"),
        OptimizerSpec("adadelta", "AdaDelta", 1.0, "none", lambda s, wd: adamlab.adadelta(s), "tab:brown"),
        OptimizerSpec("adafactor", "Adafactor", 1e-2, "none", lambda s, wd: adamlab.adafactor(s), "teal"),
        OptimizerSpec("adagrad", "AdaGrad", 1e-2, "none", lambda s, wd: adamlab.adagrad(s), "tab:gray"),
        OptimizerSpec("adamax", "AdaMax", 2e-3, "none", lambda s, wd: adamlab.adamax(s, B1, B2, EPS), "navy"),
        OptimizerSpec(
            "adamaxw",
            "AdaMaxW",
            2e-3,
            "decoupled",
            lambda s, wd: adamlab.adamaxw(s, B1, B2, EPS, weight_decay=wd, mask=adamlab.weight_decay_mask),
            "royalblue",
        ),
        OptimizerSpec(
            "adan",
            "Adan",
            1e-3,
            "decoupled",
            lambda s, wd: adamlab.adan(s, weight_decay=wd, mask=adamlab.weight_decay_mask),
            "crimson",
        ),
        OptimizerSpec(
            "lamb",
            "LAMB",
            1e-2,
            "decoupled",
            lambda s, wd: adamlab.lamb(s, B1, B2, weight_decay=wd, mask=adamlab.weight_decay_mask),
            "darkorange",
        ),
        OptimizerSpec("lars", "LARS", 1.0, "none", lambda s, wd: adamlab.lars(s), "sienna"),
        OptimizerSpec("novograd", "NovoGrad", 1e-2, "none", lambda s, wd: adamlab.novograd(s), "orchid"),
        OptimizerSpec("radam", "RAdam", 1e-3, "none", lambda s, wd: adamlab.radam(s, B1, B2, EPS), "seagreen"),
        OptimizerSpec("yogi", "Yogi", 1e-2, "none", lambda s, wd: adamlab.yogi(s, B1, B2), "darkkhaki"),
        OptimizerSpec("rprop", "Rprop", 1e-3, "none", _rprop, "slategray", lr_shape="constant"),
        OptimizerSpec("sign_sgd", "signSGD", 1e-3, "none", lambda s, wd: adamlab.sign_sgd(s), "darkgoldenrod"),
        OptimizerSpec("signum", "Signum", 3e-4, "none", lambda s, wd: adamlab.signum(s, B1), "yellowgreen"),
        OptimizerSpec("noisy_sgd", "Noisy SGD", 0.3, "none", lambda s, wd: adamlab.noisy_sgd(s, key=0), "silver"),
        OptimizerSpec(
            "optimistic_adam_v2",
            "Optimistic Adam",
            1e-3,
            "none",
            lambda s, wd: adamlab.optimistic_adam_v2(s, b1=B1, b2=B2, eps=EPS),
            "steelblue",
        ),
        OptimizerSpec(
            "lookahead",
            "Lookahead AdamW",
            1e-3,
            "decoupled",
            lambda s, wd: adamlab.lookahead(
                adamlab.adamw(s, B1, B2, EPS, weight_decay=wd, mask=adamlab.weight_decay_mask), 5, 0.5
            ),
            "limegreen",
            **LOOKAHEAD,
        ),
        OptimizerSpec("adopt", "ADOPT", 1e-3, "none", lambda s, wd: adamlab.adopt(s, B1, B2), "indigo"),
        OptimizerSpec(
            "schedule_free_adamw",
            "Schedule-free AdamW",
            2.5e-3,
            "decoupled",
            _schedule_free_adamw,
            "darkgreen",
            **SCHEDULE_FREE,
        ),
        OptimizerSpec(
            "schedule_free_sgd",
            "Schedule-free SGD",
            0.3,
            "none",
            lambda s, wd: adamlab.schedule_free(adamlab.sgd(s), s, B1),
            "dimgray",
            **SCHEDULE_FREE,
        ),
        OptimizerSpec(
            "simplified_ademamix",
            "Simplified AdEMAMix",
            1e-5,
            "decoupled",
            lambda s, wd: adamlab.simplified_ademamix(s, weight_decay=100 * wd, mask=adamlab.weight_decay_mask),
            "hotpink",
        ),
        OptimizerSpec("muon", "Muon", 0.02, "decoupled", _muon, "firebrick"),
    ]
}
DEFAULT = ("sgd", "rmsprop", "adam", "adam_l2", "adamw", "optax_adamw")  # what `python -m adamlab.demo` trains


def available(name: str) -> bool:
    spec = OPTIMIZERS[name]
    if spec.requires is None:
        return True
    try:
        __import__(spec.requires)
    except ImportError:
        return False
    return True


class RunResult(NamedTuple):
    spec: OptimizerSpec
    params: Any  # what the optimizer stepped; spec.at_evaluation(params, opt_state) is the model evaluated
    opt_state: Any
    history: dict[str, list]
    step_ms: float  # mean wall time of a step after the first (which compiles), evaluation excluded
    compile_s: float  # wall time of the first step


class _Progress:
    """A tqdm bar when tqdm is installed, else a line every ~10% of the run."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.total, self.desc, self.enabled, self.bar, self.done = total, desc, enabled, None, 0
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=f"{desc:>12}", unit="step", dynamic_ncols=True, leave=True)
            except ImportError:
                pass

    def update(self, n: int, **postfix: Any) -> None:
        before, self.done = self.done, self.done + n
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)
        elif self.enabled and (self.done * 10 // self.total > before * 10 // self.total or self.done == self.total):
            items = " ".join(f"{k}={v}" for k, v in postfix.items())
            print(f"{self.desc:>12}: step {self.done}/{self.total} {items}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _decayed_leaves(params) -> Any:
    """The mask of the matrices that weight decay applies to (and whose update/weight ratio is logged)."""
    return adamlab.weight_decay_mask(params)


def _loss_on(params, tokens, starts, mcfg: model.ModelConfig):
    windows = tokens[starts[:, None] + jnp.arange(mcfg.context + 1)]
    return model.loss_fn(params, windows[:, :-1], windows[:, 1:], mcfg)


# Compiled once per model configuration and shared by every optimizer's run (XLA compiles dominate tiny runs).
@functools.partial(jax.jit, static_argnums=5)
def _evaluate(params, train_tokens, val_tokens, train_starts, val_starts, mcfg):
    return (
        _loss_on(params, train_tokens, train_starts, mcfg),
        _loss_on(params, val_tokens, val_starts, mcfg),
        adamlab.global_norm(params),
    )


def train(
    spec: OptimizerSpec, cfg: TrainConfig, corpus: tuple[np.ndarray, np.ndarray], *, progress: bool = True
) -> RunResult:
    """Trains the model from ``seed`` with `spec`'s optimizer on the data order drawn from ``seed``."""
    mcfg = cfg.model_config()
    train_tokens, val_tokens = (jnp.asarray(t, jnp.int32) for t in corpus)
    offsets = data.batch_offsets(len(corpus[0]), cfg.context, cfg.batch, cfg.steps, cfg.seed)
    eval_rng = cfg.seed + 1
    eval_train = data.batch_offsets(len(corpus[0]), cfg.context, cfg.batch * cfg.eval_batches, 1, eval_rng)[0]
    eval_val = data.batch_offsets(len(corpus[1]), cfg.context, cfg.batch * cfg.eval_batches, 1, eval_rng)[0]

    schedule = cfg.schedule(spec.peak_lr, spec.lr_shape)
    tx = spec.build(schedule, cfg.weight_decay)
    model_params = model.init_params(mcfg, cfg.seed)
    params = model_params if spec.init_params is None else spec.init_params(model_params)
    opt_state = jax.jit(tx.init)(params)
    decayed = jax.tree.leaves(_decayed_leaves(model_params))
    at_evaluation = jax.jit(spec.at_evaluation)

    def step(params, opt_state, tokens, starts):
        loss, grads = jax.value_and_grad(_loss_on)(spec.at_gradient(params), tokens, starts, mcfg)
        updates, opt_state = tx.update(grads, opt_state, params)
        ratios = jax.tree.leaves(diagnostics.update_weight_ratio(spec.at_gradient(updates), spec.at_gradient(params)))
        ratio = jnp.median(jnp.stack([r for r, d in zip(ratios, decayed) if d]))
        return adamlab.apply_updates(params, updates), opt_state, loss, ratio

    step = jax.jit(step, donate_argnums=(0, 1))

    history: dict[str, list] = {
        k: []
        for k in ("step", "train_loss", "update_ratio", "eval_step", "eval_train_loss", "val_loss", "weight_norm", "lr")
    }

    def record_eval(at: int) -> float:
        t0 = time.perf_counter()
        evaluated = at_evaluation(params, opt_state)
        tr, va, norm = (float(x) for x in _evaluate(evaluated, train_tokens, val_tokens, eval_train, eval_val, mcfg))
        history["eval_step"].append(at)
        history["eval_train_loss"].append(tr)
        history["val_loss"].append(va)
        history["weight_norm"].append(norm)
        return time.perf_counter() - t0

    record_eval(0)
    every = cfg.eval_interval()
    bar = _Progress(cfg.steps, spec.label, progress)
    pending: list = []  # device scalars, fetched in groups so the host does not wait for every step
    compile_s, step_time, last = 0.0, 0.0, time.perf_counter()
    for i in range(cfg.steps):
        params, opt_state, loss, ratio = step(params, opt_state, train_tokens, offsets[i])
        pending.append((i + 1, loss, ratio))
        at = i + 1
        if at == 1 or at % every == 0 or at == cfg.steps or len(pending) >= 10:
            fetched = [(s, float(lv), float(rv)) for s, lv, rv in pending]  # waits for the steps to finish
            pending.clear()
            now = time.perf_counter()
            if at == 1:
                compile_s = now - last
            else:
                step_time += now - last
            for s, lv, rv in fetched:
                history["step"].append(s)
                history["train_loss"].append(lv)
                history["update_ratio"].append(rv)
            if not math.isfinite(fetched[-1][1]):
                bar.close()
                raise FloatingPointError(
                    f"{spec.label}: the loss became {fetched[-1][1]} at step {at}; "
                    f"lower its learning rate (peak {spec.peak_lr:g})"
                )
            if at % every == 0 or at == cfg.steps:
                record_eval(at)
            bar.update(len(fetched), loss=f"{fetched[-1][1]:.3f}")
            last = time.perf_counter()
    bar.close()
    # The learning rate each evaluation's last step used, schedule(step - 1): one compiled call for all of them.
    last_steps = jnp.maximum(jnp.asarray(history["eval_step"]) - 1, 0)
    history["lr"] = [float(v) for v in jax.jit(jax.vmap(schedule))(last_steps)]
    step_ms = 1000 * step_time / (cfg.steps - 1)
    return RunResult(spec, params, opt_state, history, step_ms, compile_s)


def max_param_deviation(a, b) -> dict[str, float]:
    """Largest absolute difference over all weights, and the largest per-leaf ``max|a-b| / max|b|``."""
    abs_err, rel_err = 0.0, 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        err = float(np.max(np.abs(x - y)))
        abs_err = max(abs_err, err)
        rel_err = max(rel_err, err / max(float(np.max(np.abs(y))), np.finfo(np.float64).tiny))
    return {"max_abs": abs_err, "max_rel": rel_err}


def effective_decays(result: RunResult, cfg: TrainConfig) -> dict[str, np.ndarray]:
    """Per-weight effective decay of the last step for each decayed tensor, keyed by its path."""
    coupled = result.spec.decay == "coupled"
    schedule = cfg.schedule(result.spec.peak_lr, result.spec.lr_shape)
    tree = jax.jit(
        lambda state, params: diagnostics.effective_decay(
            state,
            params,
            schedule,
            cfg.weight_decay,
            coupled=coupled,
            mask=adamlab.weight_decay_mask,
            b2=B2,
            eps=EPS,
        )
    )(result.opt_state, result.params)
    mask = adamlab.weight_decay_mask(result.params)
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): np.asarray(x).ravel() for (path, x), m in zip(flat, jax.tree.leaves(mask)) if m}
