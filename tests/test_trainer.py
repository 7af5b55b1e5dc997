"""The training loop end to end: what a run writes, exact resume, and 1-device vs 8-device equality."""

import hashlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from tiny_configs import CONFIGS, as_flags, load
from tiny_configs import TINY_GAN as TINY

from genimg_jax import data, main, parallel
from genimg_jax.config import ConfigError, apply_overrides
from genimg_jax.evaluation import from_checkpoint
from genimg_jax.methods.gan.gan import GAN
from genimg_jax.training import compiled_run, trainer
from genimg_jax.training.checkpoint import Checkpointer

TINY_GAN = [*TINY, "train.log_every=2", "train.sample_every=3", "train.checkpoint_every=2"]


def _config(name, *overrides):
    return load(name, *overrides)


def _tiny_gan(*overrides):
    return _config("dcgan.py", *TINY_GAN, *overrides)


def _leaves(state):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(jax.device_get(state))]


def test_run_writes_checkpoints_samples_metrics_events_and_config(tmp_path):
    config = _tiny_gan("train.steps=6", "train.keep_checkpoints=2")
    trainer.train(config, tmp_path)
    assert Checkpointer(tmp_path / "checkpoints", keep=2, every=0).all_steps() == [4, 6]
    samples = sorted(p.name for p in (tmp_path / "samples").glob("*.png"))
    assert samples == ["step_0000003.png", "step_0000006.png"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6]
    assert all(np.isfinite(r["d_loss"]) and r["steps_per_second"] > 0 for r in records)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["train"]["steps"] == 6 and saved["model"]["g_features"] == 8


def test_resume_equals_uninterrupted_run(tmp_path):
    """2N steps in one go == N steps, stop, resume to 2N (params, optimizer, EMA, step and data position)."""
    straight = trainer.train(_tiny_gan("train.steps=6"), tmp_path / "straight")
    trainer.train(_tiny_gan("train.steps=3", "train.checkpoint_every=0"), tmp_path / "resumed")
    resumed = trainer.train(_tiny_gan("train.steps=6"), tmp_path / "resumed")
    assert int(resumed.step) == 6
    for a, b in zip(_leaves(straight), _leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 3, 4, 6]


def test_an_evaluation_that_dies_loses_no_training(tmp_path, monkeypatch):
    """The step's checkpoint is saved before its samples and evaluation, so a failure there (or a kill during a
    long final evaluation) keeps the trained state."""

    def dies(*args, **kwargs):
        raise RuntimeError("evaluation died")

    monkeypatch.setattr(trainer, "_evaluate", dies)
    with pytest.raises(RuntimeError, match="evaluation died"):
        trainer.train(_tiny_gan("train.steps=3", "train.checkpoint_every=0", "eval.every=3"), tmp_path)
    assert Checkpointer(tmp_path / "checkpoints", keep=2, every=0).all_steps() == [3]


def test_resume_sets_aside_log_records_past_the_checkpoint(tmp_path):
    """Steps after the last checkpoint are recomputed on resume, so their old records must not stay twice."""
    trainer.train(_tiny_gan("train.steps=5", "train.checkpoint_every=4", "train.log_every=1"), tmp_path)
    # Simulate a crash after step 5 was logged but before its checkpoint committed.
    checkpointer = Checkpointer(tmp_path / "checkpoints", keep=3, every=0)
    assert checkpointer.all_steps() == [4, 5]
    (tmp_path / "checkpoints" / "5").rename(tmp_path / "step5_elsewhere")
    before = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    trainer.train(_tiny_gan("train.steps=5", "train.checkpoint_every=4", "train.log_every=1"), tmp_path)
    after = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in after] == [1, 2, 3, 4, 5]
    assert after[4]["d_loss"] == before[4]["d_loss"]  # the recomputed step is the same step
    # Nothing written is lost: the superseded record is kept beside the log.
    superseded = [json.loads(line) for line in (tmp_path / "metrics.superseded.jsonl").read_text().splitlines()]
    assert superseded == [before[4]]


@pytest.mark.slow  # ~40 s each: full runs and 8-device compiles
@pytest.mark.parametrize("config_name", ["dcgan.py", "vae.py"])
def test_one_device_and_eight_devices_give_the_same_step(config_name):
    assert jax.device_count() == 8
    config = _config(config_name, "data.resolution=16", "train.batch_size=16")
    if config_name == "dcgan.py":
        apply_overrides(config, ["model.g_features=8", "model.d_features=8"])
    source = data.make_source("digits", split="train", resolution=16, channels=1)
    local_batch = next(data.make_train_stream(source, global_batch_size=16, seed=0))
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        run = compiled_run.compile_run(config, parallel.make_mesh(config.mesh, devices))
        state = run.init(jax.random.PRNGKey(0))
        batch = data.make_global_batch(local_batch, run.batch_sharding)
        assert len(batch["image"].addressable_shards) == len(devices)
        for _ in range(2):
            state, metrics = run.train_step(state, batch)
        results.append((_leaves(state), jax.device_get(metrics)))
    (single, single_metrics), (multi, multi_metrics) = results
    # Reductions run in another order on 8 devices; Adam's first steps (about lr * sign(grad)) can turn a
    # float32 rounding difference in a near-zero gradient into a step-sized change, so params match to a
    # tenth of the learning rate.
    learning_rate = min(section.learning_rate for section in config.optim.values())
    for a, b in zip(single, multi, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=0.1 * learning_rate)
    for name in single_metrics:
        np.testing.assert_allclose(single_metrics[name], multi_metrics[name], rtol=1e-4)


def test_batch_not_divisible_by_devices_is_a_config_error():
    config = _tiny_gan("train.batch_size=12")
    with pytest.raises(ConfigError, match=r"config.train.batch_size=12 must be a multiple of the 8 batch shards"):
        compiled_run.compile_run(config, parallel.make_mesh(config.mesh))


@pytest.mark.slow  # ~40 s each: full runs and 8-device compiles
def test_vae_run_reports_test_split_elbo_and_sample_mode(tmp_path):
    vae_overrides = [
        "data.resolution=16",
        "train.batch_size=32",
        "train.steps=4",
        "train.log_every=4",
        "train.sample_every=4",
        "train.num_sample_images=16",
        "eval.every=4",
        "eval.batch_size=64",
        "eval.iwae_samples=8",
    ]
    config = _config("vae.py", *vae_overrides)
    trainer.train(config, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evaluation = [r for r in records if r["split"] == "test"]
    assert len(evaluation) == 1 and evaluation[0]["step"] == 4
    # The ELBO is averaged over every one of the 297 test images (padding masked out), in nats and bits/dim.
    assert evaluation[0]["bits_per_dim"] == pytest.approx(evaluation[0]["negative_elbo"] / (256 * np.log(2)))
    assert evaluation[0]["nll_iwae_nats"] < evaluation[0]["negative_elbo"]
    # The method's illustrations of a fixed test batch of 16 are written beside the samples at each sample step:
    # reconstructions as 2 rows of 8 (input, reconstruction) pairs of 16x16 tiles with 2 pixels of padding.
    pictures = {p.name: p for p in (tmp_path / "samples").glob("*.png")}
    assert set(pictures) == {"step_0000004.png", "reconstructions_step_0000004.png", "interpolations_step_0000004.png"}
    assert Image.open(pictures["reconstructions_step_0000004.png"]).size == (16 * 18 + 2, 2 * 18 + 2)
    # Interpolations: 8 rows of 8 steps; small grids are scaled up (here 2x) to about 256 pixels across.
    assert Image.open(pictures["interpolations_step_0000004.png"]).size == (2 * (8 * 18 + 2), 2 * (8 * 18 + 2))
    paths = from_checkpoint.sample(config, tmp_path)
    names = ["sample_step_0000004_0.png", "interpolations_step_0000004.png", "reconstructions_step_0000004.png"]
    assert [p.name for p in paths] == names
    assert all(p.exists() for p in paths)
    # --mode=sample grids are scaled like the training grids: 16 tiles of 16x16 in 4 columns, 4x to 296 pixels.
    assert Image.open(paths[0]).size == Image.open(pictures["step_0000004.png"]).size == (296, 296)

    # Every picture says where it came from: the config (config.json's hash), step, seed and, restored from a
    # checkpoint, the checkpoint's (its checksum manifest's hash); the training grid comes from the live state.
    # (--mode=sample rewrote the illustrations of step 4.)
    config_sha256 = hashlib.sha256((tmp_path / "config.json").read_bytes()).hexdigest()[:16]
    manifest = tmp_path / "checkpoints" / "4" / "checksums.json"
    checkpoint_sha256 = hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]
    live = (pictures["step_0000004.png"], "none (live training state)")
    for path, checkpoint in [live, *((restored, checkpoint_sha256) for restored in paths)]:
        text = Image.open(path).text
        assert (text["method"], text["step"], text["seed"]) == ("vae", "4", "0")
        assert text["config_sha256"] == config_sha256 and text["checkpoint_sha256"] == checkpoint
    assert Image.open(paths[0]).text["grid"] == "0" and Image.open(paths[1]).text["picture"] == "interpolations"

    # --mode=generate: the same command writes the same files, bit for bit, PNGs and .npz.
    flags = [f"--config={CONFIGS / 'vae.py'}", f"--workdir={tmp_path}", *as_flags(vae_overrides), "--mode=generate"]
    for name in ("a", "b"):
        assert main.main([*flags, "--num=5", f"--out={tmp_path / name}", "--npz", "--seed=2"]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["000000.png", "000001.png", "000002.png", "000003.png", "000004.png", "samples.npz"]
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    with np.load(tmp_path / "a" / "samples.npz") as arrays:
        assert arrays.files == ["x"] and arrays["x"].shape == (5, 16, 16, 1) and arrays["x"].dtype == np.uint8
        np.testing.assert_array_equal(arrays["x"][3, ..., 0], np.asarray(Image.open(tmp_path / "a" / "000003.png")))
    text = Image.open(tmp_path / "a" / "000003.png").text
    assert (text["checkpoint_sha256"], text["seed"], text["index"]) == (checkpoint_sha256, "2", "3")


def test_sample_mode_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        from_checkpoint.sample(_tiny_gan(), tmp_path)


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    """A NaN injected into the GAN's losses from step 5 on stops the run at the next log step."""
    original = GAN.train_step

    def poisoned(self, state, batch):
        new_state, metrics = original(self, state, batch)
        metrics["d_loss"] = jnp.where(state.step >= 4, jnp.nan, metrics["d_loss"])
        return new_state, metrics

    monkeypatch.setattr(GAN, "train_step", poisoned)
    with pytest.raises(FloatingPointError, match=r"non-finite d_loss at step 6; stopping \(checkpoint of step 4"):
        trainer.train(_tiny_gan("train.steps=10"), tmp_path)
    checkpointer = Checkpointer(tmp_path / "checkpoints", keep=3, every=0)
    assert checkpointer.all_steps() == [2, 4]
    run = compiled_run.compile_run(_tiny_gan(), parallel.make_mesh(_tiny_gan().mesh))
    state, data_state = checkpointer.restore(4, run.abstract_state)
    assert int(state.step) == 4 and data_state["step"] == 4
    assert all(np.isfinite(leaf).all() for leaf in _leaves(state))


def test_diverged_state_is_not_checkpointed_between_log_steps(tmp_path, monkeypatch):
    original = GAN.train_step

    def poisoned(self, state, batch):
        new_state, metrics = original(self, state, batch)
        metrics["g_loss"] = jnp.where(state.step == 4, jnp.inf, metrics["g_loss"])
        return new_state, metrics

    monkeypatch.setattr(GAN, "train_step", poisoned)
    config = _tiny_gan("train.steps=10", "train.log_every=100", "train.checkpoint_every=3")
    with pytest.raises(FloatingPointError, match=r"non-finite g_loss at step 6; stopping \(checkpoint of step 3"):
        trainer.train(config, tmp_path)
    assert Checkpointer(tmp_path / "checkpoints", keep=3, every=0).all_steps() == [3]
