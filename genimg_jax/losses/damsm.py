"""The DAMSM losses (Xu et al. 2018, AttnGAN, eqs. 7-14), as in AttnGAN's `sent_loss`, `words_loss` and
`func_attention` (code/miscc/losses.py, code/GlobalAttention.py).

Every image j of a batch is scored against every caption i. Sentence level: gamma3 times the cosine of the global
image feature and the sentence feature. Word level: each region's dot products with the caption's words are
normalised over the words (eq. 8), scaled by gamma1 and normalised over the regions (eq. 9), giving each word a
region context; the word-image relevance is log sum_words exp(gamma2 cos(word, context)) (eq. 10), times gamma3.
Each score matrix gives two cross-entropies with the diagonal as the labels: captions given the image, and images
given the caption (eqs. 11-13). Padded words (mask 0) are left out where AttnGAN cuts each caption to its length;
the mask is the data's `tokens_mask`, so BOS and EOS count as words (AttnGAN's captions have neither).
AttnGAN's optional class mask (leaving same-class pairs out of the softmax) is not needed here: pass batches
without repeated captions or accept them as negatives.
"""

import jax
import jax.numpy as jnp

GAMMA1, GAMMA2, GAMMA3 = 4.0, 5.0, 10.0  # AttnGAN's cfg.TRAIN.SMOOTH defaults (birds and COCO)
COSINE_EPS = 1e-8  # the clamp of AttnGAN's `cosine_similarity` denominator


def _unit(x: jax.Array) -> jax.Array:
    """`x` over its Euclidean norm, the norm clamped at COSINE_EPS (padded words are zero vectors: they stay 0 and
    their gradient finite)."""
    return x / jnp.sqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), COSINE_EPS**2))


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    """Cosine of the last axes; AttnGAN's clamps the product of the norms at COSINE_EPS, this each norm (the same
    but for vectors shorter than COSINE_EPS)."""
    return jnp.sum(_unit(a) * _unit(b), axis=-1)


def sentence_scores(image_global: jax.Array, sentences: jax.Array, gamma3: float = GAMMA3) -> jax.Array:
    """(images N, D), (captions N, D) -> (N, N): scores[j, i] of image j and caption i (eq. 12 inside exp)."""
    return gamma3 * cosine(image_global[:, None, :], sentences[None, :, :])


def word_scores(
    regions: jax.Array,
    words: jax.Array,
    mask: jax.Array,
    gamma1: float = GAMMA1,
    gamma2: float = GAMMA2,
    gamma3: float = GAMMA3,
) -> jax.Array:
    """(images N, R, D), (captions N, L, D), mask (N, L) -> (N, N): gamma3 * R(caption i, image j) at [j, i]."""
    valid = mask.astype(bool)[None, :, None, :]  # (1, captions, 1, words)
    logits = jnp.einsum("jrd,iwd->jirw", regions, words)
    over_words = jax.nn.softmax(jnp.where(valid, logits, -jnp.inf), axis=-1)  # eq. 8
    over_regions = jax.nn.softmax(gamma1 * over_words, axis=2)  # eq. 9
    context = jnp.einsum("jirw,jrd->jiwd", over_regions, regions)
    # The cosines as a contraction of unit vectors: a fused elementwise product and sum here is miscompiled by XLA
    # on CPU (jax 0.10) at the shapes of a batch of 48 (log-sums off by 1-10); see tests/test_damsm.py.
    relevance = jnp.exp(gamma2 * jnp.einsum("iwd,jiwd->jiw", _unit(words), _unit(context)))
    return gamma3 * jnp.log(jnp.sum(jnp.where(valid[:, :, 0], relevance, 0.0), axis=-1))  # eq. 10


def matching_losses(scores: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(captions given images, images given captions): mean cross-entropies of `scores[j, i]` with labels i = j."""
    diagonal = jnp.arange(len(scores))
    by_image = -jnp.mean(jax.nn.log_softmax(scores, axis=1)[diagonal, diagonal])
    by_caption = -jnp.mean(jax.nn.log_softmax(scores, axis=0)[diagonal, diagonal])
    return by_image, by_caption


def damsm_losses(
    regions: jax.Array, image_global: jax.Array, words: jax.Array, sentences: jax.Array, mask: jax.Array
) -> dict[str, jax.Array]:
    """AttnGAN's four terms (w_loss0, w_loss1, s_loss0, s_loss1) and their sum, the DAMSM pretraining loss."""
    w0, w1 = matching_losses(word_scores(regions, words, mask))
    s0, s1 = matching_losses(sentence_scores(image_global, sentences))
    return {"w_loss0": w0, "w_loss1": w1, "s_loss0": s0, "s_loss1": s1, "loss": w0 + w1 + s0 + s1}
