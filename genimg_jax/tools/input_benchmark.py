"""Input throughput: how many images/s one host's training stream delivers, for several thread and worker counts.

    python -m genimg_jax.tools.input_benchmark --source=folder:PATH|tfds:NAME [--data_dir=DIR] [--threads=1,2,4,8]
        [--workers=0,4] [--resolution=32] [--channels=3] [--batch_size=128] [--batches=30]
    python -m genimg_jax.tools.input_benchmark --synthetic=50000 [--synthetic_dir=DIR] [--threads=...] [--workers=...]

The stream is the one training reads (`data.make_train_stream`: shuffled, `read_threads`, `num_workers`) with
nothing consuming it, so the rate is what the input can supply, to compare with what a train step consumes
(experiments/records/input_throughput.md). `--synthetic=N` first writes N random 32x32 RGB PNGs into a temporary
folder (or `--synthetic_dir`, kept and reused) and the tfds array_record dataset of them (`data.dataset_writer`),
then measures both and the time each takes to open. Numbers are printed, never asserted: they depend on the
machine and on what else runs on it.
"""

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from genimg_jax import data
from genimg_jax.cli import run_command
from genimg_jax.data import dataset_writer

_SYNTHETIC_NAME = "synthetic_images"
_WARMUP = 3  # batches read before timing: the pool starts, the prefetch buffer fills


def images_per_second(source: data.ImageSource, threads: int, workers: int, batch_size: int, batches: int) -> float:
    """Median images/s over three timed thirds of `batches` batches of a fresh stream on `threads` read threads in
    each of `workers` worker processes (0: in this one)."""
    stream = data.make_train_stream(
        source, global_batch_size=batch_size, seed=0, read_threads=threads, num_workers=workers
    )
    try:
        for _ in range(_WARMUP + workers):  # also waits for every worker to start
            next(stream)
        rates = []
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(max(1, batches // 3)):
                next(stream)
            rates.append(max(1, batches // 3) * batch_size / (time.perf_counter() - start))
    finally:
        stream.close()
    return statistics.median(rates)


def write_synthetic_folder(root: Path, count: int, resolution: int = 32) -> None:
    """`count` PNGs of uniform noise (the hardest case for PNG: nothing compresses), in 10 class folders."""

    def write(index: int) -> None:
        pixels = np.random.default_rng([0, index]).integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)
        folder = root / f"class{index % 10}"
        Image.fromarray(pixels).save(folder / f"{index:06d}.png")

    for label in range(10):
        (root / f"class{label}").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(count)))


@contextlib.contextmanager
def synthetic_specs(count: int, keep_in: str) -> Iterator[tuple[list[str], str]]:
    """([folder spec, tfds spec], data_dir) of `count` synthetic images, written into `keep_in` (reused if it holds
    them already) or a temporary folder."""
    with contextlib.ExitStack() as stack:
        root = Path(keep_in) if keep_in else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder, data_dir = root / "images", root / "tfds"
        if not folder.is_dir():
            start = time.perf_counter()
            write_synthetic_folder(folder, count)
            print(f"wrote {count} PNGs in {time.perf_counter() - start:.1f} s", flush=True)
        if not data_dir.is_dir():
            start = time.perf_counter()
            dataset_writer.write_dataset(folder, data_dir, _SYNTHETIC_NAME, 32, 3)
            print(f"wrote the tfds array_record dataset in {time.perf_counter() - start:.1f} s", flush=True)
        yield [f"folder:{folder}", f"tfds:{_SYNTHETIC_NAME}"], str(data_dir)


def measure(specs: Sequence[str], data_dir: str, args: argparse.Namespace) -> None:
    """One line per (source, worker count, thread count): this host's images/s; and the time each source took to
    open."""
    for spec in specs:
        start = time.perf_counter()
        source = data.make_source(
            spec, split="train", resolution=args.resolution, channels=args.channels, data_dir=data_dir or None
        )
        opened = time.perf_counter() - start
        print(f"{spec.split(':')[0]}: {len(source)} images, opened in {opened:.2f} s", flush=True)
        for workers in args.workers:
            for threads in args.threads:
                rate = images_per_second(source, threads, workers, args.batch_size, args.batches)
                print(f"  num_workers={workers} read_threads={threads}: {rate:.0f} images/s", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.tools.input_benchmark", description=__doc__)
    parser.add_argument("--source", default="", help="a source spec, e.g. folder:PATH or tfds:NAME")
    parser.add_argument("--synthetic", type=int, default=0, help="write N synthetic images and measure both forms")
    parser.add_argument("--synthetic_dir", default="", help="keep (or reuse) the synthetic data here")
    parser.add_argument("--data_dir", default="", help="tfds data directory ('' = tfds default)")
    parser.add_argument("--threads", type=lambda text: [int(t) for t in text.split(",")], default=[1, 2, 4, 8])
    parser.add_argument("--workers", type=lambda text: [int(t) for t in text.split(",")], default=[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=30, help="timed batches per thread count")
    args = parser.parse_args(argv)
    if bool(args.source) == bool(args.synthetic):
        parser.error("give one of --source=SPEC or --synthetic=N")

    def run() -> None:
        if args.synthetic:
            with synthetic_specs(args.synthetic, args.synthetic_dir) as (specs, data_dir):
                measure(specs, data_dir, args)
        else:
            measure([args.source], args.data_dir, args)

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
