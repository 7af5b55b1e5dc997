"""CLIP score of text-to-image samples (Hessel et al. 2021, CLIPScore): how well a pretrained CLIP model matches
each image with the caption it was generated for.

Per pair, 100 * max(cos(image embedding, caption embedding), 0), averaged over the samples: torchmetrics'
`CLIPScore` definition (Hessel et al. weight the cosine by 2.5 instead of 100; the same ranking). Embeddings are
CLIP's projected image and text features (`get_image_features`, `get_text_features`). Images get CLIP's own
preprocessing: grey repeated to 3 channels, resized to the vision tower's image size with bicubic interpolation,
antialiased as PIL's (metrics/net_input.py; square samples: the same as its shortest-side resize and centre crop),
values in [0, 1] normalised by its processor's mean and std. Captions are tokenized by the model's tokenizer at its
full context length.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from genimg_jax.metrics.chunked import apply_in_chunks
from genimg_jax.metrics.net_input import fit_to_net

SCALE = 100.0  # torchmetrics; Hessel et al. use 2.5
_CHUNK = 64  # images or captions embedded per call


def clip_score_of_features(image_features: np.ndarray, text_features: np.ndarray) -> float:
    """Mean over pairs i of SCALE * max(cos(image_features[i], text_features[i]), 0)."""
    images, texts = np.asarray(image_features, np.float64), np.asarray(text_features, np.float64)
    cosine = np.sum(images * texts, axis=-1) / np.maximum(
        np.linalg.norm(images, axis=-1) * np.linalg.norm(texts, axis=-1), 1e-12
    )
    return float(np.mean(SCALE * np.maximum(cosine, 0.0)))


class ClipScore:
    """The CLIP score with one pretrained CLIP model (see the module docstring)."""

    def __init__(self, model: Any, params: dict, processor: Any, tokenizer: Any):
        self.params, self.tokenizer = params, tokenizer
        size = model.config.vision_config.image_size
        mean, std = processor.image_mean, processor.image_std
        self.context_length = model.config.text_config.max_position_embeddings

        @jax.jit
        def image_features(params: Any, images: jax.Array) -> jax.Array:
            return model.get_image_features(preprocessed(images, size, mean, std), params=params)

        @jax.jit
        def text_features(params: Any, tokens: jax.Array, mask: jax.Array) -> jax.Array:
            return model.get_text_features(tokens, mask, params=params)

        self._image_features, self._text_features = image_features, text_features

    def image_features(self, images: np.ndarray) -> np.ndarray:
        """CLIP image embeddings (N, P) of images in [-1, 1], NHWC with 1 or 3 channels."""
        embed = functools.partial(self._image_features, self.params)
        return apply_in_chunks(embed, np.asarray(images, np.float32), chunk=_CHUNK)

    def text_features(self, captions: list[str]) -> np.ndarray:
        """CLIP text embeddings (N, P) of `captions`, tokenized by the model's tokenizer."""
        encoded = self.tokenizer(
            list(captions), padding="max_length", truncation=True, max_length=self.context_length, return_tensors="np"
        )
        tokens, mask = (np.asarray(encoded[key], np.int32) for key in ("input_ids", "attention_mask"))
        return apply_in_chunks(functools.partial(self._text_features, self.params), tokens, mask, chunk=_CHUNK)

    def __call__(self, images: np.ndarray, captions: list[str]) -> dict[str, float]:
        """{"clip_score"} of `images` ([-1, 1] NHWC) generated for `captions` (one per image)."""
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images for {len(captions)} captions")
        return {"clip_score": clip_score_of_features(self.image_features(images), self.text_features(captions))}


def preprocessed(images: jax.Array, size: int, mean: np.ndarray, std: np.ndarray) -> jax.Array:
    """CLIP's pixel values (N, 3, size, size) of [-1, 1] NHWC `images`: see the module docstring."""
    x = jnp.clip((fit_to_net(images, size, channels=3, method="bicubic") + 1.0) / 2.0, 0.0, 1.0)
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    return jnp.transpose((x - mean) / std, (0, 3, 1, 2))
