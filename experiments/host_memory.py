"""Host memory over a long run: RSS of a training run with periodic evaluation, then of memorization audits of
growing sample counts, sampled every 0.2 s.

    python -m experiments.host_memory --workdir=runs/memory [--steps=2000] [--samples=500,4000]

Prints RSS at each tenth of the training run (flat means nothing accumulates per step or per evaluation) and, for
each audit, its peak RSS above the RSS before it beside the bytes of the features it must hold.
"""

from __future__ import annotations

import argparse
import pathlib
import threading
import time

from genimg_jax.config import apply_overrides, load_config
from genimg_jax.evaluation import from_checkpoint
from genimg_jax.training import trainer

SMALL_RUN = (
    "data.resolution=16",
    "model.g_features=8",
    "model.d_features=8",
    "model.latent_dim=16",
    "train.batch_size=16",
    "train.log_every=100",
    "train.sample_every=500",
    "train.checkpoint_every=200",
    "eval.every=250",
    "eval.metrics=fid,kid,is,pr",
    "eval.batch_size=64",
    "eval.num_samples=500",
    "eval.kid_subsets=5",
    "eval.kid_subset_size=100",
    "eval.is_splits=4",
)


def rss_mib() -> float:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class Sampler:
    """RSS every `interval` seconds in a background thread, while inside the `with` block."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.samples = interval, []
        self._done = threading.Event()

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self.samples.append(rss_mib())

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()
        self.samples.append(rss_mib())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, type=pathlib.Path)
    parser.add_argument("--config", default="configs/dcgan.py")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--samples", default="500,4000", help="comma list of audit sample counts")
    args = parser.parse_args()
    config = apply_overrides(load_config(args.config), [*SMALL_RUN, f"train.steps={args.steps}"])
    begin = time.perf_counter()
    with Sampler() as training:
        trainer.train(config, args.workdir)
    tenths = [training.samples[min(len(training.samples) - 1, i * len(training.samples) // 10)] for i in range(11)]
    print(f"training {args.steps} steps ({time.perf_counter() - begin:.0f} s): RSS MiB at each tenth of the run:")
    print("  " + " ".join(f"{value:.0f}" for value in tenths) + f"; max {max(training.samples):.0f}")
    for count in map(int, args.samples.split(",")):
        audit_config = apply_overrides(config, [f"eval.num_samples={count}"])
        before = rss_mib()
        with Sampler() as audit:
            from_checkpoint.memorization_audit(audit_config, args.workdir)
        features_mib = count * (128 + 10) * 4 / 2**20  # the digits net: 128 float32 features and 10 logits
        print(
            f"audit of {count} samples: peak RSS {max(audit.samples) - before:+.0f} MiB over {before:.0f} MiB "
            f"(sample features at most {features_mib:.1f} MiB)"
        )


if __name__ == "__main__":
    main()
