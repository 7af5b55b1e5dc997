"""Command line: `python -m genimg_jax.main --config=configs/X.py --workdir=DIR [--mode=train|sample|eval|audit]`.

Any `--config.a.b=value` argument overrides a key of the config. Mistakes in the config, the data or the workdir
end the run with one line on stderr naming what is wrong and where (exit status 2).
"""

import argparse
import sys
from collections.abc import Sequence

import jax
from absl import flags

from genimg_jax.cli import parse_with_overrides, run_command
from genimg_jax.config import apply_overrides, load_config
from genimg_jax.evaluation import from_checkpoint
from genimg_jax.parallel import distributed
from genimg_jax.training import trainer

MODES = ("train", "sample", "eval", "audit")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.main", description=__doc__)
    parser.add_argument("--config", required=True, help="configs/X.py, or configs/X.py:ARG for a variant")
    parser.add_argument("--workdir", required=True, help="directory for checkpoints, logs and samples")
    parser.add_argument("--mode", choices=MODES, default="train")
    return parser


def run(args: argparse.Namespace, overrides: list[str]) -> None:
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
    elif args.mode == "eval":
        print(f"wrote {from_checkpoint.evaluate(config, args.workdir)}")
    else:
        print(f"wrote {from_checkpoint.memorization_audit(config, args.workdir)}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: run(*parse_with_overrides(parser(), argv)))


if __name__ == "__main__":
    sys.exit(main())
