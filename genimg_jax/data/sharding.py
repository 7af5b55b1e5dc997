"""Per-host numpy batches -> globally sharded `jax.Array`s.

Each process loads the rows of the global batch that its own devices hold (`host_rows`, read from the sharding's
device-to-index map, so the mesh may order devices however the platform likes), and
`jax.make_array_from_process_local_data` places them on those devices, so the same call serves 1 device,
simulated CPU devices and multi-host pods; the trainer never branches on the topology.
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


def host_rows(sharding: NamedSharding, batch_size: int) -> np.ndarray:
    """The rows of a global batch of `batch_size` that this process's devices hold under `sharding`, ascending:
    what this process loads (`pipeline.make_train_stream(rows=...)`), in the order `make_global_batch` expects."""
    entry_sharding = _entry_sharding(sharding, 1)
    try:
        indices = entry_sharding.addressable_devices_indices_map((batch_size,)).values()
    except ValueError as error:
        raise DataError(
            f"global batch size {batch_size} does not split over {entry_sharding.spec} of mesh "
            f"{dict(sharding.mesh.shape)}: {error}"
        ) from error
    return np.unique(np.concatenate([np.arange(batch_size)[index[0]] for index in indices]))


def make_global_batch(local_batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """Shards every field of this process's rows (`host_rows`) along its leading (batch) axis as `sharding` says."""

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
