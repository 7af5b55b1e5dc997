"""Image grids written as PNG: how a person looks at what a model makes."""

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

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


CAPTION_LINE_HEIGHT = 11  # pixels per caption line under a tile, for PIL's default bitmap font


def wrap_caption(text: str, width_chars: int) -> list[str]:
    """`text` broken at spaces into lines of at most `width_chars` characters (a longer word gets its own line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width_chars:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def save_captioned_grid(
    images: np.ndarray, captions: list[str], path: str | os.PathLike, provenance: Mapping[str, str], columns: int
) -> np.ndarray:
    """Write a grid of uint8 NHWC images, each enlarged to about 96 pixels with its caption written under it in
    white on black; returns the grid."""
    scale = max(1, 96 // images.shape[2])
    size = images.shape[2] * scale
    characters = max(1, size // 6)  # the default font is about 6 pixels wide
    wrapped = [wrap_caption(text, characters) for text in captions]
    band = CAPTION_LINE_HEIGHT * max(len(lines) for lines in wrapped) + 2
    tiles = []
    for image, lines in zip(images, wrapped, strict=True):
        rgb = np.broadcast_to(image, (*image.shape[:2], 3)) if image.shape[-1] == 1 else image
        tile = Image.new("RGB", (size, size + band))
        tile.paste(Image.fromarray(np.ascontiguousarray(rgb)).resize((size, size), Image.NEAREST), (0, 0))
        draw = ImageDraw.Draw(tile)
        for index, line in enumerate(lines):
            draw.text((1, size + 1 + index * CAPTION_LINE_HEIGHT), line, fill=(255, 255, 255))
        tiles.append(np.asarray(tile))
    grid = make_grid(np.stack(tiles), columns)
    save_png(grid, path, provenance)
    return grid


def save_sample_grid(
    images: np.ndarray, path: str | os.PathLike, provenance: Mapping[str, str], captions: Sequence[str] = ()
) -> np.ndarray:
    """A sample grid: `save_captioned_grid` when the images were drawn for `captions` (one each), else `save_grid`."""
    if not captions:
        return save_grid(images, path, provenance)
    return save_captioned_grid(images, list(captions), path, provenance, math.ceil(math.sqrt(len(images))))
