"""DCGAN generator and discriminator (Radford, Metz & Chintala, 2016), at any power-of-2 resolution >= 8.

Follows the reference implementation: N(0, 0.02) weights, no conv biases (BatchNorm or tanh follows every
layer), BatchNorm with PyTorch's running-average momentum 0.1 (flax ``momentum=0.9``).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genimg_jax.models.layers import DCGAN_INIT, UpConv, conv, dcgan_scale_init, num_doublings


def _batch_norm(train: bool, dtype: Any) -> nn.BatchNorm:
    return nn.BatchNorm(
        use_running_average=not train, momentum=0.9, epsilon=1e-5, scale_init=dcgan_scale_init, dtype=dtype
    )


class Generator(nn.Module):
    """Latent vector -> image in [-1, 1]; features halve at every doubling of the spatial size.

    Unconditional: `labels` exists for the GAN method's common call signature and is ignored.
    """

    resolution: int
    channels: int
    base_features: int = 64
    dtype: Any = None  # computation dtype (e.g. bfloat16); parameters stay float32

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *, train: bool) -> jax.Array:
        n = num_doublings(self.resolution)
        up = dict(use_bias=False, kernel_init=DCGAN_INIT, dtype=self.dtype)
        x = z.reshape(z.shape[0], 1, 1, z.shape[-1])
        x = UpConv(self.base_features * 2 ** (n - 1), 4, 1, 0, **up)(x)
        x = nn.relu(_batch_norm(train, self.dtype)(x))
        for i in range(n - 2, -1, -1):
            x = UpConv(self.base_features * 2**i, **up)(x)
            x = nn.relu(_batch_norm(train, self.dtype)(x))
        x = UpConv(self.channels, **up)(x)
        return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
    """Image -> one real/fake logit per example; features double at every halving of the spatial size.

    Unconditional: `labels` is ignored.
    """

    base_features: int = 64
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None, *, train: bool) -> jax.Array:
        if x.shape[1] != x.shape[2]:
            raise ValueError(f"Discriminator expects square images, got shape {x.shape}")
        for i in range(num_doublings(x.shape[1])):
            x = conv(self.base_features * 2**i, use_bias=False, kernel_init=DCGAN_INIT, dtype=self.dtype)(x)
            if i > 0:  # the reference leaves the first block without BatchNorm
                x = _batch_norm(train, self.dtype)(x)
            x = nn.leaky_relu(x, 0.2)
        x = conv(1, 4, 1, 0, use_bias=False, kernel_init=DCGAN_INIT, dtype=self.dtype)(x)
        return x.reshape(x.shape[0]).astype(jnp.float32)
