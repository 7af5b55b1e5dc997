"""A frozen pretrained CLIP text tower (transformers' FlaxCLIPTextModule) behind the interface of the jointly
trained `models.text_encoder.TextEncoder`, so the cross-attention U-Net attends to it unchanged."""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class PretrainedTextEncoder(nn.Module):
    """Tokens and tokens_mask (B, L) -> (the tower's last hidden states (B, L, D), zeroed at padding; its pooled
    output (B, D), the final-LayerNorm state at the EOS token). CLIP's attention is causal and masked, so padding
    after the caption changes neither."""

    tower: nn.Module  # transformers' FlaxCLIPTextModule; its parameters are {"text_model": ...}

    def __call__(self, tokens: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
        output = self.tower(tokens, mask, positions, deterministic=True)
        hidden = output.last_hidden_state * mask.astype(output.last_hidden_state.dtype)[..., None]
        return hidden, output.pooler_output


@dataclasses.dataclass(frozen=True)
class TextTower:
    """A pretrained text encoder as text diffusion uses it, loaded by the training layer (`training.pretrained`):
    its parameters sit in the train state beside the U-Net's but are never trained."""

    encoder: PretrainedTextEncoder
    params: Any  # the encoder's {"tower": {"text_model": ...}}
    null_tokens: np.ndarray  # (L,) int32: the empty caption under the tower's tokenizer
    null_mask: np.ndarray  # (L,) int32
