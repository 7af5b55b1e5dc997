"""Where arrays live: the device mesh, the batch's sharding, the train state's sharding rules, multi-process
start-up. Methods see only `constrain_batch`, `batch_shards`, `microbatch` and `stacked_microbatches`; the training
layer builds everything else from the config."""

from genimg_jax.parallel.mesh import (
    BATCH_AXES,
    FSDP_AXIS,
    batch_axis_size,
    batch_sharding,
    batch_shards,
    constrain_batch,
    make_mesh,
    mesh_shape,
    microbatch,
    replicated,
    stacked_microbatches,
    traced_on,
)
from genimg_jax.parallel.sharding import (
    RULES,
    fsdp_spec,
    leaf_path,
    partition_specs,
    state_shardings,
    validate_sharding_config,
)

__all__ = [
    "BATCH_AXES",
    "FSDP_AXIS",
    "RULES",
    "batch_axis_size",
    "batch_sharding",
    "batch_shards",
    "constrain_batch",
    "fsdp_spec",
    "leaf_path",
    "make_mesh",
    "mesh_shape",
    "microbatch",
    "partition_specs",
    "replicated",
    "stacked_microbatches",
    "state_shardings",
    "traced_on",
    "validate_sharding_config",
]
