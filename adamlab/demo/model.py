"""A small decoder-only transformer in plain JAX: token and position embeddings, pre-norm blocks of causal
multi-head attention and a GELU MLP, a final layer norm and an untied output head.

Params are a nested dict whose key names follow `adamlab.weight_decay_mask`: matrices (``ndim >= 2``) decay,
``bias`` and ``scale`` leaves do not.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Params = dict[str, Any]


class ModelConfig(NamedTuple):
    vocab_size: int
    context: int = 64
    d_model: int = 128
    layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4

    def validate(self) -> None:
        for name in ("vocab_size", "context", "d_model", "layers", "heads", "mlp_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"model {name} must be an int >= 1, got {value!r}")
        if self.d_model % self.heads:
            raise ValueError(f"model d_model ({self.d_model}) must be divisible by heads ({self.heads})")


def _layer_norm_params(d: int) -> Params:
    return {"scale": jnp.ones((d,), jnp.float32), "bias": jnp.zeros((d,), jnp.float32)}


def init_params(config: ModelConfig, seed: int) -> Params:
    """GPT-2 style init: normal(0.02) weights, residual projections scaled by ``1/sqrt(2 * layers)``.

    Drawn with NumPy from `seed`: the same weights on every device, and no XLA compile of the random number
    generator (which takes seconds on a CPU, longer than drawing the numbers).
    """
    config.validate()
    d, hidden = config.d_model, config.mlp_ratio * config.d_model
    resid_std = 0.02 / math.sqrt(2 * config.layers)
    rng = np.random.default_rng(seed)

    def normal(shape, std=0.02):
        return jnp.asarray(rng.normal(0.0, std, shape), jnp.float32)

    blocks = []
    for _ in range(config.layers):
        blocks.append(
            {
                "ln_1": _layer_norm_params(d),
                "attn": {"qkv": normal((d, 3 * d)), "qkv_bias": jnp.zeros((3 * d,)), "proj": normal((d, d), resid_std)},
                "ln_2": _layer_norm_params(d),
                "mlp": {
                    "fc": normal((d, hidden)),
                    "fc_bias": jnp.zeros((hidden,)),
                    "proj": normal((hidden, d), resid_std),
                },
            }
        )
    return {
        "embed": {"tokens": normal((config.vocab_size, d)), "positions": normal((config.context, d), 0.01)},
        "blocks": blocks,
        "ln_f": _layer_norm_params(d),
        "head": normal((d, config.vocab_size)),
    }


def count_params(params: Params) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(params))


def _layer_norm(x: jax.Array, p: Params, eps: float = 1e-5) -> jax.Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def _attention(x: jax.Array, p: Params, heads: int) -> jax.Array:
    b, t, d = x.shape
    q, k, v = jnp.split(x @ p["qkv"] + p["qkv_bias"], 3, axis=-1)
    q, k, v = (a.reshape(b, t, heads, d // heads) for a in (q, k, v))
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d // heads)
    causal = jnp.tril(jnp.ones((t, t), bool))
    weights = jax.nn.softmax(jnp.where(causal, logits, -1e30), axis=-1)
    return jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, d) @ p["proj"]


def apply(params: Params, tokens: jax.Array, config: ModelConfig) -> jax.Array:
    """Logits ``(batch, time, vocab)`` for int tokens ``(batch, time)``, time <= context."""
    t = tokens.shape[1]
    x = params["embed"]["tokens"][tokens] + params["embed"]["positions"][:t]
    for block in params["blocks"]:
        x = x + _attention(_layer_norm(x, block["ln_1"]), block["attn"], config.heads)
        h = jax.nn.gelu(_layer_norm(x, block["ln_2"]) @ block["mlp"]["fc"] + block["mlp"]["fc_bias"])
        x = x + h @ block["mlp"]["proj"]
    return _layer_norm(x, params["ln_f"]) @ params["head"]


def loss_fn(params: Params, inputs: jax.Array, targets: jax.Array, config: ModelConfig) -> jax.Array:
    """Mean next-character cross-entropy in nats: ``-mean(log softmax(logits)[target])``."""
    logp = jax.nn.log_softmax(apply(params, inputs, config))
    return -jnp.mean(jnp.take_along_axis(logp, targets[..., None], axis=-1))
