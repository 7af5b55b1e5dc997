"""Text-to-image diffusion: a cross-attention U-Net conditioned on a caption (latent diffusion's conditioning,
Rombach et al. 2022, in pixel space) with classifier-free guidance (Ho & Salimans 2021).

The caption is the batch's `tokens` (B, L) int32 with `tokens_mask` (1 = real token, 0 = padding; every caption
starts with BOS). A small transformer (`models.text_encoder`) trained jointly with the U-Net turns it into
per-token features, which the U-Net attends to at its attention resolutions, and a pooled sentence feature added
to its time embedding (`models.unet`). The encoder's parameters are part of the denoiser's, so Adam and the EMA
treat them alike. The caption travels through the samplers as the denoiser's labels, so every sampler works.

Classifier-free guidance: with probability `model.text.drop_rate` a training caption is replaced by the null
caption, BOS alone (mask 1, 0, 0, ...), so the network learns the unconditional model there; sampling with
`sample.guidance_scale` w gives (1 + w) D(x | caption) - w D(x | null caption) (`diffusion.guidance`; w = 0 is
the conditional model), both branches in one batched network call. Everything else is `Diffusion`'s.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from genimg_jax.config import require
from genimg_jax.data.text.vocabulary import BOS
from genimg_jax.methods.base import Batch
from genimg_jax.methods.diffusion import Diffusion, default_config
from genimg_jax.models.text_encoder import TextEncoder
from genimg_jax.models.text_unet import TextUNet

CAPTION_FIELDS = ("tokens", "tokens_mask")


def text_diffusion_config(parameterization: str = "ddpm_eps") -> ml_collections.ConfigDict:
    """`Diffusion`'s keys plus the text encoder's (`model.text`); captions are `data.caption_length` tokens."""
    config = default_config(parameterization)
    config.method = "text_diffusion"
    config.model.text = ml_collections.ConfigDict(
        {
            # ids of the caption vocabulary, the 4 special tokens included: len(data.vocabulary_for(config.data));
            # an id beyond it would be clamped to the last embedding silently
            "vocab_size": 64,
            "features": 64,  # D, the width of the token features the U-Net attends to
            "num_layers": 2,
            "num_heads": 4,
            "drop_rate": 0.1,  # probability of training on the null caption (classifier-free guidance)
        }
    )
    return config


def _validate(config: ml_collections.ConfigDict) -> None:
    model, text = config.model, config.model.text
    require(model.network == "unet", "model.network", model.network, "text diffusion uses the 'unet'")
    require(model.num_classes == 0, "model.num_classes", model.num_classes, "must be 0: the caption conditions")
    require(text.vocab_size > 4, "model.text.vocab_size", text.vocab_size, "must exceed the 4 special tokens")
    require(not config.sample.repaint, "sample.repaint", True, "is for unconditional models; captions condition here")
    require(text.features > 0, "model.text.features", text.features, "must be positive")
    require(text.num_layers >= 0, "model.text.num_layers", text.num_layers, "must be >= 0")
    require(
        text.num_heads > 0 and text.features % text.num_heads == 0,
        "model.text.num_heads",
        text.num_heads,
        f"must divide model.text.features={text.features}",
    )
    require(0.0 <= text.drop_rate < 1.0, "model.text.drop_rate", text.drop_rate, "must be in [0, 1)")


def null_caption(captions: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """The caption of the unconditional model, shaped like `captions`: BOS and padding, mask 1, 0, 0, ..."""
    first = jnp.arange(captions["tokens"].shape[1]) == 0
    tokens = jnp.broadcast_to(jnp.where(first, BOS, 0), captions["tokens"].shape)
    return {
        "tokens": tokens.astype(captions["tokens"].dtype),
        "tokens_mask": (tokens != 0).astype(captions["tokens_mask"].dtype),
    }


class TextDiffusion(Diffusion):
    """Diffusion of the image given the batch's caption; see the module docstring."""

    def __init__(self, config: ml_collections.ConfigDict):
        _validate(config)
        super().__init__(config)
        text = config.model.text
        encoder = TextEncoder(
            vocab_size=text.vocab_size,
            max_length=config.data.caption_length,
            features=text.features,
            num_layers=text.num_layers,
            num_heads=text.num_heads,
        )
        self.network = TextUNet(encoder=encoder, unet=self.network)

    @staticmethod
    def guidable(config: ml_collections.ConfigDict) -> bool:
        return True  # the null caption is the unconditional branch

    def conditioning_fields(self) -> tuple[str, ...]:
        return CAPTION_FIELDS

    def _labels(self, batch: Batch) -> dict[str, jax.Array]:
        return {name: batch[name] for name in CAPTION_FIELDS}

    def null_labels(self, labels: dict[str, jax.Array]) -> dict[str, jax.Array]:
        return null_caption(labels)

    def drop_labels(self, rng: jax.Array, labels: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Each caption replaced by the null caption with probability `model.text.drop_rate`."""
        dropped = jax.random.uniform(rng, (labels["tokens"].shape[0], 1)) < self.config.model.text.drop_rate
        null = null_caption(labels)
        return {name: jnp.where(dropped, null[name], labels[name]) for name in CAPTION_FIELDS}

    def sampling_labels(self, conditioning: Batch | None, num: int) -> Any:
        require(conditioning is not None, "conditioning", conditioning, "text diffusion samples from captions")
        return self._labels(conditioning)
