"""Differentiable image transforms with explicit per-image parameters, on NHWC images in [-1, 1].

Every op is a gather, a select or an affine map of pixel values, so gradients flow from the augmented images back
to the inputs (and hence to a generator). Parameters are arrays of shape (batch,) so the random policies in
`diffaugment`, `ada` and `edm` stay thin and the ops themselves are testable without randomness. (ADA's and EDM's
geometric and colour ops are matrices instead: `geometric`, `colour`.)
"""

import jax
import jax.numpy as jnp


def _per_image(values: jax.Array) -> jax.Array:
    return values.reshape(-1, 1, 1, 1)


def flip_x(images: jax.Array, flip: jax.Array) -> jax.Array:
    """Mirror left-right the images where the boolean `flip` is set."""
    return jnp.where(_per_image(flip), images[:, :, ::-1, :], images)


def flip_y(images: jax.Array, flip: jax.Array) -> jax.Array:
    """Mirror top-bottom the images where the boolean `flip` is set."""
    return jnp.where(_per_image(flip), images[:, ::-1, :, :], images)


def _source_indices(size: int, shift: jax.Array) -> tuple[jax.Array, jax.Array]:
    """For output positions 0..size-1 of each image, the input position it reads and whether that is inside."""
    index = jnp.arange(size)[None, :] - shift[:, None]
    inside = (index >= 0) & (index < size)
    return jnp.clip(index, 0, size - 1), inside


def translate(images: jax.Array, shift_y: jax.Array, shift_x: jax.Array) -> jax.Array:
    """Move each image's content down by `shift_y` and right by `shift_x` whole pixels; uncovered pixels are 0."""
    height, width = images.shape[1:3]
    rows, rows_inside = _source_indices(height, shift_y)
    cols, cols_inside = _source_indices(width, shift_x)
    moved = jnp.take_along_axis(images, rows[:, :, None, None], axis=1)
    moved = jnp.take_along_axis(moved, cols[:, None, :, None], axis=2)
    inside = rows_inside[:, :, None, None] & cols_inside[:, None, :, None]
    return jnp.where(inside, moved, jnp.zeros_like(moved))


def cutout(images: jax.Array, center_y: jax.Array, center_x: jax.Array, size: int) -> jax.Array:
    """Set a `size` x `size` square to 0: rows cy - size//2 to cy - size//2 + size - 1 (clipped), same for columns."""
    height, width = images.shape[1:3]
    top, left = center_y - size // 2, center_x - size // 2
    rows = jnp.arange(height)[None, :] - top[:, None]
    cols = jnp.arange(width)[None, :] - left[:, None]
    in_rows = (rows >= 0) & (rows < size)
    in_cols = (cols >= 0) & (cols < size)
    hole = in_rows[:, :, None, None] & in_cols[:, None, :, None]
    return jnp.where(hole, jnp.zeros_like(images), images)


def adjust_brightness(images: jax.Array, delta: jax.Array) -> jax.Array:
    """Add `delta` to every pixel of each image."""
    return images + _per_image(delta).astype(images.dtype)


def adjust_contrast(images: jax.Array, factor: jax.Array) -> jax.Array:
    """Scale each image's deviation from its mean intensity by `factor` (DiffAugment's contrast)."""
    mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
    return (images - mean) * _per_image(factor).astype(images.dtype) + mean


def adjust_saturation(images: jax.Array, factor: jax.Array) -> jax.Array:
    """Scale each pixel's deviation from its channel mean (its grey value) by `factor`; no-op on grey images."""
    grey = jnp.mean(images, axis=3, keepdims=True)
    return (images - grey) * _per_image(factor).astype(images.dtype) + grey
