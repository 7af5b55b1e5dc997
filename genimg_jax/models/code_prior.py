"""An autoregressive prior over a VQ-VAE's code map: a small causal transformer (GPT-style, pre-LayerNorm) over
the codes in raster order, p(c) = prod_i p(c_i | c_<i, class).

The input at position i is code i-1 (a start token at 0: the class's embedding for a class-conditional prior, a
learned vector otherwise) plus a learned position embedding; a causal mask keeps position i from seeing codes
>= i, so logits[:, i] predict code i from the codes before it. Dense layers only: inside the sampler's
`lax.fori_loop` (one pass per code) XLA:CPU runs them at full speed, unlike convolutions.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class TransformerBlock(nn.Module):
    width: int
    heads: int

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        attention = nn.MultiHeadDotProductAttention(num_heads=self.heads)
        h = nn.LayerNorm()(x)
        x = x + attention(h, h, mask=mask)
        h = nn.Dense(4 * self.width)(nn.LayerNorm()(x))
        return x + nn.Dense(self.width)(nn.gelu(h))


class CodePrior(nn.Module):
    """Codes (N, L) int -> logits (N, L, num_codes) of each code given the ones before it (and `labels`)."""

    num_codes: int
    length: int
    width: int = 128
    depth: int = 4
    heads: int = 4
    num_classes: int = 0

    @nn.compact
    def __call__(self, codes: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        count = codes.shape[0]
        if self.num_classes:
            start = nn.Embed(self.num_classes, self.width, name="class_start")(labels)
        else:
            start = self.param("start", nn.initializers.normal(0.02), (self.width,))
            start = jnp.broadcast_to(start, (count, self.width))
        shifted = nn.Embed(self.num_codes, self.width, name="code_embedding")(codes[:, :-1])
        x = jnp.concatenate([start[:, None], shifted], axis=1)
        x = x + self.param("position", nn.initializers.normal(0.02), (self.length, self.width))
        mask = nn.make_causal_mask(codes)
        for index in range(self.depth):
            x = TransformerBlock(self.width, self.heads, name=f"block_{index}")(x, mask)
        return nn.Dense(self.num_codes)(nn.LayerNorm()(x))
