"""PSNR and SSIM of restored images against their targets, with the options that make papers' numbers differ.

Users trip over three choices, so each is an explicit argument and goes into every reported protocol:
  * `data_range`: the span of pixel values (255 for uint8 pixels, 1 for images in [0, 1]);
  * `channel`: "rgb" measures every channel; "y" measures BT.601 luma on the 16-235 scale, as MATLAB's
    `rgb2ycbcr` and BasicSR's `to_y_channel` compute it (unrounded), the super-resolution papers' convention;
  * `crop_border`: pixels removed from each side before measuring (SR papers crop the scale factor).
SSIM is Wang et al. 2004: an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03 and population (not
sample) covariances, averaged over the region where the window fits and over channels; that is scikit-image's
`structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`, whose reflected border is
cropped away before averaging and so never matters. Every function is jittable and batched over NHWC images;
values are per image (identical images have infinite PSNR, as in scikit-image), `psnr`/`ssim` their means.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

CHANNELS = ("rgb", "y")
LUMA_OFFSET = 16.0  # on the 0..255 scale
LUMA_WEIGHTS = (65.481, 128.553, 24.966)  # BT.601 R, G, B weights for inputs in [0, 1] (sum 219: Y in 16..235)
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # 11 taps: scikit-image's int(3.5 * sigma + 0.5) for Wang et al.'s window
SSIM_K1, SSIM_K2 = 0.01, 0.03
# Compiled whole (the options are static): op-by-op dispatch would compile every primitive of the SSIM separately.
_jit_with_static_options = functools.partial(jax.jit, static_argnames=("data_range", "channel", "crop_border"))


def luma(images: jax.Array, data_range: float = 255.0) -> jax.Array:
    """BT.601 luma (N, H, W, 1) of RGB images on the 0..data_range scale, on the same scale: 16..235 for 255."""
    if images.shape[-1] != 3:
        raise ValueError(f"channel 'y' needs RGB images, not {images.shape[-1]} channel(s)")
    weights = jnp.asarray(LUMA_WEIGHTS, jnp.float32) / 255.0
    y = jnp.einsum("...c,c->...", images.astype(jnp.float32), weights, precision=jax.lax.Precision.HIGHEST)
    return (y + LUMA_OFFSET * data_range / 255.0)[..., None]


def _measured(images: jax.Array, data_range: float, channel: str, crop_border: int) -> jax.Array:
    """float32 NHWC images as they are measured: luma if asked, `crop_border` pixels off each side."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {list(CHANNELS)}, not {channel!r}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, not {crop_border}")
    images = luma(images, data_range) if channel == "y" else images.astype(jnp.float32)
    height, width = images.shape[1:3]
    if 2 * crop_border >= min(height, width):
        raise ValueError(f"crop_border={crop_border} leaves nothing of {height}x{width} images")
    return images[:, crop_border : height - crop_border, crop_border : width - crop_border]


def _pair(targets: jax.Array, outputs: jax.Array, data_range: float, channel: str, crop_border: int):
    if targets.shape != outputs.shape or targets.ndim != 4:
        raise ValueError(f"targets and outputs must be NHWC images of one shape, not {targets.shape}, {outputs.shape}")
    return tuple(_measured(images, data_range, channel, crop_border) for images in (targets, outputs))


@_jit_with_static_options
def per_image_psnr(
    targets: jax.Array, outputs: jax.Array, data_range: float = 255.0, channel: str = "rgb", crop_border: int = 0
) -> jax.Array:
    """10 log10(data_range² / MSE) of each image pair (N,); MSE over pixels and channels; inf where identical."""
    targets, outputs = _pair(targets, outputs, data_range, channel, crop_border)
    mse = jnp.mean(jnp.square(targets - outputs), axis=(1, 2, 3))
    return 10.0 * jnp.log10(data_range**2 / mse)


def gaussian_window() -> np.ndarray:
    """The normalised 1-D Gaussian of the SSIM window (its outer product is the 11x11 window)."""
    offsets = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def _window_means(planes: jax.Array) -> jax.Array:
    """Gaussian-weighted means (N, H - 10, W - 10, K) of each of K planes (N, H, W, K) where the window fits:
    a separable, depthwise, full-precision convolution (TF32 or bf16 passes would move SSIM)."""
    taps = jnp.asarray(gaussian_window())
    count = planes.shape[-1]
    for kernel_shape in ((2 * SSIM_RADIUS + 1, 1), (1, 2 * SSIM_RADIUS + 1)):
        kernel = jnp.tile(taps.reshape(*kernel_shape, 1, 1), (1, 1, 1, count))
        planes = jax.lax.conv_general_dilated(
            planes,
            kernel,
            window_strides=(1, 1),
            padding="VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=count,
            precision=jax.lax.Precision.HIGHEST,
        )
    return planes


@_jit_with_static_options
def per_image_ssim(
    targets: jax.Array, outputs: jax.Array, data_range: float = 255.0, channel: str = "rgb", crop_border: int = 0
) -> jax.Array:
    """Mean SSIM of each image pair (N,) over channels and the positions where the 11x11 window fits."""
    x, y = _pair(targets, outputs, data_range, channel, crop_border)
    batch, height, width, channels = x.shape
    if min(height, width) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM's 11x11 window does not fit {height}x{width} images (after cropping)")
    # (Co)variances are invariant to a common shift; centring on each plane's mean first keeps float32's
    # E[x²] - E[x]² from cancelling away the small variances of flat regions.
    centre = 0.5 * (jnp.mean(x, axis=(1, 2), keepdims=True) + jnp.mean(y, axis=(1, 2), keepdims=True))
    x, y = x - centre, y - centre
    planes = jnp.stack([x, y, x * x, y * y, x * y], axis=-1)  # (N, H, W, C, 5)
    planes = planes.reshape(batch, height, width, channels * 5)
    means = _window_means(planes).reshape(batch, height - 2 * SSIM_RADIUS, width - 2 * SSIM_RADIUS, channels, 5)
    mean_x, mean_y, mean_xx, mean_yy, mean_xy = (means[..., k] for k in range(5))
    var_x, var_y = mean_xx - mean_x * mean_x, mean_yy - mean_y * mean_y
    covariance = mean_xy - mean_x * mean_y
    mean_x, mean_y = mean_x + centre, mean_y + centre
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    luminance = (2.0 * mean_x * mean_y + c1) / (mean_x * mean_x + mean_y * mean_y + c1)
    structure = (2.0 * covariance + c2) / (var_x + var_y + c2)
    return jnp.mean(luminance * structure, axis=(1, 2, 3))


def psnr(
    targets: jax.Array, outputs: jax.Array, data_range: float = 255.0, channel: str = "rgb", crop_border: int = 0
) -> jax.Array:
    """Mean over images of `per_image_psnr` (the papers' average: of per-image PSNRs, not of MSEs)."""
    return jnp.mean(per_image_psnr(targets, outputs, data_range, channel, crop_border))


def ssim(
    targets: jax.Array, outputs: jax.Array, data_range: float = 255.0, channel: str = "rgb", crop_border: int = 0
) -> jax.Array:
    """Mean over images of `per_image_ssim`."""
    return jnp.mean(per_image_ssim(targets, outputs, data_range, channel, crop_border))
