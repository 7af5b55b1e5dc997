"""A method bound to a mesh (`CompiledRun`): its state shardings and its jit-compiled functions, the one thing
training, post-hoc evaluation, sampling and the tools all build from a config; and the state of a trained run."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError, validate_common
from genimg_jax.methods import Method, build_method, microbatching
from genimg_jax.training import checksums, nonfinite
from genimg_jax.training.checkpoint import Checkpointer
from genimg_jax.training.paths import as_path
from genimg_jax.training.pretrained import load_pretrained

SAMPLE_SEED_SALT = 0x5A3D  # sample grids use one fixed key per run, so grids from different steps compare
CHECKPOINTS = "checkpoints"  # the workdir's folder of checkpoint steps


@dataclasses.dataclass(frozen=True)
class CompiledRun:
    """A method bound to a mesh: its state shardings and jit-compiled functions."""

    method: Method
    mesh: Mesh
    state_sharding: Any
    abstract_state: Any  # ShapeDtypeStructs with shardings: the restore target of checkpoints
    batch_sharding: NamedSharding
    init: Any  # rng -> state
    train_step: Any  # (state, batch) -> (state, metrics); donates state; guarded against NaN/Inf (nonfinite.py)
    sample: Any  # (state, rng) -> images, replicated
    evaluate: Any  # (state, batch, rng) -> ({name: sum over real examples}, count)
    grid_captions: tuple[str, ...] = ()  # the caption of each sample-grid image, for text-to-image methods


def compile_run(config: ml_collections.ConfigDict, mesh: Mesh | None = None) -> CompiledRun:
    """Build the method and jit its functions with explicit shardings over `mesh` (default: `config.mesh`)."""
    validate_common(config)
    mesh = parallel.make_mesh(config.mesh) if mesh is None else mesh
    shards = parallel.batch_axis_size(mesh)
    for key in ("train.batch_size", "eval.batch_size"):
        section, name = key.split(".")
        size = config[section][name]
        if size % shards:
            raise ConfigError(f"config.{key}={size} must be a multiple of the {shards} batch shards of the mesh")
    method = build_method(config, load_pretrained(config))
    _check_microbatch(config, method, shards)
    batch_sharding = parallel.batch_sharding(mesh)
    replicated = parallel.replicated(mesh)
    example = data.example_batch(config.data, config.train.batch_size)
    abstract_state = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), example)
    state_sharding = parallel.state_shardings(abstract_state, mesh, config.sharding)

    def evaluate(state, batch, rng):
        values = method.evaluate_batch(state, batch, rng)
        weight = batch[data.IS_EXAMPLE].astype(jnp.float32)  # padding of the last batch counts 0
        return {name: jnp.sum(value * weight) for name, value in values.items()}, jnp.sum(weight)

    num_samples = config.train.num_sample_images
    conditioning = _sample_grid_conditioning(config, method, num_samples, replicated)
    grid_captions = _captions(config, conditioning)
    init = jax.jit(lambda rng: method.init_state(rng, example), out_shardings=state_sharding)
    return CompiledRun(
        method=method,
        mesh=mesh,
        state_sharding=state_sharding,
        abstract_state=jax.eval_shape(init, jax.random.PRNGKey(0)),
        batch_sharding=batch_sharding,
        init=init,
        train_step=jax.jit(
            parallel.traced_on(mesh, nonfinite.guard(method.train_step, config.train.nonfinite)),
            in_shardings=(state_sharding, batch_sharding),
            out_shardings=(state_sharding, replicated),
            donate_argnums=0,
        ),
        sample=jax.jit(
            parallel.traced_on(mesh, lambda state, rng: method.sample(state, rng, num_samples, conditioning)),
            out_shardings=replicated,
        ),
        evaluate=jax.jit(
            parallel.traced_on(mesh, evaluate),
            in_shardings=(state_sharding, batch_sharding, replicated),
            out_shardings=replicated,
        ),
        grid_captions=grid_captions,
    )


def _sample_grid_conditioning(
    config: ml_collections.ConfigDict, method: Method, num: int, sharding: NamedSharding
) -> dict[str, jax.Array] | None:
    """What the sample grids are drawn for: nothing for unconditional and class-conditional methods (those cycle
    through the classes), else the conditioning fields (a translation's source) of the first `num` examples of
    the eval split, cycled if it holds fewer: the same inputs at every step."""
    names = method.conditioning_fields()
    if all(name == "label" for name in names):
        return None
    source = data.source_from_config(config.data, config.data.eval_split)
    (batch,) = data.cycled_batches(source, names, batch_size=num, num_batches=1)
    return {name: jax.make_array_from_process_local_data(sharding, value, value.shape) for name, value in batch.items()}


def _captions(config: ml_collections.ConfigDict, conditioning: dict[str, jax.Array] | None) -> tuple[str, ...]:
    """The sample grid's captions as text (decoded with the data's vocabulary), () if it is not drawn for captions."""
    if not conditioning or "tokens" not in conditioning:
        return ()
    vocabulary = data.vocabulary_for(config.data)
    return tuple(vocabulary.decode(tokens) for tokens in np.asarray(jax.device_get(conditioning["tokens"])))


def _check_microbatch(config: ml_collections.ConfigDict, method: Method, shards: int) -> None:
    """`train.microbatch` only for methods that accumulate gradients, and dividing each device's examples."""
    microbatch = config.train.microbatch
    if not microbatch:
        return
    if not getattr(method, "MICROBATCHING", False):
        raise ConfigError(
            f"config.train.microbatch={microbatch}: method {config.method!r} has no gradient accumulation (use 0)"
        )
    microbatching.accumulation_rounds(config.train.batch_size, shards, microbatch)


def initial_rngs(config: ml_collections.ConfigDict) -> tuple[jax.Array, jax.Array]:
    """(init key, sample-grid key) derived from `config.seed` alone: same config and seed, same run."""
    root = jax.random.PRNGKey(config.seed)
    return root, jax.random.fold_in(root, SAMPLE_SEED_SALT)


def restore_trained_state(
    config: ml_collections.ConfigDict, run: CompiledRun, workdir: str | os.PathLike
) -> tuple[Any, int]:
    """(state, step) of the newest checkpoint in `workdir` that restores, for sampling and evaluation.

    Damaged steps are set aside as in training; no checkpoint at all is a FileNotFoundError naming the folder.
    """
    directory = as_path(workdir) / CHECKPOINTS
    checkpointer = Checkpointer(directory, keep=config.train.keep_checkpoints, every=0)
    restored = checkpointer.restore_latest(run.abstract_state, report=main_process_report)
    checkpointer.close()
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {directory}")
    step, state, _ = restored
    return state, step


def checkpoint_digest(workdir: str | os.PathLike, step: int) -> str | None:
    """The hash of checkpoint `step` of `workdir` (its checksum manifest's); None for a step saved without one."""
    return checksums.manifest_digest(as_path(workdir) / CHECKPOINTS / str(step))


def main_process_report(text: str) -> None:
    """Print `text` on process 0 only (set-aside checkpoints, progress that every process would repeat)."""
    if jax.process_index() == 0:
        print(text)
