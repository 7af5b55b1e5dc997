"""The evaluation the training loop runs every `eval.every` steps."""

from typing import Any

import ml_collections
from etils import epath

from genimg_jax.evaluation.best_checkpoint import BestCheckpoint
from genimg_jax.evaluation.samples import optional_sample_evaluator, validate_eval_config, write_results
from genimg_jax.training.compiled_run import CompiledRun


class TrainingEvaluation:
    """What the trainer runs every `eval.every` steps beside its likelihood evaluation: sample metrics, an
    `eval_<step>.json` with values and protocol, and the best checkpoint by `eval.best_metric`."""

    def __init__(self, config: ml_collections.ConfigDict, run: CompiledRun, workdir: epath.Path):
        validate_eval_config(config)
        self.workdir = workdir
        self.samples = optional_sample_evaluator(config, run, workdir)
        self.best = BestCheckpoint(workdir / "best", config.eval.best_metric) if config.eval.best_metric else None

    def sample_metrics(self, state: Any) -> dict[str, float]:
        return self.samples.evaluate(state) if self.samples else {}

    def record(self, step: int, values: dict[str, float], state: Any, data_state: dict) -> None:
        protocol = self.samples.protocol() if self.samples else {}
        write_results(self.workdir / f"eval_{step:07d}.json", step, values, protocol)
        if self.best:
            self.best.update(step, values, protocol, state, data_state)

    def close(self) -> None:
        if self.best:
            self.best.close()
