"""Per-host numpy batches -> globally sharded `jax.Array`s.

`jax.make_array_from_process_local_data` takes each process's rows and places them on that process's
devices, so the same call serves 1 device, simulated CPU devices and multi-host pods; the trainer never
branches on the topology.
"""

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from genimg_jax.data.errors import DataError


def make_global_batch(local_batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """Shards every entry along its leading (batch) axis as `sharding` says. A spec longer than an entry's
    rank (e.g. `P("data", None, None, None)` meant for images) is cut to that rank, so labels and masks can
    share it."""

    def to_global(key: str, value: np.ndarray) -> jax.Array:
        spec = PartitionSpec(*tuple(sharding.spec)[: value.ndim])
        try:
            return jax.make_array_from_process_local_data(NamedSharding(sharding.mesh, spec), value)
        except ValueError as error:
            raise DataError(
                f"cannot shard batch entry '{key}' of local shape {value.shape} with {spec} over mesh "
                f"{dict(sharding.mesh.shape)}: {error}"
            ) from error

    return {key: to_global(key, np.asarray(value)) for key, value in local_batch.items()}
