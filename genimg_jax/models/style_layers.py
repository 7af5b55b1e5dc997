"""StyleGAN2 building blocks (Karras et al., CVPR 2020): equalized learning rate, modulated convolution with
demodulation, noise inputs, resampling and the minibatch standard deviation layer. Layout is NHWC.

Equalized learning rate: parameters are stored as N(0, 1/lr_mul^2) and scaled at run time by
lr_mul / sqrt(fan_in), so that Adam's scale-free updates move every layer at the same relative speed; `lr_mul`
(0.01 in the mapping network) slows a layer down without changing its function at initialisation.

Resampling uses StyleGAN2's separable [1, 3, 3, 1] FIR filter (= bilinear interpolation for a factor of 2 away
from the borders), zero-padded as the reference's upfirdn2d pads, written as shifted sums of slices: cheap to
compile and to differentiate twice, which R1 and path-length regularisation do. The upsampling convolution
resamples first and then convolves at the new size (no transposed convolution), which keeps its weight gradient
an ordinary convolution: the fast case on XLA's CPU backend (see layers.up_conv). The downsampling 3x3
convolution is the reference's: blur at full resolution, then a stride-2 convolution (`EqualConv(down=True)`).
"""

import itertools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")
DEMODULATION_EPS = 1e-8


def lrelu(x: jax.Array) -> jax.Array:
    """Leaky ReLU (slope 0.2) times sqrt(2), the gain that keeps unit-variance activations near unit variance."""
    return nn.leaky_relu(x, 0.2) * math.sqrt(2.0)


def normalize_2nd_moment(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Scale each vector to unit mean square, as StyleGAN does with z and with label embeddings."""
    return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def _zero_pad(x: jax.Array, axis: int) -> jax.Array:
    """One zero on each side of `axis`."""
    return lax.pad(x, jnp.zeros((), x.dtype), [(1, 1, 0) if a == axis else (0, 0, 0) for a in range(x.ndim)])


def _upsample_axis(x: jax.Array, axis: int) -> jax.Array:
    """out[2i] = (x[i-1] + 3 x[i]) / 4, out[2i+1] = (3 x[i] + x[i+1]) / 4, with zeros outside x."""
    size = x.shape[axis]
    padded = _zero_pad(x, axis)
    previous, following = (lax.slice_in_dim(padded, start, start + size, axis=axis) for start in (0, 2))
    even, odd = 0.25 * previous + 0.75 * x, 0.75 * x + 0.25 * following
    interleaved = jnp.stack([even, odd], axis=axis + 1)
    return interleaved.reshape(*x.shape[:axis], 2 * size, *x.shape[axis + 1 :])


def _downsample_axis(x: jax.Array, axis: int) -> jax.Array:
    """out[i] = (x[2i-1] + 3 x[2i] + 3 x[2i+1] + x[2i+2]) / 8, with zeros outside x."""
    size = x.shape[axis]
    pairs = x.reshape(*x.shape[:axis], size // 2, 2, *x.shape[axis + 1 :])
    even, odd = (jnp.take(pairs, index, axis=axis + 1) for index in (0, 1))
    half = size // 2
    previous_odd = lax.slice_in_dim(_zero_pad(odd, axis), 0, half, axis=axis)  # x[2i-1]
    next_even = lax.slice_in_dim(_zero_pad(even, axis), 2, half + 2, axis=axis)  # x[2i+2]
    return (previous_odd + 3.0 * even + 3.0 * odd + next_even) * 0.125


def _blur_axis(x: jax.Array, axis: int, pad: int) -> jax.Array:
    """The [1, 3, 3, 1] / 8 FIR filter along `axis` after `pad` zeros on each side (length L + 2 pad - 3)."""
    padded = lax.pad(x, jnp.zeros((), x.dtype), [(pad, pad, 0) if a == axis else (0, 0, 0) for a in range(x.ndim)])
    size = x.shape[axis] + 2 * pad - 3
    taps = [lax.slice_in_dim(padded, k, k + size, axis=axis) for k in range(4)]
    return (taps[0] + 3.0 * taps[1] + 3.0 * taps[2] + taps[3]) * 0.125


def blur_for_down_conv(x: jax.Array, kernel_size: int) -> jax.Array:
    """NHWC maps blurred with the separable [1, 3, 3, 1] filter (sum 1), padded for a stride-2 `kernel_size` conv.

    The zeros on each side are those the reference's conv2d_resample derives for a 4-tap filter and factor 2: the
    convolution's own k // 2, plus (4 - 2 + 1) // 2 = (4 - 2) // 2 = 1 for the filter; 2 for k=3, so that the
    blurred map of side L + 1 gives L / 2 outputs at stride 2 with no further padding.
    """
    pad = kernel_size // 2 + 1
    return _blur_axis(_blur_axis(x, 1, pad), 2, pad)


def upsample_2x(x: jax.Array) -> jax.Array:
    """Bilinear 2x upsampling of NHWC maps = zero insertion and the separable [1, 3, 3, 1] FIR filter."""
    return _upsample_axis(_upsample_axis(x, 1), 2)


def downsample_2x(x: jax.Array) -> jax.Array:
    """2x downsampling of NHWC maps with the separable [1, 3, 3, 1] / 8 FIR filter (antialiased bilinear)."""
    return _downsample_axis(_downsample_axis(x, 1), 2)


def _standard_normal(lr_mul: float = 1.0) -> nn.initializers.Initializer:
    def init(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32) -> jax.Array:
        return jax.random.normal(key, shape, dtype) / lr_mul

    return init


def conv2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Stride-1 'same' convolution with an HWIO kernel."""
    return lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_NHWC)


class EqualDense(nn.Module):
    """Dense layer with equalized learning rate: y = x W lr_mul / sqrt(fan_in) + b lr_mul."""

    features: int
    lr_mul: float = 1.0
    bias_init: float = 0.0
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", _standard_normal(self.lr_mul), (fan_in, self.features))
        y = x @ (kernel * (self.lr_mul / math.sqrt(fan_in)))
        if self.use_bias:
            bias = self.param("bias", nn.initializers.constant(self.bias_init / self.lr_mul), (self.features,))
            y = y + bias * self.lr_mul
        return y


class EqualConv(nn.Module):
    """Convolution with equalized learning rate, computed in `dtype` (e.g. bfloat16): stride-1 'same', or with
    `down` the reference's downsampling convolution, a stride-2 convolution of the blurred map
    (`blur_for_down_conv`), which halves the resolution."""

    features: int
    kernel_size: int = 3
    use_bias: bool = True
    down: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, in_features = self.kernel_size, x.shape[-1]
        kernel = self.param("kernel", _standard_normal(), (k, k, in_features, self.features))
        kernel = (kernel / math.sqrt(k * k * in_features)).astype(self.dtype)
        x = x.astype(self.dtype)
        if self.down:
            y = lax.conv_general_dilated(blur_for_down_conv(x, k), kernel, (2, 2), "VALID", dimension_numbers=_NHWC)
        else:
            y = conv2d(x, kernel)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,)).astype(self.dtype)
        return y


def modulated_conv(
    x: jax.Array, kernel: jax.Array, styles: jax.Array, demodulate: bool = True, up: bool = False
) -> jax.Array:
    """Modulated (and demodulated) convolution in its batched form.

    Mathematically the convolution of sample n with its own weight W'_n[h, w, c, o] = W[h, w, c, o] s[n, c],
    divided (if `demodulate`) by ||W'_n[..., o]||. Scaling the input channels by s, convolving with the shared
    W and scaling the output channels by the per-sample norms is the same quantity, with one ordinary
    convolution for the whole batch. With `up`, the modulated input is upsampled 2x before the convolution.
    """
    x = x * styles[:, None, None, :].astype(x.dtype)
    if up:
        x = upsample_2x(x)
    y = conv2d(x, kernel.astype(x.dtype))
    if demodulate:
        # sum over (h, w, c) of (W s)^2 = s^2 @ sum_hw W^2, per sample and output channel; in float32.
        norms = jnp.square(styles.astype(jnp.float32)) @ jnp.sum(jnp.square(kernel.astype(jnp.float32)), (0, 1))
        y = y * lax.rsqrt(norms + DEMODULATION_EPS)[:, None, None, :].astype(y.dtype)
    return y


class ModulatedConv(nn.Module):
    """Convolution modulated by a style from w (affine layer initialised to output 1), as in StyleGAN2."""

    features: int
    kernel_size: int = 3
    demodulate: bool = True
    up: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        k, in_features = self.kernel_size, x.shape[-1]
        styles = EqualDense(in_features, bias_init=1.0, name="affine")(w)
        kernel = self.param("kernel", _standard_normal(), (k, k, in_features, self.features))
        kernel = kernel / math.sqrt(k * k * in_features)
        return modulated_conv(x.astype(self.dtype), kernel, styles, self.demodulate, self.up)


NOISE_MODES = ("random", "const", "none")


def noise_maps(rng: jax.Array, batch: int, resolutions: list[int], noise_mode: str) -> list[jax.Array | None]:
    """One N(0, 1) map (batch or 1, r, r, 1) per resolution in `resolutions`, from a single draw.

    "random" draws a map per sample; "const" one map shared by the batch (with a fixed rng, the deterministic
    noise of StyleGAN's generate script); "none" gives no noise. One draw instead of one per layer keeps the
    compiled step small (each random call site costs compile time).
    """
    if noise_mode == "none":
        return [None] * len(resolutions)
    rows = batch if noise_mode == "random" else 1
    flat = jax.random.normal(rng, (rows, sum(r * r for r in resolutions)))
    pieces = jnp.split(flat, list(itertools.accumulate(r * r for r in resolutions[:-1])), axis=1)
    return [piece.reshape(rows, r, r, 1) for piece, r in zip(pieces, resolutions, strict=True)]


class NoiseInjection(nn.Module):
    """Adds a per-pixel noise map (or nothing, for None) times one learned strength per layer, initialised to 0."""

    @nn.compact
    def __call__(self, x: jax.Array, noise: jax.Array | None) -> jax.Array:
        strength = self.param("strength", nn.initializers.zeros_init(), ())
        if noise is None:
            return x
        return x + noise.astype(x.dtype) * strength.astype(x.dtype)


def minibatch_stddev(x: jax.Array, group_size: int, num_channels: int = 1) -> jax.Array:
    """Append the mean standard deviation over groups of samples as extra feature maps (Karras et al. 2018).

    Groups are contiguous runs of G samples (sample n is in group n // G). The reference strides its groups over
    the batch of one GPU; over a batch-sharded mesh, contiguous groups stay on one device whenever G divides the
    per-device batch, so the layer needs no communication (strided groups would span every device). With shuffled
    batches both layouts draw groups alike. Channels are split into `num_channels` groups, each giving one
    feature: the std over the group, averaged over its channels and all pixels.
    """
    n, h, w, c = x.shape
    g = min(group_size, n)
    if n % g or c % num_channels:
        raise ValueError(f"minibatch stddev: batch {n} / group {g} or channels {c} / {num_channels} do not divide")
    y = x.astype(jnp.float32).reshape(n // g, g, h, w, num_channels, c // num_channels)
    y = y - jnp.mean(y, axis=1, keepdims=True)
    y = jnp.sqrt(jnp.mean(jnp.square(y), axis=1) + 1e-8)  # (N/G, H, W, F, C/F)
    y = jnp.mean(y, axis=(1, 2, 4))  # (N/G, F)
    y = jnp.repeat(y, g, axis=0)  # row n holds group n // G
    y = jnp.broadcast_to(y[:, None, None, :], (n, h, w, num_channels))
    return jnp.concatenate([x, y.astype(x.dtype)], axis=-1)
