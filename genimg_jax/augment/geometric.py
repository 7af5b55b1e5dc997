"""One inverse affine per image, applied in one resampling: the geometric half of ADA's and EDM's augmentation.

Each geometric op contributes a 3x3 matrix that maps output pixel coordinates to input ones (homogeneous, origin
at the image centre, x right, y down, in pixels); ops compose by right-multiplying (`g_inv @ op_inv`), and the
product is applied once, as stylegan2-ada-pytorch's and EDM's AugmentPipe do: reflect padding, 2x upsampling with
the sym6 wavelet low-pass, bilinear sampling of the upsampled image, 2x downsampling with the same filter. The
filter is orthogonal, so upsampling then downsampling is the identity: whole-pixel transforms (flips, quarter
turns, integer shifts) come out exact up to float rounding, and sub-pixel ones are band-limited.

The reference pads each batch by what its transforms need (a data-dependent shape); here every image is padded by
the most the reference ever pads (size - 1 on each side), which gives the same values wherever the reference
samples. Images whose matrix is the identity are returned exactly.
"""

import jax
import jax.numpy as jnp
import numpy as np

# Low-pass decomposition filter of the sym6 wavelet (12 taps, sum sqrt(2)), the reference's `wavelets['sym6']`.
SYM6 = np.array(
    [
        0.015404109327027373,
        0.0034907120842174702,
        -0.11799011114819057,
        -0.048311742585633,
        0.4910559419267466,
        0.787641141030194,
        0.3379294217276218,
        -0.07263752278646252,
        -0.021060292512300564,
        0.04472490177066578,
        0.0017677118642428036,
        -0.007800708325034148,
    ],
    np.float32,
)
FILTER_MARGIN = len(SYM6) // 4  # pixels of context the filters need around the output, at the input resolution
# Full float32 in every product here: coordinates reach hundreds of pixels, which a bf16 pass would move by pixels.
HIGHEST = jax.lax.Precision.HIGHEST


def _matrices(rows: list[list[jax.Array | float]]) -> jax.Array:
    """Stack per-image entries (arrays of shape (batch,) or scalars) into matrices of shape (batch, n, n)."""
    batch = next(jnp.shape(x)[0] for row in rows for x in row if jnp.ndim(x) > 0)
    entries = [jnp.broadcast_to(jnp.asarray(x, jnp.float32), (batch,)) for row in rows for x in row]
    return jnp.stack(entries, axis=-1).reshape(batch, len(rows), len(rows[0]))


def translate2d(tx: jax.Array, ty: jax.Array) -> jax.Array:
    return _matrices([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scale2d(sx: jax.Array, sy: jax.Array) -> jax.Array:
    return _matrices([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def rotate2d(theta: jax.Array) -> jax.Array:
    """Rotation by `theta` radians (from +x towards +y, i.e. clockwise on screen, since y points down)."""
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    return _matrices([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])


def identity(batch: int) -> jax.Array:
    return jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (batch, 3, 3))


def compose(first: jax.Array, second: jax.Array) -> jax.Array:
    """The per-image matrix product first @ second, in full float32."""
    return jnp.matmul(first, second, precision=HIGHEST)


def _correlate(images: jax.Array, axis: int, taps: np.ndarray, padding: tuple[int, int], stride: int = 1) -> jax.Array:
    """Correlate every row (axis 2) or column (axis 1) of NHWC `images` with `taps`, zero-padded, strided.

    A sum of shifted slices: exact float32 on every backend, and far faster on CPU than a depthwise conv.
    """
    padded = jnp.pad(images, [padding if dim == axis else (0, 0) for dim in range(images.ndim)])
    length = (padded.shape[axis] - len(taps)) // stride + 1
    return sum(
        float(tap) * jax.lax.slice_in_dim(padded, start, start + stride * (length - 1) + 1, stride, axis)
        for start, tap in enumerate(taps)
    )


def _upsample2x(images: jax.Array) -> jax.Array:
    """Zero-interleave and convolve with sym6 along each axis: (n) -> (2n), input pixel i lands on sample 2i.

    Done in two phases (even and odd output samples each read every other tap), interleaved: the same sum
    without the multiplications by the inserted zeros.
    """
    for axis in (2, 1):
        even = _correlate(images, axis, SYM6[1::2][::-1], (3, 2))  # taps 11, 9, ..., 1 on pixels i-3 .. i+2
        odd = _correlate(images, axis, SYM6[0::2][::-1], (2, 3))  # taps 10, 8, ..., 0 on pixels i-2 .. i+3
        images = jnp.stack([even, odd], axis=axis + 1)
        shape = images.shape
        images = images.reshape(*shape[:axis], 2 * shape[axis], *shape[axis + 2 :])
    return images


def _downsample2x(images: jax.Array) -> jax.Array:
    """Correlate with sym6 and keep every other sample along each axis, then crop the filter margin."""
    pad = (len(SYM6) - 1) // 2
    for axis in (2, 1):
        images = _correlate(images, axis, SYM6, (pad, pad), stride=2)
    margin = FILTER_MARGIN
    return images[:, margin:-margin, margin:-margin, :]


def _bilinear(images: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
    """Sample NHWC `images` at fractional (rows, cols) of shape (batch, h, w); points outside read zeros."""
    batch, height, width, channels = images.shape
    flat = images.reshape(batch, height * width, channels)
    row0, col0 = jnp.floor(rows), jnp.floor(cols)
    result = jnp.zeros((*rows.shape, channels), images.dtype)
    for d_row in (0, 1):
        for d_col in (0, 1):
            r, c = row0 + d_row, col0 + d_col
            weight = (1 - jnp.abs(rows - r)) * (1 - jnp.abs(cols - c))
            inside = (r >= 0) & (r <= height - 1) & (c >= 0) & (c <= width - 1)
            index = jnp.clip(r, 0, height - 1).astype(jnp.int32) * width + jnp.clip(c, 0, width - 1).astype(jnp.int32)
            values = jnp.take_along_axis(flat, index.reshape(batch, -1, 1), axis=1).reshape(result.shape)
            result = result + values * jnp.where(inside, weight, 0.0)[..., None].astype(images.dtype)
    return result


def apply_affine(images: jax.Array, g_inv: jax.Array) -> jax.Array:
    """Resample NHWC `images` so output pixel u shows input point `g_inv @ u` (centred coordinates, see above)."""
    height, width = images.shape[1:3]
    pad_y, pad_x = height - 1, width - 1
    padded = jnp.pad(images, ((0, 0), (pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="reflect")
    upsampled = _upsample2x(padded)
    # The output grid is upsampled too and keeps FILTER_MARGIN input pixels around the image for the downsampling;
    # its sample k sits at centred input coordinate (k + 1) / 2 - FILTER_MARGIN - size / 2.
    out_y = (jnp.arange(2 * (height + 2 * FILTER_MARGIN)) + 1) / 2 - FILTER_MARGIN - height / 2
    out_x = (jnp.arange(2 * (width + 2 * FILTER_MARGIN)) + 1) / 2 - FILTER_MARGIN - width / 2
    grid_y, grid_x = jnp.meshgrid(out_y, out_x, indexing="ij")
    points = jnp.stack([grid_x, grid_y, jnp.ones_like(grid_x)], axis=-1)
    source = jnp.einsum("bij,hwj->bhwi", g_inv.astype(jnp.float32), points, precision=HIGHEST)
    # Centred input coordinate u is padded-image pixel u + (size - 1) / 2 + pad, which is upsampled sample 2x that.
    rows = 2 * (source[..., 1] + (height - 1) / 2 + pad_y)
    cols = 2 * (source[..., 0] + (width - 1) / 2 + pad_x)
    resampled = _downsample2x(_bilinear(upsampled, rows, cols))
    is_identity = jnp.all(g_inv == jnp.eye(3, dtype=g_inv.dtype), axis=(1, 2))
    return jnp.where(is_identity[:, None, None, None], images, resampled.astype(images.dtype))
