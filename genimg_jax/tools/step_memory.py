"""XLA's per-device memory estimate of a config's train step, without running it:
`python -m genimg_jax.tools.step_memory --config=configs/edm.py:cifar10 [--microbatch=0,64] [--remat=off,on]
[--config.a.b=v ...]`.

Compiles the step for every combination of the given micro-batch sizes (`train.microbatch`; 0 = none) and remat
settings (`model.remat`, where the model has it) on the devices this process sees (simulate N CPU devices with
XLA_FLAGS=--xla_force_host_platform_device_count=N), and prints one line each with what the pre-flight check of
training compares against the device (training/memory_check.py). On XLA:CPU remat saves nothing (it drops the
barriers that keep the recomputation apart); its saving shows on accelerators.
"""

import argparse
import itertools
import sys
from collections.abc import Sequence

import jax

from genimg_jax.cli import parse_with_overrides, run_command
from genimg_jax.config import apply_overrides, load_config
from genimg_jax.training import memory_check
from genimg_jax.training.compiled_run import compile_run

GIB = memory_check.GIB


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.tools.step_memory", description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--microbatch", default=None, help="comma list of train.microbatch values (default: config)")
    parser.add_argument("--remat", default=None, help="comma list of off|on (default: the config's)")

    def run() -> None:
        args, overrides = parse_with_overrides(parser, argv)
        base = apply_overrides(load_config(args.config), overrides)
        microbatches = [int(v) for v in args.microbatch.split(",")] if args.microbatch else [base.train.microbatch]
        remats = [v == "on" for v in args.remat.split(",")] if args.remat else [base.model.get("remat", False)]
        device = jax.local_devices()[0]
        available = memory_check.device_memory(device)
        print(
            f"{args.config}, batch {base.train.batch_size} over {jax.device_count()} {device.platform} devices "
            f"({available / GIB:.1f} GiB each)"
        )
        for microbatch, remat in itertools.product(microbatches, remats):
            settings = [f"train.microbatch={microbatch}"] + ([f"model.remat={remat}"] if "remat" in base.model else [])
            config = apply_overrides(base, [*settings, "train.memory_check=False"])
            memory = memory_check.check_train_step(compile_run(config), config)
            verdict = "fits" if memory.total <= available else "does not fit"
            print(
                f"  {' '.join(settings)}: {memory.total / GIB:.2f} GiB per device ({memory.temporaries / GIB:.2f} "
                f"temporaries, {(memory.arguments + memory.outputs) / GIB:.2f} state and batch): {verdict}"
            )

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
