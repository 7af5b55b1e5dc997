"""How well the invisible watermark (genimg_jax/evaluation/watermark.py) survives, and how often it fires wrongly.

    python -m experiments.watermark_robustness [--samples=WORKDIR/samples/step_0000800.png ...] [--tile=32]

Marked sets: 32x32 colour crops of scikit-image's photos (CIFAR-sized), scikit-learn's digits at 32x32, 8x8 grids
of each as the trainer writes them (274x274), and any sample grids given with --samples (cut into their
`--tile`-pixel tiles too). Each is marked, then attacked: JPEG at quality 75 (PIL), bicubic resizing to 0.5x and
2x and back. Unmarked sets for the false-positive rate: every digit, thousands of photo crops, grids of both,
the photos at full size, and the same after JPEG. Prints one table of detection rates and z-scores and one of
false positives.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable

import numpy as np
from PIL import Image
from skimage import data as skimage_data
from sklearn.datasets import load_digits

from genimg_jax.data.images import fit_image
from genimg_jax.evaluation import watermark
from genimg_jax.evaluation.grids import make_grid

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "camera")
PHOTOS += ("coins",)
GRID_TILES = 64


def jpeg(image: np.ndarray, quality: int = 75) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image.squeeze()).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def resized_and_back(image: np.ndarray, factor: float) -> np.ndarray:
    height, width = image.shape[:2]
    picture = Image.fromarray(image.squeeze())
    small = picture.resize((round(width * factor), round(height * factor)), Image.Resampling.BICUBIC)
    return np.asarray(small.resize((width, height), Image.Resampling.BICUBIC))


ATTACKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": lambda image: image,
    "jpeg q75": jpeg,
    "resize 0.5x+back": lambda image: resized_and_back(image, 0.5),
    "resize 2x+back": lambda image: resized_and_back(image, 2.0),
}


def photo_crops(count: int, size: int, seed: int) -> list[np.ndarray]:
    """Random square crops (32 px to 1/2 of the photo's side) of the photos, resized to `size`: CIFAR-like."""
    rng = np.random.default_rng(seed)
    photos = [getattr(skimage_data, name)() for name in PHOTOS]
    crops = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        side = int(rng.integers(32, min(photo.shape[:2]) // 2))
        top, left = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
        crops.append(fit_image(photo[top : top + side, left : left + side], size, 3))
    return crops


def digits(size: int) -> list[np.ndarray]:
    return [fit_image(image * (255.0 / 16.0), size, 1) for image in load_digits().images]


def grids_of(tiles: list[np.ndarray]) -> list[np.ndarray]:
    return [make_grid(np.stack(tiles[i : i + GRID_TILES])) for i in range(0, len(tiles) - GRID_TILES + 1, GRID_TILES)]


def sample_grids(paths: list[str], tile: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(the grids, their tiles) of sample grids written by `grids.save_grid` at scale 1 with 2 px padding."""
    grids, tiles = [], []
    for path in paths:
        grid = np.asarray(Image.open(path))
        grid = grid[..., None] if grid.ndim == 2 else grid
        grids.append(grid)
        for top in range(2, grid.shape[0] - tile + 1, tile + 2):
            for left in range(2, grid.shape[1] - tile + 1, tile + 2):
                tiles.append(grid[top : top + tile, left : left + tile])
    return grids, tiles


def robustness_rows(sets: dict[str, list[np.ndarray]]) -> list[str]:
    header = f"{'marked set':40s} {'PSNR dB mean/min':>17s} " + " ".join(f"{name:>22s}" for name in ATTACKS)
    rows = [header, " " * 59 + " ".join(f"{'detected, median z':>22s}" for _ in ATTACKS)]
    for name, images in sets.items():
        marked = [watermark.embed(image) for image in images]
        psnrs = [watermark.psnr(image, mark) for image, mark in zip(images, marked, strict=True)]
        cells = []
        for attack in ATTACKS.values():
            scores = np.array([watermark.detect(attack(mark)).score for mark in marked])
            cells.append(f"{np.mean(scores >= watermark.THRESHOLD):6.1%}, {np.median(scores):5.2f}")
        label = f"{name} (n={len(images)}, {images[0].shape[0]}x{images[0].shape[1]})"
        psnr_cell = f"{np.mean(psnrs):8.1f}/{np.min(psnrs):4.1f}"
        rows.append(f"{label:40s} {psnr_cell}    " + " ".join(f"{cell:>22s}" for cell in cells))
    return rows


def false_positive_rows(sets: dict[str, list[np.ndarray]]) -> list[str]:
    rows = [f"{'unmarked set':40s} {'false positives':>16s} {'z mean':>7s} {'z std':>6s} {'z max':>6s}"]
    total = positives = 0
    for name, images in sets.items():
        scores = np.array([watermark.detect(image).score for image in images])
        hits = int(np.sum(scores >= watermark.THRESHOLD))
        total, positives = total + len(scores), positives + hits
        label = f"{name} (n={len(images)})"
        spread = f"{scores.mean():7.2f} {scores.std():6.2f} {scores.max():6.2f}"
        rows.append(f"{label:40s} {hits:>7d} ({hits / len(scores):5.2%}) {spread}")
    rows.append(f"{'all':40s} {positives:>7d} of {total}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", nargs="*", default=[], help="sample grid PNGs of a run (scale 1)")
    parser.add_argument("--tile", type=int, default=32, help="tile size of the --samples grids")
    args = parser.parse_args()
    crops, digit_images = photo_crops(2000, 32, seed=0), digits(32)
    marked = {"photo crops 32x32 RGB": crops[:200], "digits 32x32": digit_images[:200]}
    marked |= {"grids of photo crops": grids_of(crops[:640]), "grids of digits": grids_of(digit_images[:640])}
    if args.samples:
        grids, tiles = sample_grids(args.samples, args.tile)
        marked |= {"generated grids": grids, "generated tiles": tiles}
    unmarked_crops = photo_crops(3000, 32, seed=1)
    photos = [getattr(skimage_data, name)() for name in PHOTOS]
    unmarked = {
        "digits 32x32 (all)": digit_images,
        "photo crops 32x32 RGB": unmarked_crops,
        "photo crops 32x32, JPEG q75": [jpeg(image) for image in unmarked_crops[:1000]],
        "grids of digits": grids_of(digit_images),
        "grids of photo crops": grids_of(unmarked_crops),
        "photos, full size": photos,
        "faces 25x25 (skimage lfw_subset)": [fit_image(face * 255.0, 25, 1) for face in skimage_data.lfw_subset()],
    }
    print(f"watermark: 1-bit keyed mark, detection at z >= {watermark.THRESHOLD} (null: about N(0, 1))\n")
    print("\n".join(robustness_rows(marked)) + "\n")
    print("\n".join(false_positive_rows(unmarked)))


if __name__ == "__main__":
    main()
