"""The device mesh and the batch's place on it: the one place that decides where batch-shaped arrays live.

The step functions never mention devices. They are `jax.jit`-compiled with the shardings built here, so the same
code runs on one CPU, on eight simulated CPU devices, on several processes and on a pod; XLA inserts the
collectives (the gradient all-reduce of data parallelism, the parameter all-gathers and gradient reduce-scatters
of FSDP, the cross-device batch-norm statistics).

Two mesh axes, both of which split the batch:
- `data`: pure data parallelism; every train-state leaf is replicated along it.
- `fsdp`: fully sharded data parallelism (ZeRO-3): large train-state leaves are also split along it
  (`parallel.sharding` decides which).
"""

import functools
from collections.abc import Callable, Sequence

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from genimg_jax.config import ConfigError

# Every mesh axis splits the batch; `fsdp` also splits the large train-state leaves.
BATCH_AXES = ("data", "fsdp")
FSDP_AXIS = "fsdp"


def mesh_shape(mesh_config: ml_collections.ConfigDict, num_devices: int) -> dict[str, int]:
    """Resolve `config.mesh` (axis name -> size, one size may be -1 for 'the rest') against the device count."""
    sizes = dict(mesh_config.items())
    unknown = [name for name in sizes if name not in BATCH_AXES]
    if unknown:
        raise ConfigError(f"config.mesh names unknown axes {unknown}; known axes: {list(BATCH_AXES)}")
    fill = [name for name, size in sizes.items() if size == -1]
    if len(fill) > 1:
        raise ConfigError(f"config.mesh: only one axis may be -1, got {fill}")
    known = int(np.prod([size for size in sizes.values() if size != -1]))
    if any(size == 0 or size < -1 for size in sizes.values()) or num_devices % known:
        raise ConfigError(f"config.mesh={sizes} does not fit {num_devices} devices")
    if fill:
        sizes[fill[0]] = num_devices // known
    if int(np.prod(list(sizes.values()))) != num_devices:
        raise ConfigError(f"config.mesh={sizes} uses {np.prod(list(sizes.values()))} of {num_devices} devices")
    return sizes


def make_mesh(mesh_config: ml_collections.ConfigDict, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh over `devices` (default: all devices of all processes) shaped by `config.mesh`.

    The last axis varies fastest, so `fsdp` groups neighbouring devices (on one host where possible). On TPU
    `jax.make_mesh` orders the devices by topology, not by process, so a process's devices need not hold one
    block of the batch: each process loads the rows its devices hold (`data.host_rows`).
    """
    devices = list(jax.devices() if devices is None else devices)
    sizes = mesh_shape(mesh_config, len(devices))
    # Auto axis types keep sharding propagation implicit (jax 0.10 defaults to Explicit, see STACK-NOTES).
    return jax.make_mesh(
        tuple(sizes.values()),
        tuple(sizes.keys()),
        axis_types=(jax.sharding.AxisType.Auto,) * len(sizes),
        devices=devices,
    )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over every batch axis of the mesh."""
    axes = tuple(name for name in mesh.axis_names if name in BATCH_AXES)
    return NamedSharding(mesh, PartitionSpec(axes))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_axis_size(mesh: Mesh) -> int:
    """How many shards the batch is split into; global batch sizes must be multiples of it."""
    return int(np.prod([mesh.shape[name] for name in mesh.axis_names if name in BATCH_AXES]))


def traced_on(mesh: Mesh, fn: Callable) -> Callable:
    """`fn`, traced with `mesh` as the context mesh so that `constrain_batch` inside it sees the batch axes."""

    @functools.wraps(fn)
    def with_mesh(*args):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return fn(*args)

    return with_mesh


def _context_batch_axes() -> tuple[tuple[str, ...], int]:
    """The batch axes of the mesh `traced_on` set, and how many shards they make (none and 1 outside it)."""
    mesh = jax.sharding.get_abstract_mesh()
    axes = tuple(name for name in mesh.axis_names if name in BATCH_AXES)
    return axes, int(np.prod([mesh.shape[name] for name in axes]))


def constrain_batch(x: jax.Array) -> jax.Array:
    """Split the leading dimension of `x` like the batch (a no-op outside `traced_on` or if it does not divide).

    For batch-shaped values that do not descend from the batch, such as a GAN's latents drawn from the replicated
    step key: unconstrained, XLA computes them, and the whole generator pass on them, in full on every device.
    """
    axes, shards = _context_batch_axes()
    if not axes or x.shape[0] % shards:
        return x
    return jax.lax.with_sharding_constraint(x, PartitionSpec(axes))


def batch_shards() -> int:
    """How many shards the batch has in the function being traced (1 outside `traced_on`)."""
    return _context_batch_axes()[1]


def stacked_microbatches(x: jax.Array, rounds: int) -> jax.Array:
    """All `rounds` micro-batches of a batch-sharded `x` stacked on a new leading axis (rounds, batch / rounds, ...),
    each split over the devices like the batch, as `microbatch` takes them: what a `lax.scan` over rounds reads."""
    axes, shards = _context_batch_axes()
    per_shard = x.shape[0] // (shards * rounds)
    blocks = x.reshape(shards, rounds, per_shard, *x.shape[1:]).swapaxes(0, 1)
    stacked = blocks.reshape(rounds, shards * per_shard, *x.shape[1:])
    return jax.lax.with_sharding_constraint(stacked, PartitionSpec(None, axes)) if axes else stacked


def microbatch(x: jax.Array, rounds: int, index: int) -> jax.Array:
    """Micro-batch `index` of `rounds` of a batch-sharded `x`: the index-th slice of every shard's own examples, so
    that each micro-batch is split over the devices like the batch and taking it moves no data between them."""
    shards = batch_shards()
    per_shard = x.shape[0] // (shards * rounds)
    blocks = x.reshape(shards, rounds, per_shard, *x.shape[1:])
    return constrain_batch(blocks[:, index].reshape(shards * per_shard, *x.shape[1:]))
