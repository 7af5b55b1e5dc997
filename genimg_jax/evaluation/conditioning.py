"""What sample i of a sample set (an evaluation's, a generated set's) is drawn for, the same in every batching.

Class-conditional methods draw sample i of class `classes[i mod len(classes)]`: by default every class in turn
(0, 1, ..., C-1), so N samples hold every class N / C times (the papers' class-balanced protocol). A method that
conditions on other fields of the data (`Method.conditioning_fields`: a source image, a caption) gets those of
the examples of `data.eval_split` in index order, cycling if there are more samples than examples; so the
samples follow the eval split's distribution of conditions. Both depend on i alone, not on the batch size.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from genimg_jax import data, parallel
from genimg_jax.training.compiled_run import CompiledRun


def cycled_labels(start: int, num: int, classes: np.ndarray) -> np.ndarray:
    """Labels of samples start .. start + num - 1: sample i is of class `classes[i mod len(classes)]`."""
    return classes[np.arange(start, start + num) % len(classes)].astype(np.int32)


class SampleConditioning:
    """The conditioning fields of samples 0, 1, ... of a method with `fields` (see the module docstring); `classes`
    replaces the balanced cycle of all classes."""

    def __init__(self, config: ml_collections.ConfigDict, fields: Sequence[str], classes: Sequence[int] | None = None):
        self.config, self.fields = config, tuple(fields)
        self.balanced = classes is None
        self.classes = np.arange(config.model.get("num_classes", 0)) if self.balanced else np.asarray(classes)
        self._source: data.ImageSource | None = None  # opened at the first batch that needs it

    def batches(self, batch_size: int, num_batches: int) -> Iterator[dict[str, np.ndarray]]:
        """Per batch of `batch_size` consecutive samples, their conditioning fields, whole on every process;
        empty dicts for unconditional methods."""
        if not self.fields:
            return itertools.repeat({}, num_batches)
        if self.fields == ("label",):
            return ({"label": cycled_labels(i * batch_size, batch_size, self.classes)} for i in range(num_batches))
        if self._source is None:
            self._source = data.source_from_config(self.config.data, self.config.data.eval_split)
        return data.cycled_batches(self._source, self.fields, batch_size=batch_size, num_batches=num_batches)

    def protocol(self) -> dict[str, Any] | None:
        """What the samples were drawn for: None, classes (balanced or requested) or fields of the eval split."""
        if not self.fields:
            return None
        if self.fields == ("label",):
            if self.balanced:
                return {"fields": ["label"], "labels": "balanced: sample i is of class i mod num_classes"}
            return {"fields": ["label"], "labels": f"requested: sample i is of class {self.classes.tolist()}[i mod K]"}
        return {"fields": list(self.fields), "split": self.config.data.eval_split, "order": "index, cycled"}


class ConditionedSampler:
    """Draws sample sets of a run's method for the conditioning of `SampleConditioning`: batch k from key
    `fold_in(rng, k)`, snapped to uint8 as real images are, whole on every process."""

    def __init__(self, config: ml_collections.ConfigDict, run: CompiledRun, rng: jax.Array):
        self.conditioning = SampleConditioning(config, run.method.conditioning_fields())
        self.batch_size, self.rng, method = config.eval.batch_size, rng, run.method
        self._sharding = parallel.batch_sharding(run.mesh)
        self._generate = jax.jit(  # images come back replicated, so every process holds the whole set
            lambda state, rng, conditioning: data.quantized(method.sample(state, rng, self.batch_size, conditioning)),
            in_shardings=(run.state_sharding, parallel.replicated(run.mesh), self._sharding),
            out_shardings=parallel.replicated(run.mesh),
        )

    def draw(self, state: Any, num: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """`num` uint8 samples and the conditioning fields they were drawn for (by name)."""
        images, fields = [], []
        for index, conditioning in enumerate(self.conditioning.batches(self.batch_size, -(-num // self.batch_size))):
            sharded = data.shard_whole_batch(conditioning, self._sharding)
            generated = self._generate(state, jax.random.fold_in(self.rng, index), sharded)
            images.append(data.from_unit_range(jax.device_get(generated)))
            fields.append(conditioning)
        drawn = {name: np.concatenate([batch[name] for batch in fields])[:num] for name in self.conditioning.fields}
        return np.concatenate(images)[:num], drawn
