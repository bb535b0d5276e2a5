import jax
import jax.numpy as jnp
import numpy as np
import pytest

STEPS = 300


def mixed_params(seed: int = 0):
    """float32 leaves of every shape the issue names: 0-d, vectors, matrices, a size-1 leaf, nested dicts and lists."""
    k = jax.random.split(jax.random.PRNGKey(seed), 6)
    return {
        "dense": {"w": jax.random.normal(k[0], (5, 3)), "b": jnp.zeros((3,))},
        "scalar": jnp.asarray(0.7, jnp.float32),
        "one": jnp.ones((1,), jnp.float32),
        "blocks": [jax.random.normal(k[1], (4,)), {"kernel": jax.random.normal(k[2], (2, 3, 2)) * 0.1}],
    }


def as_dict(tree):
    """Flattens a tree into {path string: leaf} for the NumPy reference."""
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.fixture
def params():
    return mixed_params()
