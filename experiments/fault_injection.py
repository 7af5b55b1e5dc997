"""Fault injection: kill a training run at random moments, restart it each time, and demand the same result.

    python -m experiments.fault_injection --workdir=runs/faults --kills=10 [--signals=kill,term] [--seed=0]
        [--processes=1] [--config=configs/dcgan.py] [--config.a.b=v ...]

With `--processes=N > 1` every run is N processes on 127.0.0.1 (2 CPU devices each); SIGKILL kills all of them
(a job killed), SIGTERM reaches only the last one (the others must learn of it and save the same step). The
device count of one process comes from XLA_FLAGS as usual (e.g. 8 simulated devices with --config.mesh.fsdp=2).

1. Runs `python -m genimg_jax.main` once uninterrupted (the reference) and times its training steps.
2. Runs it again in another workdir `--kills` times, each time sending a signal (SIGKILL, or SIGTERM: the
   preemption path, which must save, exit 0 and name the step) at a random moment of the training phase: after
   a uniformly drawn number of steps (0 to `--max-steps-per-attempt`) past the first step it prints, plus a
   uniform fraction of a step's time. Checkpoints are frequent, so many kills land during an asynchronous
   Orbax save.
   After every kill, every checkpoint step visible in the workdir must restore (no unreadable checkpoint is ever
   left as a step), and no step may have been set aside as corrupt.
3. Restarts until the run completes and asserts that the final train state equals the reference bit for bit,
   and that the logged metrics (except timings) equal the reference's record by record.
Prints how many interruptions the run survived and how long everything took; exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import jax
import numpy as np

from genimg_jax.cli import PREEMPTED
from genimg_jax.training.checkpoint import CORRUPT_MARK, Checkpointer
from genimg_jax.training.preemption import STOPPED_MARK
from genimg_jax.training.reporting import progress_step

# Small enough that a run takes seconds; checkpoints every 2 steps so that kills often hit a save in flight.
DEFAULT_OVERRIDES = (
    "data.resolution=16",
    "model.g_features=4",
    "model.d_features=4",
    "model.latent_dim=8",
    "train.batch_size=8",
    "train.log_every=1",
    "train.sample_every=0",
    "train.checkpoint_every=2",
    "train.keep_checkpoints=3",
)
SIGNALS = {"kill": signal.SIGKILL, "term": signal.SIGTERM}
TIMING_KEYS = ("steps_per_second",)
CPU_DEVICES_PER_PROCESS = 2


class Attempt:
    """One run of `genimg_jax.main` (one process per command); process 0's output goes to `log_path` and `step` is
    the last step it printed; the other processes write `<log_path>.process_<i>`."""

    def __init__(self, commands: list[list[str]], log_path: pathlib.Path):
        self.training = threading.Event()  # set at the first printed step, or when the process ends
        self.step: int | None = None
        self.step_times: list[float] = []
        self._log = open(log_path, "a")  # noqa: SIM115 - closed in wait()
        environ = os.environ
        if len(commands) > 1:  # each process on its own simulated CPU devices
            flags = f"--xla_force_host_platform_device_count={CPU_DEVICES_PER_PROCESS}"
            environ = {**environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags}
        self.others = []
        for index, command in enumerate(commands[1:], start=1):
            with open(f"{log_path}.process_{index}", "a") as log:  # the child keeps its own descriptor
                self.others.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environ))
        self.process = subprocess.Popen(
            commands[0], stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1, env=environ
        )
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._log.write(line)
            self._log.flush()
            self.output.append(line)
            if (step := progress_step(line)) is not None:
                self.step = step
                self.step_times.append(time.perf_counter())
                self.training.set()
        self.training.set()

    def wait_for_step(self, step: int) -> None:
        while self.process.poll() is None and (self.step or 0) < step:
            time.sleep(0.005)

    def send(self, signal_number: signal.Signals) -> None:
        """SIGKILL to every process (the whole job dies); any other signal to the last process only."""
        processes = [self.process, *self.others]
        for process in processes if signal_number == signal.SIGKILL else processes[-1:]:
            if process.poll() is None:
                process.send_signal(signal_number)

    def wait(self) -> int:
        """Exit status of process 0 (or the first other process that failed)."""
        codes = [self.process.wait(), *(other.wait() for other in self.others)]
        self._reader.join()
        self._log.close()
        return next((code for code in codes if code != 0), 0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main_commands(config: str, workdir: pathlib.Path, overrides: list[str], processes: int = 1) -> list[list[str]]:
    """The command line of each process of one run."""
    flags = [f"--config.{override}" for override in overrides]
    command = [sys.executable, "-m", "genimg_jax.main", f"--config={config}", f"--workdir={workdir}", *flags]
    if processes == 1:
        return [command]
    address = f"--config.distributed.coordinator_address=127.0.0.1:{_free_port()}"
    return [
        [*command, address, f"--config.distributed.num_processes={processes}", f"--config.distributed.process_id={i}"]
        for i in range(processes)
    ]


def checkpoint_problems(workdir: pathlib.Path) -> list[str]:
    """Every visible checkpoint step must restore and none may have been set aside as corrupt."""
    directory = workdir / "checkpoints"
    if not directory.exists():
        return []
    problems = [f"set aside as corrupt: {p.name}" for p in directory.iterdir() if CORRUPT_MARK in p.name]
    checkpointer = Checkpointer(directory, keep=1000, every=0)
    try:
        for step in checkpointer.all_steps():
            try:
                checkpointer.restore(step)
            except Exception as error:  # any failure is exactly what this script looks for
                problems.append(f"step {step} does not restore: {type(error).__name__}: {str(error)[:200]}")
    finally:
        checkpointer.close()
    return problems


def final_state(workdir: pathlib.Path) -> tuple[int, list[np.ndarray]]:
    checkpointer = Checkpointer(workdir / "checkpoints", keep=1000, every=0)
    step = checkpointer.latest_step()
    state, _ = checkpointer.restore(step)
    checkpointer.close()
    return step, [np.asarray(leaf) for leaf in jax.tree.leaves(jax.device_get(state))]


def metric_records(workdir: pathlib.Path) -> list[dict]:
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in records]


def run_faults(
    config: str,
    overrides: list[str],
    workdir: pathlib.Path,
    kills: int,
    signals: list[str],
    seed: int,
    max_steps_per_attempt: int = 8,
    processes: int = 1,
) -> dict:
    """The experiment of the module docstring; returns a summary (with `failures`, empty when all held)."""
    begin = time.perf_counter()
    rng = random.Random(seed)
    reference_dir, faulty_dir = workdir / "reference", workdir / "interrupted"

    def attempt(directory: pathlib.Path, log_name: str) -> Attempt:
        return Attempt(main_commands(config, directory, overrides, processes), workdir / log_name)

    reference = attempt(reference_dir, "reference.log")
    if reference.wait() != 0:
        raise RuntimeError(f"the reference run failed; see {workdir / 'reference.log'}")
    times = reference.step_times
    training_seconds = times[-1] - times[0]
    step_seconds = training_seconds / max(len(times) - 1, 1)

    failures: list[str] = []
    interruptions = {name: 0 for name in signals}
    completed = False
    for index in range(kills):
        name = signals[index % len(signals)]
        interrupted = attempt(faulty_dir, "interrupted.log")
        code = _interrupt(interrupted, SIGNALS[name], rng, reference.step, max_steps_per_attempt, step_seconds)
        stopped = any(STOPPED_MARK in line for line in interrupted.output)
        if code == 0:
            completed = True  # the run completed before the signal: nothing left to interrupt
            break
        interruptions[name] += 1
        print(f"interruption {index + 1}: SIG{name.upper()} after step {interrupted.step}, exit {code}", flush=True)
        if name == "term" and (code != PREEMPTED or not stopped):
            failures.append(f"interruption {index + 1} (SIGTERM): exit {code} without a committed checkpoint")
        failures += [f"after interruption {index + 1} ({name}): {p}" for p in checkpoint_problems(faulty_dir)]
    if not completed and attempt(faulty_dir, "interrupted.log").wait():
        failures.append(f"the final restart failed; see {workdir / 'interrupted.log'}")
    else:
        failures += final_differences(reference_dir, faulty_dir)
    return {
        "interruptions": interruptions,
        "seconds": time.perf_counter() - begin,
        "reference_training_seconds": training_seconds,
        "failures": failures,
    }


def _interrupt(
    attempt: Attempt,
    signal_number: signal.Signals,
    rng: random.Random,
    last_step: int,
    max_steps: int,
    step_seconds: float,
) -> int:
    """Signal `attempt` up to `max_steps` steps after its first printed one, at a random point of a step;
    returns its exit status."""
    attempt.training.wait()
    if attempt.step is not None and attempt.step < last_step:
        attempt.wait_for_step(attempt.step + rng.randint(0, min(max_steps, last_step - 1 - attempt.step)))
        time.sleep(rng.uniform(0.0, step_seconds))
    attempt.send(signal_number)
    return attempt.wait()


def final_differences(reference_dir: pathlib.Path, faulty_dir: pathlib.Path) -> list[str]:
    """How the interrupted run's final state and metrics differ from the reference's (empty: bit for bit equal)."""
    failures = []
    (step_a, leaves_a), (step_b, leaves_b) = final_state(reference_dir), final_state(faulty_dir)
    equal = step_a == step_b and all(
        a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(leaves_a, leaves_b, strict=True)
    )
    if not equal:
        failures.append(f"final state of step {step_b} differs from the uninterrupted run's (step {step_a})")
    if metric_records(reference_dir) != metric_records(faulty_dir):
        failures.append("metrics.jsonl differs from the uninterrupted run's")
    return failures


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    overrides = [arg[len("--config.") :] for arg in argv if arg.startswith("--config.")]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, type=pathlib.Path, help="must not exist yet")
    parser.add_argument("--config", default="configs/dcgan.py")
    parser.add_argument("--kills", type=int, default=10, help="interruptions to attempt")
    parser.add_argument("--signals", default="kill", help="comma list cycled over: kill (SIGKILL), term (SIGTERM)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill times")
    parser.add_argument("--max-steps-per-attempt", type=int, default=8, help="most steps a restarted run may make")
    parser.add_argument("--processes", type=int, default=1, help="processes per run, on 127.0.0.1")
    args = parser.parse_args([arg for arg in argv if not arg.startswith("--config.")])
    if args.workdir.exists():
        parser.error(f"--workdir {args.workdir} exists; give a new one (runs are compared from scratch)")
    signals = args.signals.split(",")
    if not set(signals) <= set(SIGNALS):
        parser.error(f"--signals: choose from {sorted(SIGNALS)}")
    args.workdir.mkdir(parents=True)
    overrides = [*DEFAULT_OVERRIDES, f"train.steps={args.steps}", *overrides]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    summary = run_faults(
        args.config, overrides, args.workdir, args.kills, signals, args.seed, args.max_steps_per_attempt, args.processes
    )
    survived = ", ".join(f"{count} x SIG{name.upper()}" for name, count in summary["interruptions"].items())
    print(
        f"survived {survived} in {summary['seconds']:.0f} s "
        f"(uninterrupted training phase {summary['reference_training_seconds']:.1f} s)"
    )
    for failure in summary["failures"]:
        print(f"FAILED: {failure}")
    if not summary["failures"]:
        print("final state bitwise identical to the uninterrupted run; every checkpoint seen restored")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
