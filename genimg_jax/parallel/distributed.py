"""Multi-process start-up: join the other processes of a run before anything touches a device.

Every process of a multi-host run (one per host on TPU pods, one per GPU or per node under SLURM, several on one
machine for testing) runs the same program. `initialize` connects them through `jax.distributed.initialize`, after
which `jax.devices()` lists the devices of all processes and one mesh spans them. It must run before the first
JAX computation, so `main` calls it right after reading the config.

`config.distributed.init` decides how:
- `auto` (default): with `coordinator_address` set, connect explicitly as process `process_id` of
  `num_processes`; otherwise, in an `srun` step of more than one task or on a multi-host TPU VM, let JAX detect
  everything (`jax.distributed.initialize()` with no arguments); otherwise run as a single process.
- `cluster`: always call `jax.distributed.initialize()` with no arguments (JAX detects SLURM, TPU VMs, Open MPI and
  Kubernetes jobs).
- `off`: a single process, whatever the environment says.
"""

import hashlib
import os
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from genimg_jax.config import require, require_choice

INIT_MODES = ("auto", "cluster", "off")


def _slurm_tasks(environ: Mapping[str, str]) -> int:
    """Number of tasks of the `srun` job step this process is one of (0 outside one).

    Only `srun` sets SLURM_STEP_NUM_TASKS; a shell inside a many-task allocation (salloc, the batch script) has
    SLURM_NTASKS too but is one process, and waiting there for peers that never start would hang.
    """
    if "SLURM_JOB_ID" not in environ:
        return 0
    return int(environ.get("SLURM_STEP_NUM_TASKS", "0"))


def _tpu_hosts(environ: Mapping[str, str]) -> int:
    """Number of hosts of the TPU VM slice this process runs on, as its environment reports it (0 if none)."""
    hosts = environ.get("TPU_WORKER_HOSTNAMES") or environ.get("TPU_PROCESS_ADDRESSES") or ""
    return len([host for host in hosts.split(",") if host])


def initialize_args(distributed_config: ml_collections.ConfigDict, environ: Mapping[str, str]) -> dict | None:
    """Keyword arguments for `jax.distributed.initialize`, or None when this is a single-process run."""
    config = ml_collections.ConfigDict({"distributed": distributed_config})
    require_choice(config, "distributed.init", INIT_MODES)
    mode, address = distributed_config.init, distributed_config.coordinator_address
    if mode == "off":
        return None
    if address:
        count, index = distributed_config.num_processes, distributed_config.process_id
        require(count >= 1, "distributed.num_processes", count, "must be >= 1 with a coordinator_address")
        require(0 <= index < count, "distributed.process_id", index, f"must be in 0..{count - 1}")
        return {"coordinator_address": address, "num_processes": count, "process_id": index}
    if mode == "cluster" or _slurm_tasks(environ) > 1 or _tpu_hosts(environ) > 1:
        return {}
    return None


def initialize(distributed_config: ml_collections.ConfigDict) -> None:
    """Join the run's other processes as `config.distributed` says (no-op for a single process)."""
    args = initialize_args(distributed_config, os.environ)
    if args is None or jax.distributed.is_initialized():
        return
    if args.get("num_processes", 1) > 1 and (jax.config.jax_platforms or "").startswith("cpu"):
        # Cross-process collectives between CPU devices need an implementation; gloo needs nothing installed.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**args)


def state_fingerprint(state: Any) -> str:
    """A short hash of every value of `state`, the same on all processes exactly when they hold the same state.

    Sharded leaves are gathered from all processes; replicated leaves are read from this process's own copy, so a
    process whose replica drifted (say, from host-dependent randomness) prints a different fingerprint.
    """
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(multihost_utils.process_allgather(state, tiled=True)):
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()[:16]
