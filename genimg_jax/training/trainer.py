"""The one training loop: data, jit-compiled steps over a mesh, checkpoints, evaluation, samples, logs.

Methods know nothing of devices, files or time; this module owns all of it, so every model family trains,
resumes and reports the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
from etils import epath
from jax.sharding import NamedSharding

from genimg_jax import data
from genimg_jax.evaluation import grids
from genimg_jax.evaluation.held_out import evaluate_split
from genimg_jax.evaluation.illustrations import compile_illustrations, write_illustrations
from genimg_jax.evaluation.periodic import TrainingEvaluation
from genimg_jax.evaluation.provenance import image_provenance
from genimg_jax.evaluation.samples import sample_metrics_split
from genimg_jax.training import memory_check, nonfinite, paths
from genimg_jax.training import workdir as workdirs
from genimg_jax.training.checkpoint import Checkpointer, committed_steps
from genimg_jax.training.compiled_run import (
    CHECKPOINTS,
    CompiledRun,
    compile_run,
    initial_rngs,
    main_process_report,
)
from genimg_jax.training.host_memory import release_freed_memory
from genimg_jax.training.preemption import PreemptionGuard, stopped_message
from genimg_jax.training.reporting import RunLogger
from genimg_jax.training.workdir_lock import workdir_lock


def _due(step: int, every: int, last_step: int) -> bool:
    """Whether a periodic action (every `every` steps, 0 = never) runs at `step`; all run at the last step."""
    return every > 0 and (step % every == 0 or step == last_step)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    state: Any  # the state at the last step run
    step: int
    preempted: bool  # a stop request (SIGTERM, SIGINT, a preemption notice) ended the run early, step committed


def run_training(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> TrainResult:
    """Train `config` in `workdir`, resuming from its latest checkpoint if there is one.

    One run at a time may write a workdir (workdir_lock.py); a second one stops with the holder's name.
    """
    with workdir_lock(workdir):
        return _train(config, paths.as_path(workdir))


def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> Any:
    """`run_training`'s final state, for callers that do not ask how the run ended."""
    return run_training(config, workdir).state


def _train(config: ml_collections.ConfigDict, workdir: epath.Path) -> TrainResult:
    is_main = jax.process_index() == 0
    run = compile_run(config)
    if max(committed_steps(workdir / CHECKPOINTS), default=0) < config.train.steps:  # else no step will run
        memory_check.check_train_step(run, config)  # a step that cannot fit stops here, before anything is written
    train_config = config.train
    stream = _train_stream(config, run.batch_sharding)
    draws_illustrations = hasattr(run.method, "illustrations") and train_config.sample_every > 0
    eval_source = (
        data.source_from_config(config.data, config.data.eval_split)
        if config.eval.every or draws_illustrations
        else None
    )
    sample_evaluation = TrainingEvaluation(config, run, workdir) if config.eval.every else None
    checkpointer = Checkpointer(
        workdir / CHECKPOINTS, keep=train_config.keep_checkpoints, every=train_config.checkpoint_every
    )
    if checkpointer.all_steps():
        workdirs.check_resumable(workdir, config)  # before config.json is replaced by the new config
    if is_main:
        workdirs.save_resolved_config(config, workdir)
    init_rng, sample_rng = initial_rngs(config)
    illustrate = compile_illustrations(run, config, eval_source, sample_rng) if draws_illustrations else None
    restored = checkpointer.restore_latest(run.abstract_state, report=main_process_report)
    start_step = restored[0] if restored else 0
    key_metrics = getattr(run.method, "KEY_METRICS", None)
    logger = RunLogger(
        workdir,
        train_config.steps,
        enabled=is_main,
        resume_step=start_step,
        key_metrics=key_metrics,
        tensorboard=train_config.tensorboard,
    )
    state = _initial_state(run, restored, stream, init_rng, logger, workdir)

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
            stop = preemption.stop_requested(step)  # before sampling and evaluation, which a stop skips

            if _due(step, train_config.log_every, train_config.steps):
                means = nonfinite.checked_means(step, sums, step - last_logged, train_config.nonfinite, last_checkpoint)
                _log_interval(logger, step, last_logged, means)
                sums, last_logged = {}, step
            checkpointer.check()  # a save that failed in the background stops the run here
            if checkpointer.should_save(step) or step == train_config.steps or stop:
                # Never save a diverged state, even between log steps. Saved before sampling and evaluation (the
                # save is asynchronous), so a long final evaluation that dies or is killed loses no training.
                nonfinite.checked_means(step, sums, step - last_logged, train_config.nonfinite, last_checkpoint)
                checkpointer.save(step, state, stream.get_state())
                last_checkpoint = step
            if not stop and _due(step, train_config.sample_every, train_config.steps):
                provenance = image_provenance(config, step, config.seed)
                _write_samples(run, state, sample_rng, illustrate, step, workdir, logger, is_main, provenance)
                release_freed_memory()
            if not stop and _due(step, config.eval.every, train_config.steps):
                eval_rng = jax.random.fold_in(init_rng, step)
                _evaluate(run, state, config, eval_source, sample_evaluation, stream, eval_rng, step, logger)
                release_freed_memory()
            if stop:
                break
    finally:  # whatever stops the loop, a save in flight is committed and the logs are flushed
        preemption.uninstall()
        with contextlib.ExitStack() as closing:  # every close runs, even after a failed save raised in the first
            closing.callback(logger.close)
            closing.callback(stream.close)
            if sample_evaluation:
                closing.callback(sample_evaluation.close)
            closing.callback(checkpointer.close)
            checkpointer.wait()
    if stop:
        logger.message(stopped_message(preemption.signal_name, step))
    else:
        logger.message(f"done at step {step}; everything is in {paths.absolute(workdir)}")
    return TrainResult(state, step, stop)


def _train_stream(config: ml_collections.ConfigDict, batch_sharding: NamedSharding) -> data.TrainStream:
    """This process's share of the shuffled, endlessly repeated training split: the rows its devices hold."""
    return data.make_train_stream(
        data.source_from_config(config.data, config.data.train_split),
        global_batch_size=config.train.batch_size,
        seed=config.seed,
        random_flip=config.data.random_flip,
        rows=data.host_rows(batch_sharding, config.train.batch_size),
        read_threads=config.data.read_threads,
        num_workers=config.data.num_workers,
    )


def _initial_state(
    run: CompiledRun,
    restored: tuple[int, Any, dict] | None,
    stream: data.TrainStream,
    init_rng: jax.Array,
    logger: RunLogger,
    workdir: epath.Path,
) -> Any:
    """A new state, or the restored one with the data stream set to where its checkpoint left it."""
    if restored is None:
        state = run.init(init_rng)
        logger.message(f"starting a new run in {workdir}")
        return state
    step, state, data_state = restored
    stream.set_state(data_state)
    logger.message(f"resuming {workdir} from the checkpoint of step {step}")
    return state


def _log_interval(logger: RunLogger, step: int, last_logged: int, means: dict[str, float]) -> None:
    """The means of the steps since `last_logged`: to metrics.jsonl and the progress line."""
    if skipped := means[nonfinite.NONFINITE_STEPS]:
        logger.message(f"skipped {skipped:.0f} of steps {last_logged + 1}-{step}: non-finite values")
    rate = logger.steps_per_second(step)
    logger.scalars(step, "train", {**means, "steps_per_second": rate})
    logger.progress(step, means, rate)


def _write_samples(
    run: CompiledRun,
    state: Any,
    sample_rng: jax.Array,
    illustrate: Callable[[Any], Any] | None,
    step: int,
    workdir: epath.Path,
    logger: RunLogger,
    is_main: bool,
    provenance: dict[str, str],
) -> None:
    """The sample grid of `step` (the same latents every time) and the method's illustrations, if it has any."""
    images = data.from_unit_range(jax.device_get(run.sample(state, sample_rng)))
    if is_main:
        grid = grids.save_sample_grid(
            images, workdir / "samples" / f"step_{step:07d}.png", provenance, run.grid_captions
        )
        logger.images(step, "samples", grid)
    if illustrate:
        pictures = illustrate(state)
        if is_main:
            write_illustrations(pictures, step, workdir / "samples", provenance)


def _evaluate(
    run: CompiledRun,
    state: Any,
    config: ml_collections.ConfigDict,
    source: data.ImageSource,
    sample_evaluation: TrainingEvaluation,
    stream: data.TrainStream,
    rng: jax.Array,
    step: int,
    logger: RunLogger,
) -> None:
    """Held-out and sample metrics of `state`, recorded (best checkpoint, evaluation log) and logged, each group
    under the name of the split it was measured against."""
    held_out = evaluate_split(run, state, source, config.eval.batch_size, rng)
    sample_values = sample_evaluation.sample_metrics(state)
    sample_evaluation.record(step, {**held_out, **sample_values}, state, stream.get_state())
    groups = {config.data.eval_split: held_out, sample_metrics_split(config): sample_values}
    for split, values in groups.items():
        if values:
            logger.scalars(step, split, values)
    shown = " | ".join(f"{split}: {_format(values)}" for split, values in groups.items() if values)
    logger.message(f"eval at step {step} | {shown}")


def _format(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in values.items())
