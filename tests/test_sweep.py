"""Sweeps: grid expansion, validation before running, and a real two-run sweep with its results table."""

import csv
import pathlib
import subprocess
import sys

import pytest
from tiny_configs import TINY_GAN, as_flags

from experiments import sweep

ROOT = pathlib.Path(__file__).parent.parent
TINY = as_flags([*TINY_GAN, "train.steps=2", "train.log_every=2", "train.sample_every=0"])


def test_grid_points_are_the_cartesian_product():
    points = sweep.grid_points(["model.beta=0.5,1", "seed=0,1,2"])
    assert len(points) == 6
    assert points[0] == ["model.beta=0.5", "seed=0"] and points[-1] == ["model.beta=1", "seed=2"]
    assert sweep.grid_points([]) == [[]]
    assert sweep.run_name(points[0]) == "model.beta=0.5,seed=0"


def test_dry_run_prints_one_command_per_point(capsys, tmp_path):
    status = sweep.main(["--config=configs/vae.py", f"--workdir={tmp_path}", "--grid", "model.beta=1,4", "--dry_run"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert status == 0 and len(lines) == 2
    assert lines[1].endswith(f"--workdir={tmp_path}/model.beta=4 --config.model.beta=4")
    assert not list(tmp_path.iterdir())


def test_bad_grid_key_fails_before_any_run(capsys, tmp_path):
    status = sweep.main(["--config=configs/vae.py", f"--workdir={tmp_path}", "--grid", "model.bta=1,2"])
    assert status == 2
    assert "unknown config key config.model.bta; did you mean config.model.beta?" in capsys.readouterr().err


@pytest.mark.slow
def test_two_run_sweep_writes_a_results_table(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.sweep", "--config=configs/dcgan.py", f"--workdir={tmp_path}",
         "--grid", "seed=0,1", *TINY],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["run"] for row in rows] == ["seed=0", "seed=1"]
    assert all(row["status"] == "0" and row["step"] == "2" for row in rows)
    assert rows[0]["train/d_loss"] != rows[1]["train/d_loss"]  # different seeds, different runs
    assert "| seed=0 | 0 | 2 |" in (tmp_path / "results.md").read_text()
