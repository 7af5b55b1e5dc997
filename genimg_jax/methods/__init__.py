"""Model families, each a set of pure functions over its train state, chosen by `config.method`."""

import ml_collections

from genimg_jax.config import ConfigError
from genimg_jax.methods.base import Method
from genimg_jax.methods.diffusion import Diffusion
from genimg_jax.methods.draw import DRAW
from genimg_jax.methods.gan import GAN
from genimg_jax.methods.latent_diffusion import LatentDiffusion
from genimg_jax.methods.stylegan2 import StyleGAN2
from genimg_jax.methods.vae import VAE

METHODS: dict[str, type] = {
    "gan": GAN,
    "stylegan2": StyleGAN2,
    "vae": VAE,
    "draw": DRAW,
    "diffusion": Diffusion,
    "latent_diffusion": LatentDiffusion,
}


def build_method(config: ml_collections.ConfigDict) -> Method:
    """The method named by `config.method`, validated against its config."""
    if config.method not in METHODS:
        raise ConfigError(f"config.method={config.method!r} is unknown; choose one of {sorted(METHODS)}")
    return METHODS[config.method](config)
