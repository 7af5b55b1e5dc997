"""Running a study's runs on this machine: N at a time, finished ones skipped, interrupted ones resumed (the trainer
resumes from the run's last checkpoint), a failing one reported while the rest go on, and one progress line for
the whole study, formatted like a training run's (`reporting.progress_line`)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from genimg_jax.experiments.launch import training_command
from genimg_jax.experiments.study import Run, is_finished
from genimg_jax.training.reporting import eta_seconds, progress_line, progress_step

LOG_NAME = "train.log"
RUN_INFO_NAME = "study_run.json"
PROGRESS_EVERY_S = 30.0  # a progress line at least this often while runs train, besides one at every change
STOP_WAIT_S = 120.0  # how long interrupted runs get to save their checkpoint after SIGTERM


class Process(Protocol):
    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...


def start_training(run: Run) -> Process:
    """`python -m genimg_jax.main` for `run`, its output appended to `<workdir>/train.log`."""
    with open(run.workdir / LOG_NAME, "a") as log:
        return subprocess.Popen(training_command(run), stdout=log, stderr=subprocess.STDOUT)


@dataclasses.dataclass
class Outcome:
    finished: list[Run]  # including those skipped as already finished
    failed: list[tuple[Run, int]]  # (run, exit status)
    skipped: list[Run]


def _describe(run: Run) -> str:
    return f"{run.cell.name} seed={run.seed} ({run.run_id})"


def _fraction_done(run: Run) -> float:
    """How far a running run is, from the last progress line in its log."""
    try:
        with open(run.workdir / LOG_NAME, "rb") as log:
            log.seek(0, 2)
            log.seek(max(0, log.tell() - 8192))
            lines = log.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return 0.0
    steps = [step for line in lines if (step := progress_step(line)) is not None]
    return min(1.0, steps[-1] / run.config.train.steps) if steps else 0.0


def _last_log_line(run: Run) -> str:
    path = run.workdir / LOG_NAME
    lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return lines[-1] if lines else "(no output)"


def run_study(
    runs: list[Run],
    parallel: int = 1,
    start: Callable[[Run], Process] = start_training,
    out: TextIO | None = None,
    poll_s: float = 1.0,
) -> Outcome:
    """Train every unfinished run, `parallel` at a time. On Ctrl-C the running ones get SIGTERM (each saves a
    checkpoint) and KeyboardInterrupt propagates; running the study again resumes them. Progress goes to `out`
    (default stdout)."""
    out = out or sys.stdout
    skipped = [run for run in runs if is_finished(run)]
    pending = [run for run in runs if not is_finished(run)]
    outcome = Outcome(finished=list(skipped), failed=[], skipped=skipped)
    active: dict[str, tuple[Run, Process, float]] = {}
    durations: list[float] = []
    last_report = -float("inf")

    def report() -> None:
        nonlocal last_report
        work_left = len(pending) + sum(1 - _fraction_done(run) for run, _, _ in active.values())
        runs_per_second = parallel * len(durations) / sum(durations) if durations else float("nan")
        counts = {"running": len(active), "failed": len(outcome.failed), "waiting": len(pending)}
        counts["skipped"] = len(skipped)  # finished before this study run started
        rate = f"{60 * runs_per_second:.3g} runs/min" if durations else "? runs/min"
        eta = eta_seconds(work_left, runs_per_second)
        line = progress_line("runs", len(outcome.finished), len(runs), counts, rate, eta, bar=out.isatty())
        print(line, file=out, flush=True)
        last_report = time.monotonic()

    report()
    try:
        while pending or active:
            changed = False
            while pending and len(active) < parallel:
                run = pending.pop(0)
                run.workdir.mkdir(parents=True, exist_ok=True)
                info = {"cell": run.cell.name, "seed": run.seed, "config": run.cell.config, "overrides": run.overrides}
                (run.workdir / RUN_INFO_NAME).write_text(json.dumps(info, indent=2) + "\n")
                active[run.run_id] = (run, start(run), time.monotonic())
                print(f"start {_describe(run)} in {run.workdir}", file=out, flush=True)
                changed = True
            for run_id, (run, process, started) in list(active.items()):
                status = process.poll()
                if status is None:
                    continue
                del active[run_id]
                changed = True
                if status == 0 and is_finished(run):
                    outcome.finished.append(run)
                    durations.append(time.monotonic() - started)
                else:
                    outcome.failed.append((run, status))
                    print(f"FAILED {_describe(run)}, exit status {status}: {_last_log_line(run)}", file=out, flush=True)
                    print(f"  log: {run.workdir / LOG_NAME}", file=out, flush=True)
            if changed or time.monotonic() - last_report >= PROGRESS_EVERY_S:
                report()
            if active:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        print(f"interrupted: stopping {len(active)} running run(s); run the study again to resume", file=out)
        for _, process, _ in active.values():
            process.terminate()
        for _, process, _ in active.values():
            process.wait(timeout=STOP_WAIT_S)
        raise
    return outcome
