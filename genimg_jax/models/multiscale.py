"""Multi-scale discriminator (Wang et al. 2018, pix2pixHD; Durugkar et al. 2017): copies of one discriminator
architecture, each with its own weights, judge the image at full, half, quarter ... resolution.

The copies are made by 2x2 average pooling (`gan_layers.downsample`, cheap to differentiate twice), not
pix2pixHD's 3x3 stride-2 average without the padding counted; the pix2pix family's own discriminator
(`models.pix2pix.MultiScalePatchDiscriminator`) uses pix2pixHD's. No paper setup uses this one."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from genimg_jax.models.gan_layers import downsample


class MultiScaleDiscriminator(nn.Module):
    """Logits of shape (batch, num_scales); adversarial losses sum their per-scale means."""

    discriminator: nn.Module  # a template: cloned once per scale, never called itself
    num_scales: int = 2

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None, *, train: bool) -> jax.Array:
        logits = []
        for scale in range(self.num_scales):
            logits.append(self.discriminator.clone(parent=self, name=f"scale_{scale}")(x, labels, train=train))
            x = downsample(x)
        return jnp.stack(logits, axis=-1)
