"""Conditional diffusion for image-to-image tasks: SR3 (Saharia et al. 2021) and Palette (Saharia et al. 2022).

The network sees the noisy target with the conditioning concatenated along channels: the batch's `source` in
[-1, 1], bicubically upsampled to the target's size when smaller (SR3), and with `model.use_mask` the `mask`
field (1 = known pixel) as one more channel (Palette's inpainting). Only x_t is scaled by the parameterization
(DDPM's 1/sqrt(1 + sigma^2), EDM's c_in); the source enters as it is. The source keeps the channels the
degradation gives it (a gray source of a colour target is one channel, not repeated). The U-Net outputs
`data.channels`.

Everything else is `Diffusion`'s: losses (ddpm_eps or edm), samplers, EMA. The conditioning travels through the
samplers as the denoiser's `labels` (`network_input` concatenates it), so every sampler works unchanged.
Inpainting samples take the known pixels from the source where mask = 1 once, after the last step. Deviations
from Palette, named: Palette's loss is over the whole image here (its reference implementation restricts it to
the hole), and the known region is composed in at the end only, not at every sampling step.

`model.residual` (off in SR3's and Palette's setups; SRDiff's residual prediction, Li et al. 2022) diffuses the
residual target - source instead of the target, the source at the target's size (bicubic-upsampled for SR, the
baseline the restoration metrics score; gray repeated to the target's channels), and adds the source back to the
sample, clipped to [-1, 1]. `model.residual_scale` multiplies the diffused residual (and divides the sample): a
restoration's residual is small (std 0.14 for the 4x face SR against unit noise), so unscaled it is drowned at
most noise levels; scaled to about unit variance it sees the schedule the image would (LDM's `scale_by_std` for
latents). With a scale above 1, turn `sample.clip_denoised` off, as its [-1, 1] bounds the scaled residual.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from genimg_jax import data
from genimg_jax.config import require
from genimg_jax.methods.base import Batch, add_residual_base, source_input
from genimg_jax.methods.diffusion import Diffusion, DiffusionState, default_config

PAIRED_SOURCES = ("folder_pairs", "ct", "tfds_pairs")  # data sources whose examples carry a `source` field


def conditional_diffusion_config(parameterization: str = "ddpm_eps") -> ml_collections.ConfigDict:
    """`Diffusion`'s keys plus `model.use_mask`, for `method = "conditional_diffusion"`."""
    config = default_config(parameterization)
    config.method = "conditional_diffusion"
    config.model.use_mask = False  # also give the network the `mask` field (inpainting)
    config.model.residual = False  # diffuse target - source and add the source back (SRDiff), not SR3/Palette
    config.model.residual_scale = 1.0  # with residual: diffuse residual_scale * (target - source)
    return config


def _validate(config: ml_collections.ConfigDict) -> None:
    data_config, model = config.data, config.model
    paired = data_config.source.split(":")[0] in PAIRED_SOURCES
    require(
        bool(data_config.degradation) or paired,
        "data.degradation",
        data_config.degradation,
        f"conditional diffusion needs a source image: set a degradation or a paired data.source {PAIRED_SOURCES}",
    )
    require(model.network == "unet", "model.network", model.network, "conditional diffusion uses the 'unet'")
    require(
        not config.sample.repaint, "sample.repaint", True, "is for unconditional models; the source conditions here"
    )
    require(model.num_classes == 0, "model.num_classes", model.num_classes, "must be 0: the source conditions")
    require(
        not model.use_mask or data_config.degradation.startswith("mask:"),
        "model.use_mask",
        model.use_mask,
        f"needs a mask degradation (data.degradation='mask:...'), not {data_config.degradation!r}",
    )
    require(model.residual_scale > 0, "model.residual_scale", model.residual_scale, "must be > 0")
    require(
        not model.residual or not config.eval.bpd_timesteps,
        "eval.bpd_timesteps",
        config.eval.bpd_timesteps,
        "must be 0 with model.residual: the bound counts uint8 levels of the target, not of a residual",
    )


class ConditionalDiffusion(Diffusion):
    """Diffusion of the target image given the batch's source (and mask); see the module docstring."""

    def __init__(self, config: ml_collections.ConfigDict):
        _validate(config)
        super().__init__(config)
        self.network = self.network.clone(out_channels=config.data.channels)

    def conditioning_fields(self) -> tuple[str, ...]:
        return ("source", "mask") if self.config.model.use_mask else ("source",)

    def _labels(self, batch: Batch) -> jax.Array:
        return source_input(batch, self.config.data.resolution, self.config.model.use_mask)

    def _source(self, fields: Batch) -> jax.Array:
        """The source at the target's size in [-1, 1], repeated to the target's channels: `model.residual`'s base."""
        source = source_input(fields, self.config.data.resolution, use_mask=False)
        return jnp.broadcast_to(source, (*source.shape[:-1], self.config.data.channels))

    def encode(self, first_stage: Any, batch: Batch) -> jax.Array:
        """The diffused data: the target, or with `model.residual` residual_scale * (target - source (`_source`))."""
        target = super().encode(first_stage, batch)
        model = self.config.model
        return model.residual_scale * (target - self._source(batch)) if model.residual else target

    def decode(self, first_stage: Any, x: jax.Array) -> jax.Array:
        """`encode`'s inverse, given the source only in `sample_latents`: a residual is returned unscaled."""
        model = self.config.model
        return x / model.residual_scale if model.residual else super().decode(first_stage, x)

    def network_input(self, x: jax.Array, labels: jax.Array) -> tuple[jax.Array, None]:
        return jnp.concatenate([x, labels.astype(x.dtype)], axis=-1), None

    def sampling_labels(self, conditioning: Batch | None, num: int) -> jax.Array:
        require(conditioning is not None, "conditioning", conditioning, "conditional diffusion samples from a source")
        return self._labels(conditioning)

    def sample_latents(
        self,
        state: DiffusionState,
        latents: jax.Array,
        rng: jax.Array,
        conditioning: Batch | None = None,
        sampler: str = "",
    ) -> jax.Array:
        """`Diffusion.sample_latents` given the source (added back to a residual); with the mask, the known pixels
        are the source's."""
        images = super().sample_latents(state, latents, rng, conditioning, sampler)
        if self.config.model.residual:
            images = add_residual_base(images, self._source(conditioning))
        if not self.config.model.use_mask:
            return images
        return jnp.where(conditioning["mask"] == 1, data.to_unit_range(conditioning["source"]), images)
