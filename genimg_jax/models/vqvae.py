"""The convolutional encoder and decoder of a VQ-VAE (van den Oord et al. 2017, sec. 4.2 for images): two stride-2
4x4 convolutions down to a map at 1/4 of the resolution, a 3x3 convolution, residual blocks (ReLU, 3x3, ReLU,
1x1), and a 1x1 projection to the code dimension; the decoder mirrors it with two stride-2 4x4 transposed
convolutions. No normalisation layers: each example's code depends on that example alone.
"""

import flax.linen as nn
import jax

from genimg_jax.models.layers import UPCONV_FAN_IN_INIT, UpConv, conv


class ResidualStack(nn.Module):
    """`blocks` x (x + 1x1(ReLU(3x3(ReLU(x))))), then ReLU, as the paper's image VQ-VAE."""

    features: int
    hidden: int
    blocks: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for _ in range(self.blocks):
            h = conv(self.hidden, 3, 1, 1)(nn.relu(x))
            x = x + conv(self.features, 1, 1, 0)(nn.relu(h))
        return nn.relu(x)


class VQEncoder(nn.Module):
    """Images (N, R, R, C) -> vectors (N, R/4, R/4, code_dim) to be quantized."""

    features: int
    code_dim: int
    residual_blocks: int = 2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(conv(self.features // 2)(x))
        x = nn.relu(conv(self.features)(x))
        x = conv(self.features, 3, 1, 1)(x)
        x = ResidualStack(self.features, self.features // 2, self.residual_blocks)(x)
        return conv(self.code_dim, 1, 1, 0)(x)


class VQDecoder(nn.Module):
    """Quantized vectors (N, R/4, R/4, code_dim) -> images (N, R, R, channels), unbounded (the mean of p(x|z))."""

    features: int
    channels: int
    residual_blocks: int = 2

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        x = conv(self.features, 3, 1, 1)(z)
        x = ResidualStack(self.features, self.features // 2, self.residual_blocks)(x)
        x = nn.relu(UpConv(self.features // 2, kernel_init=UPCONV_FAN_IN_INIT)(x))
        return UpConv(self.channels, kernel_init=UPCONV_FAN_IN_INIT)(x)
