"""Evaluating a saved checkpoint after training: `--mode=eval` (all metrics) and `--mode=audit` (memorization).

Both restore the latest checkpoint of a workdir onto the current mesh and write their results beside it:
`eval_<step>.json` (values and protocol) and `audit_<step>/` (report.json, neighbours.png, distances.png).
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import ml_collections

from genimg_jax import audit, evaluation, parallel, trainer


def compile_run(config: ml_collections.ConfigDict) -> Any:
    return trainer.compile_run(config, parallel.make_mesh(config.mesh))


def evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> pathlib.Path:
    """The method's likelihood metrics on `data.eval_split` and the sample metrics; returns eval_<step>.json."""
    workdir = pathlib.Path(workdir)
    run = compile_run(config)
    samples = evaluation.optional_sample_evaluator(config, run, workdir)
    state, step = trainer.restore_trained_state(config, run, workdir)
    eval_source = trainer.make_data_source(config, config.data.eval_split)
    eval_rng = jax.random.fold_in(trainer.initial_rngs(config)[0], step)
    values = trainer.evaluate_split(run, state, eval_source, config.eval.batch_size, eval_rng)
    protocol = {"likelihood_split": config.data.eval_split}
    if samples:
        values.update(samples.evaluate(state))
        protocol.update(samples.protocol())
    path = workdir / f"eval_{step:07d}.json"
    evaluation.write_results(path, step, values, protocol)
    return path


def memorization_audit(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> pathlib.Path:
    """Nearest training neighbours of `eval.num_samples` samples in feature space; returns the report folder."""
    workdir = pathlib.Path(workdir)
    run = compile_run(config)
    samples = evaluation.SampleEvaluator(config, run, workdir)  # a bad `config.eval` fails before heavy work
    state, step = trainer.restore_trained_state(config, run, workdir)
    train = samples.split_features(config.data.train_split)
    test = samples.split_features(config.data.eval_split)
    generated, _ = samples.generate(state, keep_images=True)
    train_source = trainer.make_data_source(config, config.data.train_split)
    directory = workdir / f"audit_{step:07d}"
    protocol = {
        **samples.protocol(),
        "reference": {"dataset": config.data.source, "train_split": config.data.train_split},
        "typical_distance_split": config.data.eval_split,
    }
    if jax.process_index() == 0:
        audit.write_report(
            directory,
            generated["images"],
            generated["features"],
            lambda index: train_source[index]["image"],
            train["features"],
            test["features"],
            protocol,
        )
    return directory
