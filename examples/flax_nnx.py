"""adamlab inside Flax: an `nnx.Optimizer` (and a Linen `TrainState`) driven by `adamlab.adamw`.

The same model trained with `optax.adamw` ends with bit-identical weights: adamlab transformations are
ordinary `(init, update)` pairs, so the Flax machinery does not know the difference.

    python examples/flax_nnx.py
    ADAMLAB_EXAMPLE_STEPS=50 python examples/flax_nnx.py
"""

import os

import jax
import jax.numpy as jnp

import adamlab


def make_data():
    x = jax.random.normal(jax.random.PRNGKey(1), (256, 4))
    return x, jnp.tanh(x @ jnp.array([[1.0], [-2.0], [0.5], [0.0]]))


def train_nnx(tx, steps: int):
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.hidden = nnx.Linear(4, 32, rngs=rngs)
            self.out = nnx.Linear(32, 1, rngs=rngs)

        def __call__(self, x):
            return self.out(nnx.relu(self.hidden(x)))

    x, y = make_data()
    model = MLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    for _ in range(steps):
        loss = step(model, optimizer)
    return nnx.state(model, nnx.Param), float(loss)


def train_linen(tx, steps: int):
    import flax.linen as nn
    from flax.training import train_state

    x, y = make_data()
    model = nn.Sequential([nn.Dense(32), nn.relu, nn.Dense(1)])
    state = train_state.TrainState.create(apply_fn=model.apply, params=model.init(jax.random.PRNGKey(0), x), tx=tx)

    @jax.jit
    def step(state):
        loss, grads = jax.value_and_grad(lambda p: jnp.mean((state.apply_fn(p, x) - y) ** 2))(state.params)
        return state.apply_gradients(grads=grads), loss

    for _ in range(steps):
        state, loss = step(state)
    return state.params, float(loss)


def main(steps: int = 300) -> dict:
    import optax

    out = {}
    for name, train in [("nnx", train_nnx), ("linen", train_linen)]:
        ours, loss = train(adamlab.adamw(1e-2, weight_decay=1e-3, mask=adamlab.weight_decay_mask), steps)
        theirs, _ = train(optax.adamw(1e-2, weight_decay=1e-3, mask=adamlab.weight_decay_mask), steps)
        identical = all(bool(jnp.array_equal(a, b)) for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)))
        print(f"{name}: final loss {loss:.5f}; weights identical to optax.adamw: {identical}")
        out[name] = {"final_loss": loss, "identical_to_optax": identical}
    return out


if __name__ == "__main__":
    try:
        import flax  # noqa: F401
    except ImportError:
        raise SystemExit("this example needs Flax: pip install flax") from None
    main(int(os.environ.get("ADAMLAB_EXAMPLE_STEPS", 300)))
