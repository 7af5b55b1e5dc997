"""A folder or zip of images -> a tfds dataset in array_record format, centre-cropped and resized.

    python -m genimg_jax.tools.dataset_tool --source=DIR_OR_ZIP --out=DATA_DIR --name=NAME --resolution=R
        [--channels=3] [--labels=labels.json] [--small_images=skip|upscale]

Class subfolders give the labels, or a labels JSON (`{"a/1.png": 0, ...}` or stylegan2-ada's dataset.json);
see `data.dataset_writer`. Prints a summary (images written per class, files skipped and why), also written as
DATA_DIR/NAME/1.0.0/dataset_tool_summary.json. Train on it with
`--config.data.source=tfds:NAME --config.data.data_dir=DATA_DIR`.
"""

import argparse
import sys
from collections.abc import Sequence

from genimg_jax.cli import run_command
from genimg_jax.data import dataset_writer
from genimg_jax.data.folder_source import SMALL_IMAGE_POLICIES

_SHOWN = 3  # skipped files named per reason on the terminal (the JSON lists them all)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.tools.dataset_tool", description=__doc__)
    parser.add_argument("--source", required=True, help="a folder or a .zip of images")
    parser.add_argument("--out", required=True, help="the tfds data_dir to write into")
    parser.add_argument("--name", required=True, help="dataset name, snake_case")
    parser.add_argument("--resolution", type=int, required=True)
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3)
    parser.add_argument("--labels", default="", help="JSON: {file: label} or {'labels': [[file, label], ...]}")
    parser.add_argument("--small_images", choices=SMALL_IMAGE_POLICIES, default="skip")
    return parser


def summary_lines(summary: dict) -> list[str]:
    """What a person reads after a run: where, how many, per class, what was skipped and why."""
    lines = [
        f"wrote {summary['written']} images of {summary['resolution']}x{summary['resolution']}x{summary['channels']} "
        f"to {summary['path']} (split '{summary['split']}', labels from {summary['labels_from']})"
    ]
    if summary["per_class"]:
        lines.append("per class: " + ", ".join(f"{name} {count}" for name, count in summary["per_class"].items()))
    for kind, files in summary["skipped"].items():
        shown = "; ".join(f"{entry['file']} ({entry['why']})" for entry in files[:_SHOWN])
        lines.append(f"skipped {len(files)} {kind}: {shown}{' ...' if len(files) > _SHOWN else ''}")
    lines.append(f"summary: {summary['path']}/{dataset_writer.SUMMARY_FILE}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    def run() -> None:
        args = parser().parse_args(argv)
        summary = dataset_writer.write_dataset(
            args.source, args.out, args.name, args.resolution, args.channels, args.labels or None, args.small_images
        )
        print("\n".join(summary_lines(summary)))

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
