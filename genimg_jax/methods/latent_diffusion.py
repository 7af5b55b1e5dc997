"""Latent diffusion (Rombach et al. 2022): diffusion in the latent space of a trained, frozen first-stage VAE.

`model.first_stage_workdir` names the workdir of a finished `vae` run; the training layer loads it
(`training.pretrained`) and hands it to the constructor, so the method does no I/O. Images are encoded to the
encoder's posterior mean times `model.latent_scale` (0: one over the standard deviation of the training split's
latents, measured at load time, so they have unit variance as the diffusion expects); samples are decoded to the
decoder's mean image. The VAE latent is a flat vector, so the denoiser is `models.latent_mlp.LatentMLP`
(`model.network = "mlp"`). The frozen VAE parameters are part of the train state, so a checkpoint of a latent
diffusion run is complete without the first-stage workdir.
"""

import dataclasses
from typing import Any

import jax
import ml_collections

from genimg_jax import data
from genimg_jax.config import require
from genimg_jax.methods.base import Batch
from genimg_jax.methods.diffusion import Diffusion
from genimg_jax.methods.vae import VAE


@dataclasses.dataclass(frozen=True)
class FirstStage:
    """A trained, frozen VAE as latent diffusion uses it; loaded by the training layer (`training.pretrained`)."""

    vae: VAE
    params: Any  # the VAE's {"encoder": ..., "decoder": ...} parameters
    latent_scale: float  # multiplies the encoder mean, so that the training latents have unit variance


def encoder_means(vae: VAE, params: Any, images: jax.Array) -> jax.Array:
    """The VAE encoder's posterior means of uint8 `images`."""
    mean, _ = vae.encoder.apply({"params": params["encoder"]}, data.to_unit_range(images))
    return mean


class LatentDiffusion(Diffusion):
    """`Diffusion` on `latent_scale` times the VAE posterior mean; samples decoded by the VAE decoder."""

    PRETRAINED = ("first_stage",)  # parts the training layer loads from disk and hands to the constructor

    def __init__(self, config: ml_collections.ConfigDict, first_stage: FirstStage):
        model = config.model
        require(model.network == "mlp", "model.network", model.network, "latent diffusion on flat latents needs 'mlp'")
        require(
            config.eval.bpd_timesteps == 0,
            "eval.bpd_timesteps",
            config.eval.bpd_timesteps,
            "must be 0: bits/dim of the pixels is not defined for a model of latents",
        )
        super().__init__(config)
        self.vae, self._first_stage, self.latent_scale = first_stage.vae, first_stage.params, first_stage.latent_scale
        vae_data = self.vae.config.data
        for key in ("resolution", "channels"):
            require(
                vae_data[key] == config.data[key],
                f"data.{key}",
                config.data[key],
                f"must equal the first stage's data.{key}={vae_data[key]}",
            )
        self.data_shape = (self.vae.config.model.latent_dim,)

    def first_stage_params(self) -> Any:
        return self._first_stage

    def encode(self, first_stage: Any, batch: Batch) -> jax.Array:
        return self.latent_scale * encoder_means(self.vae, first_stage, batch["image"])

    def decode(self, first_stage: Any, x: jax.Array) -> jax.Array:
        decoded = self.vae.decoder.apply({"params": first_stage["decoder"]}, x / self.latent_scale)
        return self.vae.mean_image(decoded)
