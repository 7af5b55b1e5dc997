"""Sample-quality evaluation of a train state: FID, KID, IS, precision/recall and, for class-conditional models
with a classifier of the dataset's classes as feature net (digits), label accuracy; for class-conditional
models the Classification Accuracy Score (cas.py); for text-to-image methods caption agreement and R-precision
(captions.py); for image-to-image methods PSNR, SSIM and LPIPS of their outputs
on the eval split beside those of the input (restoration.py); each with its protocol. The feature net is loaded
only for the metrics that use it, so restoration metrics run on data of any size.

N images are generated in batches sharded over the mesh (`method.sample` fused with the feature net in one
jitted function, so images never leave the devices), their features stream into float64 moments, and the
metrics compare them with cached features of a reference split. Samples reach the feature net snapped to uint8
levels, as real images do (`data.quantized`). Every evaluation generates from the same keys (derived from
`config.seed`), so values at different steps are paired comparisons, not independent draws.
Class-conditional methods draw balanced labels (sample i is of class i mod num_classes), methods conditioned on
other fields get those of the eval split's examples in order (conditioning.py). Precision/recall compares sets
of equal size, as Kynkäänniemi et al.: the larger set is subsampled (fixed seed) to the size of the smaller.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import jax
import ml_collections
import numpy as np
from etils import epath

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError, require, require_choice
from genimg_jax.evaluation.captions import CAPTION_METRICS, CaptionEvaluator, validate_caption_config
from genimg_jax.evaluation.cas import CasEvaluator, validate_cas_config
from genimg_jax.evaluation.conditioning import SampleConditioning
from genimg_jax.evaluation.restoration import RESTORATION_METRICS, RestorationEvaluator, validate_restoration_config
from genimg_jax.metrics import features, fid, fid_stats_file, inception_score, kid, precision_recall, reference
from genimg_jax.training.compiled_run import CompiledRun
from genimg_jax.training.paths import as_path

FEATURE_METRICS = ("fid", "kid", "is", "pr", "label_accuracy")  # those computed on feature-net outputs of samples
METRICS = (*FEATURE_METRICS, "cas", *CAPTION_METRICS, *RESTORATION_METRICS)
# Values the best checkpoint can be chosen by: value -> (the metric that produces it, whether larger is better).
BEST_METRICS = {
    "fid": ("fid", False),
    "kid_mean": ("kid", False),
    "is_mean": ("is", True),
    "precision": ("pr", True),
    "recall": ("pr", True),
    "label_accuracy": ("label_accuracy", True),
    "cas_accuracy": ("cas", True),
    "digit_agreement": ("caption_agreement", True),
    "exact_match": ("caption_agreement", True),
    "r_precision": ("r_precision", True),
    "clip_score": ("clip_score", True),
    "psnr": ("psnr", True),
    "ssim": ("ssim", True),
    "lpips": ("lpips", False),
}
# Metrics that compare with the reference's features themselves, which a statistics file (mean, covariance) lacks.
NEEDS_REFERENCE_FEATURES = ("kid", "pr")
# Feature nets whose logits are the classes of the data they were trained on (Inception's are ImageNet's).
DATASET_CLASSIFIERS = ("digits",)
EVAL_SEED_SALT = 0xE7A1
PR_SUBSAMPLE_SEED = 0x9E1


def sample_metrics_split(config: ml_collections.ConfigDict) -> str:
    """The name sample metrics are logged under ("samples_vs_train"): it says what they compare with, which is
    `eval.reference_split`, not the `data.eval_split` the likelihood metrics are computed on."""
    return f"samples_vs_{config.eval.reference_split}"


def requested_metrics(config: ml_collections.ConfigDict) -> list[str]:
    """The metric names of `config.eval.metrics` ("fid,kid,is,pr"), validated."""
    names = [name.strip() for name in config.eval.metrics.split(",") if name.strip()]
    for name in names:
        require(name in METRICS, "eval.metrics", config.eval.metrics, f"each entry must be one of {list(METRICS)}")
    return names


def validate_eval_config(config: ml_collections.ConfigDict) -> None:
    evaluation = config.eval
    names = requested_metrics(config)
    require_choice(config, "eval.feature_net", features.FEATURE_NETS)
    require(evaluation.num_samples >= 2, "eval.num_samples", evaluation.num_samples, "must be at least 2")
    for key in ("kid_subsets", "kid_subset_size", "is_splits", "pr_neighbours"):
        require(evaluation[key] > 0, f"eval.{key}", evaluation[key], "must be positive")
    if "is" in names:
        require(
            evaluation.num_samples >= evaluation.is_splits,
            "eval.num_samples",
            evaluation.num_samples,
            f"must be at least eval.is_splits={evaluation.is_splits}",
        )
    if "label_accuracy" in names:
        require(
            config.model.get("num_classes", 0) > 0,
            "eval.metrics",
            evaluation.metrics,
            "asks for label_accuracy, which needs a class-conditional model (model.num_classes > 0)",
        )
        require(
            evaluation.feature_net in DATASET_CLASSIFIERS,
            "eval.metrics",
            evaluation.metrics,
            f"asks for label_accuracy, which needs a feature net that classifies the data: {list(DATASET_CLASSIFIERS)}",
        )
    if "cas" in names:
        validate_cas_config(config)
    if set(names) & set(CAPTION_METRICS):
        validate_caption_config(config, names)
    if set(names) & set(RESTORATION_METRICS):
        validate_restoration_config(config, names)
    if evaluation.reference_stats:
        needing = [name for name in names if name in NEEDS_REFERENCE_FEATURES]
        require(
            not needing,
            "eval.metrics",
            evaluation.metrics,
            f"{needing} need the reference's features, but eval.reference_stats gives only their mean and covariance",
        )
    if evaluation.best_metric:
        produced = [value for value, (metric, _) in BEST_METRICS.items() if metric in names]
        require(
            evaluation.best_metric in produced,
            "eval.best_metric",
            evaluation.best_metric,
            f"choose one of {produced} (values of the metrics in eval.metrics)",
        )


def compute_metrics(
    names: list[str],
    generated: dict[str, np.ndarray],
    generated_moments: fid.FeatureMoments,
    real: dict[str, np.ndarray],
    real_stats: tuple[np.ndarray, np.ndarray],
    eval_config: ml_collections.ConfigDict,
) -> dict[str, float]:
    """The requested metrics of generated vs real features/logits; `real_stats` are the real features' mean and
    covariance."""
    values = {}
    if "fid" in names:
        values["fid"] = fid.frechet_distance(*generated_moments.mean_and_covariance(), *real_stats)
    if "kid" in names:
        values["kid_mean"], values["kid_std"] = kid.kernel_inception_distance(
            generated["features"], real["features"], eval_config.kid_subsets, eval_config.kid_subset_size
        )
    if "is" in names:
        values["is_mean"], values["is_std"] = inception_score.inception_score(
            generated["logits"], eval_config.is_splits
        )
    if "pr" in names:
        values["precision"], values["recall"] = precision_recall.precision_recall(
            *equal_sized(real["features"], generated["features"]), eval_config.pr_neighbours
        )
    if "label_accuracy" in names:
        # Fraction of samples the feature net classifies as the class they were drawn for.
        values["label_accuracy"] = float(np.mean(np.argmax(generated["logits"], axis=-1) == generated["label"]))
    return values


def equal_sized(real: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets cut to the smaller one's size by a fixed random subset of the larger (recall depends on N)."""
    size = min(len(real), len(generated))
    rng = np.random.default_rng(PR_SUBSAMPLE_SEED)
    return tuple(
        points if len(points) == size else points[np.sort(rng.choice(len(points), size, replace=False))]
        for points in (real, generated)
    )


def load_split_features(
    config: ml_collections.ConfigDict, net: features.FeatureNet, split: str, cache_dir: epath.Path, sharding
) -> dict[str, np.ndarray]:
    """Cached features and logits of every image of `split` of the configured data source."""
    data_config = config.data
    try:
        source = data.source_from_config(data_config, split)
    except data.DataError as error:
        raise data.DataError(f"config.eval.reference_split / {error}") from None
    key = reference.cache_key(
        data_config.source, data_config.data_dir, split, data_config.resolution, data_config.channels, net
    )
    return reference.cached_source_features(net, source, key, cache_dir, config.eval.batch_size, sharding)


def load_reference_stats(config: ml_collections.ConfigDict, net: features.FeatureNet) -> fid_stats_file.FidStats:
    """The statistics file `config.eval.reference_stats`, checked against `net` and the data's image shape."""
    path = config.eval.reference_stats
    shape = (1, config.data.resolution, config.data.resolution, config.data.channels)
    dim = jax.eval_shape(net.apply, net.variables, jax.ShapeDtypeStruct(shape, np.float32))["features"].shape[-1]
    try:
        stats = fid_stats_file.load_fid_stats(path)
        fid_stats_file.check_feature_net(stats, net, dim)
    except ValueError as error:
        raise ConfigError(f"config.eval.reference_stats={path!r}: {error}") from None
    return stats


class SampleEvaluator:
    """Sample metrics of train states of one compiled run (see the module docstring)."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        run: CompiledRun,
        workdir: str | os.PathLike,
        with_feature_net: bool = False,
    ):
        """`with_feature_net` loads the feature net even if no requested metric needs it (for the memorization
        audit's neighbour search)."""
        validate_eval_config(config)
        self.config, self.names = config, requested_metrics(config)
        self.feature_names = [name for name in self.names if name in FEATURE_METRICS]
        self.net = self._feature_net() if self.feature_names or with_feature_net else None
        self.cache_dir = as_path(config.eval.cache_dir or as_path(workdir) / "eval_cache")
        self.rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), EVAL_SEED_SALT)
        self._run = run
        # The file's statistics, read (and checked) before any sample is drawn; else the reference split's.
        use_stats = config.eval.reference_stats and self.feature_names
        self.reference_stats = load_reference_stats(config, self.net) if use_stats else None
        self._reference: tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None  # (features, stats)
        self.conditioning = SampleConditioning(config, run.method.conditioning_fields())
        self.cas = CasEvaluator(config, run, self.cache_dir) if "cas" in self.names else None
        caption_names = [name for name in self.names if name in CAPTION_METRICS]
        self.captions = CaptionEvaluator(config, run, caption_names) if caption_names else None
        restoration_names = [name for name in self.names if name in RESTORATION_METRICS]
        self.restoration = RestorationEvaluator(config, run, restoration_names) if restoration_names else None
        self._batch_sharding = parallel.batch_sharding(run.mesh)
        self._generate = self._compile_generate(run) if self.net else None

    def _feature_net(self) -> features.FeatureNet:
        evaluation = self.config.eval
        try:
            net = features.load_feature_net(evaluation.feature_net, evaluation.inception_weights)
            net.check_images(self.config.data.resolution, self.config.data.channels)
        except ValueError as error:
            raise ConfigError(f"config.eval.feature_net={evaluation.feature_net!r}: {error}") from None
        return net

    def _compile_generate(self, run: CompiledRun) -> Callable:
        """Samples and their feature-net outputs in one jitted function, so images never leave the devices."""
        batch_size, method, net = self.config.eval.batch_size, run.method, self.net
        batch_sharding = self._batch_sharding

        def generate(state, variables, rng, conditioning):
            images = method.sample(state, rng, batch_size, conditioning or None)  # {}: unconditional
            images = jax.lax.with_sharding_constraint(data.quantized(images), batch_sharding)
            return images, net.apply(variables, images)

        replicated = parallel.replicated(run.mesh)
        return jax.jit(  # features come back replicated, so every process can read them
            generate,
            in_shardings=(run.state_sharding, replicated, replicated, batch_sharding),
            out_shardings=(batch_sharding, replicated),
        )

    def split_features(self, split: str) -> dict[str, np.ndarray]:
        return load_split_features(
            self.config, self.net, split, self.cache_dir, parallel.batch_sharding(self._run.mesh)
        )

    def stream(self, state: Any, with_images: bool = False) -> Iterator[dict[str, np.ndarray]]:
        """Per batch of samples (`eval.num_samples` in all): features, logits, the conditioning fields drawn for
        (by name, e.g. "label") and, if asked, the uint8 images; one batch on the host at a time."""
        num_samples, batch_size = self.config.eval.num_samples, self.config.eval.batch_size
        for index, conditioning in enumerate(self.conditioning.batches(batch_size, -(-num_samples // batch_size))):
            images, net_outputs = self._generate(
                state,
                self.net.variables,
                jax.random.fold_in(self.rng, index),
                data.shard_whole_batch(conditioning, self._batch_sharding),
            )
            keep = min(batch_size, num_samples - index * batch_size)
            batch = {name: np.asarray(value)[:keep] for name, value in jax.device_get(net_outputs).items()}
            batch |= {name: value[:keep] for name, value in conditioning.items()}
            if with_images:
                batch["images"] = data.from_unit_range(jax.device_get(images))[:keep]
            yield batch

    def generate(self, state: Any, keep_images: bool = False) -> tuple[dict[str, np.ndarray], fid.FeatureMoments]:
        """All of `stream`'s values for `eval.num_samples` samples, plus feature moments. Host memory is what the
        metrics need: features, logits and per-sample values (labels); images and image-shaped conditioning
        (a source image) only with `keep_images`."""
        num_samples = self.config.eval.num_samples
        moments, outputs, filled = None, {}, 0
        for batch in self.stream(state, with_images=keep_images):
            moments = moments or fid.FeatureMoments(batch["features"].shape[-1])
            moments.update(batch["features"])
            for name, value in batch.items():
                if keep_images or name in ("features", "logits") or value.ndim == 1:
                    if name not in outputs:  # filled in place: no second copy from concatenating at the end
                        outputs[name] = np.empty((num_samples, *value.shape[1:]), value.dtype)
                    outputs[name][filled : filled + len(value)] = value
            filled += len(batch["features"])
        return outputs, moments

    def evaluate(self, state: Any) -> dict[str, float]:
        values = self.cas.evaluate(state) if self.cas else {}
        if self.captions:
            values |= self.captions.evaluate(state)
        if self.restoration:
            values |= self.restoration.evaluate(state)
        if not self.feature_names:  # no feature metric: no samples through the feature net
            return values
        if self._reference is None and self.reference_stats:
            self._reference = {}, (self.reference_stats.mean, self.reference_stats.covariance)
        elif self._reference is None:
            real = self.split_features(self.config.eval.reference_split)
            real_moments = fid.FeatureMoments(real["features"].shape[-1])
            real_moments.update(real["features"])
            self._reference = real, real_moments.mean_and_covariance()
        generated, generated_moments = self.generate(state)
        return values | compute_metrics(self.names, generated, generated_moments, *self._reference, self.config.eval)

    def protocol(self) -> dict[str, Any]:
        """How the numbers were made: enough to reproduce them, or to see why they differ from another codebase's."""
        protocol = self._feature_protocol() if self.feature_names else {}
        if self.cas:
            protocol["cas"] = self.cas.protocol()
        if self.captions:
            protocol["captions"] = self.captions.protocol()
        if self.restoration:
            protocol["restoration"] = self.restoration.protocol()
        return protocol

    def _feature_protocol(self) -> dict[str, Any]:
        config, evaluation = self.config, self.config.eval
        if self.reference_stats:
            num_reference = self.reference_stats.num_images
            made_from = (self.reference_stats.protocol or {}).get("source", "not recorded")
            reference_protocol = {"stats_file": evaluation.reference_stats, "source": made_from}
        else:
            num_reference = len(self._reference[0]["features"]) if self._reference else None
            reference_protocol = {"dataset": config.data.source, "split": evaluation.reference_split}
        return {
            **self.net.protocol(),
            "num_samples": evaluation.num_samples,
            "reference": {**reference_protocol, "num_images": num_reference},
            "resolution": config.data.resolution,
            "channels": config.data.channels,
            "kid": {
                "kernel": "(x.y/d + 1)^3",
                "subsets": evaluation.kid_subsets,
                "subset_size": min(evaluation.kid_subset_size, evaluation.num_samples, num_reference or math.inf),
            },
            "samples": "snapped to uint8 levels before the feature net",
            "is_splits": evaluation.is_splits,
            "pr_neighbours": evaluation.pr_neighbours,
            "pr_set_size": min(evaluation.num_samples, num_reference or math.inf),
            "pr_features": f"{self.net.name} features (Kynkäänniemi et al. use VGG-16's)",
            "sample_seed": config.seed,
            # What the samples were drawn for: none, balanced classes, or these fields of the eval split in order.
            "conditioning": self.conditioning.protocol(),
        }


def optional_sample_evaluator(
    config: ml_collections.ConfigDict, run: CompiledRun, workdir: str | os.PathLike
) -> SampleEvaluator | None:
    """A SampleEvaluator if `eval.metrics` asks for any metric (only then must the feature net suit the data)."""
    return SampleEvaluator(config, run, workdir) if requested_metrics(config) else None


def write_results(path: epath.Path, step: int, values: dict[str, float], protocol: dict) -> None:
    if jax.process_index() == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"step": step, "values": values, "protocol": protocol}, indent=2) + "\n")
