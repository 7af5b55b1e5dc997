"""Sample grids of one trained diffusion run with each sampler, with network evaluations (NFE) per sample.

    python -m genimg_jax.tools.compare_samplers --workdir=runs/ddpm_digits [--samplers=ddpm,ddim,heun]
        [--steps=50] [--num=64] [--config.sample.eta=0.5 ...]

Reads the run's config.json, restores its latest checkpoint, and writes `samples/compare_<sampler>_<steps>.png`
into the workdir; prints NFE and seconds per grid (after compilation) for each sampler.
"""

import argparse
import pathlib
import sys
import time
from collections.abc import Sequence

import jax
import ml_collections

from genimg_jax import data
from genimg_jax.cli import parse_with_overrides, run_command
from genimg_jax.config import ConfigError, apply_overrides
from genimg_jax.diffusion import samplers
from genimg_jax.evaluation.from_checkpoint import restore_latest
from genimg_jax.evaluation.grids import save_grid
from genimg_jax.evaluation.provenance import image_provenance
from genimg_jax.training.compiled_run import checkpoint_digest, initial_rngs
from genimg_jax.training.workdir import read_saved_config


def compare(workdir: pathlib.Path, config: ml_collections.ConfigDict, names: Sequence[str], num: int) -> list[dict]:
    """One grid per sampler from the latest checkpoint in `workdir`; returns what was measured."""
    run, state, step = restore_latest(config, workdir)
    provenance = image_provenance(config, step, config.seed, checkpoint_digest(workdir, step))
    _, rng = initial_rngs(config)
    results = []
    for name in names:
        sample = jax.jit(lambda state, rng, name=name: run.method.sample(state, rng, num, sampler=name))
        jax.block_until_ready(sample(state, rng))  # compile
        start = time.perf_counter()
        images = jax.device_get(sample(state, rng))
        seconds = time.perf_counter() - start
        steps = config.sample.steps
        path = workdir / "samples" / f"compare_{name}_{steps}.png"
        save_grid(data.from_unit_range(images), path, {**provenance, "sampler": name, "sampler_steps": str(steps)})
        guided = config.model.get("num_classes", 0) > 0 and config.sample.guidance_scale != 0
        nfe = samplers.network_evaluations(name, steps, guided)
        results.append({"sampler": name, "steps": steps, "nfe": nfe, "seconds": seconds, "path": str(path)})
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.tools.compare_samplers", description=__doc__)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--samplers", default=",".join(samplers.SAMPLERS))
    parser.add_argument("--steps", type=int, default=0, help="sampler steps (default: the run's sample.steps)")
    parser.add_argument("--num", type=int, default=64)

    def run() -> None:
        args, overrides = parse_with_overrides(parser, argv)
        workdir = pathlib.Path(args.workdir)
        config = apply_overrides(read_saved_config(workdir), overrides)
        if args.steps:
            config.sample.steps = args.steps
        names = args.samplers.split(",")
        for name in names:
            if name not in samplers.SAMPLERS:
                raise ConfigError(f"--samplers: unknown sampler {name!r}; choose from {samplers.SAMPLERS}")
        for result in compare(workdir, config, names, args.num):
            print(
                f"{result['sampler']:5s} steps {result['steps']:4d}  NFE/sample {result['nfe']:4d}  "
                f"{result['seconds']:.2f} s per grid of {args.num}  -> {result['path']}"
            )

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
