"""A DAMSM-style image-text dual encoder (Xu et al. 2018, AttnGAN, section 3.3): the shared embedding space that the
DAMSM losses (losses/damsm.py) train and R-precision (metrics/r_precision.py) ranks captions in.

As AttnGAN's: the image encoder gives a grid of region features (AttnGAN: Inception-v3's 17x17 `Mixed_6e` through
a 1x1 convolution) and a global feature (its pooled last layer through a dense layer), the text encoder is an
embedding and a bidirectional LSTM whose per-word outputs are the word features and whose last hidden states
(both directions, concatenated) are the sentence feature. Deliberate deviations, for small images without
downloadable weights: the CNN is small and trained from scratch, its regions are an 8x8 grid at 64x64, and the
embedding has no dropout. Padding (mask 0) never reaches a feature: the LSTM runs each caption to its length.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class DualEncoderSpec:
    """What fixes the parameters' shapes; saved beside the weights (metrics/dual_encoder_file.py)."""

    vocabulary_size: int
    caption_length: int
    resolution: int = 64
    channels: int = 1
    embed_dim: int = 128  # AttnGAN: 256
    word_dim: int = 64  # AttnGAN: 300
    widths: tuple[int, ...] = (32, 64, 128)  # stride-2 stages before the region grid


class ImageEncoder(nn.Module):
    """[-1, 1] NHWC images -> (regions (N, R, D), global (N, D)); R = (resolution / 2**len(widths))**2."""

    spec: DualEncoderSpec

    @nn.compact
    def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = images
        for width in self.spec.widths:
            x = nn.leaky_relu(nn.Conv(width, (4, 4), strides=(2, 2))(x), 0.2)
        regions = nn.Conv(self.spec.embed_dim, (1, 1), use_bias=False, name="region_projection")(x)
        x = nn.leaky_relu(nn.Conv(2 * self.spec.widths[-1], (3, 3), strides=(2, 2))(x), 0.2)
        pooled = jnp.mean(x, axis=(1, 2))
        return regions.reshape(len(images), -1, self.spec.embed_dim), nn.Dense(self.spec.embed_dim)(pooled)


class TextEncoder(nn.Module):
    """(tokens, mask) int32 (N, L) -> (words (N, L, D), sentence (N, D)); padded words' features are zero."""

    spec: DualEncoderSpec

    @nn.compact
    def __call__(self, tokens: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        embedded = nn.Embed(self.spec.vocabulary_size, self.spec.word_dim)(tokens)
        hidden = self.spec.embed_dim // 2
        lstm = nn.Bidirectional(nn.RNN(nn.OptimizedLSTMCell(hidden)), nn.RNN(nn.OptimizedLSTMCell(hidden)))
        lengths = jnp.sum(mask, axis=-1).astype(jnp.int32)
        (forward, backward), words = lstm(embedded, seq_lengths=lengths, return_carry=True)
        sentence = jnp.concatenate([forward[1], backward[1]], axis=-1)  # the carries' hidden states
        return words * mask[..., None].astype(words.dtype), sentence


class DualEncoder(nn.Module):
    """Both encoders; `encode_images` and `encode_text` are the methods to `apply`."""

    spec: DualEncoderSpec

    def setup(self) -> None:
        self.image_encoder = ImageEncoder(self.spec)
        self.text_encoder = TextEncoder(self.spec)

    def encode_images(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.image_encoder(images)

    def encode_text(self, tokens: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.text_encoder(tokens, mask)

    def __call__(self, images: jax.Array, tokens: jax.Array, mask: jax.Array) -> tuple[tuple, tuple]:
        return self.encode_images(images), self.encode_text(tokens, mask)


def init_params(spec: DualEncoderSpec, rng: jax.Array) -> dict:
    """Fresh parameters for `spec`."""
    images = jnp.zeros((1, spec.resolution, spec.resolution, spec.channels))
    tokens = jnp.zeros((1, spec.caption_length), jnp.int32)
    return DualEncoder(spec).init(rng, images, tokens, tokens.at[:, 0].set(1))["params"]
