"""The command line end to end: train, sample, and one-line errors that leave the workdir untouched."""

import pkgutil
import subprocess
import sys

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


def test_benchmark_all_measures_every_config_against_the_matmul_rate(tmp_path, capsys):
    """--all prints the matmul yardstick, one row per config with its FLOP rate as a fraction of it, and why a
    config could not run."""
    tiny = [arg[len("--config.") :] for arg in TINY]
    (tmp_path / "tiny.py").write_text(
        "from genimg_jax.config import apply_overrides, load_config\n\n\n"
        f"def get_config(variant=''):\n    return apply_overrides(load_config({CONFIG!r}), {tiny!r})\n"
    )
    (tmp_path / "needs_weights.py").write_text(
        "def get_config(variant=''):\n    raise FileNotFoundError('weights.pth does not exist')\n"
    )
    flags = ["--all", f"--configs={tmp_path}", "--repeats=1", "--steps_per_repeat=2", "--warmup=1"]
    assert benchmark.main(flags) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith("| config | batch | compile_s |")
    tiny_row = next(line for line in lines if line.startswith("| `tiny` | 16 |")).split(" | ")
    yardstick = float(lines[-1].split(": ")[1].split()[0])
    achieved, fraction = float(tiny_row[5]), float(tiny_row[7].rstrip("% |")) / 100
    assert yardstick > 0 and fraction == pytest.approx(achieved / yardstick, abs=0.006 + 0.002 * fraction)
    assert "| `needs_weights` | not run: weights.pth does not exist |" in lines
    assert benchmark.main(["--all", f"--configs={tmp_path}", "--only=missing"]) == 2
    assert "--only names configs not in" in capsys.readouterr().err


def test_importing_the_commands_leaves_jax_uninitialised():
    """`jax.distributed.initialize` must come before anything starts the XLA backend, so no module a command
    imports may compute with JAX at import time (a module-level `jnp.array` constant broke multi-process runs)."""
    import genimg_jax.tools

    tools = [f"genimg_jax.tools.{module.name}" for module in pkgutil.iter_modules(genimg_jax.tools.__path__)]
    program = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)\n"
    program += "import jax._src.xla_bridge as xb\nprint(sorted(xb._backends))"
    command = [sys.executable, "-c", program, "genimg_jax.main", *tools]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert len(tools) > 10 and result.stdout.strip() == "[]"
