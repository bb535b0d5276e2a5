"""A typed user script: the interop the documentation promises, as a type checker sees it.

CI checks it with pyright (basic) against the installed wheel and runs it (tests/test_typed_interop.py runs it in
the test suite too). Every line is something a user writes; none needs a cast or an ignore.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

import adamlab


def main() -> None:
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    grads = jax.tree.map(jnp.ones_like, params)

    # An Optax schedule drives an adamlab optimizer.
    schedule: optax.Schedule = optax.warmup_cosine_decay_schedule(0.0, 1e-3, 10, 100)
    tx: adamlab.GradientTransformation = adamlab.adamw(schedule, weight_decay=1e-4)

    # adamlab inside optax.chain, and Optax inside adamlab.chain.
    in_optax: optax.GradientTransformation = optax.chain(optax.clip_by_global_norm(1.0), adamlab.adamw(1e-3))
    in_adamlab = adamlab.chain(optax.clip_by_global_norm(1.0), adamlab.adamw(1e-3))
    as_optax: optax.GradientTransformationExtraArgs = adamlab.adamw(1e-3)
    del as_optax

    # inject_hyperparams over adamlab's constructor.
    tunable = optax.inject_hyperparams(adamlab.adamw)(learning_rate=1e-3, weight_decay=1e-4)

    for opt in (tx, in_optax, in_adamlab, tunable):
        state = opt.init(params)
        updates, state = opt.update(grads, state, params)
        p1 = optax.apply_updates(params, updates)
        p2 = adamlab.apply_updates(params, updates)
        assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), p1, p2))

    # The flat layout's wrapper is a transformation like the others.
    packed = adamlab.flat.packed(adamlab.adamw(1e-3))
    state = packed.init(params)
    updates, state = packed.update(grads, state, params)
    adamlab.apply_updates(params, updates)

    # Flax NNX: an nnx.Optimizer driven by adamlab.adamw.
    model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, adamlab.adamw(1e-2), wrt=nnx.Param)

    def loss_fn(m: nnx.Linear) -> jax.Array:
        return jnp.mean((m(jnp.ones((4, 2))) - 1.0) ** 2)

    loss, model_grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, model_grads)
    print(f"typed interop: every path ran (nnx loss {float(loss):.4f})")


if __name__ == "__main__":
    main()
