"""Inception-v3 as the standard FID implementations use it (TTUR's TF graph, pytorch-fid's `FIDInception*`).

This is the 2015-12-05 Inception graph, which differs from the Keras/torchvision Inception-v3:
  * 1008 logits (the graph's softmax has 1008 classes, 8 of them unused), fed by the 2048-d pool features;
  * the average pools in the A, C and first E blocks exclude padding from the count (`count_include_pad=False`);
  * the last E block (Mixed_7c) pools its pool branch with a 3x3 *max* pool (stride 1, padding 1), not average;
  * batch norm with epsilon 1e-3 after every bias-free convolution; no auxiliary classifier.
Preprocessing (`preprocess`): bilinear resize to 299x299 with half-pixel centres and no antialiasing (torch's
`F.interpolate(mode="bilinear", align_corners=False)`), values in [-1, 1]; grayscale is repeated to RGB.
Module names follow pytorch-fid's state dict (`Mixed_5b.branch1x1.conv.weight`), so converting is a transpose.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

INPUT_SIZE = 299
NUM_LOGITS = 1008
RESIZE_METHOD = "bilinear to 299x299, half-pixel centres, no antialias (torch F.interpolate, align_corners=False)"


def preprocess(images: jax.Array) -> jax.Array:
    """[-1, 1] NHWC images with 1 or 3 channels -> [-1, 1] 299x299x3 (resizing commutes with the affine
    map from [0, 1] that pytorch-fid applies after its resize)."""
    if images.shape[-1] == 1:
        images = jnp.repeat(images, 3, axis=-1)
    shape = (images.shape[0], INPUT_SIZE, INPUT_SIZE, 3)
    return jax.image.resize(images.astype(jnp.float32), shape, method="bilinear", antialias=False)


class ConvBN(nn.Module):
    """Bias-free convolution, batch norm (running statistics, eps 1e-3), ReLU; torch-style symmetric padding."""

    features: int
    kernel: tuple[int, int]
    strides: int = 1
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        pad_h, pad_w = self.padding
        x = nn.Conv(
            self.features,
            self.kernel,
            strides=self.strides,
            padding=((pad_h, pad_h), (pad_w, pad_w)),
            use_bias=False,
            name="conv",
        )(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
        return nn.relu(x)


def _avg_pool_excluding_padding(x: jax.Array) -> jax.Array:
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_stride2(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (3, 3), strides=(2, 2))


class InceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x):
        branch1x1 = ConvBN(64, (1, 1), name="branch1x1")(x)
        branch5x5 = ConvBN(48, (1, 1), name="branch5x5_1")(x)
        branch5x5 = ConvBN(64, (5, 5), padding=(2, 2), name="branch5x5_2")(branch5x5)
        branch3x3dbl = ConvBN(64, (1, 1), name="branch3x3dbl_1")(x)
        branch3x3dbl = ConvBN(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
        branch3x3dbl = ConvBN(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(branch3x3dbl)
        branch_pool = ConvBN(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_excluding_padding(x))
        return jnp.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=-1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x):
        branch3x3 = ConvBN(384, (3, 3), strides=2, name="branch3x3")(x)
        branch3x3dbl = ConvBN(64, (1, 1), name="branch3x3dbl_1")(x)
        branch3x3dbl = ConvBN(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
        branch3x3dbl = ConvBN(96, (3, 3), strides=2, name="branch3x3dbl_3")(branch3x3dbl)
        return jnp.concatenate([branch3x3, branch3x3dbl, _max_pool_stride2(x)], axis=-1)


class InceptionC(nn.Module):
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        branch1x1 = ConvBN(192, (1, 1), name="branch1x1")(x)
        branch7x7 = ConvBN(c7, (1, 1), name="branch7x7_1")(x)
        branch7x7 = ConvBN(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(branch7x7)
        branch7x7 = ConvBN(192, (7, 1), padding=(3, 0), name="branch7x7_3")(branch7x7)
        dbl = ConvBN(c7, (1, 1), name="branch7x7dbl_1")(x)
        dbl = ConvBN(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(dbl)
        dbl = ConvBN(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(dbl)
        dbl = ConvBN(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(dbl)
        dbl = ConvBN(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(dbl)
        branch_pool = ConvBN(192, (1, 1), name="branch_pool")(_avg_pool_excluding_padding(x))
        return jnp.concatenate([branch1x1, branch7x7, dbl, branch_pool], axis=-1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x):
        branch3x3 = ConvBN(192, (1, 1), name="branch3x3_1")(x)
        branch3x3 = ConvBN(320, (3, 3), strides=2, name="branch3x3_2")(branch3x3)
        branch7x7x3 = ConvBN(192, (1, 1), name="branch7x7x3_1")(x)
        branch7x7x3 = ConvBN(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(branch7x7x3)
        branch7x7x3 = ConvBN(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(branch7x7x3)
        branch7x7x3 = ConvBN(192, (3, 3), strides=2, name="branch7x7x3_4")(branch7x7x3)
        return jnp.concatenate([branch3x3, branch7x7x3, _max_pool_stride2(x)], axis=-1)


class InceptionE(nn.Module):
    """`max_pool=False`: Mixed_7b (average pool excluding padding); `max_pool=True`: Mixed_7c (FID's E_2)."""

    max_pool: bool

    @nn.compact
    def __call__(self, x):
        branch1x1 = ConvBN(320, (1, 1), name="branch1x1")(x)
        branch3x3 = ConvBN(384, (1, 1), name="branch3x3_1")(x)
        branch3x3 = jnp.concatenate(
            [
                ConvBN(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(branch3x3),
                ConvBN(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(branch3x3),
            ],
            axis=-1,
        )
        dbl = ConvBN(448, (1, 1), name="branch3x3dbl_1")(x)
        dbl = ConvBN(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(dbl)
        dbl = jnp.concatenate(
            [
                ConvBN(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(dbl),
                ConvBN(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(dbl),
            ],
            axis=-1,
        )
        if self.max_pool:
            pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
        else:
            pooled = _avg_pool_excluding_padding(x)
        branch_pool = ConvBN(192, (1, 1), name="branch_pool")(pooled)
        return jnp.concatenate([branch1x1, branch3x3, dbl, branch_pool], axis=-1)


class FIDInceptionV3(nn.Module):
    """Preprocessed 299x299x3 images in [-1, 1] -> {"features": (N, 2048) pool_3, "logits": (N, 1008)}."""

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        x = ConvBN(32, (3, 3), strides=2, name="Conv2d_1a_3x3")(x)
        x = ConvBN(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = ConvBN(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = _max_pool_stride2(x)
        x = ConvBN(80, (1, 1), name="Conv2d_3b_1x1")(x)
        x = ConvBN(192, (3, 3), name="Conv2d_4a_3x3")(x)
        x = _max_pool_stride2(x)
        x = InceptionA(32, name="Mixed_5b")(x)
        x = InceptionA(64, name="Mixed_5c")(x)
        x = InceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        x = InceptionC(128, name="Mixed_6b")(x)
        x = InceptionC(160, name="Mixed_6c")(x)
        x = InceptionC(160, name="Mixed_6d")(x)
        x = InceptionC(192, name="Mixed_6e")(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE(max_pool=False, name="Mixed_7b")(x)
        x = InceptionE(max_pool=True, name="Mixed_7c")(x)
        features = jnp.mean(x, axis=(1, 2))
        return {"features": features, "logits": nn.Dense(NUM_LOGITS, name="fc")(features)}
