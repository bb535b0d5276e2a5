"""Sign methods and gradient noise: signSGD, Signum, and annealed Gaussian noise on the gradient (noisy SGD).

Each optimizer is a short chain ending in :func:`adamlab.scale_by_learning_rate`::

    sign_sgd  = chain(scale_by_sign(), lr)
    signum    = chain(scale_by_ema(beta), scale_by_sign(), lr)
    noisy_sgd = chain(add_noise(eta, gamma, key), lr)

Names, positional arguments and defaults are Optax's (0.2.8). PyTorch has none of the three.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from adamlab import _checks
from adamlab.base import GradientTransformation, chain, stage
from adamlab.directions import scale_by_sign
from adamlab.flat import Flat
from adamlab.moments import _one_dtype, scale_by_ema
from adamlab.scaling import ScalarOrSchedule, scale_by_learning_rate
from adamlab.tree import has_gradient, increment, per_precision, scalar, upcast, widest_float


def sign_sgd(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """signSGD (Bernstein et al., ICML 2018): a step of the same size in every coordinate, against the sign of
    its gradient.

    ::

        p <- p - lr * sign(g_t)           (sign(0) = 0)

    Built as ``chain(scale_by_sign(), scale_by_learning_rate(learning_rate))``: what `optax.sign_sgd`
    computes, bit for bit.

    Args:
      learning_rate: The step size: a number ``>= 0`` or a schedule of the steps already taken. No default.
        Optax: ``learning_rate``.

    Returns:
      A :class:`adamlab.GradientTransformation` whose state is ``(EmptyState(), <the learning rate's state>)``.

    Raises:
      ValueError: If `learning_rate` is a negative or non-finite number.
      TypeError: If `learning_rate` is neither a real number, a scalar array nor a schedule.

    References:
      Bernstein, Wang, Azizzadenesheli & Anandkumar, *signSGD: Compressed Optimisation for Non-Convex
      Problems*, ICML 2018.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.sign_methods import sign_sgd
      >>> tx = sign_sgd(0.1)
      >>> params = {"w": jnp.zeros(3)}
      >>> updates, _ = tx.update({"w": jnp.array([0.2, -30.0, 0.0])}, tx.init(params), params)
      >>> print(updates["w"])
      [-0.1  0.1 -0. ]
    """
    return chain(scale_by_sign(), scale_by_learning_rate(learning_rate), name="sign_sgd")


def signum(
    learning_rate: ScalarOrSchedule, beta: float = 0.9, accumulator_dtype=None, *, state_dtype=None
) -> GradientTransformation:
    """Signum (Bernstein et al., ICML 2018): signSGD on the momentum, the sign of an EMA of the gradient.

    ::

        m_t = beta * m_{t-1} + (1 - beta) * g_t        (m_0 = 0; no bias correction: the sign ignores it)
        p  <- p - lr * sign(m_t)

    Built as ``chain(scale_by_ema(beta), scale_by_sign(), scale_by_learning_rate(learning_rate))``: what
    `optax.signum` computes, bit for bit (Optax's ``ema(beta, debias=False)`` keeps a step count that the
    sign never reads; :func:`adamlab.scale_by_ema` keeps none).

    Args:
      learning_rate: The step size: a number ``>= 0`` or a schedule of the steps already taken. No default.
        Optax: ``learning_rate``.
      beta: The EMA's decay, in ``[0, 1)``. Default 0.9. Optax: ``beta``; the paper's momentum ``beta``.
      accumulator_dtype: Storage dtype of ``m`` (e.g. ``jnp.bfloat16``, or ``jnp.int8`` for 8-bit codes).
        Default None: float32, or the param's dtype when wider. Optax: ``accumulator_dtype``.
      state_dtype: Keyword-only. adamlab's name for `accumulator_dtype`, as in :func:`adamlab.sgd`: give one of
        the two (both only if they agree). Default None. No Optax or PyTorch equivalent.

    Returns:
      A :class:`adamlab.GradientTransformation` whose state is a tuple: an :class:`adamlab.EmaState` (a
      :class:`adamlab.CountedEmaState` with 8-bit ``m``), an ``EmptyState()`` and the learning rate's state.

    Raises:
      ValueError: If `beta` is outside ``[0, 1)`` or `learning_rate` is a negative or non-finite number; if
        `accumulator_dtype` and `state_dtype` are both given and differ.
      TypeError: If a hyperparameter is not a real number or scalar array (`learning_rate` may be a schedule),
        or the storage dtype is not a float dtype (nor ``jnp.int8``).

    References:
      Bernstein, Wang, Azizzadenesheli & Anandkumar, *signSGD: Compressed Optimisation for Non-Convex
      Problems*, ICML 2018.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.sign_methods import signum
      >>> tx = signum(0.1, beta=0.9)
      >>> params = {"w": jnp.zeros(1)}
      >>> state = tx.init(params)
      >>> for g in (1.0, -1.0, -1.0):  # m = 0.1, then -0.01, -0.109: one gradient against the momentum
      ...     updates, state = tx.update({"w": jnp.array([g])}, state, params)
      ...     print(updates["w"], state[0].moment["w"].round(3))
      [-0.1] [0.1]
      [0.1] [-0.01]
      [0.1] [-0.109]
    """
    _checks.check_decay("beta", beta)  # checked here to name Optax's argument, not scale_by_ema's `decay`
    return chain(
        scale_by_ema(beta, state_dtype=_one_dtype(accumulator_dtype, state_dtype, "accumulator_dtype")),
        scale_by_sign(),
        scale_by_learning_rate(learning_rate),
        name="signum",
    )


class AddNoiseState(NamedTuple):
    """State of :func:`adamlab.sign_methods.add_noise`: the step count and the random key (Optax's fields).

    Args:
      count: int32 scalar, the number of updates taken (0 after init), saturating at ``2**31 - 1``.
      rng_key: A typed PRNG key (``jax.random.key``), split once per update: one half is kept, the other drawn
        from. Optax: ``rng_key`` of `optax.AddNoiseState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.sign_methods import add_noise
      >>> state = add_noise(0.01, 0.55, 0).init({"w": jnp.zeros(2)})
      >>> print(state.count, state.rng_key.dtype)
      0 key<fry>
    """

    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride] the Optax field name; shadows tuple.count
    rng_key: jax.Array


def add_noise(eta: float, gamma: float, key=None, *, seed: int | None = None) -> GradientTransformation:
    """Annealed Gaussian gradient noise (Neelakantan et al., 2015): ``u_t + N(0, eta / t**gamma)``.

    ::

        sigma_t**2 = eta / t**gamma          t = 1, 2, ... (the paper's eta / (1 + t')**gamma, t' = t - 1 from 0)
        output     = u_t + sigma_t * z_t,    z_t ~ N(0, 1) elementwise, independent across leaves and steps

    Each update splits the state's key in two, keeps the first half and splits the second into one key per
    leaf (integer and bool leaves included, in tree order), as `optax.add_noise` does: with the same key,
    the noise is Optax's, bit for bit, and the noise of a float leaf does not depend on which other leaves
    are float. The noise is drawn in float32 (or the leaf's wider dtype; complex normal for complex leaves),
    integer and bool leaves pass through. Its role is "gradient": in a :func:`adamlab.chain` it stands
    before every moment stage, so that the moments average the noisy gradient.

    Args:
      eta: The noise variance at the first step, a number ``>= 0``. No default. Optax: ``eta`` (the paper's
        eta; it tried 0.01, 0.3 and 1.0).
      gamma: The decay exponent of the variance, a number ``>= 0``. No default. Optax: ``gamma`` (the paper's
        0.55).
      key: The random key: an int seed (``jax.random.key(seed)``; an integer scalar array too, traced or not), a
        typed key (``jax.random.key``) or a raw ``uint32`` key (``jax.random.PRNGKey``). Default None: the seed 0
        (Optax warns and uses 0 too). Optax: ``key``.
      seed: Keyword-only. Optax's deprecated name for an int `key`; give at most one of the two. Default None.

    Returns:
      A `GradientTransformation` whose state is an :class:`adamlab.sign_methods.AddNoiseState`.

    Raises:
      ValueError: If `eta` or `gamma` is a negative or non-finite number, or both `key` and `seed` are given.
      TypeError: If `eta` or `gamma` is not a real number or scalar array, or `key` (or `seed`) is neither an
        int nor a PRNG key.

    References:
      Neelakantan et al., *Adding Gradient Noise Improves Learning for Very Deep Networks*, arXiv:1511.06807,
      2015.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.sign_methods import add_noise
      >>> tx = add_noise(eta=1.0, gamma=0.55, key=0)
      >>> state = tx.init({"w": jnp.zeros(100_000)})
      >>> for _ in range(2):
      ...     updates, state = tx.update({"w": jnp.zeros(100_000)}, state)
      >>> print(round(float(jnp.var(updates["w"])), 2), round(2**-0.55, 2))  # the variance at t = 2
      0.68 0.68
    """
    _checks.check_nonnegative("eta", eta)
    _checks.check_nonnegative("gamma", gamma)
    name = "key"
    if seed is not None:
        if key is not None:
            raise ValueError("add_noise: give one of key and seed (Optax's deprecated name for an int key), not both")
        key, name = seed, "seed"
    rng_key = _as_key(0 if key is None else key, name)

    def init(params):
        del params
        return AddNoiseState(jnp.zeros((), jnp.int32), rng_key)

    def update(updates, state, params=None, **extra):
        del params, extra
        count = increment(state.count)
        sigma = jnp.sqrt(eta / count.astype(widest_float()) ** gamma)
        std = per_precision(lambda: scalar(sigma))
        kept, drawn = jax.random.split(state.rng_key)
        if isinstance(updates, Flat):
            return _noisy_flat(updates, drawn, std), AddNoiseState(count, kept)
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(drawn, treedef.num_leaves)
        out = [_noisy(u, k, std) if has_gradient(u) else u for u, k in zip(leaves, keys)]
        return jax.tree.unflatten(treedef, out), AddNoiseState(count, kept)

    return stage("add_noise", init, update, role="gradient")


def _noisy_flat(updates: Flat, drawn, std) -> Flat:
    """The pytree path's noise on the flat layout: one key per leaf of the layout's tree, as `add_noise` splits them
    for the tree, and each leaf's draw in its slot, so that a flat run draws what a pytree run draws."""
    layout = updates.layout
    present = [hasattr(buf, "shape") for buf in updates.buckets]  # a Cut bucket: leaves a partition holds elsewhere
    order = sorted(i for b, p in zip(layout.buckets, present) if p for i in b.leaves)
    keys = dict(zip(order, jax.random.split(drawn, len(order))))
    out = []
    for buf, b, p in zip(updates.buckets, layout.buckets, present):
        if not p or not has_gradient(buf) or not b.leaves:
            out.append(buf)
            continue
        (u,) = upcast(buf)
        parts = [jax.random.normal(keys[i], (layout.slots[i].size,), u.dtype) for i in b.leaves]
        noise = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
        out.append(u + std(u) * noise.reshape(u.shape))
    return Flat(tuple(out), layout)


def _noisy(u, key, std):
    (u,) = upcast(u)
    return u + std(u) * jax.random.normal(key, u.shape, u.dtype, out_sharding=jax.typeof(u).sharding)


def _as_key(key, name: str) -> jax.Array:
    """`key` (an int seed, an integer scalar array, traced or not, a typed key or raw uint32 key data) as a typed
    PRNG key; `name` is the argument's, for the refusal."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if hasattr(key, "dtype") and key.dtype == jnp.uint32 and jnp.shape(key) == (2,):
        return jax.random.wrap_key_data(jnp.asarray(key))
    if hasattr(key, "dtype") and jnp.issubdtype(key.dtype, jnp.integer) and jnp.shape(key) == ():
        return jax.random.key(key)
    raise TypeError(
        f"{name} must be an int seed or a PRNG key (jax.random.key), got {type(key).__name__} of shape {jnp.shape(key)}"
    )


def noisy_sgd(
    learning_rate: ScalarOrSchedule,
    eta: float = 0.01,
    gamma: float = 0.55,
    key=None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    """SGD on the gradient plus annealed Gaussian noise (Neelakantan et al., 2015).

    ::

        p <- p - lr * (g_t + sigma_t * z_t),    sigma_t**2 = eta / t**gamma,  z_t ~ N(0, 1),  t = 1, 2, ...

    Built as ``chain(add_noise(eta, gamma, key), scale_by_learning_rate(learning_rate))``: what
    `optax.noisy_sgd` computes with the same key, bit for bit.

    Args:
      learning_rate: The step size: a number ``>= 0`` or a schedule of the steps already taken. No default.
        Optax: ``learning_rate``.
      eta: The noise variance at the first step, ``>= 0``. Default 0.01. Optax: ``eta``.
      gamma: The decay exponent of the variance, ``>= 0``. Default 0.55. Optax: ``gamma``.
      key: The random key: an int seed, a typed or a raw PRNG key. Default None: the seed 0. Optax: ``key``.
      seed: Keyword-only. Optax's deprecated name for an int `key`. Default None.

    Returns:
      A :class:`adamlab.GradientTransformation` whose state is ``(AddNoiseState(count, rng_key), <the
      learning rate's state>)``.

    Raises:
      ValueError: If `eta`, `gamma` or `learning_rate` is a negative or non-finite number, or both `key` and
        `seed` are given.
      TypeError: If a hyperparameter is not a real number or scalar array (`learning_rate` may be a schedule),
        or `key` is neither an int nor a PRNG key.

    References:
      Neelakantan et al., *Adding Gradient Noise Improves Learning for Very Deep Networks*, arXiv:1511.06807,
      2015.

    Example:
      >>> import jax.numpy as jnp
      >>> from adamlab.sign_methods import noisy_sgd
      >>> tx = noisy_sgd(0.1, eta=0.0)  # no noise: plain SGD
      >>> params = {"w": jnp.ones(2)}
      >>> updates, state = tx.update({"w": jnp.array([1.0, -2.0])}, tx.init(params), params)
      >>> print(updates["w"], state[0].count)
      [-0.1  0.2] 1
    """
    return chain(add_noise(eta, gamma, key, seed=seed), scale_by_learning_rate(learning_rate), name="noisy_sgd")


__all__ = ["AddNoiseState", "add_noise", "noisy_sgd", "sign_sgd", "signum"]
