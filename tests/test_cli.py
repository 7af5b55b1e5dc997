"""The command line end to end: train, sample, and one-line errors that leave the workdir untouched."""

import pytest
from tiny_configs import CONFIGS, TINY_GAN, as_flags

from genimg_jax import main as cli
from genimg_jax.config import apply_overrides, load_config
from genimg_jax.tools import benchmark

CONFIG = str(CONFIGS / "dcgan.py")
TINY = as_flags([*TINY_GAN, "train.steps=2", "train.num_sample_images=4"])


def test_train_then_sample(tmp_path, capsys):
    assert cli.main(["--config", CONFIG, f"--workdir={tmp_path}", *TINY]) == 0
    out = capsys.readouterr().out
    assert "starting a new run" in out
    assert "step 2/2 |" in out and "steps/s | ETA" in out
    assert f"everything is in {tmp_path}" in out
    assert cli.main(["--config", CONFIG, f"--workdir={tmp_path}", "--mode=sample", *TINY]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path}/samples/sample_step_0000002_0.png"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--config.data.source=tfds:genimg_not_prepared", "config.data.source: tfds:genimg_not_prepared: "),
        ("--config.data.source=folder:/no/such/folder", "config.data.source: image folder '/no/such/folder'"),
        ("--config.data.source=mnist", "config.data.source: unknown data source 'mnist'"),
    ],
)
def test_data_errors_are_one_line_and_write_nothing(tmp_path, capsys, override, message):
    workdir = tmp_path / "run"
    assert cli.main(["--config", CONFIG, f"--workdir={workdir}", *TINY, override]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error
    assert error.count("\n") == 1
    assert not workdir.exists()


def test_sample_without_checkpoint_is_an_error(tmp_path, capsys):
    assert cli.main(["--config", CONFIG, f"--workdir={tmp_path}", "--mode=sample", *TINY]) == 2
    assert "no checkpoint in" in capsys.readouterr().err


def test_benchmark_reports_consistent_numbers():
    config = apply_overrides(load_config(CONFIG), [arg[len("--config.") :] for arg in TINY])
    results = benchmark.benchmark(config, repeats=2, steps_per_repeat=2, warmup=1)
    assert results["devices"] == 8 and results["global_batch"] == 16
    assert results["steps_per_s_min"] <= results["steps_per_s"] <= results["steps_per_s_max"]
    assert results["images_per_s"] == pytest.approx(16 * results["steps_per_s"])
    assert results["gflop_per_step"] > 0
    assert results["achieved_gflop_per_s"] == pytest.approx(results["gflop_per_step"] * results["steps_per_s"])
    assert results["step_memory_mib"] > 0 and results["compile_s"] > 0
