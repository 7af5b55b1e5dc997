"""pix2pix's networks (Isola et al. 2017): the U-Net generator with skips and dropout, and the PatchGAN
discriminator, layer for layer as in junyanz/pytorch-CycleGAN-and-pix2pix (`UnetGenerator`,
`NLayerDiscriminator`): 4x4 convolutions, stride 2, padding 1, N(0, 0.02) weights, LeakyReLU 0.2 going down and
ReLU going up, no bias before a batch norm.

Normalisation (`NORMS`): `batch` (running statistics at evaluation), `instance` (the reference's instance norm,
no affine parameters, used by CycleGAN) and `instance_affine`: batch norm over a batch of one image, the paper's
setting in training *and* at test time (it normalises with the statistics of the test batch), is exactly instance
norm with a learned scale and shift, whatever batch the evaluation uses.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genimg_jax.models.layers import DCGAN_INIT, UpConv, conv, dcgan_scale_init

NORMS = ("batch", "instance", "instance_affine")


def _normalize(kind: str, train: bool, dtype: Any) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm(
            use_running_average=not train, momentum=0.9, epsilon=1e-5, scale_init=dcgan_scale_init, dtype=dtype
        )
    return InstanceNorm(affine=kind == "instance_affine", dtype=dtype)


class InstanceNorm(nn.Module):
    """Each image's channels normalised over their pixels (Ulyanov et al. 2016), optionally with a learned scale
    (from N(1, 0.02), as the reference's batch norm) and shift. Written out because flax's `nn.InstanceNorm`
    took 35 s to initialise a 5-level U-Net op by op here (1.7 s with batch norm) and 20 s to compile its init."""

    affine: bool = False
    epsilon: float = 1e-5
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=(1, 2), keepdims=True)
        variance = jnp.mean(jnp.square(x32 - mean), axis=(1, 2), keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(variance + self.epsilon)
        if self.affine:
            y = y * self.param("scale", dcgan_scale_init, (x.shape[-1],))
            y = y + self.param("bias", nn.initializers.zeros_init(), (x.shape[-1],))
        return y.astype(self.dtype or x.dtype)


def unet_features(base: int, num_downs: int) -> list[int]:
    """Features after each of the `num_downs` down-sampling convolutions: base x 1, 2, 4, then 8 x base for the rest."""
    return [base * min(2**level, 8) for level in range(num_downs)]


def num_dropout_blocks(num_downs: int) -> int:
    """The reference puts dropout in the up path of the 8 x base blocks between the fifth level and the innermost
    one: 3 of them in `unet_256` (8 levels), none in a U-Net of 5 levels or fewer."""
    return max(0, num_downs - 5)


class UNetGenerator(nn.Module):
    """Source image(s) -> image in [-1, 1] of the same size; `num_downs` halvings take 2**num_downs to 1x1
    (`unet_256` = 8). Dropout (rate `dropout`) needs a `dropout` rng whenever `deterministic` is False."""

    out_channels: int
    num_downs: int
    features: int = 64
    norm: str = "batch"
    dropout: float = 0.5
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool, deterministic: bool) -> jax.Array:
        side = 2**self.num_downs
        if x.shape[1] != side or x.shape[2] != side:
            raise ValueError(f"a U-Net with {self.num_downs} halvings takes {side}px images, got {x.shape}")
        features = unet_features(self.features, self.num_downs)
        use_bias = self.norm != "batch"
        down = dict(kernel_init=DCGAN_INIT, dtype=self.dtype)

        # Going down: conv, then norm except at the outermost and innermost levels; LeakyReLU before each conv.
        skips = []
        for level, width in enumerate(features):
            if level:
                x = nn.leaky_relu(x, 0.2)
            x = conv(width, use_bias=use_bias, **down)(x)
            if 0 < level < self.num_downs - 1:
                x = _normalize(self.norm, train, self.dtype)(x)
            skips.append(x)

        # Going up: ReLU, transposed conv, norm (dropout in the inner 8 x base blocks), concatenated with the skip.
        dropout_levels = range(self.num_downs - 1 - num_dropout_blocks(self.num_downs), self.num_downs - 1)
        x = skips.pop()
        for level in range(self.num_downs - 1, 0, -1):
            x = UpConv(features[level - 1], use_bias=use_bias, **down)(nn.relu(x))
            x = _normalize(self.norm, train, self.dtype)(x)
            if level in dropout_levels:
                x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
            x = jnp.concatenate([skips.pop(), x], axis=-1)
        x = UpConv(self.out_channels, **down)(nn.relu(x))
        return jnp.tanh(x.astype(jnp.float32))


class PatchDiscriminator(nn.Module):
    """(source, image) pair, concatenated on channels -> a map of logits, one per overlapping patch, and the
    activations of every block (for pix2pixHD's feature matching). `num_layers`=3 is the 70x70 PatchGAN."""

    features: int = 64
    num_layers: int = 3
    norm: str = "batch"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, list[jax.Array]]:
        use_bias = self.norm != "batch"
        kwargs = dict(kernel_init=DCGAN_INIT, dtype=self.dtype)
        activations = []
        x = nn.leaky_relu(conv(self.features, **kwargs)(x), 0.2)
        activations.append(x)
        for layer in range(1, self.num_layers + 1):
            strides = 2 if layer < self.num_layers else 1
            x = conv(self.features * min(2**layer, 8), strides=strides, use_bias=use_bias, **kwargs)(x)
            x = nn.leaky_relu(_normalize(self.norm, train, self.dtype)(x), 0.2)
            activations.append(x)
        logits = conv(1, strides=1, **kwargs)(x)
        return logits[..., 0].astype(jnp.float32), activations


def patch_receptive_field(num_layers: int) -> int:
    """The side of the input patch one logit of `PatchDiscriminator` sees: 4x4 convolutions, `num_layers` of
    stride 2 then two of stride 1, walked back from one output pixel (70 for 3 layers)."""
    side = 1
    for strides in [1, 1] + [2] * num_layers:
        side = (side - 1) * strides + 4
    return side


class MultiScalePatchDiscriminator(nn.Module):
    """pix2pixHD's discriminator: `num_scales` PatchGANs with their own weights on the input, then on copies
    down-sampled by 3x3 average pooling of stride 2 (padding not counted, as there); one scale is pix2pix's.
    Returns the logit map and the block activations of each scale, finest first."""

    features: int = 64
    num_layers: int = 3
    norm: str = "batch"
    num_scales: int = 1
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> tuple[list[jax.Array], list[list[jax.Array]]]:
        logits, activations = [], []
        for scale in range(self.num_scales):
            if scale:
                x = nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), count_include_pad=False)
            patch_logits, patch_activations = PatchDiscriminator(
                self.features, self.num_layers, self.norm, self.dtype, name=f"scale_{scale}"
            )(x, train=train)
            logits.append(patch_logits)
            activations.append(patch_activations)
        return logits, activations
