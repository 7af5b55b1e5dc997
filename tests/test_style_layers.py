"""StyleGAN2 building blocks against explicit computations: modulation, demodulation, equalized lr, mbstd, FIR."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from jax import lax

from genimg_jax.models.style_layers import (
    EqualConv,
    EqualDense,
    conv2d,
    downsample_2x,
    minibatch_stddev,
    modulated_conv,
    noise_maps,
    upsample_2x,
)


def _per_sample_weight_conv(x, kernel, styles, demodulate, up):
    """The definition: each sample convolved with its own modulated (and normalised) weight."""
    outputs = []
    for n in range(x.shape[0]):
        weight = kernel * styles[n][None, None, :, None]
        if demodulate:
            weight = weight / jnp.sqrt(jnp.sum(weight**2, axis=(0, 1, 2), keepdims=True) + 1e-8)
        image = upsample_2x(x[n : n + 1]) if up else x[n : n + 1]
        outputs.append(
            lax.conv_general_dilated(image, weight, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        )
    return jnp.concatenate(outputs)


@pytest.mark.parametrize(("kernel_size", "demodulate", "up"), [(3, True, False), (3, True, True), (1, False, False)])
def test_modulated_conv_equals_per_sample_weights(kernel_size, demodulate, up):
    x_rng, k_rng, s_rng = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(x_rng, (3, 6, 6, 5))
    kernel = jax.random.normal(k_rng, (kernel_size, kernel_size, 5, 4))
    styles = jax.random.uniform(s_rng, (3, 5), minval=-2.0, maxval=2.0)
    batched = modulated_conv(x, kernel, styles, demodulate=demodulate, up=up)
    explicit = _per_sample_weight_conv(x, kernel, styles, demodulate, up)
    assert batched.shape == explicit.shape == (3, 12 if up else 6, 12 if up else 6, 4)
    np.testing.assert_allclose(batched, explicit, rtol=1e-4, atol=1e-5)


def test_demodulation_gives_unit_output_variance():
    """Unit-variance i.i.d. inputs give unit-variance outputs whatever the style and weight scale."""
    x_rng, k_rng, s_rng = jax.random.split(jax.random.PRNGKey(1), 3)
    x = jax.random.normal(x_rng, (4, 34, 34, 32))
    kernel = 7.0 * jax.random.normal(k_rng, (3, 3, 32, 16))
    styles = jax.random.uniform(s_rng, (4, 32), minval=0.1, maxval=5.0)
    y = modulated_conv(x, kernel, styles)[:, 1:-1, 1:-1]  # interior: the zero padding lowers the border variance
    variances = np.asarray(jnp.var(y, axis=(1, 2)))  # per sample and output channel, 1024 pixels each
    assert variances.mean() == pytest.approx(1.0, abs=0.03)
    assert np.all(np.abs(variances - 1.0) < 0.25)
    # Without demodulation the scale follows the weights and styles instead.
    assert float(jnp.var(modulated_conv(x, kernel, styles, demodulate=False))) > 100.0


@pytest.mark.parametrize("lr_mul", [1.0, 0.01])
def test_equal_dense_runtime_scale(lr_mul):
    layer = EqualDense(256, lr_mul=lr_mul, bias_init=1.0)
    x = jax.random.normal(jax.random.PRNGKey(2), (512, 128))
    params = layer.init(jax.random.PRNGKey(3), x)["params"]
    # Stored parameters: N(0, 1/lr_mul^2) weights and bias_init / lr_mul.
    assert float(jnp.std(params["kernel"])) == pytest.approx(1.0 / lr_mul, rel=0.02)
    np.testing.assert_allclose(params["bias"], 1.0 / lr_mul, rtol=1e-6)
    # Effective weight lr_mul / sqrt(fan_in) times the stored one; effective bias lr_mul times the stored one.
    expected = x @ (params["kernel"] * lr_mul / np.sqrt(128)) + params["bias"] * lr_mul
    y = layer.apply({"params": params}, x)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    # Hence unit-variance inputs give unit-variance pre-activations at initialisation, whatever lr_mul.
    assert float(jnp.var(y - 1.0)) == pytest.approx(1.0, rel=0.1)


def test_equal_conv_runtime_scale():
    layer = EqualConv(8, kernel_size=3)
    x = jax.random.normal(jax.random.PRNGKey(4), (2, 16, 16, 6))
    params = layer.init(jax.random.PRNGKey(5), x)["params"]
    expected = conv2d(x, params["kernel"] / np.sqrt(3 * 3 * 6)) + params["bias"]
    np.testing.assert_allclose(layer.apply({"params": params}, x), expected, rtol=1e-5, atol=1e-5)


def _numpy_blur_stride2_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The reference's `Conv2dLayer(down=2)` for a 3x3 kernel, written out: zero-pad 2, blur with the 2-D
    [1, 3, 3, 1] outer product / 64 at full resolution, then a stride-2 3x3 cross-correlation with no padding."""
    taps = np.array([1.0, 3.0, 3.0, 1.0])
    blurred = scipy.signal.convolve(
        np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))), np.outer(taps, taps)[None, :, :, None] / 64.0, mode="valid"
    )
    n, side = x.shape[0], x.shape[1] // 2
    out = np.zeros((n, side, side, kernel.shape[-1]))
    for i in range(side):
        for j in range(side):
            window = blurred[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
            out[:, i, j] = np.einsum("nhwc,hwco->no", window, kernel)
    return out + bias


def test_down_conv_is_blur_then_stride_two_conv():
    """EqualConv(down=True) = zero padding 2, the [1, 3, 3, 1] blur and a stride-2 3x3 conv at full resolution, at
    every output pixel (borders included); it differs from blurring, subsampling and convolving at half size."""
    layer = EqualConv(5, kernel_size=3, down=True)
    side = 8
    x = jax.random.normal(jax.random.PRNGKey(12), (2, side, side, 3))
    params = layer.init(jax.random.PRNGKey(13), x)["params"]
    params = {**params, "bias": jax.random.normal(jax.random.PRNGKey(14), (5,))}
    y = np.asarray(layer.apply({"params": params}, x))
    expected = _numpy_blur_stride2_conv(
        np.asarray(x, np.float64), np.asarray(params["kernel"]) / np.sqrt(27), params["bias"]
    )
    assert y.shape == (2, side // 2, side // 2, 5)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
    conv_after_down = EqualConv(5, kernel_size=3).apply({"params": params}, downsample_2x(x))
    assert float(np.min(np.abs(y - np.asarray(conv_after_down)))) > 0


def _numpy_minibatch_stddev(x, group_size, num_channels):
    n, h, w, c = x.shape
    features = np.zeros((n, num_channels))
    for i in range(n):
        start = i // group_size * group_size
        members = x[start : start + group_size]  # the samples of i's group: G consecutive samples
        for f in range(num_channels):
            block = members[..., f * (c // num_channels) : (f + 1) * (c // num_channels)]
            features[i, f] = np.sqrt(block.var(axis=0) + 1e-8).mean()
    return np.concatenate([x, np.broadcast_to(features[:, None, None, :], (n, h, w, num_channels))], axis=-1)


@pytest.mark.parametrize(("group_size", "num_channels"), [(4, 1), (2, 2), (8, 1)])
def test_minibatch_stddev_matches_numpy(group_size, num_channels):
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(6), (8, 3, 3, 4)))
    x = x * np.arange(1, 9)[:, None, None, None]  # different spreads in different groups
    np.testing.assert_allclose(
        minibatch_stddev(jnp.asarray(x), group_size, num_channels),
        _numpy_minibatch_stddev(x, group_size, num_channels),
        rtol=1e-5,
    )


def _numpy_upfirdn_1d(x: np.ndarray, up: int, down: int, pad: tuple[int, int]) -> np.ndarray:
    """StyleGAN2's upfirdn along axis 1 of (N, L): insert up-1 zeros, zero-pad, FIR [1, 3, 3, 1], keep every down."""
    taps = np.array([1.0, 3.0, 3.0, 1.0]) / 8.0 * up
    stretched = np.zeros((x.shape[0], x.shape[1] * up))
    stretched[:, ::up] = x
    padded = np.pad(stretched, ((0, 0), pad))
    filtered = np.stack([padded[:, k : k + 4] @ taps[::-1] for k in range(padded.shape[1] - 3)], axis=1)
    return filtered[:, ::down]


def _numpy_resample(x: np.ndarray, up: int, down: int, pad: tuple[int, int]) -> np.ndarray:
    """Separable 2-D upfirdn of NHWC maps: rows, then columns."""
    n, h, w, c = x.shape
    rows = _numpy_upfirdn_1d(x.transpose(0, 2, 3, 1).reshape(-1, h), up, down, pad)
    x = rows.reshape(n, w, c, -1).transpose(0, 3, 1, 2)
    cols = _numpy_upfirdn_1d(x.transpose(0, 1, 3, 2).reshape(-1, w), up, down, pad)
    return cols.reshape(n, x.shape[1], c, -1).transpose(0, 1, 3, 2)


def test_fir_resampling_matches_zero_padded_upfirdn():
    """Up: zero insertion, pad (2, 1), [1, 3, 3, 1] x 2 per axis; down: pad (1, 1), [1, 3, 3, 1] / 8, stride 2:
    stylegan2-ada-pytorch's upsample2d/downsample2d, borders included. Interior pixels equal bilinear 2x."""
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(7), (2, 8, 8, 3)))
    np.testing.assert_allclose(upsample_2x(jnp.asarray(x)), _numpy_resample(x, 2, 1, (2, 1)), atol=1e-6)
    np.testing.assert_allclose(downsample_2x(jnp.asarray(x)), _numpy_resample(x, 1, 2, (1, 1)), atol=1e-6)
    bilinear = np.asarray(jax.image.resize(x, (2, 16, 16, 3), "bilinear"))
    np.testing.assert_allclose(
        np.asarray(upsample_2x(jnp.asarray(x)))[:, 1:-1, 1:-1], bilinear[:, 1:-1, 1:-1], atol=1e-6
    )
    constant = jnp.full((1, 8, 8, 1), 0.7)
    np.testing.assert_allclose(upsample_2x(constant)[0, 1:-1, 1:-1, 0], 0.7, rtol=1e-6)
    np.testing.assert_allclose(upsample_2x(constant)[0, 0, 1:-1, 0], 0.7 * 0.75, rtol=1e-6)  # a zero beyond the edge
    np.testing.assert_allclose(downsample_2x(constant)[0, 1:-1, 1:-1, 0], 0.7, rtol=1e-6)


def test_noise_maps_modes():
    rng = jax.random.PRNGKey(8)
    random = noise_maps(rng, 3, [4, 8, 8], "random")
    assert [m.shape for m in random] == [(3, 4, 4, 1), (3, 8, 8, 1), (3, 8, 8, 1)]
    assert not np.allclose(random[1], random[2])  # two layers at one resolution get different maps
    const = noise_maps(rng, 3, [4, 8], "const")
    assert [m.shape for m in const] == [(1, 4, 4, 1), (1, 8, 8, 1)]  # one map, shared by the batch
    assert noise_maps(rng, 3, [4, 8], "none") == [None, None]
