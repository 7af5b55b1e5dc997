"""A small transformer text encoder, trained with the model it conditions (Imagen/latent-diffusion style, from
scratch): token embedding plus learned positions, pre-LayerNorm blocks of padding-masked self-attention and an
MLP, a final LayerNorm. Padding (tokens_mask = 0) is masked out of every attention and zeroed in the output, so
the content of padded positions changes nothing.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


def masked_mean(features: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of (B, L, D) `features` over the positions where (B, L) `mask` is 1: the pooled sentence feature."""
    weights = mask.astype(features.dtype)[..., None]
    return jnp.sum(features * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1.0)


def key_mask(mask: jax.Array) -> jax.Array:
    """(B, L) 1 = real token -> the (B, 1, 1, L) attention mask flax expects: every query sees only real keys."""
    return mask.astype(bool)[:, None, None, :]


class TransformerBlock(nn.Module):
    num_heads: int
    mlp_ratio: int = 4

    @nn.compact
    def __call__(self, h: jax.Array, mask: jax.Array) -> jax.Array:
        attention = nn.MultiHeadDotProductAttention(num_heads=self.num_heads)
        h = h + attention(nn.LayerNorm()(h), mask=key_mask(mask))
        hidden = nn.gelu(nn.Dense(self.mlp_ratio * h.shape[-1])(nn.LayerNorm()(h)))
        return h + nn.Dense(h.shape[-1])(hidden)


class TextEncoder(nn.Module):
    """Tokens (B, L) int32 and tokens_mask (B, L) -> (per-token features (B, L, D), zero at padding; pooled (B, D))."""

    vocab_size: int
    max_length: int
    features: int = 64
    num_layers: int = 2
    num_heads: int = 4

    @nn.compact
    def __call__(self, tokens: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        length = tokens.shape[1]
        if length > self.max_length:
            raise ValueError(f"captions of {length} tokens exceed the text encoder's max_length={self.max_length}")
        positions = self.param("positions", nn.initializers.normal(0.02), (self.max_length, self.features))
        h = nn.Embed(self.vocab_size, self.features)(tokens) + positions[None, :length]
        for _ in range(self.num_layers):
            h = TransformerBlock(self.num_heads)(h, mask)
        h = nn.LayerNorm()(h) * mask.astype(h.dtype)[..., None]
        return h, masked_mean(h, mask)
