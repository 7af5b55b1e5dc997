"""Latent walks as GIFs, and truncation sweeps as PNG strips, from a trained run's latest checkpoint.

    python -m genimg_jax.tools.latent_walk --workdir=runs/dcgan [--config=configs/dcgan.py] [--out=walk.gif]
        [--frames=48] [--keyframes=4] [--space=z|w] [--seed=0] [--label=0] [--config.a.b=v ...]
    python -m genimg_jax.tools.latent_walk --workdir=runs/stylegan2 --truncation_sweep [--psis=0,0.25,0.5,0.75,1]
        [--rows=4] [--out=sweep.png]

GANs walk by slerp in z (or, for StyleGAN2, `--space=w`: straight lines in w); diffusion models by slerp between
initial noises, sampled deterministically (`evaluation.latent_walks`). The config is the run's `config.json`
unless `--config` names one; `--label` is the class of class-conditional models.
"""

import argparse
import pathlib
import sys
from collections.abc import Sequence

from genimg_jax.cli import parse_with_overrides, run_command
from genimg_jax.config import ConfigError, apply_overrides, load_config
from genimg_jax.evaluation import latent_walks
from genimg_jax.training.workdir import read_saved_config


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.tools.latent_walk", description=__doc__)
    parser.add_argument("--workdir", required=True, help="a training run's workdir")
    parser.add_argument("--config", default="", help="configs/X.py[:ARG] (default: the run's config.json)")
    parser.add_argument("--out", default="", help="default: WORKDIR/samples/latent_walk.gif or truncation_sweep.png")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--keyframes", type=int, default=4)
    parser.add_argument("--space", choices=latent_walks.SPACES, default="z")
    parser.add_argument("--seed", type=int, default=0, help="draws the keyframes (or the sweep's latents)")
    parser.add_argument("--label", type=int, default=0, help="class of every image of a class-conditional model")
    parser.add_argument("--frame_ms", type=int, default=80, help="milliseconds per GIF frame")
    parser.add_argument("--truncation_sweep", action="store_true", help="write a strip over --psis instead")
    parser.add_argument("--psis", default="0,0.25,0.5,0.75,1", help="comma-separated truncation psi values")
    parser.add_argument("--rows", type=int, default=4, help="latents of the truncation sweep, one row each")
    return parser


def _psis(text: str) -> list[float]:
    try:
        return [float(value) for value in text.split(",")]
    except ValueError:
        raise ConfigError(f"--psis={text!r}: expected comma-separated numbers, e.g. 0,0.5,1") from None


def run(args: argparse.Namespace, overrides: list[str]) -> None:
    workdir = pathlib.Path(args.workdir)
    config = apply_overrides(load_config(args.config) if args.config else read_saved_config(workdir), overrides)
    if args.truncation_sweep:
        out = args.out or workdir / "samples" / "truncation_sweep.png"
        path, _, step = latent_walks.truncation_sweep(
            config, workdir, out, _psis(args.psis), args.rows, args.seed, args.label
        )
        print(f"wrote {path}: {args.rows} latents x psi {args.psis}, checkpoint step {step}")
    else:
        out = args.out or workdir / "samples" / "latent_walk.gif"
        path, frames, step = latent_walks.latent_walk(
            config, workdir, out, args.frames, args.keyframes, args.space, args.seed, args.label, args.frame_ms
        )
        print(f"wrote {path}: {len(frames)} frames through {args.keyframes} keyframes in {args.space}, step {step}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: run(*parse_with_overrides(parser(), argv)))


if __name__ == "__main__":
    sys.exit(main())
