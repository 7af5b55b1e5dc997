"""Where a run's numbers go: `metrics.jsonl`, TensorBoard events (clu, scalars and sample grids), a progress line.

`metrics.jsonl` goes through the one filesystem layer (training/paths.py), local or gs://. TensorBoard events are
written by TensorFlow's own file system, which reaches gs:// with its own GCS client (not through epath, so not
through a GCS emulator either); `train.tensorboard=False` turns them off.

Only the main process writes; the others get a logger whose methods do nothing, so call sites need no checks.
"""

import json
import math
import re
import sys
import time
from collections.abc import Mapping

import numpy as np
from clu import metric_writers
from etils import epath

from genimg_jax.training.paths import append_text, as_path


def format_duration(seconds: float) -> str:
    """Human-readable duration such as 1h02m or 3m05s."""
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


BAR_WIDTH = 20


def eta_seconds(remaining: float, rate: float) -> float:
    """Seconds left for `remaining` units at `rate` units per second (inf when nothing moves)."""
    return remaining / rate if rate > 0 else math.inf


def progress_bar(done: float, total: float, width: int = BAR_WIDTH) -> str:
    """'[#####---------------]  25%': the share done, in whole cells and per cent (rounded down)."""
    share = min(max(done / total, 0.0), 1.0) if total > 0 else 1.0
    filled = math.floor(share * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {math.floor(share * 100):3d}%"


def progress_line(
    unit: str,
    done: int,
    total: int,
    values: Mapping[str, float],
    rate: str,
    eta: float,
    bar: bool = False,
) -> str:
    """One progress line, the same for a training run and a study: 'step 7/60 | d_loss 0.69 g_loss 0.71 |
    3.21 steps/s | ETA 16s', with `progress_bar` at the end when `bar` (for a terminal; logs stay plain).
    `progress_step` parses it back, so the part before the first '|' stays '<unit> <done>/<total> '."""
    parts = [f"{unit} {done}/{total}"]
    if values:
        parts.append(" ".join(f"{name} {value:.4g}" for name, value in values.items()))
    parts += [rate, f"ETA {format_duration(eta)}"]
    line = " | ".join(parts)
    return f"{line} {progress_bar(done, total)}" if bar else line


def progress_step(line: str) -> int | None:
    """The step of a progress line ("step 7/60 | ...", as `RunLogger.progress` prints it), None for other lines.

    experiments/fault_injection.py follows a run's progress by it.
    """
    match = re.match(r"step (\d+)/\d+ \|", line)
    return int(match.group(1)) if match else None


def _set_aside_records_after(path: epath.Path, step: int) -> None:
    """Move records past `step` from the JSON-lines file `path` to `<stem>.superseded.jsonl` beside it.

    The main file is replaced atomically, after the moved records are safely appended elsewhere, so a crash at
    any point loses nothing.
    """
    if not path.exists():
        return
    kept, later = [], []
    for line in path.read_text().splitlines():
        if line.strip():
            (kept if json.loads(line)["step"] <= step else later).append(line)
    if not later:
        return
    append_text(path.with_name(f"{path.stem}.superseded.jsonl"), "".join(line + "\n" for line in later))
    temporary = path.with_suffix(".jsonl.tmp")
    temporary.write_text("".join(line + "\n" for line in kept))
    temporary.replace(path)


class RunLogger:
    """Writes scalars to `metrics.jsonl` and TensorBoard, pictures to TensorBoard, and progress to stdout."""

    def __init__(
        self,
        workdir: str | epath.Path,
        total_steps: int,
        enabled: bool,
        resume_step: int = 0,
        key_metrics: tuple[str, ...] | None = None,
        terminal: bool | None = None,
        tensorboard: bool = True,
    ):
        """`resume_step`: the checkpoint a resumed run starts from; later records are moved out of
        `metrics.jsonl` (to `metrics.superseded.jsonl`) because the resumed run recomputes exactly those steps.
        `key_metrics`: the values the progress line shows (the method's `KEY_METRICS`; None: all of them);
        `metrics.jsonl` and TensorBoard get every value. `terminal`: whether stdout is one, which adds a progress
        bar (None: ask stdout). `tensorboard`: whether to write TensorBoard events too."""
        self.enabled = enabled
        self.workdir = workdir = as_path(workdir)
        self.total_steps = total_steps
        self.key_metrics = key_metrics
        self.terminal = sys.stdout.isatty() if terminal is None else terminal
        self._last_time: float | None = None
        self._last_step: int | None = None
        if enabled:
            _set_aside_records_after(workdir / "metrics.jsonl", resume_step)
            events = metric_writers.SummaryWriter(str(workdir / "tensorboard")) if tensorboard else None
            self._writer = metric_writers.MultiWriter([events] if events else [])
            self._jsonl = workdir / "metrics.jsonl"
            append_text(self._jsonl, "")  # the file exists from the start, as an empty log

    def start(self, step: int) -> None:
        """Mark where timing starts (after a resume, the first step run here)."""
        self._last_time, self._last_step = time.perf_counter(), step

    def steps_per_second(self, step: int) -> float:
        """Rate since the previous call (the first interval includes compilation)."""
        now = time.perf_counter()
        rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_step = now, step
        return rate

    def scalars(self, step: int, split: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self._writer.write_scalars(step, {f"{split}/{name}": value for name, value in values.items()})
        append_text(self._jsonl, json.dumps({"step": step, "split": split, **values}) + "\n")

    def progress(self, step: int, values: dict[str, float], steps_per_second: float) -> None:
        """One `progress_line` on stdout with the key metrics of `values`, parsed back by `progress_step`."""
        if not self.enabled:
            return
        names = values if self.key_metrics is None else [name for name in self.key_metrics if name in values]
        eta = eta_seconds(self.total_steps - step, steps_per_second)
        shown = {name: values[name] for name in names}
        rate = f"{steps_per_second:.3g} steps/s"
        print(progress_line("step", step, self.total_steps, shown, rate, eta, bar=self.terminal), flush=True)

    def message(self, text: str) -> None:
        if self.enabled:
            print(text, flush=True)

    def images(self, step: int, name: str, grid: np.ndarray) -> None:
        """A uint8 HWC picture (a sample grid) to TensorBoard."""
        if self.enabled:
            self._writer.write_images(step, {name: grid[None]})

    def close(self) -> None:
        if self.enabled:
            self._writer.close()
