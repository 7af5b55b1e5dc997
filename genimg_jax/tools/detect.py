"""Does an image carry this project's invisible watermark? `python -m genimg_jax.tools.detect IMAGE_OR_DIR...`

Prints one line per image (folders are searched for PNG and JPEG files): detected yes/no and the z-score, about
N(0, 1) for images without the mark; a detection needs z >= 4 (evaluation/watermark.py says why). Exit 0 when
every file could be read, 2 otherwise.
"""

import argparse
import pathlib
import sys
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from genimg_jax.cli import BAD_INPUT
from genimg_jax.evaluation import watermark

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_paths(arguments: Sequence[str]) -> Iterator[pathlib.Path]:
    """Each file argument, and the image files under each folder argument in sorted order."""
    for argument in arguments:
        path = pathlib.Path(argument)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            yield path


def detect_file(path: pathlib.Path, key: str) -> watermark.Detection:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L" if image.mode in ("1", "L", "LA") else "RGB"))  # alpha carries no mark
    return watermark.detect(pixels, key)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.tools.detect", description=__doc__)
    parser.add_argument("paths", nargs="+", metavar="IMAGE_OR_DIR")
    parser.add_argument("--key", default=watermark.DEFAULT_KEY, help="the key the images were marked with")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    status = 0
    for path in image_paths(args.paths):
        try:
            detection = detect_file(path, args.key)
        except (OSError, UnidentifiedImageError, ValueError) as error:
            print(f"{path}: error: {error}", file=sys.stderr)
            status = BAD_INPUT
            continue
        print(f"{path}: watermark {'yes' if detection.detected else 'no'} (z = {detection.score:.2f})", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
