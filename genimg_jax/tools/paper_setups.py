"""Every paper setup at its published size, end to end: `python -m genimg_jax.tools.paper_setups --root=DIR
[--inception_weights=PATH] [--only=edm,ddpm] [--steps=2] [--num_samples=64] [--sample_steps=8]`.

Each `configs/*.py:cifar10` variant trains `--steps` steps at the published model size and batch (gradient
accumulation as its config sets it) on a folder of random 32x32 RGB images in 10 class folders (CIFAR-shaped
data, made once under DIR), evaluates its paper metrics on `--num_samples` samples (the diffusion models with
`--sample_steps` sampler steps; with the Inception weights file if given; without it, sample metrics are off and
the line says so) and writes its sample grid. One line per setup: parameters, seconds from the process start to
the first step (imports, data, compiling) and of each later step (between their progress lines), the metrics,
or the error.
Each setup runs in its own process, so one that fails (out of memory, say) does not stop the others.
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from PIL import Image

from genimg_jax.cli import run_command
from genimg_jax.config import apply_overrides, load_config
from genimg_jax.training.compiled_run import compile_run

PAPER_VARIANT = "cifar10"
PAPER_CONFIGS = ("dcgan", "sngan", "cgan_projection", "wgan_gp", "sagan", "stylegan2", "stylegan2_ada", "ddpm", "edm")
IMAGES_PER_CLASS = 64
TRAINED_NETWORKS = ("generator", "discriminator", "params")  # train-state fields holding network parameters
_STEP_LINE = re.compile(r"^step \d+/\d+ ")


def write_cifar_shaped_folder(directory: pathlib.Path, images_per_class: int = IMAGES_PER_CLASS) -> pathlib.Path:
    """10 class folders of random 32x32 RGB PNGs (once; reused when present)."""
    if not (directory / "class_9").is_dir():
        rng = np.random.default_rng(0)
        for label in range(10):
            (directory / f"class_{label}").mkdir(parents=True, exist_ok=True)
            for index in range(images_per_class):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(directory / f"class_{label}" / f"{index:04d}.png")
    return directory


def setup_command(
    name: str,
    workdir: pathlib.Path,
    images: pathlib.Path,
    steps: int,
    num_samples: int,
    inception_weights: str,
    sample_steps: int = 8,
) -> list[str]:
    """The `genimg_jax.main` command line that trains, evaluates and samples one paper setup."""
    overrides = {
        "data.source": f"folder:{images}",
        "train.steps": steps,
        "train.log_every": 1,
        "train.sample_every": steps,
        "train.num_sample_images": 16,
        "train.checkpoint_every": steps,
        "eval.every": steps,
        "eval.num_samples": num_samples,
        "eval.batch_size": min(num_samples, 64),
        "eval.kid_subset_size": num_samples,
        "eval.is_splits": 1,
    }
    if "steps" in paper_config(name).get("sample", {}):  # a diffusion sampler: the paper's 1000 steps take hours
        overrides["sample.steps"] = sample_steps
    if inception_weights:
        overrides["eval.inception_weights"] = inception_weights
    else:
        overrides["eval.metrics"] = ""
    flags = [f"--config.{key}={value}" for key, value in overrides.items()]
    return [
        sys.executable,
        "-m",
        "genimg_jax.main",
        f"--config=configs/{name}.py:{PAPER_VARIANT}",
        f"--workdir={workdir}",
        *flags,
    ]


def network_sizes(abstract_state: Any) -> dict[str, int]:
    """Parameters of each trained network of a train state (batch statistics and EMA copies not counted)."""
    sizes = {}
    for name in TRAINED_NETWORKS:
        tree = getattr(abstract_state, name, None)
        if tree is not None:
            tree = tree["params"] if isinstance(tree, dict) and "params" in tree else tree
            sizes[name] = sum(leaf.size for leaf in jax.tree.leaves(tree))
    return sizes


def paper_config(name: str, *overrides: str) -> ml_collections.ConfigDict:
    return apply_overrides(load_config(f"configs/{name}.py:{PAPER_VARIANT}"), list(overrides))


def timed_run(command: list[str]) -> tuple[int, list[float], str, float]:
    """Run `command`: (exit status, arrival time of each training step's progress line, its last line of output,
    wall seconds). Steps log every step, so the gaps between their lines are the steps' durations."""
    started = time.perf_counter()
    step_times, last = [], "(no output)"
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each line as it is printed, for its time
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
    ) as process:
        for line in process.stdout:
            last = line.strip() or last
            if _STEP_LINE.match(line):
                step_times.append(time.perf_counter())
    return process.returncode, [t - started for t in step_times], last, time.perf_counter() - started


def run_setup(name: str, root: pathlib.Path, args: argparse.Namespace) -> str:
    """Run one setup in its own process; its summary line."""
    workdir = root / name
    command = setup_command(
        name, workdir, root / "images", args.steps, args.num_samples, args.inception_weights, args.sample_steps
    )
    status, step_times, last, wall = timed_run(command)
    if status:
        return f"{name:16s} FAILED (exit {status}, {wall:.0f} s): {last[:300]}"
    first = step_times[0] if step_times else float("nan")  # process start to the first step: imports, compile
    later = np.mean(np.diff(step_times)) if len(step_times) > 1 else float("nan")
    evals = sorted(workdir.glob("eval_*.json"))
    values = json.loads(evals[-1].read_text())["values"] if evals else {}
    metrics = ", ".join(f"{key} {value:.4g}" for key, value in values.items()) or "no sample metrics"
    sizes = network_sizes(compile_run(paper_config(name)).abstract_state)
    params = " + ".join(f"{network} {size / 1e6:.2f}M" for network, size in sizes.items())
    return (
        f"{name:16s} ok: {params}; start to first step {first:.0f} s, then {later:.2f} s/step; "
        f"{wall:.0f} s in all; {metrics}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.tools.paper_setups", description=__doc__)
    parser.add_argument("--root", required=True, help="folder for the images and one workdir per setup")
    parser.add_argument("--inception_weights", default="", help="pytorch-fid's Inception weights file")
    parser.add_argument("--only", default="", help="comma-separated subset of " + ",".join(PAPER_CONFIGS))
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--num_samples", type=int, default=64)
    parser.add_argument("--sample_steps", type=int, default=8, help="sampler steps of the diffusion setups")

    def run() -> None:
        args = parser.parse_args(argv)
        names = [name for name in args.only.split(",") if name] or list(PAPER_CONFIGS)
        unknown = sorted(set(names) - set(PAPER_CONFIGS))
        if unknown:
            raise FileNotFoundError(f"--only names no paper setup {unknown}; choose from {list(PAPER_CONFIGS)}")
        root = pathlib.Path(args.root)
        write_cifar_shaped_folder(root / "images")
        if not args.inception_weights:
            print("no --inception_weights: sample metrics off, sampling and training only")
        for name in names:
            print(run_setup(name, root, args), flush=True)

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
