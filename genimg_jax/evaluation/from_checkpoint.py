"""What a trained workdir's latest checkpoint is used for after training: `--mode=sample` (grids and
illustrations), `--mode=eval` (all metrics) and `--mode=audit` (memorization).

Each restores the newest checkpoint that restores onto the current mesh and writes its results beside it:
`samples/sample_step_<step>_<i>.png`, `eval_<step>.json` (values and protocol) and `audit_<step>/`
(report.json, neighbours.png, distances.png). Other tools on a saved run (latent walks) restore through
`restore_latest`.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
from etils import epath

from genimg_jax import data
from genimg_jax.evaluation import audit, grids
from genimg_jax.evaluation.held_out import evaluate_split
from genimg_jax.evaluation.illustrations import compile_illustrations, write_illustrations
from genimg_jax.evaluation.provenance import image_provenance
from genimg_jax.evaluation.samples import SampleEvaluator, optional_sample_evaluator, write_results
from genimg_jax.training.compiled_run import (
    CompiledRun,
    checkpoint_digest,
    compile_run,
    initial_rngs,
    restore_trained_state,
)
from genimg_jax.training.paths import as_path


def restore_latest(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> tuple[CompiledRun, Any, int]:
    """(compiled run, state, step) of the newest checkpoint in `workdir` that restores onto `config.mesh`."""
    run = compile_run(config)
    state, step = restore_trained_state(config, run, as_path(workdir))
    return run, state, step


def sample(config: ml_collections.ConfigDict, workdir: str | os.PathLike, num_grids: int = 1) -> list[epath.Path]:
    """Write sample grids (and the method's illustrations) from the latest checkpoint; returns their paths."""
    workdir = as_path(workdir)
    run, state, step = restore_latest(config, workdir)
    provenance = image_provenance(config, step, config.seed, checkpoint_digest(workdir, step))
    _, sample_rng = initial_rngs(config)
    paths = []
    for index in range(num_grids):
        images = data.from_unit_range(jax.device_get(run.sample(state, jax.random.fold_in(sample_rng, index))))
        if jax.process_index() == 0:
            path = workdir / "samples" / f"sample_step_{step:07d}_{index}.png"
            grids.save_sample_grid(images, path, {**provenance, "grid": str(index)}, run.grid_captions)
            paths.append(path)
    if hasattr(run.method, "illustrations"):
        eval_source = data.source_from_config(config.data, config.data.eval_split)
        pictures = compile_illustrations(run, config, eval_source, sample_rng)(state)
        if jax.process_index() == 0:
            paths += write_illustrations(pictures, step, workdir / "samples", provenance)
    return paths


def evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> epath.Path:
    """The method's likelihood metrics on `data.eval_split` and the sample metrics; returns eval_<step>.json."""
    workdir = as_path(workdir)
    run = compile_run(config)
    samples = optional_sample_evaluator(config, run, workdir)
    state, step = restore_trained_state(config, run, workdir)
    eval_source = data.source_from_config(config.data, config.data.eval_split)
    eval_rng = jax.random.fold_in(initial_rngs(config)[0], step)
    values = evaluate_split(run, state, eval_source, config.eval.batch_size, eval_rng)
    protocol = {"likelihood_split": config.data.eval_split}
    if samples:
        values.update(samples.evaluate(state))
        protocol.update(samples.protocol())
    path = workdir / f"eval_{step:07d}.json"
    write_results(path, step, values, protocol)
    return path


def memorization_audit(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> epath.Path:
    """Nearest training neighbours of `eval.num_samples` samples in feature space; returns the report folder."""
    workdir = as_path(workdir)
    run = compile_run(config)
    samples = SampleEvaluator(config, run, workdir, with_feature_net=True)  # a bad `config.eval` fails early
    state, step = restore_trained_state(config, run, workdir)
    train = samples.split_features(config.data.train_split)
    test = samples.split_features(config.data.eval_split)
    search = audit.NeighbourSearch(train["features"])
    for batch in samples.stream(state, with_images=True):  # one batch of images on the host at a time
        search.add(batch["images"], batch["features"])
    train_source = data.source_from_config(config.data, config.data.train_split)
    directory = workdir / f"audit_{step:07d}"
    protocol = {
        **samples.protocol(),
        "reference": {"dataset": config.data.source, "train_split": config.data.train_split},
        "typical_distance_split": config.data.eval_split,
    }
    provenance = image_provenance(config, step, config.seed, checkpoint_digest(workdir, step))
    if jax.process_index() == 0:
        audit.write_report(
            directory, search, lambda index: train_source[index]["image"], test["features"], protocol, provenance
        )
    return directory
