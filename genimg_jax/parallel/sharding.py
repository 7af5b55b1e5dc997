"""Which train-state leaves the `fsdp` mesh axis splits: `config.sharding.rules`.

An ordered list of `(regex, rule)` pairs matched (`re.search`, first match wins) against each leaf's path in the
train state, e.g. `generator/params/Dense_0/kernel` or `g_opt_state/0/mu/Dense_0/kernel`. Optimizer states
mirror the parameter paths, so one rule covers a parameter and its Adam moments. Rules:
- `replicate`: a full copy on every device (batch-norm statistics, RNG keys, step counters).
- `fsdp`: split the largest dimension that the `fsdp` axis size divides over `fsdp` (ties: the later dimension),
  provided the leaf has at least `config.sharding.min_size` elements; otherwise replicate.
"""

import re
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from genimg_jax.config import ConfigError, require
from genimg_jax.parallel.mesh import FSDP_AXIS

RULES = ("replicate", "fsdp")


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
