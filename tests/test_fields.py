"""A source with a field beyond image and label flows through training, sampling and evaluation: a test-only
source (digits plus `source`, the inverted digit) and a test-only method that predicts the image from it."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genimg_jax import data, methods
from genimg_jax.config import adam_config, base_config
from genimg_jax.evaluation.samples import SampleEvaluator
from genimg_jax.training import trainer
from genimg_jax.training.compiled_run import compile_run


class InvertedPairs:
    """Digits whose examples also hold `source` = 255 - image: an image-to-image pair with a known mapping."""

    def __init__(self, argument: str, split: str, options: data.SourceOptions):
        self._digits = data.make_source("digits", split=split, resolution=options.resolution, channels=options.channels)
        self.fields = pair_fields(options)
        self.num_classes, self.class_names = self._digits.num_classes, self._digits.class_names

    def __len__(self) -> int:
        return len(self._digits)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        digit = self._digits[index]
        return {**digit, "source": 255 - digit["image"]}


def pair_fields(options: data.SourceOptions) -> dict[str, data.Field]:
    image = data.Field((options.resolution, options.resolution, options.channels), np.dtype(np.uint8))
    return {"image": image, "label": data.Field((), np.dtype(np.int32)), "source": image}


class PairRegression:
    """Predicts an image from its `source` field as a * source + b (two scalars, pixels in [-1, 1]), trained by
    least squares; its samples are that prediction, so they are a closed-form function of the conditioning."""

    def __init__(self, config):
        self.config = config
        self.optimizer = optax.adam(config.optim.learning_rate)

    def conditioning_fields(self) -> tuple[str, ...]:
        return ("source",)

    def predict(self, params, source):
        return params["a"] * data.to_unit_range(source) + params["b"]

    def _errors(self, params, batch):
        difference = self.predict(params, batch["source"]) - data.to_unit_range(batch["image"])
        return jnp.mean(difference.reshape(difference.shape[0], -1) ** 2, axis=-1)

    def init_state(self, rng, example_batch):
        params = {"a": jnp.zeros(()), "b": jnp.zeros(())}
        return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": self.optimizer.init(params)}

    def train_step(self, state, batch):
        loss, grads = jax.value_and_grad(lambda params: jnp.mean(self._errors(params, batch)))(state["params"])
        updates, opt_state = self.optimizer.update(grads, state["opt_state"])
        params = optax.apply_updates(state["params"], updates)
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, {"loss": loss}

    def sample(self, state, rng, num, conditioning=None):
        if conditioning is None:
            raise ValueError("PairRegression samples from a `source` field; it has no default")
        return jnp.clip(self.predict(state["params"], conditioning["source"]), -1.0, 1.0)

    def evaluate_batch(self, state, batch, rng):
        return {"mse": self._errors(state["params"], batch)}


@pytest.fixture
def pair_config(monkeypatch):
    monkeypatch.setitem(data.SOURCE_KINDS, "inverted_pairs", data.SourceKind(InvertedPairs, pair_fields))
    monkeypatch.setitem(methods.METHODS, "pair_regression", PairRegression)
    config = base_config()
    config.method = "pair_regression"
    config.data.source = "inverted_pairs"
    config.data.resolution = 16
    config.optim = adam_config(0.1)
    config.train.update(steps=30, batch_size=16, log_every=10, sample_every=0, checkpoint_every=30)
    config.eval.update(
        every=30, batch_size=16, metrics="fid", num_samples=40, reference_split="test", feature_net="digits"
    )
    return config


def test_the_shapes_of_every_declared_field_are_known_without_reading_data(pair_config):
    batch = data.example_batch(pair_config.data, 8)
    assert {name: (value.shape, value.dtype) for name, value in batch.items()} == {
        "image": ((8, 16, 16, 1), jnp.uint8),
        "label": ((8,), jnp.int32),
        "source": ((8, 16, 16, 1), jnp.uint8),
    }


def test_a_conditioning_field_flows_through_training_sampling_and_evaluation(pair_config, tmp_path):
    state = trainer.train(pair_config, tmp_path)  # 8 simulated devices: every field is sharded like the batch
    params = jax.device_get(state["params"])
    assert params["a"] < -0.5  # learned that the image is the inverse of its source

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    (evaluation,) = [record for record in records if record["split"] == "test"]  # on the held-out split
    (sample_metrics,) = [record for record in records if record["split"] == "samples_vs_test"]  # reference: test
    eval_source = data.source_from_config(pair_config.data, "test")
    images = data.to_unit_range(np.stack([eval_source[i]["image"] for i in range(len(eval_source))]))
    untrained_mse = float(np.mean(np.asarray(images) ** 2))  # a = b = 0 predicts 0
    assert evaluation["mse"] < 0.5 * untrained_mse and sample_metrics["fid"] > 0 and "fid" not in evaluation

    evaluator = SampleEvaluator(pair_config, compile_run(pair_config), tmp_path)
    generated, _ = evaluator.generate(state, keep_images=True)
    assert evaluator.protocol()["conditioning"] == {"fields": ["source"], "split": "test", "order": "index, cycled"}
    expected_sources = np.stack([eval_source[i]["source"] for i in range(40)])  # the eval split, in order
    np.testing.assert_array_equal(generated["source"], expected_sources)
    predicted = data.from_unit_range(np.clip(params["a"] * data.to_unit_range(expected_sources) + params["b"], -1, 1))
    assert np.abs(generated["images"].astype(int) - predicted.astype(int)).max() <= 1
    # Each sample depends on its own conditioning: it is far closer to its example's image than to the others'.
    targets = np.stack([eval_source[i]["image"] for i in range(40)]).reshape(40, -1).astype(float)
    distances = np.abs(generated["images"].reshape(40, -1)[:, None].astype(float) - targets[None]).mean(-1)
    assert np.all(np.argmin(distances, axis=1) == np.arange(40))
