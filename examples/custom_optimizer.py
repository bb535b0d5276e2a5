"""Building optimizers from adamlab's primitives, and checking them against the built-in ones.

1. Adam and AdamW written out stage by stage are bit-identical to `adamlab.adam` / `adamlab.adamw` (and Optax's).
2. Adam without bias correction: drop the `bias_correct` stage. Its first step is ``(1-b1)/sqrt(1-b2)``
   times Adam's (3.2x for 0.9 / 0.999): the uncorrected moments start too small, the second more so.
3. RMSProp with EMA momentum: `scale_by_ema` after `scale_by_rms`. Since ``ema = (1 - beta) * trace``, it
   equals the built-in heavy-ball `rmsprop(lr * (1 - beta), momentum=beta)` up to rounding.

    python examples/custom_optimizer.py
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

import adamlab
from adamlab import testing


def my_adam(lr, b1=0.9, b2=0.999, eps=1e-8, bias_correction=True):
    return adamlab.chain(
        adamlab.scale_by_ema(b1),  # m = b1*m + (1-b1)*g
        *([adamlab.bias_correct(b1)] if bias_correction else []),  # m_hat = m / (1 - b1**t)
        adamlab.scale_by_rms(b2, eps, bias_correction=bias_correction),  # / (sqrt(v_hat) + eps), v from g
        adamlab.scale_by_learning_rate(lr),  # * -lr
    )


def my_adamw(lr, wd, b1=0.9, b2=0.999, eps=1e-8):
    return adamlab.chain(
        adamlab.scale_by_ema(b1),
        adamlab.bias_correct(b1),
        adamlab.scale_by_rms(b2, eps, bias_correction=True),
        adamlab.add_decoupled_weight_decay(wd, mask=adamlab.weight_decay_mask),  # + wd*p, after the scaling
        adamlab.scale_by_learning_rate(lr),
    )


def rmsprop_ema_momentum(lr, decay=0.9, beta=0.9, eps=1e-8):
    return adamlab.chain(
        adamlab.scale_by_rms(decay, eps, eps_in_sqrt=True),
        adamlab.scale_by_ema(beta),
        adamlab.scale_by_learning_rate(lr),
    )


def main(steps: int = 200) -> dict:
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    params = {"w": jax.random.normal(k1, (8, 4)), "bias": jax.random.normal(k2, (4,))}
    grads = testing.gradient_stream(params, steps, seed=1)
    out = {}

    for name, ours, builtin in [
        ("adam", my_adam(1e-3), adamlab.adam(1e-3)),
        ("adamw", my_adamw(1e-3, 0.1), adamlab.adamw(1e-3, weight_decay=0.1, mask=adamlab.weight_decay_mask)),
    ]:
        testing.assert_bitwise_equal(testing.run(ours, params, grads), testing.run(builtin, params, grads))
        print(f"{name} from primitives: bit-identical to the built-in after {steps} steps")
        out[f"{name}_bitwise"] = True

    g0 = jax.tree.map(lambda g: g[0], grads)
    first = {bc: my_adam(1e-3, bias_correction=bc) for bc in (True, False)}
    steps0 = {bc: tx.update(g0, tx.init(params), params)[0]["w"] for bc, tx in first.items()}
    ratio = float(jnp.median(steps0[False] / steps0[True]))
    print(
        f"Adam without bias correction: first step {ratio:.3f}x Adam's (predicted (1-b1)/sqrt(1-b2) = "
        f"{0.1 / np.sqrt(0.001):.3f})"
    )
    out["no_bias_correction_first_step_ratio"] = ratio

    beta = 0.9
    report = testing.compare(
        rmsprop_ema_momentum(1e-2, beta=beta),
        adamlab.rmsprop(1e-2 * (1 - beta), momentum=beta),
        params,
        grads=grads,
        rtol=1e-5,
    )
    print(f"RMSProp with EMA momentum vs rmsprop(lr*(1-beta), momentum=beta): max rel error {report.max_rel:.2g}")
    out["rmsprop_ema_vs_trace_max_rel"] = report.max_rel
    return out


if __name__ == "__main__":
    main(int(os.environ.get("ADAMLAB_EXAMPLE_STEPS", 200)))
