"""ResNet generator and discriminator of SNGAN / cGAN-projection / SAGAN at CIFAR scale (Miyato et al. 2018,
appendix B.4; Miyato & Koyama 2018; Zhang et al. 2019), at any power-of-2 resolution >= 8.

Generator: z -> dense 4x4 map -> one up-sampling residual block per doubling -> BN, ReLU, 3x3 conv, tanh; its
batch norms are class-conditional when `num_classes > 0`. Discriminator: down-sampling residual blocks to 8x8,
two more blocks at 8x8, ReLU, global sum pooling (SNGAN's; `pooling="mean"` is the WGAN-GP critic's), linear
output plus the class projection. Optional self-attention after the block whose output has
`attention_resolution` pixels a side (0 = none).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genimg_jax.models import gan_layers
from genimg_jax.models.layers import num_doublings

POOLINGS = {"sum": jnp.sum, "mean": jnp.mean}  # global pooling of the discriminator's last feature maps


class Generator(nn.Module):
    resolution: int
    channels: int
    features: int = 256
    num_classes: int = 0
    spectral_norm: bool = False
    attention_resolution: int = 0
    dtype: Any = None

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None, train: bool) -> jax.Array:
        layer = dict(spectral_norm=self.spectral_norm, dtype=self.dtype)
        x = gan_layers.Dense(4 * 4 * self.features, **layer)(z, train).reshape(z.shape[0], 4, 4, self.features)
        size = 4
        for _ in range(num_doublings(self.resolution)):
            x = gan_layers.GeneratorBlock(self.features, self.num_classes, **layer)(x, labels, train)
            size *= 2
            if size == self.attention_resolution:
                x = gan_layers.SelfAttention(**layer)(x, train)
        x = nn.relu(gan_layers.ConditionalBatchNorm(dtype=self.dtype)(x, None, train))
        x = gan_layers.Conv(self.channels, **layer)(x, train)
        return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
    features: int = 128
    num_classes: int = 0
    spectral_norm: bool = True
    attention_resolution: int = 0
    pooling: str = "sum"  # a key of POOLINGS
    head_bias: bool = True
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None, train: bool) -> jax.Array:
        layer = dict(spectral_norm=self.spectral_norm, dtype=self.dtype)
        num_down = max(x.shape[1].bit_length() - 4, 1)  # down to 8x8 (at least once)
        blocks = [dict(down=True, first=True)] + [dict(down=True)] * (num_down - 1) + [dict(down=False)] * 2
        size = x.shape[1]
        for block in blocks:
            x = gan_layers.DiscriminatorBlock(self.features, **block, **layer)(x, train)
            size //= 2 if block["down"] else 1
            if size == self.attention_resolution and block["down"]:
                x = gan_layers.SelfAttention(**layer)(x, train)
        features = POOLINGS[self.pooling](nn.relu(x), axis=(1, 2))
        return gan_layers.ProjectionHead(self.num_classes, self.spectral_norm, self.head_bias)(features, labels, train)
