"""Model families, each a set of pure functions over its train state, chosen by `config.method`."""

from typing import Any

import ml_collections

from genimg_jax.config import ConfigError
from genimg_jax.methods.autoregressive import PixelCNN
from genimg_jax.methods.base import Method
from genimg_jax.methods.conditional_diffusion import ConditionalDiffusion
from genimg_jax.methods.cyclegan import CycleGAN
from genimg_jax.methods.diffusion import Diffusion
from genimg_jax.methods.draw import DRAW
from genimg_jax.methods.gan.gan import GAN
from genimg_jax.methods.gan.stylegan2 import StyleGAN2
from genimg_jax.methods.latent_diffusion import LatentDiffusion
from genimg_jax.methods.latent_text_diffusion import LatentTextDiffusion
from genimg_jax.methods.pix2pix import Pix2Pix
from genimg_jax.methods.text_diffusion import TextDiffusion
from genimg_jax.methods.vae import VAE
from genimg_jax.methods.vqvae import VQVAE

METHODS: dict[str, type] = {
    "gan": GAN,
    "stylegan2": StyleGAN2,
    "vae": VAE,
    "draw": DRAW,
    "diffusion": Diffusion,
    "latent_diffusion": LatentDiffusion,
    "vqvae": VQVAE,
    "pixelcnn": PixelCNN,
    "pix2pix": Pix2Pix,
    "cyclegan": CycleGAN,
    "conditional_diffusion": ConditionalDiffusion,
    "text_diffusion": TextDiffusion,
    "latent_text_diffusion": LatentTextDiffusion,
}


def method_class(config: ml_collections.ConfigDict) -> type:
    """The class of `config.method`; a method lists in `PRETRAINED` the parts it needs loaded from disk (a tuple,
    or a function of the config for parts only some configs use: `pretrained_parts`)."""
    if config.method not in METHODS:
        raise ConfigError(f"config.method={config.method!r} is unknown; choose one of {sorted(METHODS)}")
    return METHODS[config.method]


def pretrained_parts(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The names of the parts `config.method` needs loaded from disk for this config."""
    parts = getattr(method_class(config), "PRETRAINED", ())
    return tuple(parts(config) if callable(parts) else parts)


def build_method(config: ml_collections.ConfigDict, pretrained: dict[str, Any] | None = None) -> Method:
    """The method named by `config.method`, validated against its config, given its loaded `pretrained` parts
    (`training.pretrained.load_pretrained`)."""
    cls = method_class(config)
    missing = [name for name in pretrained_parts(config) if name not in (pretrained or {})]
    if missing:
        raise TypeError(f"{cls.__name__} needs its pretrained parts {missing}: see training.pretrained")
    return cls(config, **(pretrained or {}))
