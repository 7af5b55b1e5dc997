"""Studies: expansion into hashed workdirs, the runner (skip finished, resume, rerun only what changed, go on past a
failure), exact launch lines, the aggregated table, the report's pictures, and a reduced embedded ablation run for
real."""

import csv
import json
import pathlib
import re
import subprocess
import sys

import pytest

from genimg_jax.config import load_python_file
from genimg_jax.experiments import Published, Study, launch, results, runner
from genimg_jax.experiments.__main__ import main
from genimg_jax.experiments.study import expand, is_finished, load_study

ROOT = pathlib.Path(__file__).parent.parent
PROTOCOL = {
    "feature_net": "digits",
    "feature_net_weights_sha256": "abc123",
    "num_samples": 100,
    "sample_seed": 0,
    "reference": {"dataset": "digits", "split": "train", "num_images": 1500},
    "resolution": 32,
}
# Known per-run FIDs: (latent_dim, seed) -> value.
FID = {(8, 0): 1.0, (8, 1): 2.0, (8, 2): 3.0, (16, 0): 10.0, (16, 1): 20.0, (16, 2): 60.0, (32, 0): 5.0}


def tiny_study(**changes) -> Study:
    fields = dict(
        name="tiny",
        config="configs/dcgan.py",
        overrides={"train.steps": 4, "eval.every": 2},
        grid={"model.latent_dim": [8, 16]},
        seeds=(0, 1, 2),
        metrics=("fid", "recall"),
        published={"latent_dim=8": {"fid": Published(1.5, "A et al.", "Table 9", "50k samples")}},
    )
    return Study(**{**fields, **changes})


class FinishedProcess:
    """A fake training process that has already written what a finished run leaves behind."""

    def __init__(self, status: int = 0):
        self.status = status

    def poll(self) -> int:
        return self.status

    def terminate(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int:
        return self.status


def fake_training(run, started: list | None = None, status: int = 0) -> FinishedProcess:
    """Write a finished run's files with the known FID of its cell and seed."""
    if started is not None:
        started.append(run.run_id)
    if status == 0:
        steps, latent = run.config.train.steps, run.config.model.latent_dim
        (run.workdir / "checkpoints" / str(steps)).mkdir(parents=True)
        for step, fid in ((steps // 2, 99.0), (steps, FID[latent, run.seed])):
            record = {"step": step, "values": {"fid": fid, "recall": 0.5}, "protocol": PROTOCOL}
            (run.workdir / f"eval_{step:07d}.json").write_text(json.dumps(record))
        lines = [{"step": s, "split": "train", "d_loss": 1.0 / s, "g_loss": float(s)} for s in (1, 2, 3, 4)]
        (run.workdir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return FinishedProcess(status)


@pytest.fixture(autouse=True)
def in_repository(monkeypatch):
    monkeypatch.chdir(ROOT)  # study config paths are relative to the repository root


def run_fake(runs, started=None, fail=()):
    return runner.run_study(
        runs, parallel=2, poll_s=0, start=lambda run: fake_training(run, started, 2 if run.seed in fail else 0)
    )


def test_table_aggregates_known_values_per_cell(tmp_path):
    study = tiny_study()
    runs = expand(study, tmp_path)
    assert len(runs) == 6 and len({run.workdir for run in runs}) == 6
    outcome = run_fake(runs)
    assert len(outcome.finished) == 6 and not outcome.failed
    rows = results.cell_rows(study, runs)
    assert [row.cell.name for row in rows] == ["latent_dim=8", "latent_dim=16"]
    small, large = rows[0].stats["fid"], rows[1].stats["fid"]
    assert (small.n, small.mean, small.std, small.min, small.max) == (3, 2.0, 1.0, 1.0, 3.0)
    assert (large.mean, large.min, large.max) == (30.0, 10.0, 60.0)
    assert large.std == pytest.approx(700**0.5)  # sample std of 10, 20, 60
    header, body = results.table(study, rows)
    assert header == ["model.latent_dim", "seeds", "fid", "fid published", "Δ fid", "recall", "protocol"]
    assert body[0] == ["8", "3/3", "2 ± 1 [1, 3]", "1.5", "+0.5", "0.5 ± 0 [0.5, 0.5]", "P1"]
    assert body[1] == ["16", "3/3", "30 ± 26.46 [10, 60]", "", "", "0.5 ± 0 [0.5, 0.5]", "P1"]
    text = results.markdown(study, rows)
    protocol = "digits net (weights abc123), 100 samples (drawn from the run's seed) vs 1500 images of digits/train"
    assert f"- P1: {protocol}, 32px" in text
    assert "- latent_dim=8, fid 1.5: A et al., Table 9; protocol: 50k samples" in text


def test_best_by_picks_the_best_evaluation(tmp_path):
    study = tiny_study(best_by=("fid", "max"))
    runs = expand(study, tmp_path)
    run_fake(runs)
    rows = results.cell_rows(study, runs)
    assert rows[0].stats["fid"].mean == 99.0 and rows[0].runs[0].step == 2  # the mid-run evaluation


def test_interrupted_study_resumes_without_rerunning_finished_runs(tmp_path):
    runs = expand(tiny_study(), tmp_path)
    started: list[str] = []

    def interrupted_on_the_third(run):
        if len(started) == 2:
            (run.workdir / "checkpoints" / "2").mkdir(parents=True)  # it got halfway
            raise KeyboardInterrupt
        return fake_training(run, started)

    with pytest.raises(KeyboardInterrupt):
        runner.run_study(runs, parallel=1, poll_s=0, start=interrupted_on_the_third)
    assert [is_finished(run) for run in runs] == [True, True, False, False, False, False]
    resumed: list[str] = []
    outcome = run_fake(runs, resumed)
    assert resumed == [run.run_id for run in runs[2:]]  # the interrupted run trains again in its own workdir
    assert len(outcome.skipped) == 2 and len(outcome.finished) == 6


def test_edited_study_reruns_only_changed_cells(tmp_path):
    first = expand(tiny_study(), tmp_path)
    run_fake(first)
    edited = expand(tiny_study(grid={"model.latent_dim": [8, 32]}, seeds=(0,), description="edited"), tmp_path)
    assert edited[0].run_id == first[0].run_id
    started: list[str] = []
    run_fake(edited, started)
    assert started == [edited[1].run_id]


def test_a_failing_run_is_reported_and_the_rest_go_on(tmp_path, capsys):
    runs = expand(tiny_study(), tmp_path)
    outcome = run_fake(runs, fail=(1,))
    assert [(run.cell.name, run.seed) for run, _ in outcome.failed] == [("latent_dim=8", 1), ("latent_dim=16", 1)]
    assert len(outcome.finished) == 4
    assert "FAILED latent_dim=8 seed=1" in capsys.readouterr().out
    assert results.cell_rows(tiny_study(), runs)[0].stats["fid"].n == 2


def test_launch_lines_are_exact(tmp_path):
    run = expand(tiny_study(seeds=(3,), grid={"model.latent_dim": [8]}), tmp_path, ["data.data_dir=/my data"])[0]
    assert run.run_id == expand(tiny_study(seeds=(3,), grid={"model.latent_dim": [8]}), tmp_path)[0].run_id
    where = (
        f"configs/dcgan.py {tmp_path}/runs/{run.run_id} --config.train.steps=4 --config.eval.every=2 "
        "--config.model.latent_dim=8 '--config.data.data_dir=/my data' --config.seed=3"
    )
    assert launch.launch_line(run, "local", "tiny") == f"launch/local.sh {where}"
    assert (
        launch.launch_line(run, "slurm", "tiny") == f"sbatch --job-name=tiny-{run.run_id} launch/slurm.sbatch {where}"
    )
    assert launch.launch_line(run, "tpu", "tiny") == f'launch/tpu_pod.sh "$TPU_NAME" "$ZONE" {where}'


def test_cli_prints_one_launch_line_per_run_and_trains_nothing(tmp_path, capsys):
    status = main(["run", "experiments/digits_gan_ablation.py", f"--root={tmp_path}", "--print-launch=local"])
    lines = capsys.readouterr().out.splitlines()
    assert (
        status == 0 and len(lines) == 16 and all(line.startswith("launch/local.sh configs/sngan.py") for line in lines)
    )
    assert not list(tmp_path.iterdir())


def test_bad_study_key_fails_before_any_run(tmp_path, capsys):
    study_file = tmp_path / "bad.py"
    study_file.write_text(
        "from genimg_jax.experiments import Study\n"
        "STUDY = Study(name='bad', config='configs/vae.py', metrics=('fid',), grid={'model.bta': [1, 2]})\n"
    )
    assert main(["run", str(study_file), f"--root={tmp_path / 'root'}"]) == 2
    assert "unknown config key config.model.bta; did you mean config.model.beta?" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_report_names_only_files_that_exist(tmp_path):
    study_file = tmp_path / "tiny_study.py"
    study_file.write_text(
        "from genimg_jax.experiments import Study\n"
        "STUDY = Study(name='tiny', config='configs/dcgan.py', overrides={'train.steps': 4, 'eval.every': 2},\n"
        "              grid={'model.latent_dim': [8, 16]}, seeds=(0, 1, 2), metrics=('fid',))\n"
    )
    root = tmp_path / "root"
    run_fake(expand(load_study(study_file), root))
    assert main(["table", str(study_file), f"--root={root}"]) == 0
    report = root / "report"
    page = (report / "report.html").read_text()
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sorted(referenced) == sorted(
        ["plots/fid_vs_model.latent_dim.png", "curves/00_latent_dim=8.png", "curves/01_latent_dim=16.png"]
    )  # no sample grids: the fake runs drew none
    assert all((report / name).is_file() for name in referenced)
    with open(report / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["cell"], row["mean"], row["min"], row["max"]) for row in rows] == [
        ("latent_dim=8", "2.0", "1.0", "3.0"),
        ("latent_dim=16", "30.0", "10.0", "60.0"),
    ]


@pytest.mark.slow
def test_reduced_embedded_ablation_runs_end_to_end(tmp_path):
    """Two cells of the shipped ablation, one seed, a few steps, trained for real, two at a time (slow: two
    training processes, each importing the stack and compiling)."""
    study_file = tmp_path / "reduced.py"
    study_file.write_text(
        "import dataclasses\n"
        "from genimg_jax.experiments.study import load_study\n"
        "SHIPPED = load_study('experiments/digits_gan_ablation.py')\n"
        "TINY = {'train.steps': 2, 'train.log_every': 1, 'train.sample_every': 2, 'train.checkpoint_every': 2,\n"
        "        'eval.every': 2, 'eval.num_samples': 32, 'eval.kid_subsets': 2, 'eval.kid_subset_size': 16,\n"
        "        'eval.batch_size': 32, 'model.g_features': 8, 'model.d_features': 8, 'train.batch_size': 8,\n"
        "        'train.num_sample_images': 4}\n"
        "GRID = {**SHIPPED.grid, 'model.d_spectral_norm': [True], 'augment.mode': ['none']}\n"
        "STUDY = dataclasses.replace(SHIPPED, overrides={**SHIPPED.overrides, **TINY}, seeds=(0,), grid=GRID)\n"
    )
    root = tmp_path / "root"
    command = [sys.executable, "-m", "genimg_jax.experiments", "run", str(study_file), f"--root={root}", "--parallel=2"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "runs 2/2 | running 0 failed 0 waiting 0 skipped 0 | " in result.stdout
    assert main(["table", str(study_file), f"--root={root}"]) == 0
    with open(root / "report" / "runs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["loss.adversarial"] for row in rows] == ["non_saturating", "hinge"]
    assert all(row["finished"] == "True" and row["step"] == "2" and float(row["fid"]) > 0 for row in rows)
    assert all(row["protocol"].startswith("digits net") for row in rows)
    assert len(list((root / "report" / "grids").glob("*.png"))) == 2


# Which config's docstring quotes each group of experiments/published.py.
PUBLISHED_CONFIGS = {
    "WGAN_GP": "wgan_gp",
    "SNGAN": "sngan",
    "CGAN_PROJECTION": "cgan_projection",
    "STYLEGAN2_ADA_CONDITIONAL": "stylegan2_ada",
    "DDPM": "ddpm",
    "EDM_UNCONDITIONAL": "edm",
    "EDM_CONDITIONAL": "edm",
}


def test_every_published_number_is_marked_checked_and_quoted_by_its_config():
    """Each number the studies compare with says how it was checked and is the one its config's docstring quotes,
    so a number changed in one place and not the other, or added unchecked, fails here."""
    published = load_python_file(str(ROOT / "experiments" / "published.py"), "published")
    groups = {name: value for name, value in vars(published).items() if name.isupper() and isinstance(value, dict)}
    assert set(groups) == set(PUBLISHED_CONFIGS)
    for name, numbers in groups.items():
        docstring = load_python_file(str(ROOT / "configs" / f"{PUBLISHED_CONFIGS[name]}.py"), "config").__doc__
        for metric, number in numbers.items():
            assert isinstance(number, Published) and "checked" in number.table, (name, metric)
            assert number.protocol, (name, metric)
            assert re.search(rf"(?<![\d.]){re.escape(f'{number.value:g}')}(?![\d])", docstring), (name, metric)
