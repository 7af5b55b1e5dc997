"""Pre-flight: XLA's memory estimate of the compiled train step against what a device holds, before the first step.

Without it, a step too big for the device dies inside XLA with a long traceback ending in "Out of memory
allocating N bytes", after the data pipeline and checkpoints were set up. The estimate comes from the compiled
executable itself (`memory_analysis`): arguments and outputs not donated, plus temporaries, per device.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import ml_collections

from genimg_jax import data
from genimg_jax.config import ConfigError
from genimg_jax.training.compiled_run import CompiledRun

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class StepMemory:
    """Bytes per device of one compiled train step, as XLA assigned its buffers."""

    arguments: int  # state and batch
    outputs: int  # new state and metrics, less what reuses donated arguments
    temporaries: int  # activations, gradients, optimizer scratch

    @property
    def total(self) -> int:
        return self.arguments + self.outputs + self.temporaries


def step_memory(compiled: jax.stages.Compiled) -> StepMemory:
    """XLA's per-device buffer sizes of `compiled` (donated outputs share their arguments' buffers)."""
    analysis = compiled.memory_analysis()
    outputs = analysis.output_size_in_bytes - analysis.alias_size_in_bytes
    return StepMemory(analysis.argument_size_in_bytes, outputs, analysis.temp_size_in_bytes)


def device_memory(device: jax.Device) -> int:
    """Bytes one device may use: the allocator's limit on accelerators; on CPU, the host's physical memory shared
    by its local (simulated) devices."""
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    host_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return host_bytes // jax.local_device_count()


def check_fits(
    memory: StepMemory, available: int, config: ml_collections.ConfigDict, device: str, accumulates: bool
) -> None:
    """Stop with one line when the step needs more than `available` bytes: how much, and the knobs that help
    (`accumulates`: the method takes `train.microbatch`). `device` is "platform:id"; remat is not suggested on
    CPU, where XLA merges the recomputation back and the step needs as much as without it (measured)."""
    if memory.total <= available:
        return
    knobs = ["train.microbatch (examples per device per pass)"] if accumulates else []
    if "remat" in config.model and not device.startswith("cpu:"):
        knobs.append("model.remat=True (recompute block activations in the backward pass)")
    knobs += ["a smaller train.batch_size", "more devices", "train.memory_check=False to try anyway"]
    raise ConfigError(
        f"config.train.batch_size={config.train.batch_size}: the train step needs {memory.total / GIB:.1f} GiB per "
        f"device (XLA's estimate: {memory.temporaries / GIB:.1f} GiB temporaries, "
        f"{(memory.arguments + memory.outputs) / GIB:.1f} GiB state and batch) and {device} has "
        f"{available / GIB:.1f} GiB; try " + ", ".join(knobs)
    )


def check_train_step(run: CompiledRun, config: ml_collections.ConfigDict) -> StepMemory:
    """Compile `run`'s train step for its state and a global batch (the jit cache keeps the executable for the
    first real step) and check that it fits the first local device, unless `train.memory_check` is off."""
    fields = data.fields_from_config(config.data)
    batch = data.abstract_global_batch(fields, config.train.batch_size, run.batch_sharding)
    memory = step_memory(run.train_step.lower(run.abstract_state, batch).compile())
    if config.train.memory_check:
        device = jax.local_devices()[0]
        accumulates = getattr(run.method, "MICROBATCHING", False)
        check_fits(memory, device_memory(device), config, f"{device.platform}:{device.id}", accumulates)
    return memory
