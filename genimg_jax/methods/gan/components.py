"""The orthogonal pieces a GAN config picks (compare_gan's lesson): architecture and penalty.

Losses are picked from `losses.adversarial.LOSSES`, augmentations by `methods.gan.augmentation`. Every
architecture returns a generator called as `G(z, labels, train=...) -> images in [-1, 1]` and a discriminator
`D(images, labels, train=...) -> logits` of shape (batch,) or (batch, heads); unconditional networks ignore `labels`.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import ml_collections

from genimg_jax.config import require, require_choice
from genimg_jax.losses.penalties import CriticFn, gradient_norm_penalty, wgan_gradient_penalty
from genimg_jax.methods.base import COMPUTE_DTYPES
from genimg_jax.models import dcgan, resnet_gan
from genimg_jax.models.multiscale import MultiScaleDiscriminator


def _dcgan(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
    model = config.model
    for key in ("num_classes", "attention_resolution"):
        require(model[key] == 0, f"model.{key}", model[key], "must be 0 for the dcgan architecture")
    for key in ("g_spectral_norm", "d_spectral_norm"):
        require(not model[key], f"model.{key}", model[key], "is not supported by the dcgan architecture")
    require(model.d_pooling == "sum", "model.d_pooling", model.d_pooling, "is a resnet option (dcgan has no pooling)")
    require(model.d_head_bias, "model.d_head_bias", model.d_head_bias, "is a resnet option (dcgan's head has a bias)")
    dtype = COMPUTE_DTYPES[model.dtype]
    generator = dcgan.Generator(config.data.resolution, config.data.channels, model.g_features, dtype=dtype)
    return generator, dcgan.Discriminator(model.d_features, dtype=dtype)


def _resnet(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
    model = config.model
    require_choice(config, "model.d_pooling", tuple(resnet_gan.POOLINGS))
    shared = dict(
        num_classes=model.num_classes,
        attention_resolution=model.attention_resolution,
        dtype=COMPUTE_DTYPES[model.dtype],
    )
    generator = resnet_gan.Generator(
        config.data.resolution,
        config.data.channels,
        features=model.g_features,
        spectral_norm=model.g_spectral_norm,
        **shared,
    )
    discriminator = resnet_gan.Discriminator(
        features=model.d_features,
        spectral_norm=model.d_spectral_norm,
        pooling=model.d_pooling,
        head_bias=model.d_head_bias,
        **shared,
    )
    return generator, discriminator


ARCHITECTURES: dict[str, Callable[[ml_collections.ConfigDict], tuple[nn.Module, nn.Module]]] = {
    "dcgan": _dcgan,
    "resnet": _resnet,
}


def build_networks(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
    """Generator and discriminator of `config.model.architecture`, wrapped for `model.d_scales` > 1."""
    model = config.model
    generator, discriminator = ARCHITECTURES[model.architecture](config)
    if model.d_scales > 1:
        smallest = config.data.resolution >> (model.d_scales - 1)
        require(smallest >= 8, "model.d_scales", model.d_scales, f"leaves {smallest}x{smallest} images, below 8x8")
        discriminator = MultiScaleDiscriminator(discriminator, model.d_scales)
    return generator, discriminator


# Penalties by config name (`config.loss.penalty`), before the weight: lambda * GP for WGAN-GP (Gulrajani et al.
# 2017) and gamma / 2 * ||grad||^2 for R1 on reals and R2 on fakes (Mescheder et al. 2018).
PenaltyFn = Callable[[CriticFn, jax.Array, jax.Array, jax.Array], jax.Array]
PENALTIES: dict[str, PenaltyFn | None] = {
    "none": None,
    "wgan_gp": lambda critic, real, fake, rng: wgan_gradient_penalty(critic, real, fake, rng),
    "r1": lambda critic, real, fake, rng: 0.5 * gradient_norm_penalty(critic, real),
    "r2": lambda critic, real, fake, rng: 0.5 * gradient_norm_penalty(critic, fake),
}
