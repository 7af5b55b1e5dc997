"""Building blocks of the ResNet GANs: spectral norm switch, conditional batch norm, residual up/down blocks,
self-attention and the projection head.

Spectral normalisation uses `flax.linen.SpectralNorm`: its power-iteration vector `u` and estimate `sigma` live in
the `batch_stats` collection, so they are part of the train state, checkpointed, and updated only in training mode.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def apply_maybe_spectral(layer: nn.Module, x: jax.Array, spectral_norm: bool, train: bool) -> jax.Array:
    """Call `layer` on `x`, with its weights divided by their largest singular value when `spectral_norm`."""
    if spectral_norm:
        return nn.SpectralNorm(layer)(x, update_stats=train)
    return layer(x)


class Conv(nn.Module):
    """Same-padded convolution with optional spectral normalisation."""

    features: int
    kernel_size: int = 3
    spectral_norm: bool = False
    dtype: Dtype = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        layer = nn.Conv(self.features, (self.kernel_size, self.kernel_size), padding="SAME", dtype=self.dtype)
        return apply_maybe_spectral(layer, x, self.spectral_norm, train)


class Dense(nn.Module):
    """Fully connected layer with optional spectral normalisation."""

    features: int
    spectral_norm: bool = False
    use_bias: bool = True
    dtype: Dtype = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        layer = nn.Dense(self.features, use_bias=self.use_bias, dtype=self.dtype)
        return apply_maybe_spectral(layer, x, self.spectral_norm, train)


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose scale and shift are looked up per class (de Vries et al. 2017; Miyato & Koyama 2018).

    With `num_classes = 0` it is ordinary batch norm with learned scale and shift. The class scales start at 1
    and shifts at 0, so at initialisation every class is normalised alike.
    """

    num_classes: int = 0
    dtype: Dtype = None

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None, train: bool) -> jax.Array:
        conditional = self.num_classes > 0
        x = nn.BatchNorm(
            use_running_average=not train,
            momentum=0.9,
            epsilon=1e-5,
            use_scale=not conditional,
            use_bias=not conditional,
            dtype=self.dtype,
        )(x)
        if not conditional:
            return x
        features = x.shape[-1]
        scale = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.ones, name="class_scale")(labels)
        shift = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros, name="class_shift")(labels)
        return x * scale[:, None, None, :].astype(x.dtype) + shift[:, None, None, :].astype(x.dtype)


def upsample(x: jax.Array) -> jax.Array:
    """Nearest-neighbour 2x up-sampling."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x: jax.Array) -> jax.Array:
    """2x2 average pooling, as a reshape and mean: its first and second derivatives are broadcasts, where
    `nn.avg_pool`'s are windowed reductions that XLA's CPU backend runs slowly (WGAN-GP differentiates D twice)."""
    n, h, w, c = x.shape
    return jnp.mean(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4))


class GeneratorBlock(nn.Module):
    """Pre-activation residual block that doubles the resolution (Miyato et al. 2018, Fig. 8a)."""

    features: int
    num_classes: int = 0
    spectral_norm: bool = False
    dtype: Dtype = None

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None, train: bool) -> jax.Array:
        conv = dict(spectral_norm=self.spectral_norm, dtype=self.dtype)
        h = nn.relu(ConditionalBatchNorm(self.num_classes, self.dtype)(x, labels, train))
        h = Conv(self.features, **conv)(upsample(h), train)
        h = nn.relu(ConditionalBatchNorm(self.num_classes, self.dtype)(h, labels, train))
        h = Conv(self.features, **conv)(h, train)
        return h + Conv(self.features, kernel_size=1, **conv)(upsample(x), train)


class DiscriminatorBlock(nn.Module):
    """Residual block of the discriminator, optionally halving the resolution (Miyato et al. 2018, Fig. 8b).

    The first block (`first=True`) sees raw pixels: no activation before its first conv, and the shortcut pools
    before its 1x1 conv, as in the SNGAN "optimized" block.
    """

    features: int
    down: bool = True
    first: bool = False
    spectral_norm: bool = False
    dtype: Dtype = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = dict(spectral_norm=self.spectral_norm, dtype=self.dtype)
        h = x if self.first else nn.relu(x)
        h = Conv(self.features, **conv)(h, train)
        h = Conv(self.features, **conv)(nn.relu(h), train)
        if self.down:
            h = downsample(h)
        shortcut = x
        if self.first:
            shortcut = Conv(self.features, kernel_size=1, **conv)(downsample(x), train)
        elif self.down or x.shape[-1] != self.features:
            shortcut = Conv(self.features, kernel_size=1, **conv)(x, train)
            shortcut = downsample(shortcut) if self.down else shortcut
        return h + shortcut


class SelfAttention(nn.Module):
    """Self-attention over all positions of a feature map (Zhang et al. 2019, SAGAN), added with a learned gain
    that starts at 0 so the block begins as the identity."""

    spectral_norm: bool = False
    dtype: Dtype = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        batch, height, width, channels = x.shape
        conv = dict(kernel_size=1, spectral_norm=self.spectral_norm, dtype=self.dtype)
        key_features = max(channels // 8, 1)
        query = Conv(key_features, **conv)(x, train).reshape(batch, height * width, key_features)
        key = Conv(key_features, **conv)(x, train).reshape(batch, height * width, key_features)
        value = Conv(max(channels // 2, 1), **conv)(x, train).reshape(batch, height * width, -1)
        weights = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", query, key).astype(jnp.float32), axis=-1)
        attended = jnp.einsum("bqk,bkc->bqc", weights.astype(value.dtype), value).reshape(batch, height, width, -1)
        gain = self.param("gain", nn.initializers.zeros, ())
        return x + gain.astype(x.dtype) * Conv(channels, **conv)(attended, train)


class ProjectionHead(nn.Module):
    """Discriminator output from pooled features h: psi(h) + <embed(y), h> (Miyato & Koyama 2018, cGANs with a
    projection discriminator); with `num_classes = 0` only the unconditional term psi(h). psi has a bias unless
    `use_bias` is off (the SNGAN / projection code's head has none)."""

    num_classes: int = 0
    spectral_norm: bool = False
    use_bias: bool = True

    @nn.compact
    def __call__(self, features: jax.Array, labels: jax.Array | None, train: bool) -> jax.Array:
        features = features.astype(jnp.float32)
        logits = Dense(1, spectral_norm=self.spectral_norm, use_bias=self.use_bias)(features, train)[:, 0]
        if self.num_classes == 0:
            return logits
        embedding = nn.Embed(self.num_classes, features.shape[-1], embedding_init=nn.initializers.xavier_uniform())
        class_vectors = apply_maybe_spectral(embedding, labels, self.spectral_norm, train)
        return logits + jnp.sum(class_vectors * features, axis=-1)
