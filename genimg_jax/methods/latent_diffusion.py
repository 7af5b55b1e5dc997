"""Latent diffusion (Rombach et al. 2022): diffusion in the latent space of a trained, frozen first-stage VAE.

`model.first_stage_workdir` names the workdir of a finished `vae` run (its config.json and checkpoints). Images
are encoded to the encoder's posterior mean times `model.latent_scale` (0: one over the standard deviation of the
training split's latents, measured once, so they have unit variance as the diffusion expects); samples are decoded
to the decoder's mean image. The VAE latent is a flat vector, so the denoiser is `models.unet.LatentMLP`
(`model.network = "mlp"`). The frozen VAE parameters are part of the train state, so a checkpoint of a latent
diffusion run is complete without the first-stage workdir.
"""

import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genimg_jax import data
from genimg_jax.checkpoint import Checkpointer
from genimg_jax.config import ConfigError, require
from genimg_jax.methods.base import Batch
from genimg_jax.methods.diffusion import Diffusion
from genimg_jax.methods.vae import VAE

WORKDIR_KEY = "model.first_stage_workdir"
LATENT_SCALE_EXAMPLES = 1024  # training images whose latents set the scale when model.latent_scale = 0


def _first_stage_error(workdir: str, problem: str) -> ConfigError:
    return ConfigError(f"config.{WORKDIR_KEY}={workdir!r} is invalid: {problem}")


def load_first_stage(workdir: str) -> tuple[VAE, Any]:
    """The VAE method of a finished run in `workdir` and its parameters at the latest checkpoint."""
    if not workdir:
        raise _first_stage_error(workdir, "name the workdir of a trained VAE run (e.g. one of configs/vae_digits.py)")
    path = pathlib.Path(workdir)
    config_path, checkpoint_dir = path / "config.json", path / "checkpoints"
    if not config_path.is_file():
        raise _first_stage_error(workdir, f"{config_path} does not exist; is it the workdir of a training run?")
    try:
        first_config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    except json.JSONDecodeError as error:
        raise _first_stage_error(workdir, f"{config_path} is not valid JSON ({error})") from None
    if first_config.get("method") != "vae":
        raise _first_stage_error(workdir, f"it is a {first_config.get('method')!r} run, not a 'vae' run")
    if not checkpoint_dir.is_dir():
        raise _first_stage_error(workdir, f"{checkpoint_dir} does not exist; train the VAE first")
    method = VAE(first_config)
    checkpointer = Checkpointer(checkpoint_dir, keep=first_config.train.keep_checkpoints, every=0)
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise _first_stage_error(workdir, f"{checkpoint_dir} holds no checkpoint; train the VAE first")
        resolution, channels = first_config.data.resolution, first_config.data.channels
        example = {
            "image": jnp.zeros((1, resolution, resolution, channels), jnp.uint8),
            "label": jnp.zeros((1,), jnp.int32),
        }
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        abstract_state = jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
            jax.eval_shape(method.init_state, jax.random.PRNGKey(0), example),
        )
        state, _ = checkpointer.restore(step, abstract_state)
    finally:
        checkpointer.close()
    return method, state.params


class LatentDiffusion(Diffusion):
    """`Diffusion` on `model.latent_scale` times the VAE posterior mean; samples decoded by the VAE decoder."""

    def __init__(self, config: ml_collections.ConfigDict):
        model = config.model
        require(model.network == "mlp", "model.network", model.network, "latent diffusion on flat latents needs 'mlp'")
        require(model.latent_scale >= 0, "model.latent_scale", model.latent_scale, "must be >= 0 (0 = measure)")
        super().__init__(config)
        self.vae, self._first_stage = load_first_stage(model.first_stage_workdir)
        vae_data = self.vae.config.data
        for key in ("resolution", "channels"):
            require(
                vae_data[key] == config.data[key],
                f"data.{key}",
                config.data[key],
                f"must equal the first stage's data.{key}={vae_data[key]}",
            )
        self.data_shape = (self.vae.config.model.latent_dim,)
        self.latent_scale = model.latent_scale or self._measured_latent_scale(config)

    def _measured_latent_scale(self, config: ml_collections.ConfigDict) -> float:
        """1 / std of the encoder means over the first training images (the scale factor of Rombach et al.)."""
        source = data.source_from_config(config.data, config.data.train_split)
        count = min(len(source), LATENT_SCALE_EXAMPLES)
        images = np.stack([source[index]["image"] for index in range(count)])
        latents = self._encode_mean(self._first_stage, jnp.asarray(images))
        return float(1.0 / jnp.std(latents))

    def _encode_mean(self, first_stage: Any, images: jax.Array) -> jax.Array:
        mean, _ = self.vae.encoder.apply({"params": first_stage["encoder"]}, data.to_unit_range(images))
        return mean

    def first_stage_params(self) -> Any:
        return self._first_stage

    def encode(self, first_stage: Any, batch: Batch) -> jax.Array:
        return self.latent_scale * self._encode_mean(first_stage, batch["image"])

    def decode(self, first_stage: Any, x: jax.Array) -> jax.Array:
        decoded = self.vae.decoder.apply({"params": first_stage["decoder"]}, x / self.latent_scale)
        return self.vae.mean_image(decoded)
