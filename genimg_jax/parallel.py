"""Device mesh and shardings: the one place that decides where arrays live.

The step functions never mention devices. They are `jax.jit`-compiled with the shardings built here, so the same
code runs on one CPU, on eight simulated CPU devices and on a pod; XLA inserts the collectives (for example the
cross-device batch-norm statistics and the gradient all-reduce of data parallelism).
"""

from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from genimg_jax.config import ConfigError

# Mesh axes that split the batch. Any other axis named in `config.mesh` would split model dimensions.
BATCH_AXES = ("data",)


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
    """A mesh over `devices` (default: all devices of all processes) shaped by `config.mesh`."""
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


def state_shardings(abstract_state, mesh: Mesh):
    """Sharding of every train-state leaf: replicated, as pure data parallelism needs."""
    return jax.tree.map(lambda _: replicated(mesh), abstract_state)
