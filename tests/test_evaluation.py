"""The digits feature net, reference-feature cache, memorization audit, and evaluation wired into training,
`--mode=eval` and `--mode=audit`."""

import dataclasses
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from inception_reference import GOLDEN, random_state_dict
from PIL import Image
from tiny_configs import CONFIGS, as_flags, load
from torch_format import write_state_dict

from genimg_jax import data, main, parallel
from genimg_jax.config import ConfigError
from genimg_jax.evaluation import audit
from genimg_jax.evaluation.samples import SampleEvaluator, equal_sized
from genimg_jax.metrics import digits_net, features, fid, kid, precision_recall, reference
from genimg_jax.training import trainer
from genimg_jax.training.checkpoint import Checkpointer

# A tiny DCGAN at the digits net's 32x32, evaluated on 40 samples (not a multiple of the eval batch).
TINY_GAN_WITH_EVAL = [
    "model.g_features=8",
    "model.d_features=8",
    "model.latent_dim=16",
    "train.batch_size=16",
    "train.steps=4",
    "train.log_every=2",
    "train.sample_every=0",
    "train.checkpoint_every=2",
    "eval.every=2",
    "eval.metrics=fid,kid,is,pr",
    "eval.batch_size=16",
    "eval.num_samples=40",
    "eval.kid_subsets=5",
    "eval.kid_subset_size=20",
    "eval.is_splits=4",
    "eval.best_metric=fid",
]


@pytest.fixture(scope="module")
def digits_net_outputs():
    net = features.load_feature_net("digits")
    mesh = parallel.make_mesh(load("dcgan.py").mesh)
    outputs = {}
    for split in ("train", "test"):
        source = data.make_source("digits", split=split, resolution=32, channels=1)
        outputs[split] = reference.source_features(net, source, 64, parallel.batch_sharding(mesh))
        outputs[split]["labels"] = np.array([source[i]["label"] for i in range(len(source))])
    noise = np.random.default_rng(0).integers(0, 256, (297, 32, 32, 1), dtype=np.uint8)
    outputs["noise"] = jax_apply(net, noise)
    return outputs


def jax_apply(net, images):
    return {name: np.asarray(value) for name, value in net.apply(net.variables, data.to_unit_range(images)).items()}


def test_shipped_digits_net_classifies_the_test_split(digits_net_outputs):
    test = digits_net_outputs["test"]
    assert len(test["labels"]) == 297
    assert np.mean(np.argmax(test["logits"], -1) == test["labels"]) >= 0.97


def test_digits_metrics_order_real_test_images_far_above_noise(digits_net_outputs):
    train, test, noise = (digits_net_outputs[k]["features"] for k in ("train", "test", "noise"))
    fid_test, fid_noise = fid.fid_from_features(test, train), fid.fid_from_features(noise, train)
    assert fid_test * 20 < fid_noise
    kid_test, kid_noise = (kid.kernel_inception_distance(x, train, 10, 200)[0] for x in (test, noise))
    assert kid_test * 20 < kid_noise
    precision_test, recall_test = precision_recall.precision_recall(train, test)
    precision_noise, _ = precision_recall.precision_recall(train, noise)
    assert precision_test > 0.8 and recall_test > 0.8 and precision_noise < 0.05


@pytest.mark.parametrize("override, shape", [("data.resolution=64", "64x64x1"), ("data.channels=3", "32x32x3")])
def test_digits_net_refuses_larger_or_colour_images(override, shape):
    config = load("dcgan.py", override)
    with pytest.raises(ConfigError, match=rf"config.eval.feature_net='digits'.*at most 32x32 with 1 .*not {shape}"):
        SampleEvaluator(config, run=None, workdir="unused")  # refused before the run is looked at


def test_digits_net_upsamples_smaller_images_bilinearly():
    """16x16 digits reach the net as their bilinear 32x32 upsampling and are still classified as their digits."""
    net = features.load_feature_net("digits")
    net.check_images(16, 1)  # accepted
    source = data.make_source("digits", split="test", resolution=16, channels=1)
    images = data.to_unit_range(np.stack([source[i]["image"] for i in range(len(source))]))
    labels = np.array([source[i]["label"] for i in range(len(source))])
    logits = np.asarray(net.apply(net.variables, images)["logits"])
    upsampled = jax.image.resize(images, (len(source), 32, 32, 1), "bilinear", antialias=False)
    expected = digits_net.DigitsNet().apply(net.variables, upsampled)["logits"]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    assert np.mean(logits.argmax(axis=1) == labels) > 0.9


class _PrototypeSampler:
    """A class-conditional "generator" whose sample for class c is the prototype of class (c + shift) mod 10."""

    def __init__(self, shift: int):
        self.shift = shift

    def conditioning_fields(self):
        return ("label",)

    def sample(self, prototypes, rng, num, conditioning=None):
        return prototypes[(conditioning["label"] + self.shift) % 10]


@pytest.mark.parametrize(("shift", "expected"), [(0, 1.0), (1, 0.0)])
def test_label_accuracy_checks_each_sample_against_the_class_it_was_drawn_for(shift, expected, tmp_path):
    """Prototypes the digits net classifies correctly: drawn for their own class, every sample counts; drawn for
    the next class, none does. 50 samples in batches of 16 also check that labels stay aligned across batches."""
    net = features.load_feature_net("digits")
    source = data.make_source("digits", split="test", resolution=32, channels=1)
    images = data.to_unit_range(np.stack([source[i]["image"] for i in range(200)]))
    labels = np.array([source[i]["label"] for i in range(200)])
    correct = np.argmax(net.apply(net.variables, images)["logits"], axis=-1) == labels
    prototypes = jnp.stack([images[np.flatnonzero(correct & (labels == c))[0]] for c in range(10)])
    overrides = ["model.num_classes=10", "eval.metrics=label_accuracy", "eval.num_samples=50", "eval.batch_size=16"]
    config = load("dcgan.py", *overrides)
    mesh = parallel.make_mesh(config.mesh)
    run = types.SimpleNamespace(method=_PrototypeSampler(shift), mesh=mesh, state_sharding=parallel.replicated(mesh))
    evaluator = SampleEvaluator(config, run, tmp_path)
    assert evaluator.evaluate(prototypes) == {"label_accuracy": expected}
    # Balanced over all 50 samples (not restarting at each batch of 16): every class exactly 5 times.
    generated, _ = evaluator.generate(prototypes)
    assert np.bincount(generated["label"], minlength=10).tolist() == [5] * 10


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["eval.metrics=label_accuracy"], r"needs a class-conditional model"),
        (["eval.metrics=label_accuracy", "model.num_classes=10", "eval.feature_net=inception"], r"classifies the data"),
    ],
)
def test_label_accuracy_needs_a_conditional_model_and_a_dataset_classifier(overrides, message):
    config = load("dcgan.py", *overrides)
    with pytest.raises(ConfigError, match=rf"config.eval.metrics='label_accuracy'.*{message}"):
        SampleEvaluator(config, run=None, workdir="unused")


def test_reference_features_are_cached_by_everything_they_depend_on(tmp_path, monkeypatch):
    net = features.load_feature_net("digits")
    source = data.make_source("digits", split="test", resolution=32, channels=1)
    sharding = parallel.batch_sharding(parallel.make_mesh(load("dcgan.py").mesh))
    key = reference.cache_key("digits", "", "test", 32, 1, net)
    first = reference.cached_source_features(net, source, key, tmp_path, 64, sharding)

    def fail(*args):
        raise AssertionError("recomputed although cached")

    with monkeypatch.context() as patch:
        patch.setattr(reference, "source_features", fail)
        second = reference.cached_source_features(net, source, key, tmp_path, 64, sharding)
        np.testing.assert_array_equal(first["features"], second["features"])
        with pytest.raises(AssertionError, match="recomputed"):  # other weights: a different entry
            other_weights = {**key, "feature_net_weights_sha256": "x"}
            reference.cached_source_features(net, source, other_weights, tmp_path, 64, None)
    assert len(first["features"]) == len(source) == 297


def test_audit_finds_copies_of_training_images(tmp_path):
    rng = np.random.default_rng(0)
    train_features = rng.standard_normal((100, 8))
    train_images = rng.integers(0, 256, (100, 8, 8, 1), dtype=np.uint8)
    test_features = train_features[:50] + 0.3 * rng.standard_normal((50, 8))
    copied = np.array([5, 17, 42])
    sample_features = np.concatenate([train_features[copied] + 1e-3, rng.standard_normal((2, 8)) * 10 + 30])
    samples = np.concatenate([train_images[copied], np.zeros((2, 8, 8, 1), np.uint8)])
    search = audit.NeighbourSearch(train_features, neighbours=3)
    for start in range(0, 5, 2):  # streamed in batches of 2, 2 and 1
        search.add(samples[start : start + 2], sample_features[start : start + 2])
    report = audit.write_report(tmp_path, search, train_images.__getitem__, test_features, {"p": 1}, {"seed": "0"})
    assert report["fraction_closer_than_typical_test"] == pytest.approx(3 / 5)
    assert report["fraction_closer_than_5th_percentile_test"] == pytest.approx(3 / 5)
    assert sorted(p["train_neighbours"][0] for p in report["pictured"][:3]) == sorted(copied.tolist())
    assert sorted(p["sample"] for p in report["pictured"][3:]) == [3, 4]
    picture = np.asarray(Image.open(tmp_path / "neighbours.png"))
    assert picture.shape[:2] == (8 * (5 * 10 + 2), 8 * (4 * 10 + 2))  # 5 rows of sample + 3 neighbours, 8x scaled
    assert (tmp_path / "distances.png").is_file()
    assert json.loads((tmp_path / "report.json").read_text())["protocol"] == {"p": 1}


def test_brute_force_nearest_neighbours():
    rng = np.random.default_rng(1)
    queries, keys = rng.standard_normal((30, 4)), rng.standard_normal((50, 4))
    distances, indices = audit.nearest_neighbours(queries, keys, 4)
    full = np.sqrt(((queries[:, None] - keys[None]) ** 2).sum(-1))
    np.testing.assert_array_equal(indices, np.argsort(full, axis=1)[:, :4])
    np.testing.assert_allclose(distances, np.sort(full, axis=1)[:, :4], atol=1e-9)


@pytest.mark.slow  # ~30 s: a run with evaluations, then eval mode
def test_training_evaluates_keeps_the_best_checkpoint_and_eval_mode_reproduces_it(tmp_path, capsys):
    config = load("dcgan.py", *TINY_GAN_WITH_EVAL)
    trainer.train(config, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # Sample metrics are named for the split they compare with (eval.reference_split), not data.eval_split.
    assert config.eval.reference_split == "train" and config.data.eval_split == "test"
    evals = {r["step"]: r for r in records if r["split"] == "samples_vs_train"}
    assert sorted(evals) == [2, 4] and not any(r["split"] == "test" for r in records)  # a GAN has no likelihood
    assert "eval at step 4 | samples_vs_train: fid " in capsys.readouterr().out
    for record in evals.values():
        assert record["fid"] > 0 and 1.0 <= record["is_mean"] <= 10.0 and 0 <= record["precision"] <= 1
    written = json.loads((tmp_path / "eval_0000004.json").read_text())
    protocol = written["protocol"]
    assert written["values"]["fid"] == evals[4]["fid"]
    assert protocol["feature_net"] == "digits" and protocol["num_samples"] == 40 and protocol["resolution"] == 32
    assert protocol["feature_net_weights_sha256"] == features.file_hash(digits_net.WEIGHTS_PATH)
    assert protocol["reference"] == {"dataset": "digits", "split": "train", "num_images": 1500}
    assert protocol["conditioning"] is None  # an unconditional model

    best_step = min(evals, key=lambda step: evals[step]["fid"])
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert best["step"] == best_step and best["values"]["fid"] == evals[best_step]["fid"]
    assert Checkpointer(tmp_path / "best", keep=1, every=0).all_steps() == [best_step]

    # The checkpoint of step 4, evaluated afterwards, gives the numbers training logged (same sample keys).
    (tmp_path / "eval_0000004.json").unlink()
    flags = [f"--config={CONFIGS / 'dcgan.py'}", f"--workdir={tmp_path}", *as_flags(TINY_GAN_WITH_EVAL)]
    assert main.main([*flags, "--mode=eval"]) == 0
    posthoc = json.loads((tmp_path / "eval_0000004.json").read_text())["values"]
    for name in ("fid", "kid_mean", "is_mean", "precision", "recall"):
        assert posthoc[name] == pytest.approx(evals[4][name], rel=1e-5, abs=1e-7)

    assert main.main([*flags, "--mode=audit"]) == 0
    report = json.loads((tmp_path / "audit_0000004" / "report.json").read_text())
    assert report["num_samples"] == 40 and report["num_train"] == 1500 and report["num_test"] == 297
    assert 0 <= report["fraction_closer_than_typical_test"] <= 1
    distances = [p["distances"][0] for p in report["pictured"]]
    assert distances == sorted(distances) and len(distances) == 16


def test_eval_mode_without_inception_weights_says_which_file_and_where(tmp_path, capsys):
    flags = [f"--config={CONFIGS / 'dcgan.py'}", f"--workdir={tmp_path}", "--mode=eval"]
    assert main.main([*flags, "--config.eval.feature_net=inception"]) == 2
    error = capsys.readouterr().err
    assert "pt_inception-2015-12-05-6726825d.pth" in error and "--config.eval.inception_weights=PATH" in error
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_samples_reach_the_feature_net_on_uint8_levels_as_real_images_do():
    """data.quantized == the round trip through a uint8 PNG, inside jit, including values outside [-1, 1]."""
    images = np.random.default_rng(3).uniform(-1.2, 1.2, (4, 8, 8, 3)).astype(np.float32)
    expected = data.to_unit_range(data.from_unit_range(images))
    np.testing.assert_array_equal(jax.jit(data.quantized)(images), expected)
    assert len(np.unique(np.asarray(expected))) <= 256


class _OffGridSampler:
    """An unconditional "generator" whose every sample is the one float image it is given as its state."""

    def conditioning_fields(self):
        return ()

    def sample(self, image, rng, num, conditioning=None):
        return jnp.broadcast_to(image, (num, *image.shape))


def test_evaluation_hands_the_feature_net_the_quantized_samples(tmp_path):
    """What the evaluator's compiled step passes to the feature net is the samples snapped to uint8 levels, not the
    method's floats: a net that returns its input as features gives back data.quantized of the sample."""
    config = load("dcgan.py", "eval.metrics=fid", "eval.num_samples=8", "eval.batch_size=8")
    mesh = parallel.make_mesh(config.mesh)
    run = types.SimpleNamespace(method=_OffGridSampler(), mesh=mesh, state_sharding=parallel.replicated(mesh))
    evaluator = SampleEvaluator(config, run, tmp_path)
    evaluator.net = dataclasses.replace(
        evaluator.net, apply=lambda variables, images: {"features": images.reshape(images.shape[0], -1)}
    )
    evaluator._generate = evaluator._compile_generate(run)  # rebuilt around the echoing net
    image = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, (32, 32, 1)), jnp.float32)
    features_seen = next(evaluator.stream(image))["features"]
    expected = np.asarray(data.quantized(image)).reshape(1, -1)
    np.testing.assert_array_equal(features_seen, np.repeat(expected, 8, axis=0))
    assert np.abs(expected - np.asarray(image).reshape(1, -1)).max() > 1e-3  # the floats were off the uint8 grid


def test_precision_recall_sets_are_cut_to_equal_size_by_a_fixed_subset():
    real, generated = np.arange(50)[:, None] * 1.0, np.arange(20)[:, None] + 0.5
    cut_real, same_generated = equal_sized(real, generated)
    assert len(cut_real) == 20 and same_generated is generated
    assert set(cut_real[:, 0]) <= set(real[:, 0]) and len(set(cut_real[:, 0])) == 20
    np.testing.assert_array_equal(equal_sized(real, generated)[0], cut_real)  # the same subset every time


@pytest.mark.parametrize("name", ["digits", "inception"])
def test_feature_nets_run_every_matmul_and_convolution_at_full_float32_precision(name, tmp_path):
    """Pinned whatever the backend's default (TF32 on recent GPUs, one bf16 pass on TPU): the lowered program
    asks for HIGHEST precision in every dot and convolution."""
    if name == "inception":
        path = tmp_path / "pt_inception_random.pth"
        golden = np.load(GOLDEN)
        shapes = [tuple(int(d) for d in s.split(",")) for s in golden["shapes"]]
        write_state_dict(path, random_state_dict([str(n) for n in golden["names"]], shapes))
    net = features.load_feature_net(name, str(tmp_path / "pt_inception_random.pth"))
    text = jax.jit(net.apply).lower(net.variables, jnp.zeros((2, 32, 32, 1))).as_text()
    products = text.count("stablehlo.convolution") + text.count("stablehlo.dot_general")
    assert products > 0 and text.count("precision HIGHEST") >= products
    assert net.protocol()["matmul_precision"] == "float32"
