"""DDPM++ (Song et al. 2021) as EDM trains it on CIFAR-10: EDM's `SongUNet` with its DDPM++ settings.

What makes it DDPM++ rather than the DDPM U-Net of `models.unet`: down- and up-sampling are residual blocks of
their own (resampling with the [1, 1] filter, i.e. 2x2 mean pooling and nearest-neighbour doubling, in both the
main path and a 1x1-convolution skip); every residual and attention sum is scaled by sqrt(1/2); the noise and
label embeddings are summed before the mapping MLP; attention sits at `attention_resolutions` in the encoder but
only on the last block of each such decoder level (and on the first block of the bottleneck). Weights start
Glorot uniform, scaled by 1e-5 for the layers that close a residual branch and by sqrt(0.2) for the attention
qkv; biases start at 0. GroupNorm uses min(32, channels / 4) groups and eps 1e-6.

Class conditioning follows the project's convention (`models.unet`): int labels, and index `num_classes` is the
null class. The label enters as a one-hot vector scaled by sqrt(num_classes), as in EDM; the null class is the
zero vector, which is what EDM's label dropout feeds the network. `augment_dim` > 0 adds EDM's `map_augment`, a
bias-free projection of the augmentation labels of non-leaky augmentation; absent labels are zeros.
"""

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genimg_jax.models.layers import rematerialized
from genimg_jax.models.unet import FourierEmbedding, positional_embedding

SKIP_SCALE = math.sqrt(0.5)
RESIDUAL_INIT_SCALE = 1e-5  # EDM's init_zero: the last layer of each residual branch starts near 0
ATTENTION_INIT_SCALE = math.sqrt(0.2)  # EDM's init_attn for the qkv projection


def xavier_uniform(scale: float = 1.0) -> nn.initializers.Initializer:
    """U(-b, b) with b = scale * sqrt(6 / (fan_in + fan_out)), EDM's `weight_init('xavier_uniform') * scale`."""
    return nn.initializers.variance_scaling(scale**2, "fan_avg", "uniform")


def group_norm(channels: int, name: str) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(32, channels // 4), epsilon=1e-6, name=name)


def downsample(x: jax.Array) -> jax.Array:
    """The [1, 1] resampling filter at stride 2: the mean of each 2x2 patch."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def upsample(x: jax.Array) -> jax.Array:
    """The transposed [1, 1] filter at stride 2 (times 4): each pixel repeated into a 2x2 patch."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def conv(features: int, size: int, scale: float = 1.0, name: str | None = None) -> nn.Conv:
    return nn.Conv(features, (size, size), kernel_init=xavier_uniform(scale), name=name)


def dense(features: int, scale: float = 1.0, use_bias: bool = True, name: str | None = None) -> nn.Dense:
    return nn.Dense(features, use_bias=use_bias, kernel_init=xavier_uniform(scale), name=name)


class Mapping(nn.Module):
    """The conditioning vector of every block: an MLP on noise sinusoids + label and augmentation projections."""

    features: int
    time_embedding: str = "positional"
    num_classes: int = 0
    augment_dim: int = 0

    @nn.compact
    def __call__(self, noise_input: jax.Array, labels: jax.Array | None, augment_labels: jax.Array | None) -> jax.Array:
        if self.time_embedding == "fourier":
            embedding = FourierEmbedding(self.features, name="map_noise")(noise_input)
        else:
            embedding = positional_embedding(noise_input, self.features)
        if self.num_classes:
            if labels is None:
                raise ValueError("a class-conditional network needs labels")
            one_hot = jax.nn.one_hot(labels, self.num_classes)  # the null class num_classes: all zeros
            embedding = embedding + dense(self.features, name="map_label")(one_hot * math.sqrt(self.num_classes))
        if self.augment_dim:
            if augment_labels is None:
                augment_labels = jnp.zeros((noise_input.shape[0], self.augment_dim))
            embedding = embedding + dense(self.features, use_bias=False, name="map_augment")(augment_labels)
        embedding = nn.silu(dense(4 * self.features, name="map_layer0")(embedding))
        return nn.silu(dense(4 * self.features, name="map_layer1")(embedding))


class Block(nn.Module):
    """EDM's UNetBlock as DDPM++ configures it: the embedding is added before the second norm (no scale-shift)."""

    features: int
    dropout: float
    resample: str = ""  # "down" | "up" | "": applied to the input of conv0 and of the skip
    attention: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, embedding: jax.Array, train: bool) -> jax.Array:
        resample = {"down": downsample, "up": upsample, "": lambda v: v}[self.resample]
        h = conv(self.features, 3, name="conv0")(resample(nn.silu(group_norm(x.shape[-1], name="norm0")(x))))
        h = h + dense(self.features, name="affine")(embedding)[:, None, None, :]
        h = nn.silu(group_norm(self.features, name="norm1")(h))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = conv(self.features, 3, RESIDUAL_INIT_SCALE, name="conv1")(h)
        skip = x
        if self.resample or x.shape[-1] != self.features:
            skip = conv(self.features, 1, name="skip")(resample(x))
        x = (h + skip) * SKIP_SCALE
        if not self.attention:
            return x
        n, height, width, c = x.shape
        qkv = dense(3 * c, ATTENTION_INIT_SCALE, name="qkv")(group_norm(c, name="norm2")(x).reshape(n, -1, c))
        q, k, v = jnp.split(qkv, 3, axis=-1)
        weights = jax.nn.softmax(jnp.einsum("nqc,nkc->nqk", q, k) / math.sqrt(c), axis=-1)
        attended = dense(c, RESIDUAL_INIT_SCALE, name="proj")(jnp.einsum("nqk,nkc->nqc", weights, v))
        return (x + attended.reshape(n, height, width, c)) * SKIP_SCALE


class DDPMPlusPlus(nn.Module):
    """EDM's F(x, c_noise) (or an eps-network) with the same shape in and out; the reference sizes by default.

    `channel_multipliers` gives each level's width relative to `features`; each level but the first halves the
    resolution. Submodules carry EDM's names (`enc_16x16_block0`, `dec_8x8_in0`, ...).
    """

    features: int = 128
    channel_multipliers: Sequence[int] = (2, 2, 2)
    num_res_blocks: int = 4
    attention_resolutions: Sequence[int] = (16,)
    dropout: float = 0.13
    time_embedding: str = "positional"
    num_classes: int = 0
    augment_dim: int = 0
    remat: bool = False  # recompute each block's activations in the backward pass

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        noise_input: jax.Array,
        labels: jax.Array | None = None,
        train: bool = False,
        augment_labels: jax.Array | None = None,
    ) -> jax.Array:
        mapping = Mapping(self.features, self.time_embedding, self.num_classes, self.augment_dim, name="map")
        embedding = mapping(noise_input, labels, augment_labels)

        block_class = rematerialized(Block, self.remat, static_argnums=(3,))

        def block(name: str, features: int, **options) -> Block:
            return block_class(features, self.dropout, name=name, **options)

        resolution = x.shape[1]
        h = conv(self.features, 3, name=f"enc_{resolution}x{resolution}_conv")(x)
        skips = [h]
        for level, multiplier in enumerate(self.channel_multipliers):
            res = resolution >> level
            if level > 0:
                h = block(f"enc_{res}x{res}_down", h.shape[-1], resample="down")(h, embedding, train)
                skips.append(h)
            for index in range(self.num_res_blocks):
                attention = res in self.attention_resolutions
                h = block(f"enc_{res}x{res}_block{index}", self.features * multiplier, attention=attention)(
                    h, embedding, train
                )
                skips.append(h)

        for level, multiplier in reversed(list(enumerate(self.channel_multipliers))):
            res = resolution >> level
            if level == len(self.channel_multipliers) - 1:
                h = block(f"dec_{res}x{res}_in0", h.shape[-1], attention=True)(h, embedding, train)
                h = block(f"dec_{res}x{res}_in1", h.shape[-1])(h, embedding, train)
            else:
                h = block(f"dec_{res}x{res}_up", h.shape[-1], resample="up")(h, embedding, train)
            for index in range(self.num_res_blocks + 1):
                attention = index == self.num_res_blocks and res in self.attention_resolutions
                h = jnp.concatenate([h, skips.pop()], axis=-1)
                h = block(f"dec_{res}x{res}_block{index}", self.features * multiplier, attention=attention)(
                    h, embedding, train
                )
        h = nn.silu(group_norm(h.shape[-1], name=f"dec_{resolution}x{resolution}_aux_norm")(h))
        return conv(x.shape[-1], 3, RESIDUAL_INIT_SCALE, name=f"dec_{resolution}x{resolution}_aux_conv")(h)
