"""The ecosystem fit: adamlab inside Optax and Flax, Optax inside adamlab."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import mixed_params

import adamlab
from adamlab import testing


def test_adamlab_inside_optax_chain():
    ours = optax.chain(optax.clip_by_global_norm(1.0), adamlab.adamw(1e-3, weight_decay=0.1))
    theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3, weight_decay=0.1))
    report = testing.compare(ours, theirs, mixed_params(), steps=100)
    assert report.max_rel == 0.0, str(report)


def test_optax_transformation_inside_adamlab_chain_preprocesses_the_gradient():
    """A foreign stage before the moments is gradient preprocessing, as in optax.chain: both moments see the clip."""
    ours = adamlab.chain(optax.clip_by_global_norm(0.5), adamlab.adam(1e-3))
    theirs = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-3))
    report = testing.compare(ours, theirs, mixed_params(), steps=100)
    assert report.max_rel == 0.0, str(report)


def test_adamlab_clip_before_moments_clips_what_the_second_moment_sees():
    ours = adamlab.chain(adamlab.clip_by_global_norm(0.5), adamlab.adam(1e-3))
    theirs = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-3))
    report = testing.compare(ours, theirs, mixed_params(), steps=100)
    assert report.max_rel == 0.0, str(report)


def test_optax_schedules_are_accepted():
    sched = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 10, 100)
    report = testing.compare(adamlab.adamw(sched), optax.adamw(sched), mixed_params(), steps=100)
    assert report.max_rel == 0.0, str(report)


def test_schedules_match_optax_pointwise():
    steps = jnp.arange(0, 130)
    pairs = [
        (adamlab.schedules.constant(0.3), optax.constant_schedule(0.3)),
        (adamlab.schedules.linear_warmup(0.1, 1.0, 20), optax.linear_schedule(0.1, 1.0, 20)),
        (adamlab.schedules.cosine_decay(1.0, 100, alpha=0.1), optax.cosine_decay_schedule(1.0, 100, alpha=0.1)),
        (
            adamlab.schedules.warmup_cosine_decay(0.0, 1.0, 10, 100, end_value=0.05),
            optax.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100, end_value=0.05),
        ),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(jax.vmap(ours)(steps), jax.vmap(theirs)(steps), rtol=1e-6, atol=1e-7)


def test_schedule_step_zero_uses_schedule_of_zero():
    tx = adamlab.sgd(lambda step: 0.5 + step)
    params = {"w": jnp.ones(())}
    u, s = tx.update({"w": jnp.ones(())}, tx.init(params), params)
    assert float(u["w"]) == -0.5
    u, s = tx.update({"w": jnp.ones(())}, s, params)
    assert float(u["w"]) == -1.5


def test_flax_train_state():
    train_state = pytest.importorskip("flax.training.train_state")

    def loss(params, x, y):
        return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)

    x = jax.random.normal(jax.random.PRNGKey(0), (32, 3))
    y = x @ jnp.array([1.0, -2.0, 0.5]) + 0.3
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    states = {
        name: train_state.TrainState.create(apply_fn=None, params=params, tx=tx)
        for name, tx in [
            ("ours", adamlab.adamw(0.05, weight_decay=1e-3)),
            ("optax", optax.adamw(0.05, weight_decay=1e-3)),
        ]
    }

    @jax.jit
    def step(state):
        return state.apply_gradients(grads=jax.grad(loss)(state.params, x, y))

    for _ in range(200):
        states = {k: step(s) for k, s in states.items()}
    testing.assert_bitwise_equal(states["ours"].params, states["optax"].params)
    assert float(loss(states["ours"].params, x, y)) < 1e-3


def test_flax_nnx_optimizer():
    nnx = pytest.importorskip("flax.nnx")

    def train(tx):
        model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
        opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
        x = jax.random.normal(jax.random.PRNGKey(1), (32, 3))
        y = x @ jnp.array([[1.0], [-2.0], [0.5]])

        @nnx.jit
        def step(model, opt):
            grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
            opt.update(model, grads)

        for _ in range(100):
            step(model, opt)
        return nnx.state(model, nnx.Param), float(jnp.mean((model(x) - y) ** 2))

    (ours, loss_ours), (theirs, _) = train(adamlab.adam(0.05)), train(optax.adam(0.05))
    testing.assert_bitwise_equal(jax.tree.leaves(ours), jax.tree.leaves(theirs))
    assert loss_ours < 0.05


def test_optax_inject_hyperparams_learning_rate():
    """Hyperparameters passed as float32 arrays, as optax.inject_hyperparams does, give Optax's results."""
    ours = optax.inject_hyperparams(adamlab.adamw)(learning_rate=1e-3, weight_decay=0.1)
    theirs = optax.inject_hyperparams(optax.adamw)(learning_rate=1e-3, weight_decay=0.1)
    params = mixed_params()
    report = testing.compare(ours, theirs, params, steps=50)
    assert report.max_rel <= 1e-6, str(report)
    state = ours.init(params)
    state.hyperparams["learning_rate"] = jnp.asarray(0.0)  # a changed hyperparameter takes effect
    updates, _ = ours.update(params, state, params)
    assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(updates))


# ---------------------------------------------------------------- Optax's own tests that adamlab once failed


def test_inject_hyperparams_of_adamlab_adam_jits():
    """optax.inject_hyperparams(adamlab.adam) under jax.jit: `weight_decay` is then an array (concrete in init,
    traced in update), which once hit `if weight_decay:`. Optax's own test expects -lr on the first step."""
    params = jnp.ones(3)
    for tx in (
        optax.inject_hyperparams(adamlab.adam)(learning_rate=0.1),
        optax.inject_hyperparams(adamlab.adam)(learning_rate=0.1, weight_decay=0.0),
    ):
        state = jax.jit(tx.init)(params)
        updates, state = jax.jit(tx.update)(jnp.ones(3), state, params)
        np.testing.assert_allclose(np.asarray(updates), [-0.1, -0.1, -0.1], rtol=1e-6)
    decayed = optax.inject_hyperparams(adamlab.adam)(learning_rate=0.1, weight_decay=0.5)
    updates, _ = jax.jit(decayed.update)(jnp.zeros(3), jax.jit(decayed.init)(params), params)
    np.testing.assert_allclose(np.asarray(updates), [-0.1, -0.1, -0.1], rtol=1e-6)  # g + wd*p = 0.5, normalised


@jax.tree_util.register_pytree_node_class
class CallableMask:
    """Like an Equinox module: a pytree that is also callable (calling it is not how to read it as a mask)."""

    def __init__(self, x):
        self.x = x

    def __call__(self, *args):
        raise AttributeError("a callable pytree mask was called as a function")

    def tree_flatten(self):
        return (self.x,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


@pytest.mark.parametrize("decay", [adamlab.add_decoupled_weight_decay, adamlab.add_coupled_weight_decay])
def test_a_callable_pytree_mask_is_a_mask_not_a_function(decay):
    params = CallableMask(jnp.ones(3))
    for flag, expected in ((False, 1.0), (True, 1.1)):
        tx = decay(0.1, mask=CallableMask(flag))
        out, _ = tx.update(CallableMask(jnp.ones(3)), tx.init(params), params)
        np.testing.assert_allclose(np.asarray(out.x), expected, rtol=1e-6)


def test_schedules_take_step_counts_beyond_int32():
    """Optax evaluates its schedules at counts of 2**31 and more; 975.52826 is Optax's value."""
    schedules = adamlab.schedules
    np.testing.assert_allclose(float(schedules.cosine_decay(1000.0, decay_steps=10**10)(10**9)), 975.52826, rtol=1e-6)
    np.testing.assert_allclose(
        float(schedules.cosine_decay(1000.0, decay_steps=10**10)(10**9)),
        float(optax.cosine_decay_schedule(1000.0, decay_steps=10**10)(10**9)),
        rtol=1e-6,
    )
    np.testing.assert_allclose(float(schedules.linear_warmup(0.0, 1.0, 10**10)(3 * 10**9)), 0.3, rtol=1e-6)
    ours = schedules.warmup_cosine_decay(0.0, 1.0, 10**9, 10**10)
    theirs = optax.warmup_cosine_decay_schedule(0.0, 1.0, 10**9, 10**10)
    np.testing.assert_allclose(float(ours(2 * 10**9)), float(theirs(2 * 10**9)), rtol=1e-6)
    # Optax's own schedule overflows on a Python int step of 5e9; the float64 formula:
    np.testing.assert_allclose(float(ours(5 * 10**9)), 0.5 * (1 + np.cos(np.pi * 4 / 9)), rtol=1e-6)
    tx = adamlab.sgd(schedules.cosine_decay(1.0, decay_steps=10**10))
    updates, _ = jax.jit(tx.update)(jnp.ones(2), tx.init(jnp.ones(2)))
    assert float(updates[0]) == -1.0


@pytest.mark.parametrize("steps", [0, -1])
def test_linear_warmup_without_steps_is_its_init_value(steps):
    ours = adamlab.schedules.linear_warmup(10.0, 20.0, steps)
    theirs = optax.linear_schedule(10.0, 20.0, steps)
    for step in (0, 5, 100):
        assert float(ours(step)) == float(theirs(step)) == 10.0
