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

Pretrained text tower: `model.text.pretrained = DIR`, a local Hugging Face CLIP directory, replaces the trained
encoder by CLIP's text transformer (`models.clip_text`), frozen: the training layer loads it
(`training.pretrained`), its parameters live in the state's `first_stage` (in every checkpoint, never in the
optimizer or the EMA) and are joined to the U-Net's only when the network is applied, so no gradient reaches them.
The U-Net attends to its last hidden states and adds its pooled (EOS) output to the time embedding. Captions must
then be tokenized by the tower's own tokenizer: `data.tokenizer` must name the same directory, and the null
caption is the empty string's encoding under it (BOS, EOS, padding).
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genimg_jax.config import require
from genimg_jax.data.text.vocabulary import BOS
from genimg_jax.methods.base import Batch
from genimg_jax.methods.diffusion import Diffusion, DiffusionState, default_config
from genimg_jax.models.clip_text import TextTower
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
            # a local Hugging Face CLIP directory whose frozen text tower replaces the trained encoder (the keys
            # above but drop_rate then unused; data.tokenizer must be the same directory); '' = train an encoder
            "pretrained": "",
        }
    )
    return config


def pretrained_parts(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The parts the training layer loads: the text tower when `model.text.pretrained` names one."""
    return ("text_tower",) if config.model.text.get("pretrained") else ()


def _validate(config: ml_collections.ConfigDict) -> None:
    model, text = config.model, config.model.text
    require(model.network == "unet", "model.network", model.network, "text diffusion uses the 'unet'")
    require(model.num_classes == 0, "model.num_classes", model.num_classes, "must be 0: the caption conditions")
    require(not config.sample.repaint, "sample.repaint", True, "is for unconditional models; captions condition here")
    require(0.0 <= text.drop_rate < 1.0, "model.text.drop_rate", text.drop_rate, "must be in [0, 1)")
    pretrained = text.get("pretrained", "")
    require(
        config.data.get("tokenizer", "") == pretrained,
        "data.tokenizer",
        config.data.get("tokenizer", ""),
        f"must be model.text.pretrained={pretrained!r}: captions are tokenized by the text tower's own tokenizer",
    )
    if pretrained:
        return
    require(text.vocab_size > 4, "model.text.vocab_size", text.vocab_size, "must exceed the 4 special tokens")
    require(text.features > 0, "model.text.features", text.features, "must be positive")
    require(text.num_layers >= 0, "model.text.num_layers", text.num_layers, "must be >= 0")
    require(
        text.num_heads > 0 and text.features % text.num_heads == 0,
        "model.text.num_heads",
        text.num_heads,
        f"must divide model.text.features={text.features}",
    )


def null_caption(
    captions: dict[str, jax.Array], null: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, jax.Array]:
    """The caption of the unconditional model, shaped like `captions`: `null` (tokens, mask) of one caption, or by
    default the word vocabulary's BOS and padding, mask 1, 0, 0, ..."""
    if null is None:
        first = np.arange(captions["tokens"].shape[1]) == 0
        null = (np.where(first, BOS, 0), first.astype(np.int32))
    shape = captions["tokens"].shape
    return {
        "tokens": jnp.broadcast_to(jnp.asarray(null[0], captions["tokens"].dtype), shape),
        "tokens_mask": jnp.broadcast_to(jnp.asarray(null[1], captions["tokens_mask"].dtype), shape),
    }


def _trained_encoder(config: ml_collections.ConfigDict) -> TextEncoder:
    text = config.model.text
    return TextEncoder(
        vocab_size=text.vocab_size,
        max_length=config.data.caption_length,
        features=text.features,
        num_layers=text.num_layers,
        num_heads=text.num_heads,
    )


class TextDiffusion(Diffusion):
    """Diffusion of the image given the batch's caption; see the module docstring."""

    PRETRAINED = staticmethod(pretrained_parts)

    def __init__(self, config: ml_collections.ConfigDict, text_tower: TextTower | None = None):
        _validate(config)
        require(
            (text_tower is not None) == bool(config.model.text.get("pretrained")),
            "model.text.pretrained",
            config.model.text.get("pretrained"),
            "and the loaded text tower must go together: build the method with training.pretrained's parts",
        )
        super().__init__(config)
        self.text_tower = text_tower
        self._null = None if text_tower is None else (text_tower.null_tokens, text_tower.null_mask)
        self.network = TextUNet(
            encoder=text_tower.encoder if text_tower else _trained_encoder(config), unet=self.network
        )

    def first_stage_params(self) -> Any:
        return {} if self.text_tower is None else {"text_tower": self.text_tower.params}

    def applied_params(self, params: Any, first_stage: Any) -> Any:
        return {**params, "encoder": first_stage["text_tower"]} if self.text_tower else params

    def init_state(self, rng: jax.Array, example_batch: Batch) -> DiffusionState:
        """`Diffusion`'s state; with a pretrained tower, its parameters only in `first_stage`, the U-Net's trained."""
        state = super().init_state(rng, example_batch)
        if self.text_tower is None:
            return state
        params = {"unet": state.params["unet"]}
        return state.replace(params=params, ema_params=params, opt_state=self.optimizer.init(params))

    @staticmethod
    def guidable(config: ml_collections.ConfigDict) -> bool:
        return True  # the null caption is the unconditional branch

    def conditioning_fields(self) -> tuple[str, ...]:
        return CAPTION_FIELDS

    def _labels(self, batch: Batch) -> dict[str, jax.Array]:
        return {name: batch[name] for name in CAPTION_FIELDS}

    def null_labels(self, labels: dict[str, jax.Array]) -> dict[str, jax.Array]:
        return null_caption(labels, self._null)

    def drop_labels(self, rng: jax.Array, labels: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Each caption replaced by the null caption with probability `model.text.drop_rate`."""
        dropped = jax.random.uniform(rng, (labels["tokens"].shape[0], 1)) < self.config.model.text.drop_rate
        null = null_caption(labels, self._null)
        return {name: jnp.where(dropped, null[name], labels[name]) for name in CAPTION_FIELDS}

    def sampling_labels(self, conditioning: Batch | None, num: int) -> Any:
        require(conditioning is not None, "conditioning", conditioning, "text diffusion samples from captions")
        return self._labels(conditioning)
