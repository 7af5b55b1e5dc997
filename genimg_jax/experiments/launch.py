"""The command line of a study's run: for this machine (`python -m genimg_jax.main`), or the `launch/` script
that starts it on one machine, a SLURM cluster or a TPU pod."""

from __future__ import annotations

import shlex
import sys

from genimg_jax.experiments.study import Run

TARGETS = ("local", "slurm", "tpu")


def main_args(run: Run) -> list[str]:
    """The arguments of `genimg_jax.main` that train `run` in its workdir."""
    return [f"--config={run.cell.config}", f"--workdir={run.workdir}", *(f"--config.{o}" for o in run.overrides)]


def training_command(run: Run) -> list[str]:
    return [sys.executable, "-m", "genimg_jax.main", *main_args(run)]


def launch_line(run: Run, target: str, study_name: str) -> str:
    """One shell line, run from the repository root. The TPU line reads the pod's name and zone from $TPU_NAME and
    $ZONE; a SLURM job is named after the study and the run's hash."""
    args = main_args(run)
    config, workdir = (arg.partition("=")[2] for arg in args[:2])
    rest = " ".join(shlex.quote(arg) for arg in args[2:])
    where = f"{shlex.quote(config)} {shlex.quote(workdir)} {rest}".rstrip()
    if target == "local":
        return f"launch/local.sh {where}"
    if target == "slurm":
        return f"sbatch --job-name={shlex.quote(f'{study_name}-{run.run_id}')} launch/slurm.sbatch {where}"
    if target == "tpu":
        return f'launch/tpu_pod.sh "$TPU_NAME" "$ZONE" {where}'
    raise ValueError(f"unknown launch target {target!r}; choose one of {list(TARGETS)}")
