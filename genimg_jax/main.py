"""Command line: `python -m genimg_jax.main --config=configs/X.py --workdir=DIR [--mode=train|sample|eval|audit]`,
or `--mode=generate --num=N --out=DIR [--npz] [--seed=S] [--labels=balanced|0,3,7] [--truncation=PSI]`.

Any `--config.a.b=value` argument overrides a key of the config. Mistakes in the config, the data or the workdir
end the run with one line on stderr naming what is wrong and where (exit status 2).
"""

import argparse
import sys
from collections.abc import Sequence

import jax
from absl import flags

from genimg_jax.cli import parse_with_overrides, run_command
from genimg_jax.config import ConfigError, apply_overrides, load_config
from genimg_jax.evaluation import from_checkpoint, sample_sets
from genimg_jax.parallel import distributed
from genimg_jax.training import trainer

MODES = ("train", "sample", "eval", "audit", "generate")
GENERATE_FLAGS = ("num", "out", "npz", "seed", "labels", "truncation")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.main", description=__doc__)
    parser.add_argument("--config", required=True, help="configs/X.py, or configs/X.py:ARG for a variant")
    parser.add_argument("--workdir", required=True, help="directory for checkpoints, logs and samples")
    parser.add_argument("--mode", choices=MODES, default="train")
    generate = parser.add_argument_group("--mode=generate: a sample set of the latest checkpoint for outside tools")
    generate.add_argument("--num", type=int, help="number of samples")
    generate.add_argument("--out", help="new or empty folder for 000000.png, ...")
    generate.add_argument("--npz", action="store_true", default=None, help="also write OUT/samples.npz (uint8 x)")
    generate.add_argument("--seed", type=int, help="sample i from fold_in(PRNGKey(seed), i); default config.seed")
    generate.add_argument("--labels", help="balanced (default) or classes in turn, e.g. 0,3,7")
    generate.add_argument("--truncation", type=float, help="truncation psi for methods with a mapping network")
    return parser


def check_generate_flags(args: argparse.Namespace) -> None:
    given = [name for name in GENERATE_FLAGS if getattr(args, name) is not None]
    if args.mode != "generate" and given:
        raise ConfigError(f"--{given[0]} is a flag of --mode=generate, not of --mode={args.mode}")
    if args.mode == "generate" and (args.num is None or args.out is None):
        raise ConfigError("--mode=generate needs --num=N and --out=DIR")


def run(args: argparse.Namespace, overrides: list[str]) -> None:
    check_generate_flags(args)
    config = apply_overrides(load_config(args.config), overrides)
    config.lock()  # a later typo in code reading the config is an error, not a silent new key
    flags.FLAGS.mark_as_parsed()  # libraries used here (grain, tfds) may read absl flags; argv is ours
    distributed.initialize(config.distributed)  # before anything touches a device
    if args.mode == "train":
        state = trainer.train(config, args.workdir)
        if jax.process_count() > 1:  # every process reports; equal fingerprints show the hosts agree
            fingerprint = distributed.state_fingerprint(state)
            print(f"process {jax.process_index()}/{jax.process_count()}: final state fingerprint {fingerprint}")
    elif args.mode == "sample":
        for path in from_checkpoint.sample(config, args.workdir):
            print(f"wrote {path}")
    elif args.mode == "generate":
        written = sample_sets.generate(
            config,
            args.workdir,
            args.out,
            args.num,
            seed=args.seed,
            labels=args.labels or sample_sets.BALANCED,
            truncation=args.truncation,
            npz=bool(args.npz),
        )
        extra = f" and {written.npz}" if written.npz else ""
        print(f"wrote {written.count} samples of step {written.step} to {written.folder}{extra}")
    elif args.mode == "eval":
        print(f"wrote {from_checkpoint.evaluate(config, args.workdir)}")
    else:
        print(f"wrote {from_checkpoint.memorization_audit(config, args.workdir)}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: run(*parse_with_overrides(parser(), argv)))


if __name__ == "__main__":
    sys.exit(main())
