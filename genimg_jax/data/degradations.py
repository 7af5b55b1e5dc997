"""Degradations that turn the uint8 HWC image of any source into the `source` (and `mask`) of a restoration pair.

Spec forms (`config.data.degradation`, `DEGRADATION_FORMS`):
- `downsample:K` — super-resolution: PIL's antialiased bicubic reduction of the uint8 image by the integer K >= 2;
  `source` is (H/K, W/K, C), and the resolution must be divisible by K (SR3's faces 16 -> 128 is K = 8).
- `noise:gaussian:SIGMA` — denoising: N(0, SIGMA^2) added to every pixel and channel on the 0..255 scale, then
  rounded and clipped to uint8 (clipping lowers the spread only near 0 and 255).
- `noise:poisson:PEAK` — photon noise: a pixel x becomes 255 / PEAK * Poisson(x / 255 * PEAK), rounded and
  clipped, so its mean stays x and its variance is 255 * x / PEAK; a lower PEAK is noisier.
- `mask:box` — inpainting: one rectangle missing, each side uniform in [H/4, H/2], placed uniformly inside.
- `mask:free_form` — 1 to 4 random brush strokes missing, in the manner of DeepFill v2 (Yu et al. 2019) and
  Palette: each stroke is a polyline of 4 to 10 segments that turns by up to 60 degrees per segment, of
  segment length H/16 to H/4 and brush width H/16 to H/8, with round joints; about a fifth of the image is
  missing on average (from under 1% to about half).
- `mask:half` — one of the four halves (top, bottom, left, right) missing, drawn uniformly.
- `gray` — colourisation: BT.601 luma 0.299 R + 0.587 G + 0.114 B, rounded; `source` has 1 channel; 3-channel
  data only.
- `edges` — photo -> sketch: Canny edges (skimage.feature.canny) of the luma, black (0) lines on white (255).
- `sketch` — pencil sketch: the colour dodge of the luma g with its Gaussian-blurred negative,
  g * 255 / (255 - blur(255 - g)), clipped to 255.
`edges` and `sketch` keep the image's channel count (grey repeated), so a translation maps C channels to C; their
Gaussian widths grow with the image: sigma = max(1, H / 128) pixels for Canny, max(1, H / 20) for the sketch's
blur (a smaller blur leaves the sketch nearly blank).

Masks: field `mask` is uint8 (H, W, 1) with **1 = known pixel, 0 = missing** (RePaint's convention: a model
keeps the pixels where the mask is 1), and `source` holds 127 (mid grey) in every channel of a missing pixel.

Randomness: the noise and the masks come from the generator the caller passes; `derived_sources.DegradedSource`
seeds it by (degradation spec, split, index) only, never by the run seed, so the pairs are fixed like those of a
prepared dataset: identical across resume, hosts, process counts and runs.
"""

import dataclasses
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from genimg_jax.data.errors import DataError

DEGRADATION_FORMS = (
    "downsample:K",
    "noise:gaussian:SIGMA",
    "noise:poisson:PEAK",
    "mask:box",
    "mask:free_form",
    "mask:half",
    "gray",
    "edges",
    "sketch",
)
MISSING_VALUE = 127  # what `source` holds where the mask is 0
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601

Apply = Callable[[np.ndarray, np.random.Generator], dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Degradation:
    """A parsed spec for images of one shape: `apply(image, rng)` returns `source` (and `mask` if `has_mask`)."""

    spec: str
    source_shape: tuple[int, int, int]
    has_mask: bool
    apply: Apply


def _uint8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _luma(image: np.ndarray) -> np.ndarray:
    """HW float luma of an HWC uint8 image (the image itself if it has one channel)."""
    pixels = image.astype(np.float64)
    return pixels[..., 0] if image.shape[-1] == 1 else pixels @ _LUMA


def _like_image(gray: np.ndarray, channels: int) -> np.ndarray:
    return np.repeat(_uint8(gray)[..., None], channels, axis=-1)


def _sigma(height: int, pixels_per_sigma: float) -> float:
    """A Gaussian width that grows with the image, so a degradation looks alike at every resolution."""
    return max(1.0, height / pixels_per_sigma)


def _downsample(factor: int) -> Apply:
    def apply(image: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        height, width, channels = image.shape
        size = (width // factor, height // factor)
        small = Image.fromarray(image[..., 0] if channels == 1 else image).resize(size, Image.Resampling.BICUBIC)
        return {"source": np.asarray(small).reshape(size[1], size[0], channels)}

    return apply


def _gaussian(sigma: float) -> Apply:
    def apply(image: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"source": _uint8(image + sigma * rng.standard_normal(image.shape))}

    return apply


def _poisson(peak: float) -> Apply:
    def apply(image: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"source": _uint8(rng.poisson(image / 255.0 * peak) * (255.0 / peak))}

    return apply


def _masked(draw_missing: Callable[[int, int, np.random.Generator], np.ndarray]) -> Apply:
    """An inpainting degradation from a function giving the boolean (H, W) map of missing pixels."""

    def apply(image: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        missing = draw_missing(image.shape[0], image.shape[1], rng)
        source = np.where(missing[..., None], np.uint8(MISSING_VALUE), image)
        return {"source": source, "mask": (~missing).astype(np.uint8)[..., None]}

    return apply


def _box(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    box_height = int(rng.integers(height // 4, height // 2 + 1))
    box_width = int(rng.integers(width // 4, width // 2 + 1))
    top = int(rng.integers(0, height - box_height + 1))
    left = int(rng.integers(0, width - box_width + 1))
    missing = np.zeros((height, width), bool)
    missing[top : top + box_height, left : left + box_width] = True
    return missing


def _half(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    rows, columns = np.mgrid[0:height, 0:width]
    return [rows < height // 2, rows >= height // 2, columns < width // 2, columns >= width // 2][rng.integers(4)]


def _free_form(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    side = min(height, width)
    for _ in range(rng.integers(1, 5)):
        brush = int(rng.integers(max(1, side // 16), max(1, side // 8) + 1))
        point = rng.uniform([0, 0], [width, height])
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(rng.integers(4, 11)):
            angle += rng.uniform(-np.pi / 3, np.pi / 3)
            length = rng.uniform(side / 16, side / 4)
            end = np.clip(point + length * np.array([np.cos(angle), np.sin(angle)]), 0, [width - 1, height - 1])
            draw.line([tuple(point), tuple(end)], fill=1, width=brush)
            radius = brush / 2
            draw.ellipse([end[0] - radius, end[1] - radius, end[0] + radius, end[1] + radius], fill=1)
            point = end
    return np.asarray(canvas).astype(bool)


def _gray(image: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"source": _uint8(_luma(image))[..., None]}


def _edges(image: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from skimage.feature import canny

    edges = canny(_luma(image) / 255.0, sigma=_sigma(image.shape[0], 128), mode="nearest")
    return {"source": _like_image(np.where(edges, 0.0, 255.0), image.shape[-1])}


def _sketch(image: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from scipy.ndimage import gaussian_filter

    gray = _luma(image)
    blurred_negative = gaussian_filter(255.0 - gray, _sigma(image.shape[0], 20), mode="nearest")
    dodged = gray * 255.0 / np.maximum(255.0 - blurred_negative, 1e-6)
    return {"source": _like_image(np.minimum(dodged, 255.0), image.shape[-1])}


_MASKS = {"mask:box": _box, "mask:free_form": _free_form, "mask:half": _half}
_DRAWINGS = {"edges": _edges, "sketch": _sketch}


def _form_error(spec: str, problem: str) -> DataError:
    return DataError(f"degradation '{spec}' {problem}; valid forms: {', '.join(DEGRADATION_FORMS)}")


def _number(spec: str, text: str, kind: type, valid: Callable[[float], bool], expectation: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not np.isfinite(value) or not valid(value):
        raise _form_error(spec, f"needs {expectation}, not '{text}'")
    return value


def parse_degradation(spec: str, image_shape: tuple[int, ...]) -> Degradation:
    """The degradation `spec` names (one of `DEGRADATION_FORMS`) for uint8 images of `image_shape` (H, W, C);
    DataError naming the valid forms for an unknown or malformed spec or one the images do not admit."""
    height, width, channels = image_shape
    same_shape = (height, width, channels)
    head, _, value = spec.rpartition(":")
    if spec in _MASKS:
        return Degradation(spec, same_shape, True, _masked(_MASKS[spec]))
    if spec == "gray":
        if channels != 3:
            raise _form_error(spec, f"needs 3-channel images (colourisation), not {channels}")
        return Degradation(spec, (height, width, 1), False, _gray)
    if spec in _DRAWINGS:
        return Degradation(spec, same_shape, False, _DRAWINGS[spec])
    if head == "downsample":
        factor = _number(spec, value, int, lambda k: k >= 2, "an integer K >= 2")
        if height % factor or width % factor:
            raise _form_error(spec, f"needs a resolution divisible by {factor}, not {height}x{width}")
        return Degradation(spec, (height // factor, width // factor, channels), False, _downsample(factor))
    if head == "noise:gaussian":
        sigma = _number(spec, value, float, lambda sigma: sigma >= 0, "SIGMA >= 0")
        return Degradation(spec, same_shape, False, _gaussian(sigma))
    if head == "noise:poisson":
        peak = _number(spec, value, float, lambda peak: peak > 0, "PEAK > 0")
        return Degradation(spec, same_shape, False, _poisson(peak))
    raise _form_error(spec, "is unknown")
