"""Command line: `python -m genimg_jax.main --config=configs/X.py --workdir=DIR [--mode=train|sample|eval|audit]`.

Any `--config.a.b=value` argument overrides a key of the config. Mistakes in the config, the data or the workdir
end the run with one line on stderr naming what is wrong and where (exit status 2).
"""

import argparse
import sys
from collections.abc import Sequence

import jax
from absl import flags

from genimg_jax import distributed, posthoc, trainer
from genimg_jax.checkpoint import CheckpointError
from genimg_jax.config import ConfigError, apply_overrides, load_config, split_override_args
from genimg_jax.data import DataError

MODES = ("train", "sample", "eval", "audit")


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    overrides, rest = split_override_args(argv)
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.main", description=__doc__)
    parser.add_argument("--config", required=True, help="configs/X.py, or configs/X.py:ARG for a variant")
    parser.add_argument("--workdir", required=True, help="directory for checkpoints, logs and samples")
    parser.add_argument("--mode", choices=MODES, default="train")
    return parser.parse_args(rest), overrides


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args, overrides = parse_args(argv)
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
            for path in trainer.sample(config, args.workdir):
                print(f"wrote {path}")
        elif args.mode == "eval":
            print(f"wrote {posthoc.evaluate(config, args.workdir)}")
        else:
            print(f"wrote {posthoc.memorization_audit(config, args.workdir)}")
    except (ConfigError, DataError, CheckpointError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:  # training diverged; the last good checkpoint is kept
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
