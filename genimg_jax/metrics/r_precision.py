"""R-precision of text-to-image samples (Xu et al. 2018, AttnGAN, section 4): does a pretrained DAMSM dual encoder
retrieve an image's own caption?

Each image is a query against 100 candidate captions: the one it was generated for and 99 mismatched ones drawn
at random (seeded) from the eval split's captions, a draw equal to the true caption drawn again. Candidates are
ranked by the cosine of the image's global feature and the caption's sentence feature; with R = 1 the score is the
fraction of images whose true caption ranks first (strictly above every mismatched one), chance 1/100. As in the
paper's tables ("mean ± std"; the protocol of DM-GAN's released evaluation), the images are cut into 10 splits
and the mean and standard deviation of the splits' scores are reported.
"""

import jax
import numpy as np

from genimg_jax.metrics.chunked import apply_in_chunks
from genimg_jax.metrics.dual_encoder_file import TrainedDualEncoder
from genimg_jax.metrics.net_input import fit_to_net
from genimg_jax.models.dual_encoder import DualEncoder

NUM_MISMATCHED = 99
NUM_SPLITS = 10
_CHUNK = 256  # images or captions encoded per call


def mismatched_captions(tokens: np.ndarray, true: np.ndarray, seed: int, num: int = NUM_MISMATCHED) -> np.ndarray:
    """(len(true), num) indices into the captions `tokens` (N, L), none with the same tokens as `tokens[true[i]]`."""
    ids = np.unique(np.asarray(tokens), axis=0, return_inverse=True)[1].reshape(-1)
    if ids.max(initial=0) == 0:
        raise ValueError(f"R-precision needs at least two different captions, got {len(ids)} of one kind")
    rng = np.random.default_rng(seed)
    drawn = rng.integers(len(ids), size=(len(true), num))
    clash = ids[drawn] == ids[np.asarray(true)][:, None]
    while clash.any():  # redraw only the clashes: each redraw succeeds with probability >= 1/N
        drawn[clash] = rng.integers(len(ids), size=int(clash.sum()))
        clash = ids[drawn] == ids[np.asarray(true)][:, None]
    return drawn


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def top1_hits(
    image_features: np.ndarray, sentences: np.ndarray, true: np.ndarray, mismatched: np.ndarray
) -> np.ndarray:
    """Per image, whether its true caption's cosine exceeds all its mismatched ones' (`sentences` of all captions)."""
    images, sentences = _unit(image_features), _unit(sentences)
    true_scores = np.einsum("nd,nd->n", images, sentences[true])
    mismatched_scores = np.einsum("nd,nkd->nk", images, sentences[mismatched])
    return true_scores > mismatched_scores.max(axis=1)


def split_mean_std(hits: np.ndarray, splits: int = NUM_SPLITS) -> tuple[float, float]:
    """Mean and standard deviation over `splits` consecutive splits of the per-image hits."""
    if len(hits) < splits:
        raise ValueError(f"R-precision over {splits} splits needs at least {splits} images, got {len(hits)}")
    scores = [float(np.mean(part)) for part in np.array_split(hits, splits)]
    return float(np.mean(scores)), float(np.std(scores))


class RPrecision:
    """R-precision with one trained dual encoder (see the module docstring)."""

    def __init__(self, encoder: TrainedDualEncoder):
        self.encoder = encoder
        model, params, spec = DualEncoder(encoder.spec), encoder.params, encoder.spec

        @jax.jit
        def image_features(images: jax.Array) -> jax.Array:
            images = fit_to_net(images, spec.resolution, spec.channels)
            return model.apply({"params": params}, images, method=model.encode_images)[1]

        @jax.jit
        def sentence_features(tokens: jax.Array, mask: jax.Array) -> jax.Array:
            return model.apply({"params": params}, tokens, mask, method=model.encode_text)[1]

        self.image_features, self.sentence_features = image_features, sentence_features

    def hits(self, images: np.ndarray, true: np.ndarray, tokens: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
        """Per image ([-1, 1] NHWC), whether caption `true[i]` of the captions (`tokens`, `mask`) ranks first."""
        if np.asarray(tokens).max(initial=0) >= self.encoder.spec.vocabulary_size:
            raise ValueError(
                f"caption token ids reach {int(np.max(tokens))}, beyond the dual encoder's vocabulary of "
                f"{self.encoder.spec.vocabulary_size}: its captions were encoded with another vocabulary"
            )
        sentences = apply_in_chunks(
            self.sentence_features, np.asarray(tokens, np.int32), np.asarray(mask, np.int32), chunk=_CHUNK
        )
        features = apply_in_chunks(self.image_features, np.asarray(images, np.float32), chunk=_CHUNK)
        return top1_hits(features, sentences, true, mismatched_captions(tokens, true, seed))

    def __call__(
        self, images: np.ndarray, true: np.ndarray, tokens: np.ndarray, mask: np.ndarray, seed: int = 0
    ) -> dict[str, float]:
        """{"r_precision", "r_precision_std"} of `images` generated for captions `true` (see `hits`)."""
        mean, std = split_mean_std(self.hits(images, true, tokens, mask, seed))
        return {"r_precision": mean, "r_precision_std": std}
