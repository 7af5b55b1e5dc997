"""Pixel-level conversions shared by every source and by the training code.

Sources store images in whatever size and channel count the data ships with; `fit_image` is the one place
that turns them into the configured `(resolution, resolution, channels)` uint8 layout, so every source
resizes identically. Resizing runs in float32 (PIL mode "F", one channel at a time) so that float data
(scaled digits, faces) is not rounded twice and PIL's antialiased bicubic filter is used for both up- and
down-sampling.
"""

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

# ITU-R 601-2 luma, the same weights PIL uses for mode "L".
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def pil_pixels(image: Image.Image) -> np.ndarray:
    """A decoded PIL image as float32 on the 0..255 scale, HW (gray) or HWC (RGB).

    PIL's own `convert("L")` clips 16-bit values at 255 (a 16-bit PNG comes out nearly white), so 16-bit
    modes are rescaled by 255/65535 here; transparent images (RGBA, LA, palette with transparency) are
    composited over black, i.e. colours are premultiplied by alpha, so fully transparent pixels are 0 whatever
    colour they happen to store.
    """
    if image.mode in _SIXTEEN_BIT_MODES:
        return np.asarray(image, np.float32) / 257.0
    if image.mode == "F":
        raise ValueError("floating-point images (PIL mode F) have no defined 0..255 scale")
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), np.float32)
        return rgba[..., :3] * (rgba[..., 3:] / 255.0)
    if image.mode in ("1", "L"):
        return np.asarray(image.convert("L"), np.float32)
    return np.asarray(image.convert("RGB"), np.float32)


def center_crop_square(image: np.ndarray) -> np.ndarray:
    """Crops the largest centred square, so resizing never distorts the aspect ratio."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top : top + side, left : left + side]


def fit_image(
    image: np.ndarray, resolution: int, channels: int, resample: Image.Resampling = Image.Resampling.BICUBIC
) -> np.ndarray:
    """Returns `image` (HW or HWC with 1 or 3 channels, any real dtype, values on the 0..255 scale) as uint8
    `(resolution, resolution, channels)`: channels converted, centre-cropped, resized with PIL's antialiased
    `resample` filter (bicubic; the dataset tool uses Lanczos), rounded."""
    pixels = np.asarray(image, np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[-1] == 3 and channels == 1:
        pixels = (pixels @ _LUMA)[..., None]
    elif pixels.shape[-1] == 1 and channels == 3:
        pixels = np.repeat(pixels, 3, axis=-1)
    pixels = center_crop_square(pixels)
    if pixels.shape[0] != resolution:
        pixels = np.stack(
            [
                np.asarray(
                    Image.fromarray(np.ascontiguousarray(pixels[..., c])).resize((resolution, resolution), resample)
                )
                for c in range(channels)
            ],
            axis=-1,
        )
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def to_unit_range(images_uint8: jax.Array | np.ndarray) -> jax.Array:
    """uint8 pixels -> float32 in [-1, 1]. Batches travel to devices as uint8 (4x less host->device traffic)
    and are converted inside the jitted step with this function. Centring before dividing keeps 0 and 255
    exactly at -1 and 1 (XLA turns `x / 127.5 - 1` into a reciprocal multiply that gives 1.0000001)."""
    return (jnp.asarray(images_uint8, jnp.float32) - 127.5) / 127.5


def quantized(images: jax.Array) -> jax.Array:
    """Float images in [-1, 1] snapped to the 256 levels a uint8 PNG holds (rounded, clipped), staying on device:
    what evaluation feeds the feature net, so samples reach it as real images do (EDM and pytorch-fid score
    uint8 files); `to_unit_range(from_unit_range(x))` without leaving the jitted function."""
    return to_unit_range(jnp.clip(jnp.round((images.astype(jnp.float32) + 1.0) * 127.5), 0, 255))


def from_unit_range(images: jax.Array | np.ndarray) -> np.ndarray:
    """Float images in [-1, 1] -> uint8 on the host (rounded, clipped), the inverse of `to_unit_range`,
    for writing PNG sample grids."""
    pixels = (np.asarray(images, np.float32) + 1.0) * 127.5
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
