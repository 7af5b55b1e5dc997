"""Classification Accuracy Score: the real train split as "generator" scores exactly the real baseline, a
generator of the wrong classes scores near 0, per-class accuracies, the cached baseline, and the one-line
error for methods that are not class-conditional.

Every classifier is the fixed recipe at the digits' native 8x8, shortened to 100 steps without shifts (2-pixel
shifts on 8x8 images would need far more steps); it reaches about 0.85 on the test split.
"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import load

from experiments import cas_table
from genimg_jax import data, parallel
from genimg_jax.config import ConfigError
from genimg_jax.evaluation.cas import CasEvaluator
from genimg_jax.evaluation.samples import SampleEvaluator
from genimg_jax.methods import build_method
from genimg_jax.metrics import cas, classifier

CAS_8X8 = [
    "data.resolution=8",
    "eval.metrics=cas",
    "eval.batch_size=256",
    "eval.cas_steps=100",
    "eval.cas_batch_size=32",
    "eval.cas_max_shift=0",
]


class _ClassBank:
    """A class-conditional "generator" whose sample for class c is a random real training image of class
    (c + shift) mod 10: shift 0 imitates a perfect model, shift 1 one that draws every class as the next."""

    def __init__(self, shift: int):
        self.shift = shift

    def conditioning_fields(self):
        return ("label",)

    def sample(self, bank, rng, num, conditioning=None):
        picks = jax.random.randint(rng, (num,), 0, bank.shape[1])
        return bank[(conditioning["label"] + self.shift) % 10, picks]


def stand_in_run(config, method):
    mesh = parallel.make_mesh(config.mesh)
    return types.SimpleNamespace(method=method, mesh=mesh, state_sharding=parallel.replicated(mesh))


@pytest.fixture(scope="module")
def wrong_classes(tmp_path_factory):
    """CAS of the shift-1 generator through the sample evaluator: (evaluator, values, bank of real images)."""
    config = load("cgan_projection.py", *CAS_8X8)
    cache_dir = tmp_path_factory.mktemp("cas")
    evaluator = SampleEvaluator(config, stand_in_run(config, _ClassBank(1)), cache_dir)
    train = evaluator.cas.real_train
    size = np.bincount(train.labels).min()
    bank = jnp.stack([data.to_unit_range(train.images[train.labels == c][:size]) for c in range(10)])
    return evaluator, evaluator.evaluate(bank), bank


def test_real_train_split_as_the_generator_scores_exactly_the_real_baseline(wrong_classes):
    """Same images, labels and seed as the baseline's classifier: the same accuracy, overall and per class."""
    evaluator, _, _ = wrong_classes
    scorer = evaluator.cas
    baseline = scorer.real_baseline()
    # The synthetic-set path of classification_accuracy_scores, given the real train split as its samples.
    score = cas.held_out_accuracy(scorer.real_train, scorer.test, 10, scorer.recipe, scorer.sharding)
    assert score == baseline  # overall and every class
    assert baseline.overall > 0.7


def test_a_generator_of_the_wrong_classes_scores_near_zero(wrong_classes):
    evaluator, values, bank = wrong_classes
    assert values["cas_accuracy"] < 0.1 < 0.7 < values["cas_real_baseline"]
    per_class = {f"cas_{kind}_class_{c}" for kind in ("accuracy", "real_baseline") for c in range(10)}
    assert set(values) == {"cas_accuracy", "cas_real_baseline", "cas_naive_augmentation"} | per_class
    # As many samples as the train split, balanced over the classes, each a bank image of the next class.
    synthetic = evaluator.cas.synthetic(bank)
    num = len(evaluator.cas.real_train.labels)
    assert np.bincount(synthetic.labels, minlength=10).tolist() == [num // 10] * 10
    bank_uint8 = data.from_unit_range(bank)
    for image, label in zip(synthetic.images[:50], synthetic.labels[:50], strict=True):
        assert (bank_uint8[(label + 1) % 10] == image).all(axis=(1, 2, 3)).any()
    # The test split is not balanced: the overall accuracy is the class-count-weighted mean of the per-class ones.
    counts = np.bincount(evaluator.cas.test.labels, minlength=10)
    for kind in ("accuracy", "real_baseline"):
        per_class_values = [values[f"cas_{kind}_class_{c}"] for c in range(10)]
        np.testing.assert_allclose(np.dot(per_class_values, counts) / counts.sum(), values[f"cas_{kind}"])
    assert evaluator.protocol()["cas"]["num_synthetic"] == num


def test_the_real_baseline_is_read_back_from_the_cache_not_retrained(wrong_classes, monkeypatch):
    evaluator, values, _ = wrong_classes

    def fail(*args):
        raise AssertionError("the cached real baseline was trained again")

    monkeypatch.setattr(classifier, "train_classifier", fail)
    again = CasEvaluator(evaluator.config, stand_in_run(evaluator.config, _ClassBank(0)), evaluator.cache_dir)
    assert again.real_baseline().overall == values["cas_real_baseline"]


def test_per_class_accuracies_average_to_the_overall_on_a_balanced_split():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    predictions = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 10, 300))
    overall, per_class = classifier.class_accuracies(predictions, labels, 10)
    expected = [np.mean(predictions[labels == c] == c) for c in range(10)]
    np.testing.assert_allclose(per_class, expected)
    assert overall == pytest.approx(np.mean(per_class)) == pytest.approx(np.mean(predictions == labels))
    _, with_absent_class = classifier.class_accuracies(predictions[labels < 9], labels[labels < 9], 10)
    assert np.isnan(with_absent_class[9])


@pytest.mark.parametrize(
    ("config_name", "overrides", "message"),
    [
        ("dcgan.py", [], r"asks for cas, which needs a class-conditional method .* conditions on \(\)"),
        ("cgan_projection.py", ["eval.cas_steps=0"], r"config.eval.cas_steps=0 is invalid: must be positive"),
    ],
)
def test_cas_needs_a_class_conditional_method_and_a_valid_recipe(config_name, overrides, message, tmp_path):
    config = load(config_name, *CAS_8X8, *overrides)
    with pytest.raises(ConfigError, match=message) as error:
        SampleEvaluator(config, stand_in_run(config, build_method(config)), tmp_path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", sorted(cas_table.CONDITIONAL_CONFIGS))
def test_the_cas_table_lists_class_conditional_setups(name):
    spec, overrides = cas_table.CONDITIONAL_CONFIGS[name]
    config = load(spec, *overrides)
    assert build_method(config).conditioning_fields() == ("label",)


def test_the_cas_table_puts_each_run_beside_its_baseline():
    values = {"cas_accuracy": 0.6, "cas_real_baseline": 0.8, "cas_naive_augmentation": 0.85}
    values |= {f"cas_accuracy_class_{c}": c / 10 for c in range(3)}
    values |= {f"cas_real_baseline_class_{c}": 1 - c / 10 for c in range(3)}
    rows = cas_table.markdown({"ddpm_guided": (1500, values, 16)}).splitlines()
    assert rows[2] == "| `ddpm_guided` | 16x16 | 1500 | 0.600 | 0.800 | 0.75 | 0.850 |"
    assert rows[-1] == "| `ddpm_guided` | 0.00 / 1.00 | 0.10 / 0.90 | 0.20 / 0.80 |"
