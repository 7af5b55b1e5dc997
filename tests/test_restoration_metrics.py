"""PSNR and SSIM against scikit-image (RGB with channel_axis, grayscale, BT.601 luma) and closed forms: a constant
offset's PSNR, SSIM(x, x) = 1, invariance to the data range's scale, crop_border as cropping first."""

import functools

import jax
import numpy as np
import pytest
from scipy import ndimage
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from genimg_jax.metrics import restoration


def image_pairs(channels: int, num: int = 3, height: int = 24, width: int = 20, seed: int = 0):
    """Spatially correlated uint8 targets (blurred noise, so SSIM's structure term matters) and noisy outputs."""
    rng = np.random.default_rng(seed)
    targets = ndimage.uniform_filter(rng.uniform(0, 255, (num, height, width, channels)), size=(1, 5, 5, 1))
    targets = np.clip(np.rint((targets - 127.5) * 4 + 127.5), 0, 255).astype(np.uint8)
    outputs = np.clip(np.rint(targets + rng.normal(0, 12, targets.shape)), 0, 255).astype(np.uint8)
    return targets, outputs


def skimage_ssim(target: np.ndarray, output: np.ndarray, **options) -> float:
    return structural_similarity(
        target, output, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, **options
    )


@pytest.mark.parametrize("case", ["rgb", "gray", "y"])
def test_psnr_and_ssim_match_scikit_image(case):
    targets, outputs = image_pairs(1 if case == "gray" else 3)
    if case == "rgb":
        expected_psnr = [peak_signal_noise_ratio(t, o, data_range=255) for t, o in zip(targets, outputs, strict=True)]
        expected_ssim = [skimage_ssim(t, o, channel_axis=-1) for t, o in zip(targets, outputs, strict=True)]
    else:
        # Grayscale as 2-d images; luma as scikit-image's BT.601 Y (16..235, float64) of each image.
        planes = [(t[..., 0], o[..., 0]) for t, o in zip(targets, outputs, strict=True)]
        if case == "y":
            planes = [(rgb2ycbcr(t)[..., 0], rgb2ycbcr(o)[..., 0]) for t, o in zip(targets, outputs, strict=True)]
        expected_psnr = [peak_signal_noise_ratio(t, o, data_range=255) for t, o in planes]
        expected_ssim = [skimage_ssim(t, o) for t, o in planes]
    channel = "y" if case == "y" else "rgb"
    psnr = jax.jit(functools.partial(restoration.per_image_psnr, channel=channel))(targets, outputs)
    ssim = jax.jit(functools.partial(restoration.per_image_ssim, channel=channel))(targets, outputs)
    np.testing.assert_allclose(psnr, expected_psnr, rtol=1e-5)
    np.testing.assert_allclose(ssim, expected_ssim, atol=1e-6)
    assert 0.2 < min(expected_ssim) <= max(expected_ssim) < 0.99  # neither trivial nor saturated
    np.testing.assert_allclose(restoration.psnr(targets, outputs, channel=channel), np.mean(expected_psnr), rtol=1e-5)
    np.testing.assert_allclose(restoration.ssim(targets, outputs, channel=channel), np.mean(expected_ssim), atol=1e-6)


@pytest.mark.parametrize(("channel", "offset_scale"), [("rgb", 1.0), ("y", 219 / 255)])
def test_psnr_of_a_constant_offset_is_the_closed_form(channel, offset_scale):
    """Adding d to every channel moves each pixel by d, and its luma by d * (65.481 + 128.553 + 24.966) / 255."""
    rng = np.random.default_rng(3)
    targets = rng.integers(10, 240, (3, 24, 20, 3)).astype(np.uint8)
    for offset in (1, 5):
        expected = 10 * np.log10(255**2 / (offset * offset_scale) ** 2)
        psnr = restoration.per_image_psnr(targets, targets + offset, channel=channel)
        np.testing.assert_allclose(psnr, [expected] * 3, rtol=1e-5)


@pytest.mark.parametrize("channel", ["rgb", "y"])
def test_identical_images_have_ssim_one_and_infinite_psnr(channel):
    targets, _ = image_pairs(3)
    np.testing.assert_allclose(restoration.per_image_ssim(targets, targets, channel=channel), 1.0, atol=1e-6)
    assert np.all(np.isposinf(restoration.per_image_psnr(targets, targets, channel=channel)))


@pytest.mark.parametrize("channel", ["rgb", "y"])
def test_crop_border_equals_measuring_cropped_images(channel):
    targets, outputs = image_pairs(3)
    cropped = targets[:, 3:-3, 3:-3], outputs[:, 3:-3, 3:-3]
    for metric in (restoration.per_image_psnr, restoration.per_image_ssim):
        np.testing.assert_allclose(
            metric(targets, outputs, channel=channel, crop_border=3), metric(*cropped, channel=channel), rtol=1e-6
        )
        assert not np.allclose(metric(targets, outputs, channel=channel), metric(*cropped, channel=channel))


def test_values_on_the_unit_scale_with_data_range_one_equal_those_on_the_uint8_scale():
    targets, outputs = image_pairs(3)
    unit = targets / 255.0, outputs / 255.0
    for metric in (restoration.per_image_psnr, restoration.per_image_ssim):
        for channel in ("rgb", "y"):
            np.testing.assert_allclose(
                metric(*unit, data_range=1.0, channel=channel), metric(targets, outputs, channel=channel), rtol=1e-4
            )


@pytest.mark.parametrize(
    ("options", "shape", "message"),
    [
        ({"channel": "y"}, (1, 16, 16, 1), "channel 'y' needs RGB images, not 1 channel"),
        ({"channel": "lab"}, (1, 16, 16, 3), "channel must be one of ['rgb', 'y'], not 'lab'"),
        ({"crop_border": 8}, (1, 16, 16, 3), "crop_border=8 leaves nothing of 16x16 images"),
        ({"crop_border": 3}, (1, 16, 16, 3), "SSIM's 11x11 window does not fit 10x10 images"),
    ],
)
def test_bad_options_are_one_clear_line(options, shape, message):
    images = np.zeros(shape, np.uint8)
    with pytest.raises(ValueError) as error:
        restoration.per_image_ssim(images, images, **options)
    assert message in str(error.value) and "\n" not in str(error.value)
