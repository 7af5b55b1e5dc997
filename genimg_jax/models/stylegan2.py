"""StyleGAN2 networks (Karras et al., CVPR 2020), following stylegan2-ada-pytorch's config-F layout.

Generator = mapping network (z, label -> w) + synthesis network (one w per layer -> image), with separate entry
points `Generator.map` and `Generator.synthesize` so that style mixing, truncation and path-length
regularisation can work on w. The synthesis network uses the skip architecture: a learned 4x4 constant, two
modulated 3x3 convolutions per resolution (the first upsamples), noise after every convolution, and a 1x1
"toRGB" per resolution whose outputs are upsampled and summed. Images come out unbounded (no tanh), in about
[-1, 1] once trained. The discriminator is residual (or "orig", plain, as in the ADA CIFAR-10 setup) and ends
with a minibatch-stddev layer, a 3x3 convolution and two dense layers; class-conditional discriminators project
the last features on an embedding of the label (Miyato & Koyama 2018), as in StyleGAN2-ADA.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from genimg_jax import parallel
from genimg_jax.models.layers import num_doublings, rematerialized
from genimg_jax.models.style_layers import (
    EqualConv,
    EqualDense,
    ModulatedConv,
    NoiseInjection,
    downsample_2x,
    lrelu,
    minibatch_stddev,
    noise_maps,
    normalize_2nd_moment,
    upsample_2x,
)

OUTPUT_ACTIVATIONS = ("linear", "tanh")
D_ARCHITECTURES = ("resnet", "orig")


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at a resolution: channel_base / resolution, capped at channel_max (StyleGAN's rule)."""
    return max(1, min(channel_base // resolution, channel_max))


def num_ws(resolution: int) -> int:
    """Number of w vectors the synthesis network consumes: 2 per resolution from 4 up, sharing toRGB's with the
    next block's first convolution, so 2 log2(resolution) - 2 (8 at 32x32)."""
    return 2 * (num_doublings(resolution) + 2) - 2


def truncate(ws: jax.Array, w_avg: jax.Array, psi: float | jax.Array) -> jax.Array:
    """The truncation trick: pull w towards the average w; psi=1 leaves w unchanged, psi=0 gives w_avg."""
    return w_avg + psi * (ws - w_avg)


def mix_styles(ws1: jax.Array, ws2: jax.Array, cutoff: int | jax.Array) -> jax.Array:
    """Style mixing: layers [0, cutoff) take their w from ws1, layers [cutoff, num_ws) from ws2; (N, num_ws, D)."""
    use_first = jnp.arange(ws1.shape[1])[None, :, None] < cutoff
    return jnp.where(use_first, ws1, ws2)


class MappingNetwork(nn.Module):
    """z (and/or a class label) -> w through `num_layers` equalized-lr dense layers with a reduced lr.

    With `num_classes` > 0 the one-hot label is embedded, normalised and concatenated to the normalised z;
    `z=None` maps the label alone (the discriminator's label embedding).
    """

    w_dim: int
    num_layers: int
    num_classes: int = 0
    lr_mul: float = 0.01

    @nn.compact
    def __call__(self, z: jax.Array | None, labels: jax.Array | None = None) -> jax.Array:
        parts = [] if z is None else [normalize_2nd_moment(z)]
        if self.num_classes:
            if labels is None:
                raise ValueError("a class-conditional mapping network needs labels")
            embedded = EqualDense(self.w_dim, name="embed")(jax.nn.one_hot(labels, self.num_classes))
            parts.append(normalize_2nd_moment(embedded))
        x = jnp.concatenate(parts, axis=-1)
        for i in range(self.num_layers):
            x = lrelu(EqualDense(self.w_dim, lr_mul=self.lr_mul, name=f"dense{i}")(x))
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally upsampling), noise, bias and leaky ReLU."""

    features: int
    up: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array, noise: jax.Array | None) -> jax.Array:
        x = ModulatedConv(self.features, 3, up=self.up, dtype=self.dtype)(x, w)
        x = NoiseInjection()(x, noise)
        return lrelu(x + self.param("bias", nn.initializers.zeros_init(), (self.features,)).astype(x.dtype))


class ToRGB(nn.Module):
    """Modulated 1x1 convolution without demodulation, plus bias."""

    channels: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        y = ModulatedConv(self.channels, 1, demodulate=False, dtype=self.dtype)(x, w)
        return y + self.param("bias", nn.initializers.zeros_init(), (self.channels,)).astype(y.dtype)


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> images (N, R, R, channels), skip architecture.

    The output is linear, as in StyleGAN2, or squashed by tanh (`output_activation`): data whose pixels sit at
    the ends of the range (the embedded digits' background is exactly -1) are out of reach of a linear output,
    and D then tells fakes by their background alone.
    """

    resolution: int
    channels: int
    channel_base: int
    channel_max: int
    dtype: jnp.dtype = jnp.float32
    output_activation: str = "linear"
    remat: bool = False  # recompute each layer's activations in the backward pass

    def _features(self, resolution: int) -> int:
        return channels_at(resolution, self.channel_base, self.channel_max)

    @nn.compact
    def __call__(self, ws: jax.Array, noise_mode: str = "random") -> jax.Array:
        """`noise_mode` as in style_layers.noise_maps; the noise comes from the `noise` rng stream of `apply`."""
        expected = num_ws(self.resolution)
        if ws.shape[1] != expected:
            raise ValueError(f"synthesis at {self.resolution}x{self.resolution} needs {expected} ws, got {ws.shape}")
        resolutions = [4] + [r for r in (2**i for i in range(3, self.resolution.bit_length())) for _ in range(2)]
        noise_rng = self.make_rng("noise") if noise_mode != "none" else None
        noise = iter(noise_maps(noise_rng, ws.shape[0], resolutions, noise_mode))
        const = self.param("const", nn.initializers.normal(1.0), (4, 4, self._features(4)))
        x = jnp.broadcast_to(const, (ws.shape[0], *const.shape))
        layer = rematerialized(SynthesisLayer, self.remat)
        x = layer(self._features(4), dtype=self.dtype, name="b4_conv1")(x, ws[:, 0], next(noise))
        images = ToRGB(self.channels, dtype=self.dtype, name="b4_torgb")(x, ws[:, 1]).astype(jnp.float32)
        index, resolution = 1, 8
        while resolution <= self.resolution:
            features = self._features(resolution)
            x = layer(features, up=True, dtype=self.dtype, name=f"b{resolution}_conv0")(x, ws[:, index], next(noise))
            x = layer(features, dtype=self.dtype, name=f"b{resolution}_conv1")(x, ws[:, index + 1], next(noise))
            rgb = ToRGB(self.channels, dtype=self.dtype, name=f"b{resolution}_torgb")(x, ws[:, index + 2])
            images = upsample_2x(images) + rgb.astype(jnp.float32)
            index, resolution = index + 2, resolution * 2
        return jnp.tanh(images) if self.output_activation == "tanh" else images


class Generator(nn.Module):
    """Mapping + synthesis. `map` gives one w per sample; `synthesize` takes one w per layer."""

    resolution: int
    channels: int
    z_dim: int
    w_dim: int
    mapping_layers: int
    channel_base: int
    channel_max: int
    num_classes: int = 0
    mapping_lr_mul: float = 0.01
    dtype: jnp.dtype = jnp.float32
    output_activation: str = "linear"
    remat: bool = False

    def setup(self):
        self.mapping = MappingNetwork(self.w_dim, self.mapping_layers, self.num_classes, self.mapping_lr_mul)
        self.synthesis = SynthesisNetwork(
            self.resolution,
            self.channels,
            self.channel_base,
            self.channel_max,
            self.dtype,
            self.output_activation,
            self.remat,
        )

    @property
    def num_ws(self) -> int:
        return num_ws(self.resolution)

    def map(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        return self.mapping(z, labels)

    def synthesize(self, ws: jax.Array, noise_mode: str = "random") -> jax.Array:
        return self.synthesis(ws, noise_mode)

    def __call__(self, z: jax.Array, labels: jax.Array | None = None, noise_mode: str = "random") -> jax.Array:
        w = self.map(z, labels)
        return self.synthesize(jnp.repeat(w[:, None], self.num_ws, axis=1), noise_mode)


class DiscriminatorBlock(nn.Module):
    """3x3 conv, then a downsampling 3x3 conv (blur, stride 2); `residual` adds a downsampled 1x1 skip, both
    branches scaled by sqrt(1/2)."""

    features: int
    out_features: int
    residual: bool = True
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = lrelu(EqualConv(self.features, 3, dtype=self.dtype, name="conv0")(x))
        y = lrelu(EqualConv(self.out_features, 3, down=True, dtype=self.dtype, name="conv1")(y))
        if not self.residual:
            return y
        skip = EqualConv(self.out_features, 1, use_bias=False, dtype=self.dtype, name="skip")(downsample_2x(x))
        return (skip + y) * math.sqrt(0.5)


class Discriminator(nn.Module):
    """Image (and label) -> one real/fake logit per example."""

    channel_base: int
    channel_max: int
    architecture: str = "resnet"
    mbstd_group_size: int = 4
    mbstd_channels: int = 1
    num_classes: int = 0
    mapping_layers: int = 8  # of the label embedding, when conditional
    dtype: jnp.dtype = jnp.float32
    remat: bool = False  # recompute each block's activations in the backward pass

    def _features(self, resolution: int) -> int:
        return channels_at(resolution, self.channel_base, self.channel_max)

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        if images.shape[1] != images.shape[2]:
            raise ValueError(f"Discriminator expects square images, got shape {images.shape}")
        resolution = images.shape[1]
        num_doublings(resolution)  # rejects sizes the network cannot reduce to 4x4
        x = lrelu(EqualConv(self._features(resolution), 1, dtype=self.dtype, name="fromrgb")(images))
        while resolution > 4:
            block = rematerialized(DiscriminatorBlock, self.remat)(
                self._features(resolution),
                self._features(resolution // 2),
                residual=self.architecture == "resnet",
                dtype=self.dtype,
                name=f"b{resolution}",
            )
            x, resolution = block(x), resolution // 2
        features = self._features(4)
        x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_channels)
        x = lrelu(EqualConv(features, 3, dtype=self.dtype, name="b4_conv")(x)).astype(jnp.float32)
        # Keep the flattened maps split like the batch only: an FSDP-split kernel would otherwise pull its split
        # into the 4x4 map and make XLA regather the activations (see parallel.constrain_batch).
        x = lrelu(EqualDense(features, name="b4_fc")(parallel.constrain_batch(x.reshape(x.shape[0], -1))))
        if not self.num_classes:
            return EqualDense(1, name="out")(x)[:, 0]
        # Projection discriminator: features . embedding(label) / sqrt(dim).
        projected = EqualDense(features, name="out")(x)
        embedding = MappingNetwork(features, self.mapping_layers, self.num_classes, name="label_mapping")(None, labels)
        return jnp.sum(projected * embedding, axis=-1) / math.sqrt(features)
