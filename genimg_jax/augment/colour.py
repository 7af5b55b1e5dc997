"""Colour transforms as 4x4 homogeneous matrices on RGB, composed into one matrix per image and applied once.

As in stylegan2-ada-pytorch's AugmentPipe: ops compose by left-multiplying (`op @ c`), so brightness then contrast
gives c * (x + b), scaling around 0, not around the image mean. The luma axis is (1, 1, 1) / sqrt(3); grey
images get the mean of the matrix's three rows.
"""

import jax
import jax.numpy as jnp
import numpy as np

LUMA_AXIS = np.array([1.0, 1.0, 1.0, 0.0], np.float32) / np.sqrt(3.0)
_LUMA_OUTER = np.outer(LUMA_AXIS, LUMA_AXIS)
_RGB = np.diag([1.0, 1.0, 1.0, 0.0]).astype(np.float32)
_CHROMA = _RGB - _LUMA_OUTER  # projection onto the plane orthogonal to the luma axis
HIGHEST = jax.lax.Precision.HIGHEST  # full float32 (TPUs otherwise multiply in bf16)


def _per_image(values: jax.Array) -> jax.Array:
    return jnp.asarray(values, jnp.float32).reshape(-1, 1, 1)


def identity(batch: int) -> jax.Array:
    return jnp.broadcast_to(jnp.eye(4, dtype=jnp.float32), (batch, 4, 4))


def compose(first: jax.Array, second: jax.Array) -> jax.Array:
    """The per-image matrix product first @ second, in full float32."""
    return jnp.matmul(first, second, precision=HIGHEST)


def brightness(offset: jax.Array) -> jax.Array:
    """Add `offset` to every channel."""
    translation = np.zeros((4, 4), np.float32)
    translation[:3, 3] = 1.0
    return jnp.eye(4) + _per_image(offset) * translation


def contrast(factor: jax.Array) -> jax.Array:
    """Multiply every channel by `factor` (around 0)."""
    return jnp.eye(4) + (_per_image(factor) - 1) * _RGB


def lumaflip(flip: jax.Array) -> jax.Array:
    """Where `flip` is 1, reflect colours through the plane orthogonal to the luma axis (a Householder reflection)."""
    return jnp.eye(4) - 2 * _per_image(flip) * _LUMA_OUTER


def hue(theta: jax.Array) -> jax.Array:
    """Rotate colours by `theta` radians around the luma axis (Rodrigues' formula)."""
    vx, vy, vz = LUMA_AXIS[:3]
    cross = np.zeros((4, 4), np.float32)
    cross[:3, :3] = [[0.0, -vz, vy], [vz, 0.0, -vx], [-vy, vx, 0.0]]
    cos, sin = _per_image(jnp.cos(theta)), _per_image(jnp.sin(theta))
    return jnp.eye(4) + (cos - 1) * _CHROMA + sin * cross


def saturation(factor: jax.Array) -> jax.Array:
    """Scale the chroma (the component orthogonal to the luma axis) by `factor`."""
    return jnp.eye(4) + (_per_image(factor) - 1) * _CHROMA


def apply_colour_matrix(images: jax.Array, matrix: jax.Array) -> jax.Array:
    """Apply per-image 4x4 matrices to NHWC RGB or grey images; images whose matrix is the identity are returned."""
    channels = images.shape[-1]
    if channels == 3:
        out = jnp.einsum("bij,bhwj->bhwi", matrix[:, :3, :3], images, precision=HIGHEST) + matrix[:, None, None, :3, 3]
    elif channels == 1:
        grey = jnp.mean(matrix[:, :3, :], axis=1)
        out = images * jnp.sum(grey[:, :3], axis=1)[:, None, None, None] + grey[:, 3][:, None, None, None]
    else:
        raise ValueError(f"colour augmentation needs RGB or grey images, got {channels} channels")
    is_identity = jnp.all(matrix == jnp.eye(4, dtype=matrix.dtype), axis=(1, 2))
    return jnp.where(is_identity[:, None, None, None], images, out.astype(images.dtype))
