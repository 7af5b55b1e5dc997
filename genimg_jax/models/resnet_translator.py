"""CycleGAN's ResNet generator (Johnson et al. 2016's transformation network, as junyanz/pytorch-CycleGAN-and-pix2pix
`ResnetGenerator` builds it): c7s1-F, d2F, d4F, `num_blocks` residual blocks of 4F, u2F, uF, c7s1-C, tanh.

Every 7x7 and residual 3x3 convolution pads by reflection, which keeps the image borders free of the dark frame
zero padding teaches; the two stride-2 convolutions pad with zeros. Instance norm after every convolution but the
last; convolutions keep their bias (instance norm, unlike batch norm, is followed by no learned shift by default).
Weights are N(0, 0.02) and biases 0, the reference's `init_type=normal`. resnet_9blocks on RGB has 11,378,179
parameters, the count the reference prints.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genimg_jax.models.layers import DCGAN_INIT
from genimg_jax.models.pix2pix import InstanceNorm

STATELESS_NORMS = ("instance", "instance_affine")


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
    """NHWC reflection padding of the spatial axes (PyTorch ReflectionPad2d)."""
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


class ResnetGenerator(nn.Module):
    """Image -> image in [-1, 1] of the same size (a multiple of 4), `out_channels` channels."""

    out_channels: int
    num_blocks: int = 9
    features: int = 64
    norm: str = "instance"
    dtype: Any = None

    def _conv(self, features: int, kernel: int, strides: int = 1, padding: int = 0) -> nn.Conv:
        pads = ((padding, padding), (padding, padding))
        return nn.Conv(
            features,
            (kernel, kernel),
            strides=(strides, strides),
            padding=pads,
            kernel_init=DCGAN_INIT,
            dtype=self.dtype,
        )

    def _norm(self) -> nn.Module:
        return InstanceNorm(affine=self.norm == "instance_affine", dtype=self.dtype)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.shape[1] % 4 or x.shape[2] % 4:
            raise ValueError(f"the ResNet generator halves the image twice: its sides must divide by 4, got {x.shape}")
        width = self.features
        x = nn.relu(self._norm()(self._conv(width, 7)(reflect_pad(x, 3))))
        for scale in (2, 4):
            x = nn.relu(self._norm()(self._conv(width * scale, 3, strides=2, padding=1)(x)))
        for _ in range(self.num_blocks):
            y = nn.relu(self._norm()(self._conv(width * 4, 3)(reflect_pad(x, 1))))
            x = x + self._norm()(self._conv(width * 4, 3)(reflect_pad(y, 1)))
        for scale in (2, 1):
            # PyTorch ConvTranspose2d(k3, s2, p1, output_padding=1): exactly doubles H and W.
            up = nn.ConvTranspose(
                width * scale,
                (3, 3),
                strides=(2, 2),
                padding=((1, 2), (1, 2)),
                transpose_kernel=True,
                kernel_init=DCGAN_INIT,
                dtype=self.dtype,
            )
            x = nn.relu(self._norm()(up(x)))
        x = self._conv(self.out_channels, 7)(reflect_pad(x, 3))
        return jnp.tanh(x.astype(jnp.float32))
