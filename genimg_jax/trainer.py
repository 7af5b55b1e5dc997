"""The one training loop: data, jit-compiled steps over a mesh, checkpoints, evaluation, samples, logs.

Methods know nothing of devices, files or time; this module owns all of it, so every model family trains,
resumes and reports the same way.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import Mesh, NamedSharding

from genimg_jax import data, evaluation, nonfinite, parallel, run_identity
from genimg_jax.checkpoint import Checkpointer
from genimg_jax.config import ConfigError, validate_common
from genimg_jax.illustrations import compile_illustrations, write_illustrations
from genimg_jax.images import save_grid
from genimg_jax.methods import Method, build_method
from genimg_jax.preemption import PreemptionGuard
from genimg_jax.reporting import RunLogger

SAMPLE_SEED_SALT = 0x5A3D  # sample grids use one fixed key per run, so grids from different steps compare


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
    evaluate: Any  # (state, batch, rng) -> ({name: masked sum}, count)


def example_batch(config: ml_collections.ConfigDict, batch_size: int) -> dict[str, jax.Array]:
    """Zeros shaped like a global batch, for tracing shapes."""
    resolution, channels = config.data.resolution, config.data.channels
    return {
        "image": jnp.zeros((batch_size, resolution, resolution, channels), jnp.uint8),
        "label": jnp.zeros((batch_size,), jnp.int32),
    }


def compile_run(config: ml_collections.ConfigDict, mesh: Mesh) -> CompiledRun:
    """Build the method and jit its functions with explicit shardings over `mesh`."""
    validate_common(config)
    shards = parallel.batch_axis_size(mesh)
    for key in ("train.batch_size", "eval.batch_size"):
        section, name = key.split(".")
        size = config[section][name]
        if size % shards:
            raise ConfigError(f"config.{key}={size} must be a multiple of the {shards} batch shards of the mesh")
    method = build_method(config)
    batch_sharding = parallel.batch_sharding(mesh)
    replicated = parallel.replicated(mesh)
    example = example_batch(config, config.train.batch_size)
    abstract_state = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), example)
    state_sharding = parallel.state_shardings(abstract_state, mesh, config.sharding)

    def evaluate(state, batch, rng):
        values = method.evaluate_batch(state, batch, rng)
        mask = batch["mask"].astype(jnp.float32)
        return {name: jnp.sum(value * mask) for name, value in values.items()}, jnp.sum(mask)

    num_samples = config.train.num_sample_images
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
            parallel.traced_on(mesh, lambda state, rng: method.sample(state, rng, num_samples)),
            out_shardings=replicated,
        ),
        evaluate=jax.jit(
            parallel.traced_on(mesh, evaluate),
            in_shardings=(state_sharding, batch_sharding, replicated),
            out_shardings=replicated,
        ),
    )


def initial_rngs(config: ml_collections.ConfigDict) -> tuple[jax.Array, jax.Array]:
    """(init key, sample-grid key) derived from `config.seed` alone: same config and seed, same run."""
    root = jax.random.PRNGKey(config.seed)
    return root, jax.random.fold_in(root, SAMPLE_SEED_SALT)


def save_resolved_config(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")


def make_data_source(config: ml_collections.ConfigDict, split: str) -> data.ImageSource:
    """The source `config.data` names, for `split`; a failure names the config key it came from."""
    try:
        return data.source_from_config(config.data, split)
    except data.DataError as error:
        raise data.DataError(f"config.data.source: {error}") from None


def evaluate_split(run: CompiledRun, state: Any, source: data.ImageSource, batch_size: int, rng: jax.Array) -> dict:
    """Mean of the method's per-example evaluation values over the whole of `source`."""
    totals: dict[str, float] = {}
    count = 0.0
    batches = data.iterate_once(
        source,
        batch_size=batch_size,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    for index, local_batch in enumerate(batches):
        batch = data.make_global_batch(local_batch, run.batch_sharding)
        sums, batch_count = run.evaluate(state, batch, jax.random.fold_in(rng, index))
        for name, value in jax.device_get(sums).items():
            totals[name] = totals.get(name, 0.0) + float(value)
        count += float(batch_count)
    return {name: total / count for name, total in totals.items()}


def _due(step: int, every: int, last_step: int) -> bool:
    """Whether a periodic action (every `every` steps, 0 = never) runs at `step`; all run at the last step."""
    return every > 0 and (step % every == 0 or step == last_step)


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> Any:
    """Train `config` in `workdir`, resuming from its latest checkpoint if there is one; returns the final state."""
    workdir = pathlib.Path(workdir)
    is_main = jax.process_index() == 0
    run = compile_run(config, parallel.make_mesh(config.mesh))
    train_config = config.train
    stream = data.make_train_stream(
        make_data_source(config, config.data.train_split),
        global_batch_size=train_config.batch_size,
        seed=config.seed,
        random_flip=config.data.random_flip,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    draws_illustrations = hasattr(run.method, "illustrations") and train_config.sample_every > 0
    eval_source = make_data_source(config, config.data.eval_split) if config.eval.every or draws_illustrations else None
    sample_evaluation = evaluation.TrainingEvaluation(config, run, workdir) if config.eval.every else None
    workdir.mkdir(parents=True, exist_ok=True)
    checkpointer = Checkpointer(
        workdir / "checkpoints", keep=train_config.keep_checkpoints, every=train_config.checkpoint_every
    )
    if checkpointer.all_steps():
        run_identity.check_resumable(workdir, config)  # before config.json is replaced by the new config
    if is_main:
        save_resolved_config(config, workdir)
    init_rng, sample_rng = initial_rngs(config)
    illustrate = compile_illustrations(run, config, eval_source, sample_rng) if draws_illustrations else None
    restored = checkpointer.restore_latest(run.abstract_state, report=print if is_main else _quiet)
    start_step = restored[0] if restored else 0
    logger = RunLogger(workdir, train_config.steps, enabled=is_main, resume_step=start_step)
    if restored is None:
        state = run.init(init_rng)
        logger.message(f"starting a new run in {workdir}")
    else:
        _, state, data_state = restored
        stream.set_state(data_state)
        logger.message(f"resuming {workdir} from the checkpoint of step {start_step}")

    last_checkpoint = start_step if restored else None
    sums: dict[str, jax.Array] = {}
    logger.start(start_step)
    step = last_logged = start_step
    stop = False
    preemption = PreemptionGuard()  # SIGTERM/SIGINT: checkpoint this step and stop (preemption.py)
    try:
        preemption.install()
        for step in range(start_step + 1, train_config.steps + 1):
            batch = data.make_global_batch(next(stream), run.batch_sharding)
            state, metrics = run.train_step(state, batch)
            sums = {name: sums.get(name, 0.0) + value for name, value in metrics.items()}

            if _due(step, train_config.log_every, train_config.steps):
                means = nonfinite.interval_means(jax.device_get(sums), step - last_logged, train_config.nonfinite)
                nonfinite.check(step, means, train_config.nonfinite, last_checkpoint)
                if skipped := means[nonfinite.NONFINITE_STEPS]:
                    logger.message(f"skipped {skipped:.0f} of steps {last_logged + 1}-{step}: non-finite values")
                sums, last_logged = {}, step
                rate = logger.steps_per_second(step)
                logger.scalars(step, "train", {**means, "steps_per_second": rate})
                logger.progress(step, means, rate)
            if _due(step, train_config.sample_every, train_config.steps):
                images = data.from_unit_range(jax.device_get(run.sample(state, sample_rng)))
                logger.sample_grid(step, images, workdir / "samples")
                if illustrate:
                    pictures = illustrate(state)
                    if is_main:
                        write_illustrations(pictures, step, workdir / "samples")
            if _due(step, config.eval.every, train_config.steps):
                eval_rng = jax.random.fold_in(init_rng, step)
                results = evaluate_split(run, state, eval_source, config.eval.batch_size, eval_rng)
                results.update(sample_evaluation.sample_metrics(state))
                sample_evaluation.record(step, results, state, stream.get_state())
                logger.scalars(step, config.data.eval_split, results)
                logger.message(f"eval at step {step} on {config.data.eval_split}: {_format(results)}")
            stop = preemption.stop_requested()
            if checkpointer.should_save(step) or step == train_config.steps or stop:
                # Never save a diverged state, even between log steps.
                pending = nonfinite.interval_means(jax.device_get(sums), step - last_logged, train_config.nonfinite)
                nonfinite.check(step, pending, train_config.nonfinite, last_checkpoint)
                checkpointer.save(step, state, stream.get_state())
                last_checkpoint = step
            if stop:
                break
    finally:  # whatever stops the loop, a save in flight is committed and the logs are flushed
        preemption.uninstall()
        checkpointer.wait()
        checkpointer.close()
        if sample_evaluation:
            sample_evaluation.close()
        logger.close()
    if stop:
        logger.message(
            f"received {preemption.signal_name} at step {step}: its checkpoint is committed; "
            f"run the same command again to continue"
        )
    else:
        logger.message(f"done at step {step}; everything is in {workdir.absolute()}")
    return state


def _format(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in values.items())


def restore_trained_state(
    config: ml_collections.ConfigDict, run: CompiledRun, workdir: pathlib.Path
) -> tuple[Any, int]:
    """(state, step) of the newest checkpoint in `workdir` that restores, for sampling and evaluation.

    Damaged steps are set aside as in training; no checkpoint at all is a FileNotFoundError naming the folder.
    """
    checkpointer = Checkpointer(workdir / "checkpoints", keep=config.train.keep_checkpoints, every=0)
    restored = checkpointer.restore_latest(run.abstract_state, report=print if jax.process_index() == 0 else _quiet)
    checkpointer.close()
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {workdir / 'checkpoints'}")
    step, state, _ = restored
    return state, step


def _quiet(_: str) -> None:
    """Only process 0 reports set-aside checkpoints."""


def sample(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, num_grids: int = 1) -> list[pathlib.Path]:
    """Write sample grids from the latest checkpoint in `workdir`; returns their paths."""
    workdir = pathlib.Path(workdir)
    run = compile_run(config, parallel.make_mesh(config.mesh))
    state, step = restore_trained_state(config, run, workdir)
    _, sample_rng = initial_rngs(config)
    paths = []
    for index in range(num_grids):
        images = data.from_unit_range(jax.device_get(run.sample(state, jax.random.fold_in(sample_rng, index))))
        if jax.process_index() == 0:
            path = workdir / "samples" / f"sample_step_{step:07d}_{index}.png"
            save_grid(images, path)
            paths.append(path)
    if hasattr(run.method, "illustrations"):
        eval_source = make_data_source(config, config.data.eval_split)
        pictures = compile_illustrations(run, config, eval_source, sample_rng)(state)
        if jax.process_index() == 0:
            paths += write_illustrations(pictures, step, workdir / "samples")
    return paths
