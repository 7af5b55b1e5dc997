"""What every command shares: `--config.a.b=v` overrides beside its own flags, and one line on stderr with an
exit status for each kind of mistake, instead of a traceback."""

import argparse
import sys
from collections.abc import Callable, Sequence

from genimg_jax.config import ConfigError
from genimg_jax.data import DataError
from genimg_jax.training.checkpoint import CheckpointError

BAD_INPUT = 2  # a config, data, checkpoint or workdir that cannot be used
DIVERGED = 1  # training stopped on non-finite values; the last good checkpoint is kept
# A stop request (SIGTERM, SIGINT, a preemption notice) ended training early with that step's checkpoint committed:
# run the same command again to continue (sysexits' EX_TEMPFAIL; launch/slurm.sbatch requeues on it).
PREEMPTED = 75


def split_override_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate `--config.a.b=v` (or `--config.a.b v`) arguments from the rest of the command line."""
    overrides, rest = [], []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg.startswith("--config."):
            body = arg[len("--config.") :]
            if "=" not in body:
                if not args:
                    raise ConfigError(f"override {arg} has no value")
                body = f"{body}={args.pop(0)}"
            overrides.append(body)
        else:
            rest.append(arg)
    return overrides, rest


def parse_with_overrides(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> tuple[argparse.Namespace, list[str]]:
    """(the command's own arguments, the `a.b=v` config overrides) of `argv` (default: sys.argv[1:])."""
    overrides, rest = split_override_args(sys.argv[1:] if argv is None else argv)
    return parser.parse_args(rest), overrides


def run_command(body: Callable[[], int | None]) -> int:
    """Run `body` and return its status (None: 0); bad input or a workdir that cannot be written (full, read-only)
    ends it with one `error: ...` line and status 2, divergence with status 1."""
    try:
        status = body()
    except (ConfigError, DataError, CheckpointError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    except FloatingPointError as error:
        print(f"error: {error}", file=sys.stderr)
        return DIVERGED
    return status or 0
