"""The text-conditioned denoiser: a text encoder and a cross-attention U-Net in one module, so that the caption
travels as the denoiser's labels through every sampler. The encoder's parameters sit beside the U-Net's, under
"encoder" and "unet": a jointly trained encoder's are optimised and EMA'd with them; a frozen pretrained tower's
(models.clip_text) are kept apart by the method and joined to them only when the network is applied."""

import flax.linen as nn
import jax

from genimg_jax.models.clip_text import PretrainedTextEncoder
from genimg_jax.models.text_encoder import TextEncoder
from genimg_jax.models.unet import UNet


class TextUNet(nn.Module):
    """eps(x, t, caption) with the caption as labels {"tokens": (B, L) int32, "tokens_mask": (B, L), 1 = real}."""

    encoder: TextEncoder | PretrainedTextEncoder
    unet: UNet

    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        labels: dict[str, jax.Array],
        train: bool = False,
        augment_labels: jax.Array | None = None,
    ) -> jax.Array:
        context, pooled = self.encoder(labels["tokens"], labels["tokens_mask"])
        mask = labels["tokens_mask"]
        return self.unet(x, t, None, train, augment_labels, context=context, context_mask=mask, pooled=pooled)
