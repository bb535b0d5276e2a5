"""Moving values between the host and a mesh whose devices may belong to several processes.

Under `jax.distributed` every process runs the same program and holds only
its own devices' shards. Placing host data must not ask the processes to
agree on it (`jax.device_put` to a sharding spanning processes compares the
values across processes, and NaN equals nothing), and reading an array back
must gather the shards the process does not hold.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Sharding


def place(value: Any, sharding: Sharding) -> jax.Array:
    """`value` (the whole array, the same on every process) placed with `sharding`, each process filling its shards.

    An array already on `sharding` is returned as it is; one spanning several processes is resharded.
    """
    if isinstance(value, jax.Array):
        if value.sharding == sharding:
            return value
        if not value.is_fully_addressable:
            return jax.device_put(value, sharding)
    if sharding.is_fully_addressable:
        return jax.device_put(value, sharding)
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def to_host(x: Any) -> np.ndarray:
    """`x` as a NumPy array; an array spanning several processes is gathered (a collective: every process calls it)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
