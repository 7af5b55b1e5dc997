"""Latent diffusion (Rombach et al. 2022): diffusion in the latent space of a trained, frozen first-stage autoencoder.

`model.first_stage_workdir` names the workdir of a finished `vae` or `vqvae` run; the training layer loads it
(`training.pretrained`) and hands it to the constructor, so the method does no I/O. Images are encoded to the
first stage's latents (`Autoencoder.encode_latents`) times `model.latent_scale` (0: one over the standard deviation
of the training split's latents, measured at load time, so they have unit variance as the diffusion expects), and
samples are decoded by the first stage's `decode_latents`:
- `vae`: the posterior mean, a flat vector; decoded to the decoder's mean image. The denoiser is
  `models.latent_mlp.LatentMLP` (`model.network = "mlp"`).
- `vqvae`: the encoder's pre-quantisation map (N, R/4, R/4, code_dim), LDM's VQ-regularised first stage; decoding
  quantises it to the nearest codes first, as LDM's `VQModelInterface.decode` does by default. The denoiser is a
  U-Net (`"unet"` or `"ddpmpp"`).
The frozen first-stage parameters are part of the train state, so a checkpoint of a latent diffusion run is
complete without the first-stage workdir.
"""

import dataclasses
from typing import Any, Protocol

import jax
import ml_collections

from genimg_jax.config import require
from genimg_jax.methods.base import Batch
from genimg_jax.methods.diffusion import Diffusion

FLAT_NETWORKS = ("mlp",)
SPATIAL_NETWORKS = ("unet", "ddpmpp")


class Autoencoder(Protocol):
    """What latent diffusion needs of a first-stage method (`VAE`, `VQVAE`)."""

    config: ml_collections.ConfigDict

    def latent_params(self, state: Any) -> Any:
        """The parameters `encode_latents` and `decode_latents` use, from the method's train state."""

    def encode_latents(self, params: Any, images: jax.Array) -> jax.Array:
        """Latents of uint8 NHWC `images`."""

    def decode_latents(self, params: Any, latents: jax.Array) -> jax.Array:
        """Images in [-1, 1] of `latents`."""


@dataclasses.dataclass(frozen=True)
class FirstStage:
    """A trained, frozen autoencoder as latent diffusion uses it; loaded by `training.pretrained`."""

    autoencoder: Autoencoder
    params: Any  # the autoencoder's `latent_params`
    latent_scale: float  # multiplies the latents, so that the training latents have unit variance


class LatentDiffusion(Diffusion):
    """`Diffusion` on `latent_scale` times the first stage's latents; samples decoded by the first stage."""

    PRETRAINED = ("first_stage",)  # parts the training layer loads from disk and hands to the constructor

    def __init__(self, config: ml_collections.ConfigDict, first_stage: FirstStage):
        self.autoencoder = first_stage.autoencoder
        stage_data = self.autoencoder.config.data
        for key in ("resolution", "channels"):
            require(
                stage_data[key] == config.data[key],
                f"data.{key}",
                config.data[key],
                f"must equal the first stage's data.{key}={stage_data[key]}",
            )
        resolution, channels = config.data.resolution, config.data.channels
        images = jax.ShapeDtypeStruct((1, resolution, resolution, channels), "uint8")
        latent_shape = jax.eval_shape(self.autoencoder.encode_latents, first_stage.params, images).shape[1:]
        network = config.model.network
        if len(latent_shape) == 1:
            require(network in FLAT_NETWORKS, "model.network", network, "latent diffusion on flat latents needs 'mlp'")
        else:
            require(
                network in SPATIAL_NETWORKS,
                "model.network",
                network,
                f"latent diffusion on spatial latents {latent_shape} needs one of {SPATIAL_NETWORKS}",
            )
        require(
            config.eval.bpd_timesteps == 0,
            "eval.bpd_timesteps",
            config.eval.bpd_timesteps,
            "must be 0: bits/dim of the pixels is not defined for a model of latents",
        )
        super().__init__(config)
        self._first_stage, self.latent_scale = first_stage.params, first_stage.latent_scale
        self.data_shape = tuple(latent_shape)

    def first_stage_params(self) -> Any:
        return self._first_stage

    def encode(self, first_stage: Any, batch: Batch) -> jax.Array:
        return self.latent_scale * self.autoencoder.encode_latents(first_stage, batch["image"])

    def decode(self, first_stage: Any, x: jax.Array) -> jax.Array:
        return self.autoencoder.decode_latents(first_stage, x / self.latent_scale)
