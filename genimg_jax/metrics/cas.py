"""Classification Accuracy Score (Ravuri & Vinyals 2019, "Classification Accuracy Score for Conditional Generative
Models"): how well a classifier trained only on a class-conditional model's samples classifies real test images.

A model whose samples of class c look like class c, and cover all of it, scores near the real-data baseline (the
same classifier recipe trained on the real train split); one whose samples are sharp but of a narrow mode, or
of the wrong class, scores far below, which FID and IS do not show. The paper also reports the per-class
accuracy and the "naive augmentation" score: the recipe trained on the real and the synthetic sets together.
Every classifier here is one run of the fixed recipe (classifier.py) with the same seed, so two sets that are
equal give equal scores exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from jax.sharding import NamedSharding

from genimg_jax.metrics import classifier


@dataclasses.dataclass(frozen=True)
class LabelledImages:
    images: np.ndarray  # uint8 NHWC
    labels: np.ndarray  # int, one per image

    def __add__(self, other: LabelledImages) -> LabelledImages:
        return LabelledImages(np.concatenate([self.images, other.images]), np.concatenate([self.labels, other.labels]))


@dataclasses.dataclass(frozen=True)
class HeldOutAccuracy:
    """A classifier's accuracy on the real test split, overall and within each class."""

    overall: float
    per_class: tuple[float, ...]

    def values(self, name: str) -> dict[str, float]:
        """{name: overall, name_class_<c>: per class c}, as an evaluation logs them."""
        return {name: self.overall} | {f"{name}_class_{c}": value for c, value in enumerate(self.per_class)}


def held_out_accuracy(
    train: LabelledImages, test: LabelledImages, num_classes: int, recipe: classifier.Recipe, sharding: NamedSharding
) -> HeldOutAccuracy:
    """Accuracy on `test` of the recipe's classifier trained from scratch on `train`."""
    params = classifier.train_classifier(train.images, train.labels, num_classes, recipe, sharding)
    predictions = classifier.predict(params, test.images, num_classes, recipe.batch_size, sharding)
    overall, per_class = classifier.class_accuracies(predictions, test.labels, num_classes)
    return HeldOutAccuracy(overall, tuple(float(value) for value in per_class))


def classification_accuracy_scores(
    synthetic: LabelledImages,
    real_train: LabelledImages,
    test: LabelledImages,
    num_classes: int,
    recipe: classifier.Recipe,
    sharding: NamedSharding,
    real_baseline: HeldOutAccuracy | None = None,
) -> dict[str, float]:
    """CAS (trained on `synthetic`), the real baseline (on `real_train`; pass it if already known, it depends on
    no model) and the naive augmentation score (on both), each on `test`: cas_accuracy, cas_real_baseline,
    cas_naive_augmentation, and per class cas_accuracy_class_<c> and cas_real_baseline_class_<c>."""
    real_baseline = real_baseline or held_out_accuracy(real_train, test, num_classes, recipe, sharding)
    score = held_out_accuracy(synthetic, test, num_classes, recipe, sharding)
    augmented = held_out_accuracy(real_train + synthetic, test, num_classes, recipe, sharding)
    return {
        **score.values("cas_accuracy"),
        **real_baseline.values("cas_real_baseline"),
        "cas_naive_augmentation": augmented.overall,
    }
