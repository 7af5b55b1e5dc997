"""DCGAN generator and discriminator (Radford, Metz & Chintala, 2016), at any power-of-2 resolution >= 8.

Follows the reference implementation: N(0, 0.02) weights, no conv biases (BatchNorm or tanh follows every
layer), BatchNorm with PyTorch's running-average momentum 0.1 (flax ``momentum=0.9``).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from genimg_jax.models.layers import DCGAN_INIT, UpConv, conv, dcgan_scale_init, num_doublings


def _batch_norm(train: bool) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, scale_init=dcgan_scale_init)


class Generator(nn.Module):
    """Latent vector -> image in [-1, 1]; features halve at every doubling of the spatial size."""

    resolution: int
    channels: int
    base_features: int = 64

    @nn.compact
    def __call__(self, z: jax.Array, train: bool) -> jax.Array:
        n = num_doublings(self.resolution)
        x = z.reshape(z.shape[0], 1, 1, z.shape[-1])
        x = UpConv(self.base_features * 2 ** (n - 1), 4, 1, 0, use_bias=False, kernel_init=DCGAN_INIT)(x)
        x = nn.relu(_batch_norm(train)(x))
        for i in range(n - 2, -1, -1):
            x = UpConv(self.base_features * 2**i, use_bias=False, kernel_init=DCGAN_INIT)(x)
            x = nn.relu(_batch_norm(train)(x))
        x = UpConv(self.channels, use_bias=False, kernel_init=DCGAN_INIT)(x)
        return jnp.tanh(x)


class Discriminator(nn.Module):
    """Image -> one real/fake logit per example; features double at every halving of the spatial size."""

    base_features: int = 64

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if x.shape[1] != x.shape[2]:
            raise ValueError(f"Discriminator expects square images, got shape {x.shape}")
        for i in range(num_doublings(x.shape[1])):
            x = conv(self.base_features * 2**i, use_bias=False, kernel_init=DCGAN_INIT)(x)
            if i > 0:  # the reference leaves the first block without BatchNorm
                x = _batch_norm(train)(x)
            x = nn.leaky_relu(x, 0.2)
        x = conv(1, 4, 1, 0, use_bias=False, kernel_init=DCGAN_INIT)(x)
        return x.reshape(x.shape[0])
