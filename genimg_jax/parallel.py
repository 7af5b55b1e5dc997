"""Device mesh and shardings: the one place that decides where arrays live.

The step functions never mention devices. They are `jax.jit`-compiled with the shardings built here, so the same
code runs on one CPU, on eight simulated CPU devices, on several processes and on a pod; XLA inserts the
collectives (the gradient all-reduce of data parallelism, the parameter all-gathers and gradient reduce-scatters
of FSDP, the cross-device batch-norm statistics).

Two mesh axes, both of which split the batch:
- `data`: pure data parallelism; every train-state leaf is replicated along it.
- `fsdp`: fully sharded data parallelism (ZeRO-3): large train-state leaves are also split along it.

Which leaves are split is decided by `config.sharding.rules`, an ordered list of `(regex, rule)` pairs matched
(`re.search`, first match wins) against each leaf's path in the train state, e.g.
`generator/params/Dense_0/kernel` or `g_opt_state/0/mu/Dense_0/kernel`. Optimizer states mirror the parameter
paths, so one rule covers a parameter and its Adam moments. Rules:
- `replicate`: a full copy on every device (batch-norm statistics, RNG keys, step counters).
- `fsdp`: split the largest dimension that the `fsdp` axis size divides over `fsdp` (ties: the later dimension),
  provided the leaf has at least `config.sharding.min_size` elements; otherwise replicate.
"""

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from genimg_jax.config import ConfigError, require

# Every mesh axis splits the batch; `fsdp` also splits the large train-state leaves.
BATCH_AXES = ("data", "fsdp")
FSDP_AXIS = "fsdp"
RULES = ("replicate", "fsdp")


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

    Devices are laid out in process order with the last axis varying fastest, so `fsdp` groups neighbouring
    devices (on one host where possible) and each process holds a contiguous block of every global batch.
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


def constrain_batch(x: jax.Array) -> jax.Array:
    """Split the leading dimension of `x` like the batch (a no-op outside `traced_on` or if it does not divide).

    For batch-shaped values that do not descend from the batch, such as a GAN's latents drawn from the replicated
    step key: unconstrained, XLA computes them, and the whole generator pass on them, in full on every device.
    """
    mesh = jax.sharding.get_abstract_mesh()
    axes = tuple(name for name in mesh.axis_names if name in BATCH_AXES)
    shards = int(np.prod([mesh.shape[name] for name in axes]))
    if not axes or x.shape[0] % shards:
        return x
    return jax.lax.with_sharding_constraint(x, PartitionSpec(axes))


def validate_sharding_config(sharding_config: ml_collections.ConfigDict) -> list[tuple[re.Pattern, str]]:
    """The compiled `(regex, rule)` pairs of `config.sharding.rules`; a bad entry is a ConfigError naming it."""
    require(sharding_config.min_size >= 0, "sharding.min_size", sharding_config.min_size, "must be >= 0")
    rules = []
    for index, entry in enumerate(sharding_config.rules):
        key = f"sharding.rules[{index}]"
        require(isinstance(entry, tuple | list) and len(entry) == 2, key, entry, "must be a (regex, rule) pair")
        pattern, rule = entry
        require(rule in RULES, key, entry, f"the rule must be one of {list(RULES)}")
        try:
            rules.append((re.compile(pattern), rule))
        except (re.error, TypeError) as error:
            raise ConfigError(f"config.{key}={entry!r} is invalid: bad regex: {error}") from None
    return rules


def fsdp_spec(shape: Sequence[int], fsdp_size: int, min_size: int) -> PartitionSpec:
    """Split the largest dimension divisible by `fsdp_size` (ties: the later one) over `fsdp`; small or
    indivisible leaves (and any leaf when `fsdp_size` is 1) stay replicated."""
    if fsdp_size == 1 or int(np.prod(shape, dtype=np.int64)) < max(min_size, 1):
        return PartitionSpec()
    divisible = [axis for axis, size in enumerate(shape) if size % fsdp_size == 0]
    if not divisible:
        return PartitionSpec()
    axis = max(divisible, key=lambda a: (shape[a], a))
    return PartitionSpec(*([None] * axis), FSDP_AXIS)


def leaf_path(path: tuple) -> str:
    """A leaf's path in a pytree as the rules see it, e.g. `generator/params/Dense_0/kernel`."""
    return jax.tree_util.keystr(path, simple=True, separator="/")


def partition_specs(abstract_state: Any, mesh: Mesh, sharding_config: ml_collections.ConfigDict) -> Any:
    """The `PartitionSpec` of every train-state leaf under `config.sharding` (unmatched leaves: replicated)."""
    rules = validate_sharding_config(sharding_config)
    fsdp_size = mesh.shape.get(FSDP_AXIS, 1)

    def spec(path: tuple, leaf: Any) -> PartitionSpec:
        name = leaf_path(path)
        rule = next((rule for pattern, rule in rules if pattern.search(name)), "replicate")
        if rule == "fsdp":
            return fsdp_spec(np.shape(leaf), fsdp_size, sharding_config.min_size)
        return PartitionSpec()

    return jax.tree_util.tree_map_with_path(spec, abstract_state)


def state_shardings(abstract_state: Any, mesh: Mesh, sharding_config: ml_collections.ConfigDict) -> Any:
    """`NamedSharding` of every train-state leaf, from `partition_specs`."""
    specs = partition_specs(abstract_state, mesh, sharding_config)
    return jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs, is_leaf=lambda x: isinstance(x, PartitionSpec))
