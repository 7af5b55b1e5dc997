"""The progress line: the method's key losses only, steps/s and ETA, a bar on a terminal, the same line for studies."""

import io
import json

import jax
import pytest
from tiny_configs import TINY_GAN, TINY_STYLEGAN2, TINY_UNET, load

from genimg_jax import data
from genimg_jax.experiments import runner
from genimg_jax.methods import build_method
from genimg_jax.training.reporting import RunLogger, eta_seconds, progress_bar, progress_line, progress_step


def test_progress_line_closed_form_and_parsed_back():
    values = {"d_loss": 0.693147, "g_loss": 1.25}
    line = progress_line("step", 30, 120, values, "3 steps/s", eta_seconds(120 - 30, 3.0))
    assert line == "step 30/120 | d_loss 0.6931 g_loss 1.25 | 3 steps/s | ETA 30s"
    with_bar = progress_line("step", 30, 120, values, "3 steps/s", 30.0, bar=True)
    assert with_bar == line + " [#####---------------]  25%"  # 30/120 of 20 cells
    assert progress_step(line) == progress_step(with_bar) == 30


@pytest.mark.parametrize(
    ("done", "total", "expected"),
    [(0, 7, "[" + "-" * 20 + "]   0%"), (7, 7, "[" + "#" * 20 + "] 100%"), (1, 3, "[" + "#" * 6 + "-" * 14 + "]  33%")],
)
def test_progress_bar_rounds_down(done, total, expected):
    assert progress_bar(done, total) == expected


def test_eta_is_remaining_over_rate_and_unknown_without_progress():
    assert eta_seconds(3600, 0.5) == 7200.0
    assert eta_seconds(10, 0.0) == float("inf")
    assert progress_line("step", 1, 9, {}, "0 steps/s", eta_seconds(8, 0.0)) == "step 1/9 | 0 steps/s | ETA ?"


def _progress_output(tmp_path, capsys, **logger_options) -> str:
    logger = RunLogger(tmp_path, total_steps=110, enabled=True, **logger_options)
    values = {"ada_p": 0.0, "g_loss": 2.0, "d_real": 0.8, "d_loss": 0.5, "nonfinite_steps": 0.0}
    logger.scalars(10, "train", values)
    logger.progress(10, values, steps_per_second=2.5)
    logger.close()
    return capsys.readouterr().out.strip()


def test_logger_shows_key_metrics_in_their_order_and_logs_everything(tmp_path, capsys):
    out = _progress_output(tmp_path, capsys, key_metrics=("d_loss", "g_loss", "absent"), terminal=False)
    assert out == "step 10/110 | d_loss 0.5 g_loss 2 | 2.5 steps/s | ETA 40s"  # (110 - 10) / 2.5 s
    (record,) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert set(record) == {"step", "split", "ada_p", "g_loss", "d_real", "d_loss", "nonfinite_steps"}


def test_logger_without_key_metrics_shows_all_and_a_terminal_gets_a_bar(tmp_path, capsys):
    out = _progress_output(tmp_path, capsys, terminal=True)
    assert out.startswith("step 10/110 | ada_p 0 g_loss 2 d_real 0.8 d_loss 0.5 nonfinite_steps 0 | ")
    assert out.endswith(" [#-------------------]   9%")


def test_logger_asks_stdout_whether_it_is_a_terminal(tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert RunLogger(tmp_path, 10, enabled=False).terminal is False  # pytest captures stdout
    monkeypatch.setattr("sys.stdout", Terminal())
    assert RunLogger(tmp_path, 10, enabled=False).terminal is True


@pytest.mark.parametrize(
    ("config", "overrides", "key_metrics"),
    [
        ("dcgan.py", TINY_GAN, ("d_loss", "g_loss")),
        pytest.param("stylegan2.py", TINY_STYLEGAN2, ("d_loss", "g_loss"), marks=pytest.mark.slow),  # 30 s to trace
        ("vae.py", ["data.resolution=8", "train.batch_size=8"], ("loss", "bits_per_dim")),
        pytest.param("ddpm.py", TINY_UNET, ("loss",), marks=pytest.mark.slow),
    ],
)
def test_key_metrics_are_metrics_the_method_logs(config, overrides, key_metrics):
    config = load(config, *overrides)
    method = build_method(config)
    example = data.example_batch(config.data, config.train.batch_size)
    state = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), example)
    _, metrics = jax.eval_shape(method.train_step, state, example)
    declared = method.KEY_METRICS
    assert declared == key_metrics and set(declared) < set(metrics)


class _Finished:
    def poll(self):
        return 0


def test_study_progress_uses_the_same_line(tmp_path, monkeypatch):
    run = type("Run", (), {"run_id": "a", "workdir": tmp_path / "a", "seed": 0, "overrides": {}})()
    run.cell = type("Cell", (), {"name": "base", "config": "dcgan.py"})()
    monkeypatch.setattr(runner, "is_finished", lambda candidate: (candidate.workdir / "study_run.json").exists())
    out = io.StringIO()
    runner.run_study([run], start=lambda _: _Finished(), out=out, poll_s=0)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("runs ")]
    assert lines[0] == "runs 0/1 | running 0 failed 0 waiting 1 skipped 0 | ? runs/min | ETA ?"
    assert lines[-1].startswith("runs 1/1 | running 0 failed 0 waiting 0 skipped 0 | ")
    assert lines[-1].endswith(" runs/min | ETA 0s") and progress_step(lines[-1]) is None  # not a training step
