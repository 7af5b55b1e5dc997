"""The DAMSM losses against a numpy transcription of AttnGAN's loop over captions (each cut to its length)."""

import jax
import numpy as np
import pytest

from genimg_jax.losses import damsm


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-8)


def _cross_entropies(scores: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy of the rows with labels = row index, and the same of the transposed matrix."""

    def ce(s: np.ndarray) -> float:
        log_p = s - s.max(1, keepdims=True) - np.log(np.exp(s - s.max(1, keepdims=True)).sum(1, keepdims=True))
        return float(-np.mean(np.diag(log_p)))

    return ce(scores), ce(scores.T)


def reference_word_scores(regions, words, lengths, g1=4.0, g2=5.0, g3=10.0):
    """AttnGAN's words_loss / func_attention scores, caption by caption, in float64 numpy: [image j, caption i]."""
    batch = len(regions)
    similarities = np.zeros((batch, batch))
    for i in range(batch):
        word = words[i, : lengths[i]]  # (n, D): only the caption's real words
        for j in range(batch):
            attn = regions[j] @ word.T  # (R, n), eq. 7
            attn = _softmax(attn, axis=1)  # over the words, eq. 8
            attn = _softmax(g1 * attn.T, axis=1)  # (n, R) over the regions, eq. 9
            context = attn @ regions[j]  # (n, D)
            similarities[j, i] = np.log(np.exp(g2 * _cosine(word, context)).sum())  # eq. 10
    return g3 * similarities


def reference_losses(regions, image_global, words, sentences, lengths, g3=10.0):
    """AttnGAN's words_loss and sent_loss."""
    w0, w1 = _cross_entropies(reference_word_scores(regions, words, lengths))
    s0, s1 = _cross_entropies(g3 * _cosine(image_global[:, None], sentences[None]))
    return {"w_loss0": w0, "w_loss1": w1, "s_loss0": s0, "s_loss1": s1, "loss": w0 + w1 + s0 + s1}


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    batch, num_regions, length, dim = 4, 6, 7, 5
    lengths = np.array([7, 3, 1, 5])
    words = rng.normal(size=(batch, length, dim))
    mask = (np.arange(length) < lengths[:, None]).astype(np.int32)
    words[mask == 0] = 0.0  # as the text encoder leaves them
    return {
        "regions": rng.normal(size=(batch, num_regions, dim)) * 0.7,
        "image_global": rng.normal(size=(batch, dim)),
        "words": words,
        "sentences": rng.normal(size=(batch, dim)),
        "mask": mask,
        "lengths": lengths,
    }


def test_damsm_losses_match_attngan_reference(inputs):
    expected = reference_losses(*(inputs[k] for k in ("regions", "image_global", "words", "sentences", "lengths")))
    arrays = [inputs[k].astype(np.float32) for k in ("regions", "image_global", "words", "sentences")]
    got = jax.jit(damsm.damsm_losses)(*arrays, inputs["mask"])
    assert set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(float(got[name]), value, rtol=2e-4, err_msg=name)


def test_padded_words_do_not_change_the_word_scores(inputs):
    """Whatever sits in padded positions (mask 0) is ignored, as AttnGAN ignores words beyond each length."""
    words = inputs["words"].astype(np.float32)
    noisy = np.where(inputs["mask"][..., None] == 1, words, 9.0).astype(np.float32)
    regions = inputs["regions"].astype(np.float32)
    scores = jax.jit(damsm.word_scores)
    np.testing.assert_allclose(
        scores(regions, noisy, inputs["mask"]), scores(regions, words, inputs["mask"]), rtol=1e-5
    )


def test_matched_scores_give_low_loss_and_gradients_are_finite(inputs):
    """A batch whose images equal their captions scores each diagonal highest: both cross-entropies fall below
    the log(batch) of uninformative scores; zero (padded) word vectors leave the gradient finite."""
    sentences = inputs["sentences"].astype(np.float32)
    s0, s1 = damsm.matching_losses(damsm.sentence_scores(sentences, sentences))
    assert float(s0) < 0.1 * np.log(len(sentences)) and float(s1) < 0.1 * np.log(len(sentences))
    regions, words = inputs["regions"].astype(np.float32), inputs["words"].astype(np.float32)
    loss = lambda w: damsm.matching_losses(damsm.word_scores(regions, w, inputs["mask"]))[0]  # noqa: E731
    grads = jax.jit(jax.grad(loss))(words)
    assert np.isfinite(np.asarray(grads)).all()


def test_word_scores_at_a_full_batch_match_the_reference_when_jitted():
    """A batch of 48 with 16 regions, 33 words and 128 dimensions: where XLA on CPU once miscompiled the fused
    cosine-exp-sum of eq. 10 (log-sums off by up to 10) unless the cosines are a contraction."""
    rng = np.random.default_rng(1)
    batch, num_regions, length, dim = 48, 16, 33, 128
    lengths = rng.integers(1, length + 1, size=batch)
    mask = (np.arange(length) < lengths[:, None]).astype(np.int32)
    regions = rng.normal(size=(batch, num_regions, dim)).astype(np.float32)
    words = rng.normal(size=(batch, length, dim)).astype(np.float32) * mask[..., None]
    got = jax.jit(damsm.word_scores)(regions, words, mask)
    np.testing.assert_allclose(got, reference_word_scores(regions, words, lengths), rtol=1e-4, atol=1e-3)
