"""VQ-VAE: nearest codes and the EMA codebook update against numpy, straight-through gradients, dead-code restarts,
perplexity's closed forms, the prior's causality, and a short training that lowers reconstruction error and the
prior's held-out NLL and samples by class."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import load

from genimg_jax import data
from genimg_jax.models import vector_quantizer as vq
from genimg_jax.models.code_prior import CodePrior
from genimg_jax.training.compiled_run import compile_run

TINY_VQVAE = [
    "data.resolution=16",
    "model.features=16",
    "model.code_dim=8",
    "model.num_codes=16",
    "model.prior_width=32",
    "model.prior_depth=1",
    "model.prior_heads=2",
    "train.batch_size=32",
    "train.num_sample_images=8",
    "eval.batch_size=64",
    "optim.vqvae.learning_rate=3e-3",
    "optim.prior.learning_rate=3e-3",
]


def test_nearest_codes_and_the_straight_through_estimator():
    rng = np.random.default_rng(0)
    vectors, embedding = rng.standard_normal((5, 7, 3)), rng.standard_normal((11, 3))
    expected = np.argmin(((vectors[:, :, None] - embedding[None, None]) ** 2).sum(-1), axis=-1)
    indices = vq.nearest_codes(jnp.asarray(vectors), jnp.asarray(embedding))
    np.testing.assert_array_equal(indices, expected)

    quantized = jnp.asarray(embedding)[indices]
    weights = jnp.asarray(rng.standard_normal(vectors.shape))
    value, gradient = jax.value_and_grad(lambda v: jnp.sum(weights * vq.straight_through(v, quantized)))(
        jnp.asarray(vectors)
    )
    assert value == pytest.approx(float(jnp.sum(weights * quantized)), rel=1e-6)  # the codes go forward
    np.testing.assert_allclose(gradient, weights, rtol=1e-6)  # the gradient skips the quantization


def test_ema_update_follows_the_papers_formulas():
    rng = np.random.default_rng(1)
    num_codes, dim, decay, eps = 6, 4, 0.9, 1e-5
    embedding, sizes, sums = rng.standard_normal((num_codes, dim)), rng.uniform(0, 3, num_codes), None
    sums = embedding * sizes[:, None]
    vectors, indices = rng.standard_normal((40, dim)), rng.integers(0, num_codes - 1, 40)  # the last code unused
    codebook = vq.Codebook(*(jnp.asarray(a, jnp.float32) for a in (embedding, sizes, sums)))
    updated = vq.ema_update(codebook, jnp.asarray(vectors, jnp.float32), jnp.asarray(indices), decay, eps)

    counts = np.bincount(indices, minlength=num_codes)
    assigned = np.stack([vectors[indices == k].sum(0) for k in range(num_codes)])
    new_sizes = decay * sizes + (1 - decay) * counts
    new_sums = decay * sums + (1 - decay) * assigned
    smoothed = (new_sizes + eps) / (new_sizes.sum() + num_codes * eps) * new_sizes.sum()
    np.testing.assert_allclose(updated.cluster_size, new_sizes, rtol=1e-5)
    np.testing.assert_allclose(updated.embedding_sum, new_sums, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(updated.embedding, new_sums / smoothed[:, None], rtol=1e-4, atol=1e-6)


def test_dead_codes_restart_at_encoder_vectors_and_live_ones_stay():
    rng = np.random.default_rng(2)
    embedding = jnp.asarray(rng.standard_normal((5, 3)), jnp.float32)
    sizes = jnp.asarray([4.0, 0.2, 2.0, 0.9, 1.0])
    vectors = jnp.asarray(rng.standard_normal((12, 3)), jnp.float32)
    codebook = vq.Codebook(embedding, sizes, embedding * sizes[:, None])
    restarted, count = vq.restart_dead_codes(codebook, vectors, jax.random.PRNGKey(0), threshold=1.0)
    assert int(count) == 2
    for code in (1, 3):  # dead: now one of the batch's vectors, with one vector's worth of statistics
        assert np.min(np.abs(np.asarray(vectors) - np.asarray(restarted.embedding[code])).sum(-1)) == 0.0
        assert restarted.cluster_size[code] == 1.0
        np.testing.assert_array_equal(restarted.embedding_sum[code], restarted.embedding[code])
    for code in (0, 2, 4):
        np.testing.assert_array_equal(restarted.embedding[code], embedding[code])
        assert restarted.cluster_size[code] == sizes[code]


def test_perplexity_is_the_number_of_equally_used_codes():
    assert float(vq.perplexity(jnp.arange(32) % 8, 16)) == pytest.approx(8.0, rel=1e-5)
    assert float(vq.perplexity(jnp.zeros(10, jnp.int32), 16)) == pytest.approx(1.0)
    frequencies = np.array([0.5, 0.25, 0.25])
    expected = np.exp(-(frequencies * np.log(frequencies)).sum())
    assert float(vq.perplexity(jnp.asarray([0, 0, 1, 2]), 3)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("num_classes", [0, 3])
def test_the_prior_sees_only_earlier_codes(num_classes):
    prior = CodePrior(num_codes=7, length=9, width=16, depth=2, heads=2, num_classes=num_classes)
    codes = jax.random.randint(jax.random.PRNGKey(0), (2, 9), 0, 7)
    labels = jnp.asarray([0, 2]) if num_classes else None
    params = prior.init(jax.random.PRNGKey(1), codes, labels)
    apply = jax.jit(prior.apply)  # one compile; flax applies op by op otherwise
    logits = apply(params, codes, labels)
    for position in (0, 4, 8):
        changed = apply(params, codes.at[:, position].set((codes[:, position] + 1) % 7), labels)
        np.testing.assert_array_equal(changed[:, : position + 1], logits[:, : position + 1])  # p(c_i | c_<i)
        if position < 8:
            assert np.abs(np.asarray(changed[:, position + 1 :] - logits[:, position + 1 :])).max() > 0
    if num_classes:
        other = apply(params, codes, jnp.asarray([1, 1]))
        assert np.abs(np.asarray(other[:, 0] - logits[:, 0])).max() > 0  # the class sets the first code's odds


@pytest.mark.slow  # ~50 s of training
def test_short_training_lowers_reconstruction_error_and_prior_nll_and_samples_by_class():
    config = load("vqvae.py:digits_conditional", *TINY_VQVAE)
    run = compile_run(config)
    method = run.method
    state = run.init(jax.random.PRNGKey(0))
    test_source = data.source_from_config(config.data, "test")
    examples = [test_source[index] for index in range(64)]
    held_out = {name: jnp.stack([example[name] for example in examples]) for name in ("image", "label")}
    evaluate = jax.jit(method.evaluate_batch)

    before = evaluate(state, held_out, jax.random.PRNGKey(0))
    stream = data.make_train_stream(data.source_from_config(config.data, "train"), global_batch_size=32, seed=0)
    for _ in range(60):
        state, metrics = run.train_step(state, data.make_global_batch(next(stream), run.batch_sharding))
    after = evaluate(state, held_out, jax.random.PRNGKey(0))
    assert float(after["reconstruction_mse"].mean()) < 0.6 * float(before["reconstruction_mse"].mean())
    assert float(after["bits_per_code"].mean()) < float(before["bits_per_code"].mean()) - 0.3
    assert float(metrics["codebook_usage"]) > 0.5 and float(metrics["perplexity"]) > 4

    sample = jax.jit(method.sample, static_argnums=2)
    labels = {"label": jnp.asarray([0, 0, 1, 1])}
    images = sample(state, jax.random.PRNGKey(3), 4, labels)
    assert images.shape == (4, 16, 16, 1) and float(jnp.abs(images).max()) <= 1.0
    np.testing.assert_array_equal(images, sample(state, jax.random.PRNGKey(3), 4, labels))
    other = sample(state, jax.random.PRNGKey(3), 4, {"label": jnp.asarray([5, 5, 6, 6])})
    assert np.abs(np.asarray(other - images)).max() > 0
