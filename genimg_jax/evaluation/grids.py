"""Image grids written as PNG: how a person looks at what a model makes."""

import math
import os
from collections.abc import Mapping

import numpy as np

from genimg_jax.evaluation.provenance import save_png

DISPLAY_SIZE = 256  # grids of small images are enlarged by whole pixels to about this width


def make_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile uint8 NHWC images into one HWC image, row-major, with `padding` pixels of black between tiles."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 NHWC images, got {images.dtype} {images.shape}")
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.zeros((rows * (height + padding) + padding, columns * (width + padding) + padding, channels), np.uint8)
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def display_scale(images: np.ndarray, columns: int | None = None) -> int:
    """The whole-pixel enlargement that makes a grid of `images` about `DISPLAY_SIZE` wide (at least 1)."""
    columns = columns or math.ceil(math.sqrt(len(images)))
    return max(1, DISPLAY_SIZE // (images.shape[2] * columns))


def save_grid(
    images: np.ndarray,
    path: str | os.PathLike,
    provenance: Mapping[str, str],
    columns: int | None = None,
    scale: int | None = None,
) -> np.ndarray:
    """Write a grid of uint8 NHWC images to `path` with its `provenance` (provenance.py), each pixel repeated
    `scale` times (default `display_scale`); returns the grid at its own size."""
    grid = make_grid(images, columns)
    scale = display_scale(images, columns) if scale is None else scale
    save_png(grid.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else grid, path, provenance)
    return grid
