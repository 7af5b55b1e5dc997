"""The `cas` sample metric: Classification Accuracy Score (metrics/cas.py) of a class-conditional train state.

The model draws as many samples as the real train split (`data.train_split`) holds, balanced over the classes
(sample i is of class i mod num_classes), snapped to uint8 as real images are; the fixed classifier recipe
(`eval.cas_*`) is trained on them, on the real train split (the baseline) and on both (naive augmentation), and
tested on `data.eval_split`. The baseline depends on the data and the recipe alone, so it is computed once and
cached in the evaluation cache folder. Samples come from keys derived from `config.seed`, the same at every
evaluation, so values at different steps are paired comparisons.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import jax
import ml_collections
from etils import epath

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError, require
from genimg_jax.evaluation.conditioning import ConditionedSampler
from genimg_jax.metrics import cas, classifier
from genimg_jax.training.compiled_run import CompiledRun
from genimg_jax.training.paths import as_path

CAS_SEED_SALT = 0xCA5


def validate_cas_config(config: ml_collections.ConfigDict) -> None:
    for key in ("cas_steps", "cas_batch_size"):
        require(config.eval[key] > 0, f"eval.{key}", config.eval[key], "must be positive")
    require(config.eval.cas_learning_rate > 0, "eval.cas_learning_rate", config.eval.cas_learning_rate, "must be > 0")
    require(config.eval.cas_max_shift >= 0, "eval.cas_max_shift", config.eval.cas_max_shift, "must be >= 0")


def cas_recipe(eval_config: ml_collections.ConfigDict) -> classifier.Recipe:
    return classifier.Recipe(
        steps=eval_config.cas_steps,
        batch_size=eval_config.cas_batch_size,
        learning_rate=eval_config.cas_learning_rate,
        max_shift=eval_config.cas_max_shift,
        seed=eval_config.cas_seed,
    )


def split_arrays(config: ml_collections.ConfigDict, split: str) -> cas.LabelledImages:
    arrays = data.load_all(data.source_from_config(config.data, split), ("image", "label"))
    return cas.LabelledImages(arrays["image"], arrays["label"])


class CasEvaluator:
    """CAS, real baseline and naive augmentation of train states of one compiled run (see the module docstring)."""

    def __init__(self, config: ml_collections.ConfigDict, run: CompiledRun, cache_dir: epath.Path):
        validate_cas_config(config)
        fields = tuple(run.method.conditioning_fields())
        if fields != ("label",):
            raise ConfigError(
                f"config.eval.metrics={config.eval.metrics!r}: asks for cas, which needs a class-conditional method "
                f"(one that conditions on 'label' alone), but method {config.method!r} conditions on {fields}"
            )
        shards = parallel.batch_axis_size(run.mesh)
        for key in ("cas_batch_size", "batch_size"):
            require(config.eval[key] % shards == 0, f"eval.{key}", config.eval[key], f"must be a multiple of {shards}")
        self.config, self.recipe, self.cache_dir = config, cas_recipe(config.eval), as_path(cache_dir)
        self.num_classes = config.model.num_classes
        self.sharding = parallel.batch_sharding(run.mesh)
        self.real_train = split_arrays(config, config.data.train_split)
        self.test = split_arrays(config, config.data.eval_split)
        self._baseline: cas.HeldOutAccuracy | None = None
        self._sampler = ConditionedSampler(
            config, run, jax.random.fold_in(jax.random.PRNGKey(config.seed), CAS_SEED_SALT)
        )

    def synthetic(self, state: Any) -> cas.LabelledImages:
        """As many uint8 samples as the real train split, with the balanced labels they were drawn for."""
        images, conditioning = self._sampler.draw(state, len(self.real_train.labels))
        return cas.LabelledImages(images, conditioning["label"])

    def baseline_key(self) -> dict[str, Any]:
        """Everything the real baseline depends on (the device count too: it changes float rounding)."""
        data_config = self.config.data
        return {
            "dataset": data_config.source,
            "data_dir": data_config.data_dir,
            "train_split": data_config.train_split,
            "test_split": data_config.eval_split,
            "resolution": data_config.resolution,
            "channels": data_config.channels,
            "num_classes": self.num_classes,
            "recipe": dataclasses.asdict(self.recipe),
            "batch_shards": parallel.batch_axis_size(self.sharding.mesh),
        }

    def real_baseline(self) -> cas.HeldOutAccuracy:
        """The recipe's accuracy when trained on the real train split: from the cache, else trained and stored."""
        if self._baseline is None:
            key = self.baseline_key()
            digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
            path = self.cache_dir / f"cas_real_baseline-{digest}.json"
            cached = json.loads(path.read_text()) if path.is_file() else {}
            if cached.get("key") == key:
                self._baseline = cas.HeldOutAccuracy(cached["overall"], tuple(cached["per_class"]))
            else:
                self._baseline = cas.held_out_accuracy(
                    self.real_train, self.test, self.num_classes, self.recipe, self.sharding
                )
                if jax.process_index() == 0:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    temporary = path.with_suffix(".tmp")
                    record = {"key": key, **dataclasses.asdict(self._baseline)}
                    temporary.write_text(json.dumps(record, indent=2) + "\n")
                    temporary.replace(path)  # atomic: a crash never leaves a truncated entry
        return self._baseline

    def evaluate(self, state: Any) -> dict[str, float]:
        return cas.classification_accuracy_scores(
            self.synthetic(state),
            self.real_train,
            self.test,
            self.num_classes,
            self.recipe,
            self.sharding,
            self.real_baseline(),
        )

    def protocol(self) -> dict[str, Any]:
        return {
            "classifier": "digits CNN (metrics/digits_net.py) trained from scratch (metrics/classifier.py)",
            **dataclasses.asdict(self.recipe),
            "num_synthetic": len(self.real_train.labels),
            "synthetic_labels": "balanced: sample i is of class i mod num_classes",
            "synthetic_pixels": "snapped to uint8 levels",
            "train_split": self.config.data.train_split,
            "test_split": self.config.data.eval_split,
            "naive_augmentation": "the real train split and the synthetic set together, same steps",
            "sample_seed": self.config.seed,
        }
