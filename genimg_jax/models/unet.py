"""The DDPM U-Net denoiser (Ho et al. 2020, after PixelCNN++), as used by score_sde's `ddpm` model and EDM.

Wide ResNet blocks with GroupNorm, a timestep embedding added inside every block, dropout before each block's
second convolution, single-head self-attention at the configured resolutions and in the middle, nearest-neighbour
up-sampling plus convolution (no transposed convolution). Output layers start at zero, so an untrained network
predicts 0. Weights start as DDPM's `variance_scaling(fan_avg, uniform)` (Glorot uniform), biases at 0; the
layers DDPM scales by 1e-10 start at exactly 0. Class conditioning adds a learned class embedding to the time
embedding; index `num_classes` is the "null" class that classifier-free guidance trains with label dropout.
With `augment_dim` > 0 the network is told how its training image was augmented (EDM's non-leaky augmentation,
`augment.edm`): a bias-free linear map of the augment labels is added to the noise-level sinusoids before the
embedding MLP, as EDM's `map_augment`; without labels (at sampling) the labels are zeros, i.e. no augmentation.
Text conditioning (latent diffusion's cross-attention U-Net, Rombach et al. 2022): given per-token `context`
(B, L, D) and its `context_mask`, every self-attention block is followed by a cross-attention block to the real
tokens, and the pooled sentence feature (their mean) is added to the time embedding through a linear map (as
Imagen adds its pooled text embedding). Without context the network and its parameters are the plain U-Net's.
"""

import itertools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genimg_jax.models.layers import rematerialized
from genimg_jax.models.text_encoder import key_mask, masked_mean

TIME_EMBEDDINGS = ("positional", "fourier")
DDPM_INIT = nn.initializers.xavier_uniform()  # DDPM's default_init(1.0): variance_scaling(1, fan_avg, uniform)


def positional_embedding(t: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """Transformer sinusoids of the scalar `t` per example, (N,) -> (N, dim), as DDPM embeds its timestep.

    Frequencies run from 1 to exactly 1 / max_period (exponent i / (half - 1)), as DDPM's get_timestep_embedding
    and EDM's PositionalEmbedding(endpoint=True) space them; sines come first.
    """
    half = dim // 2
    frequencies = jnp.exp(-math.log(max_period) * jnp.arange(half) / (half - 1))
    angles = t[:, None].astype(jnp.float32) * frequencies[None]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class FourierEmbedding(nn.Module):
    """Random Fourier features of fixed Gaussian frequencies (NCSN++, Song et al. 2021); they are not trained."""

    dim: int
    scale: float = 16.0

    @nn.compact
    def __call__(self, t: jax.Array) -> jax.Array:
        init = nn.initializers.normal(self.scale)
        frequencies = jax.lax.stop_gradient(self.param("frequencies", init, (self.dim // 2,)))
        angles = 2 * math.pi * t[:, None].astype(jnp.float32) * frequencies[None]
        return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class ConditioningEmbedding(nn.Module):
    """Noise-level embedding (an MLP on sinusoids, plus the augment labels mapped linearly if `augment_dim` > 0)
    and, if `num_classes` > 0, a learned class embedding."""

    dim: int
    time_embedding: str = "positional"
    num_classes: int = 0
    augment_dim: int = 0

    @nn.compact
    def __call__(self, t: jax.Array, labels: jax.Array | None, augment_labels: jax.Array | None = None) -> jax.Array:
        base = self.dim // 4
        features = FourierEmbedding(base)(t) if self.time_embedding == "fourier" else positional_embedding(t, base)
        if self.augment_dim:
            if augment_labels is None:  # sampling: no augmentation
                augment_labels = jnp.zeros((t.shape[0], self.augment_dim), jnp.float32)
            map_augment = nn.Dense(
                base, use_bias=False, kernel_init=nn.initializers.xavier_uniform(), name="map_augment"
            )
            features = features + map_augment(augment_labels.astype(jnp.float32))
        elif augment_labels is not None:
            raise ValueError("augment labels given to a network with augment_dim = 0")
        hidden = nn.swish(nn.Dense(self.dim, kernel_init=DDPM_INIT)(features))
        embedding = nn.Dense(self.dim, kernel_init=DDPM_INIT)(hidden)
        if self.num_classes:
            if labels is None:
                raise ValueError("a class-conditional network needs labels")
            embedding = embedding + nn.Embed(self.num_classes + 1, self.dim)(labels)  # last index: null class
        return embedding


def group_norm(features: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (DDPM) and at least 4 channels per group, so fewer groups for narrow layers.

    A group of one channel is instance norm: it erases each channel's spatial mean, so the output head cannot
    follow the per-image mean of its input. An eps-network needs exactly that at high noise, where x_0 = x - sigma
    eps multiplies its error by sigma (up to 157 on DDPM's linear schedule): a 16-channel U-Net with 16 groups
    left half of its digit samples as grey noise.
    """
    return nn.GroupNorm(num_groups=math.gcd(32, max(features // 4, 1)))


class ResBlock(nn.Module):
    features: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, embedding: jax.Array, train: bool) -> jax.Array:
        h = nn.Conv(self.features, (3, 3), kernel_init=DDPM_INIT)(nn.swish(group_norm(x.shape[-1])(x)))
        h = h + nn.Dense(self.features, kernel_init=DDPM_INIT)(nn.swish(embedding))[:, None, None, :]
        h = nn.swish(group_norm(self.features)(h))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = nn.Conv(self.features, (3, 3), kernel_init=nn.initializers.zeros_init())(h)
        if x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1), kernel_init=DDPM_INIT)(x)
        return x + h


class SelfAttention(nn.Module):
    """Single-head self-attention over all positions, with a zero-initialised output and a residual connection."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, h, w, c = x.shape
        tokens = group_norm(c)(x).reshape(n, h * w, c)
        attention = nn.MultiHeadDotProductAttention(
            num_heads=1, kernel_init=DDPM_INIT, out_kernel_init=nn.initializers.zeros_init()
        )
        return x + attention(tokens).reshape(n, h, w, c)


class CrossAttention(nn.Module):
    """Single-head attention from each position (queries of the GroupNorm'd features) to the real tokens of the
    context (keys and values projected from it), with a zero-initialised output and a residual connection, so
    that a fresh block leaves the U-Net as it was."""

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array, context_mask: jax.Array) -> jax.Array:
        n, h, w, c = x.shape
        queries = group_norm(c)(x).reshape(n, h * w, c)
        attention = nn.MultiHeadDotProductAttention(
            num_heads=1, kernel_init=DDPM_INIT, out_kernel_init=nn.initializers.zeros_init()
        )
        return x + attention(queries, context, mask=key_mask(context_mask)).reshape(n, h, w, c)


class UNet(nn.Module):
    """Noise prediction network eps(x, t) (or EDM's F) with the same shape in and out, or `out_channels` channels
    out when > 0 (conditional diffusion feeds the noisy image with its conditioning channels concatenated).

    `channel_multipliers` gives the width of each resolution level relative to `features`; each level but the
    last halves the resolution. `attention_resolutions` are the feature-map sizes that get self-attention.
    `augment_dim` is the width of the augment labels (0: none may be given; > 0: None means zeros). `remat`
    recomputes each residual block's activations in the backward pass. `context` (B, L, D) with `context_mask`
    (B, L), 1 = real token, conditions on text (module docstring); `pooled` (B, D) is the sentence feature added
    to the time embedding (None: the mean of the real tokens' context).
    """

    features: int = 128
    channel_multipliers: Sequence[int] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: Sequence[int] = (16,)
    dropout: float = 0.1
    time_embedding: str = "positional"
    num_classes: int = 0
    augment_dim: int = 0
    remat: bool = False
    out_channels: int = 0

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        labels: jax.Array | None = None,
        train: bool = False,
        augment_labels: jax.Array | None = None,
        context: jax.Array | None = None,
        context_mask: jax.Array | None = None,
        pooled: jax.Array | None = None,
    ) -> jax.Array:
        embedding = ConditioningEmbedding(4 * self.features, self.time_embedding, self.num_classes, self.augment_dim)(
            t, labels, augment_labels
        )
        if context is not None:
            if context_mask is None:
                raise ValueError("a U-Net given a text context needs its context_mask")
            pooled = masked_mean(context, context_mask) if pooled is None else pooled
            embedding = embedding + nn.Dense(embedding.shape[-1], kernel_init=DDPM_INIT, name="pooled_context")(pooled)
        block_class = rematerialized(ResBlock, self.remat, static_argnums=(3,))
        numbers = itertools.count()

        def res_block(features: int) -> ResBlock:  # named as flax names ResBlocks, with or without remat
            return block_class(features, self.dropout, name=f"ResBlock_{next(numbers)}")

        def attend(h: jax.Array) -> jax.Array:
            h = SelfAttention()(h)
            return h if context is None else CrossAttention()(h, context, context_mask)

        h = nn.Conv(self.features, (3, 3), kernel_init=DDPM_INIT)(x)
        skips = [h]
        for level, multiplier in enumerate(self.channel_multipliers):
            for _ in range(self.num_res_blocks):
                h = res_block(self.features * multiplier)(h, embedding, train)
                if h.shape[1] in self.attention_resolutions:
                    h = attend(h)
                skips.append(h)
            if level < len(self.channel_multipliers) - 1:
                h = nn.Conv(h.shape[-1], (3, 3), strides=(2, 2), kernel_init=DDPM_INIT)(h)
                skips.append(h)

        h = res_block(h.shape[-1])(h, embedding, train)
        h = attend(h)
        h = res_block(h.shape[-1])(h, embedding, train)

        for level, multiplier in reversed(list(enumerate(self.channel_multipliers))):
            for _ in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, skips.pop()], axis=-1)
                h = res_block(self.features * multiplier)(h, embedding, train)
                if h.shape[1] in self.attention_resolutions:
                    h = attend(h)
            if level > 0:
                h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
                h = nn.Conv(h.shape[-1], (3, 3), kernel_init=DDPM_INIT)(h)
        h = nn.swish(group_norm(h.shape[-1])(h))
        out_channels = self.out_channels or x.shape[-1]
        return nn.Conv(out_channels, (3, 3), kernel_init=nn.initializers.zeros_init())(h)
