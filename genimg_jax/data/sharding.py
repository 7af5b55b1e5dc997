"""Per-host numpy batches -> globally sharded `jax.Array`s.

`jax.make_array_from_process_local_data` takes each process's rows and places them on that process's
devices, so the same call serves 1 device, simulated CPU devices and multi-host pods; the trainer never
branches on the topology.
"""

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from genimg_jax.data.errors import DataError


def _entry_sharding(sharding: NamedSharding, ndim: int) -> NamedSharding:
    """`sharding` cut to an entry's rank: a spec meant for images (`P("data", None, None, None)`) also serves
    labels, tokens and the padding marker."""
    return NamedSharding(sharding.mesh, PartitionSpec(*tuple(sharding.spec)[:ndim]))


def _sharding_error(key: str, value: np.ndarray, sharding: NamedSharding, error: ValueError) -> DataError:
    return DataError(
        f"cannot shard batch entry '{key}' of shape {value.shape} with {sharding.spec} over mesh "
        f"{dict(sharding.mesh.shape)}: {error}"
    )


def make_global_batch(local_batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """Shards every field of this process's rows along its leading (batch) axis as `sharding` says."""

    def to_global(key: str, value: np.ndarray) -> jax.Array:
        entry_sharding = _entry_sharding(sharding, value.ndim)
        try:
            return jax.make_array_from_process_local_data(entry_sharding, value)
        except ValueError as error:
            raise _sharding_error(key, value, entry_sharding, error) from error

    return {key: to_global(key, np.asarray(value)) for key, value in local_batch.items()}


def abstract_global_batch(fields: dict, batch_size: int, sharding: NamedSharding) -> dict[str, jax.ShapeDtypeStruct]:
    """Shapes, dtypes and shardings of a global batch of `fields` (name -> `Field`), for compiling ahead of data."""
    return {
        name: jax.ShapeDtypeStruct(
            (batch_size, *field.shape), field.dtype, sharding=_entry_sharding(sharding, 1 + len(field.shape))
        )
        for name, field in fields.items()
    }


def shard_whole_batch(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """Like `make_global_batch` for a batch that every process holds whole (`pipeline.cycled_batches`): each
    process places the rows of its own devices."""

    def to_global(key: str, value: np.ndarray) -> jax.Array:
        entry_sharding = _entry_sharding(sharding, value.ndim)
        try:
            return jax.make_array_from_callback(value.shape, entry_sharding, lambda index: value[index])
        except ValueError as error:
            raise _sharding_error(key, value, entry_sharding, error) from error

    return {key: to_global(key, np.asarray(value)) for key, value in batch.items()}
