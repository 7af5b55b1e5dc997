"""The checkpoint with the best value of one sample metric so far, kept beside the periodic ones."""

import json
from typing import Any

from etils import epath

from genimg_jax.evaluation.samples import BEST_METRICS, write_results
from genimg_jax.training.checkpoint import Checkpointer


class BestCheckpoint:
    """Keeps the checkpoint with the best `metric` so far in `directory`, with `best.json` saying which."""

    def __init__(self, directory: epath.Path, metric: str):
        self.metric, self.directory = metric, directory
        self._checkpointer = Checkpointer(directory, keep=1, every=0)
        record = directory / "best.json"
        self.best = json.loads(record.read_text())["values"][metric] if record.is_file() else None

    def update(self, step: int, values: dict[str, float], protocol: dict, state: Any, data_state: dict) -> bool:
        value = values[self.metric]
        larger_is_better = BEST_METRICS[self.metric][1]
        better = self.best is None or (value > self.best if larger_is_better else value < self.best)
        if better:
            self.best = value
            self._checkpointer.save(step, state, data_state)
            write_results(self.directory / "best.json", step, values, {"best_metric": self.metric, **protocol})
        return better

    def close(self) -> None:
        self._checkpointer.wait()
        self._checkpointer.close()
