"""PixelCNN++ (Salimans et al. 2017): per-pixel outputs of a discretised logistic mixture, each pixel seeing only
the pixels before it in raster order.

Causality comes from shifts instead of masks (as the reference, openai/pixel-cnn): the `u` stream convolves with
kernels that only reach rows above (down-shifted), the `ul` stream with kernels that reach above and to the left
(down-right-shifted), and the first layers shift their outputs by one row / column so that a pixel never sees
itself. Gated ResNet blocks (concat_elu, dropout, a sigmoid gate) run at three resolutions; the down (coarse to
fine) pass takes a shortcut from every block of the up pass. The channels of one pixel are linked only through the
likelihood's coefficients (`losses.discretized_logistic`), so the output at a pixel depends on no channel of it.

Deviations from the reference: weight normalisation without its data-dependent initialisation: each gain starts
at the scale that initialisation aims for (1, or 0.1 for the last convolution of a block), a fair match only for
roughly unit-variance inputs. Class conditioning is a learned bias per class in every block (the reference's
one-hot `h` times a matrix: the same function).
"""

from collections.abc import Callable
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from genimg_jax.models.layers import up_conv

_NHWC = ("NHWC", "HWIO", "NHWC")
_WEIGHT_INIT = nn.initializers.normal(0.05)  # the reference's N(0, 0.05) direction vectors


class WeightNormConv(nn.Module):
    """Weight-normalised convolution (Salimans & Kingma 2016), `VALID` padding: W = g v / |v| per output feature.

    `transpose` makes it the transposed convolution of the same kernel shape (full output, (H - 1) s + k rows).
    """

    features: int
    kernel_size: tuple[int, int]
    strides: int = 1
    init_scale: float = 1.0
    transpose: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        shape = (kh, kw, self.features, x.shape[-1]) if self.transpose else (kh, kw, x.shape[-1], self.features)
        feature_axis = 2 if self.transpose else 3
        v = self.param("v", _WEIGHT_INIT, shape)
        g = self.param("g", nn.initializers.constant(self.init_scale), (self.features,))
        b = self.param("b", nn.initializers.zeros_init(), (self.features,))
        reduce_axes = tuple(axis for axis in range(4) if axis != feature_axis)
        norm = jnp.sqrt(jnp.sum(v**2, axis=reduce_axes, keepdims=True))
        kernel = v * (jnp.expand_dims(g, reduce_axes) / norm)
        if self.transpose:
            y = up_conv(x, kernel, self.strides, 0)
        else:
            y = lax.conv_general_dilated(x, kernel, (self.strides,) * 2, "VALID", dimension_numbers=_NHWC)
        return y + b


def down_shift(x: jax.Array) -> jax.Array:
    """Move every row one down (a zero row on top): row i then holds what row i - 1 computed."""
    return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def right_shift(x: jax.Array) -> jax.Array:
    """Move every column one to the right (a zero column on the left)."""
    return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


class DownShiftedConv(nn.Module):
    """Output (i, j) sees rows i - kh + 1 .. i and the kw columns centred on j: nothing below (`u` stream).

    With `transpose`, the stride-2 up-sampling whose output (i, j) sees only low-resolution rows <= i / 2.
    """

    features: int
    kernel_size: tuple[int, int] = (2, 3)
    strides: int = 1
    init_scale: float = 1.0
    transpose: bool = False
    RIGHT_SHIFTED: ClassVar[bool] = False  # the columns seen end at j instead of centring on it

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        conv = WeightNormConv(self.features, self.kernel_size, self.strides, self.init_scale, self.transpose)
        left = kw - 1 if self.RIGHT_SHIFTED else (kw - 1) // 2
        if self.transpose:
            _, h, w, _ = x.shape
            start = 0 if self.RIGHT_SHIFTED else left
            return conv(x)[:, : h * self.strides, start : start + w * self.strides]
        return conv(jnp.pad(x, ((0, 0), (kh - 1, 0), (left, kw - 1 - left), (0, 0))))


class DownRightShiftedConv(DownShiftedConv):
    """Output (i, j) sees rows i - kh + 1 .. i and columns j - kw + 1 .. j: nothing below or right (`ul` stream)."""

    kernel_size: tuple[int, int] = (2, 2)
    RIGHT_SHIFTED: ClassVar[bool] = True


def concat_elu(x: jax.Array) -> jax.Array:
    """ELU of x and of -x side by side: keeps both signs' information (twice the channels)."""
    return nn.elu(jnp.concatenate([x, -x], axis=-1))


class GatedResnet(nn.Module):
    """x + a * sigmoid(b), (a, b) from two shifted convolutions of concat_elu(x), plus a 1x1 projection of the
    shortcut input `aux` and, for class-conditional models, a learned bias per class on (a, b)."""

    conv: Callable[..., nn.Module]  # DownShiftedConv or DownRightShiftedConv
    dropout: float
    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array, aux: jax.Array | None, labels: jax.Array | None, train: bool) -> jax.Array:
        features = x.shape[-1]
        hidden = self.conv(features)(concat_elu(x))
        if aux is not None:
            hidden = hidden + WeightNormConv(features, (1, 1))(concat_elu(aux))
        hidden = nn.Dropout(self.dropout, deterministic=not train)(concat_elu(hidden))
        gates = self.conv(2 * features, init_scale=0.1)(hidden)
        if self.num_classes:
            bias = nn.Embed(self.num_classes, 2 * features, embedding_init=_WEIGHT_INIT, name="class_bias")(labels)
            gates = gates + bias[:, None, None, :]
        a, b = jnp.split(gates, 2, axis=-1)
        return x + a * nn.sigmoid(b)


class PixelCNNPP(nn.Module):
    """Images (N, H, W, C) in [-1, 1] (H, W divisible by 4) -> per-pixel mixture parameters (N, H, W, out_features).

    Three resolutions (H, H/2, H/4) with `nr_resnet` gated blocks per stream at each in the up pass, then
    `nr_resnet`, `nr_resnet + 1`, `nr_resnet + 1` in the down pass, as the reference.
    """

    out_features: int
    nr_resnet: int = 5
    nr_filters: int = 160
    dropout: float = 0.5
    num_classes: int = 0  # > 0: class-conditional on `labels`

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None, train: bool = False) -> jax.Array:
        filters = self.nr_filters

        def u_block(u, aux):
            return GatedResnet(DownShiftedConv, self.dropout, self.num_classes)(u, aux, labels, train)

        def ul_block(ul, aux):
            return GatedResnet(DownRightShiftedConv, self.dropout, self.num_classes)(ul, aux, labels, train)

        # A channel of ones tells the image from the zero padding of the shifted convolutions.
        x = jnp.concatenate([x, jnp.ones((*x.shape[:-1], 1), x.dtype)], axis=-1)
        u_list = [down_shift(DownShiftedConv(filters, (2, 3))(x))]
        ul_list = [
            down_shift(DownShiftedConv(filters, (1, 3))(x)) + right_shift(DownRightShiftedConv(filters, (2, 1))(x))
        ]
        for scale in range(3):
            if scale:
                u_list.append(DownShiftedConv(filters, strides=2)(u_list[-1]))
                ul_list.append(DownRightShiftedConv(filters, strides=2)(ul_list[-1]))
            for _ in range(self.nr_resnet):
                u_list.append(u_block(u_list[-1], None))
                ul_list.append(ul_block(ul_list[-1], u_list[-1]))

        u, ul = u_list.pop(), ul_list.pop()
        for scale in range(3):
            if scale:
                u = DownShiftedConv(filters, strides=2, transpose=True)(u)
                ul = DownRightShiftedConv(filters, strides=2, transpose=True)(ul)
            for _ in range(self.nr_resnet + (1 if scale else 0)):
                u = u_block(u, u_list.pop())
                ul = ul_block(ul, jnp.concatenate([u, ul_list.pop()], axis=-1))
        return WeightNormConv(self.out_features, (1, 1))(nn.elu(ul))
