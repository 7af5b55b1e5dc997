"""FID statistics of an image set as pytorch-fid's `.npz` (`mu`, `sigma`), usable as an evaluation's reference
(`--config.eval.reference_stats=stats.npz`) and by pytorch-fid (`python -m pytorch_fid DIR stats.npz`):

    python -m genimg_jax.tools.fid_stats --source=SOURCE --out=stats.npz [--features=inception
        --inception_weights=PATH | --features=digits] [--split=train] [--resolution=32] [--channels=3]
        [--batch_size=256] [--data_dir=DIR]

SOURCE is a data source spec (`digits`, `faces`, `tfds:NAME`, `folder:PATH`, `npz:PATH`), a folder of images (a
set written by `--mode=generate`) or an `.npz` of uint8 images under `x` (its `--npz`). Images are fitted to
`--resolution` and `--channels` as a config's `data` section fits them, so statistics meant for an evaluation
use its `data.resolution` and `data.channels`; features come from the evaluation's own feature nets and
batching (metrics/reference.py), so FID against the file equals FID against the split in memory.
"""

import argparse
import pathlib
import sys
from collections.abc import Sequence

from genimg_jax import data, parallel
from genimg_jax.cli import run_command
from genimg_jax.config import ConfigError, base_config
from genimg_jax.metrics import features, fid, fid_stats_file, inception_weights, reference


def source_spec(text: str) -> str:
    """A folder path as `folder:PATH`, an .npz file as `npz:PATH`, anything else as the data source spec it is."""
    path = pathlib.Path(text)
    if path.is_dir():
        return f"folder:{text}"
    if path.suffix == ".npz" and path.is_file():
        return f"npz:{text}"
    return text


def write_fid_stats(args: argparse.Namespace) -> tuple[int, int]:
    """Compute and write the statistics the arguments ask for; returns (images, feature dimension)."""
    if args.features == "inception" and not pathlib.Path(args.inception_weights).is_file():
        raise ConfigError(
            f"--features=inception needs --inception_weights=PATH, pytorch-fid's {inception_weights.EXPECTED_FILE} "
            f"(nothing is downloaded); not found: {args.inception_weights or '(none given)'}"
        )
    try:
        net = features.load_feature_net(args.features, args.inception_weights)
        net.check_images(args.resolution, args.channels)
    except ValueError as error:
        raise ConfigError(f"--features={args.features}: {error}") from None
    mesh = parallel.make_mesh(base_config().mesh)
    shards = parallel.batch_axis_size(mesh)
    if args.batch_size <= 0 or args.batch_size % shards:
        raise ConfigError(f"--batch_size={args.batch_size} must be a positive multiple of the {shards} devices")
    spec = source_spec(args.source)
    options = {"split": args.split, "resolution": args.resolution, "channels": args.channels}
    try:
        source = data.make_source(spec, data_dir=args.data_dir or None, **options)
    except data.DataError as error:
        raise data.DataError(f"--source: {error}") from None
    outputs = reference.source_features(net, source, args.batch_size, parallel.batch_sharding(mesh))
    moments = fid.FeatureMoments(outputs["features"].shape[-1])
    moments.update(outputs["features"])
    mean, covariance = moments.mean_and_covariance()
    fid_stats_file.save_fid_stats(args.out, mean, covariance, net, moments.count, {"source": spec, **options})
    return moments.count, moments.dim


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.tools.fid_stats", description=__doc__)
    parser.add_argument("--source", required=True, help="data source spec, image folder or .npz of images")
    parser.add_argument("--out", required=True, help="the .npz to write")
    parser.add_argument("--features", choices=features.FEATURE_NETS, default="inception")
    parser.add_argument("--inception_weights", default="", help="pytorch-fid's Inception weights file")
    parser.add_argument("--split", default="train", help="split of a dataset source (folders without splits: all)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--data_dir", default="", help="tensorflow-datasets data directory")

    def run() -> None:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        count, dim = write_fid_stats(args)
        print(f"wrote {args.out}: mean and covariance of {count} images' {dim}-d {args.features} features")

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
