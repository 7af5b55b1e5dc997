"""Fingerprint of a workdir's checkpoint: `python -m genimg_jax.tools.fingerprint --workdir=DIR [--step=N]`.

Prints a hash of every array of the saved train state (parameters, optimizer states, EMA, step, RNG key), read
whole whatever mesh saved it. Two checkpoints with the same fingerprint hold bitwise the same state: the check
that a refactor, a new machine or a resume left training unchanged. It is the hash each process of a multi-process
run prints at the end (`parallel.distributed.state_fingerprint`).
"""

import argparse
import pathlib
import sys
from collections.abc import Sequence

import jax

from genimg_jax.cli import run_command
from genimg_jax.parallel.distributed import state_fingerprint
from genimg_jax.training.checkpoint import Checkpointer


def checkpoint_fingerprint(workdir: str | pathlib.Path, step: int | None = None) -> tuple[int, str, int]:
    """(step, fingerprint, number of arrays) of checkpoint `step` (default: the latest) of `workdir`."""
    directory = pathlib.Path(workdir) / "checkpoints"
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} does not exist; is {workdir} the workdir of a training run?")
    checkpointer = Checkpointer(directory, keep=1, every=0)
    try:
        steps = checkpointer.all_steps()
        step = max(steps, default=None) if step is None else step
        if step not in steps:
            raise FileNotFoundError(f"{directory} holds no checkpoint of step {step} (steps: {sorted(steps)})")
        state, _ = checkpointer.restore(step)
    finally:
        checkpointer.close()
    return step, state_fingerprint(state), len(jax.tree.leaves(state))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.tools.fingerprint", description=__doc__)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--step", type=int, default=None, help="default: the latest checkpoint")

    def run() -> None:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        step, fingerprint, count = checkpoint_fingerprint(args.workdir, args.step)
        print(f"step {step}: fingerprint {fingerprint} ({count} arrays)")

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
