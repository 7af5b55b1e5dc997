"""Convolutional encoder and decoder for a VAE (Kingma & Welling, 2014).

No BatchNorm: each example's ELBO must depend on that example alone, in training as in evaluation.
The decoder returns per-pixel distribution parameters; the method decides their meaning (Bernoulli logits,
Gaussian means, ...).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from genimg_jax.models.layers import UPCONV_FAN_IN_INIT, UpConv, conv, num_doublings


class Encoder(nn.Module):
    """Image -> (mean, log_variance) of a diagonal Gaussian q(z|x), each (N, latent_dim)."""

    latent_dim: int
    base_features: int = 32

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        if x.shape[1] != x.shape[2]:
            raise ValueError(f"Encoder expects square images, got shape {x.shape}")
        for i in range(num_doublings(x.shape[1])):
            x = nn.swish(conv(self.base_features * 2**i)(x))
        x = nn.Dense(2 * self.latent_dim)(x.reshape(x.shape[0], -1))
        mean, log_variance = jnp.split(x, 2, axis=-1)
        return mean, log_variance


class Decoder(nn.Module):
    """Latent (N, latent_dim) -> per-pixel parameters (N, resolution, resolution, channels).

    Mirrors the encoder: the map at resolution R / 2**i has base_features * 2**max(i - 1, 0) features.
    """

    resolution: int
    channels: int
    base_features: int = 32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        n = num_doublings(self.resolution)
        features = self.base_features * 2 ** (n - 1)
        x = nn.swish(nn.Dense(4 * 4 * features)(z).reshape(z.shape[0], 4, 4, features))
        for i in reversed(range(n)):
            x = nn.swish(UpConv(self.base_features * 2 ** max(i - 1, 0), kernel_init=UPCONV_FAN_IN_INIT)(x))
        return conv(self.channels, 3, 1, 1)(x)
