"""Losses against values computed by hand or by scipy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genimg_jax.losses import adversarial, likelihood


def test_non_saturating_generator_loss_is_mean_of_minus_log_sigmoid():
    logits = jnp.array([0.0, math.log(3.0)])  # sigmoid = 1/2 and 3/4
    expected = (math.log(2.0) + math.log(4.0 / 3.0)) / 2
    assert float(adversarial.non_saturating_generator_loss(logits)) == pytest.approx(expected, rel=1e-6)


def test_non_saturating_discriminator_loss_is_binary_cross_entropy():
    real = jnp.array([math.log(3.0)])  # D(x) = 3/4
    fake = jnp.array([-math.log(3.0)])  # D(G(z)) = 1/4
    expected = -math.log(0.75) - math.log(1.0 - 0.25)
    assert float(adversarial.non_saturating_discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-6)
    # At D = 1/2 everywhere the loss is 2 log 2, the value at the GAN game's equilibrium.
    zeros = jnp.zeros(5)
    assert float(adversarial.non_saturating_discriminator_loss(zeros, zeros)) == pytest.approx(2 * math.log(2.0))


def test_losses_registry_pairs_generator_and_discriminator_losses():
    g_loss, d_loss = adversarial.LOSSES["non_saturating"]
    assert g_loss is adversarial.non_saturating_generator_loss
    assert d_loss is adversarial.non_saturating_discriminator_loss


def test_gaussian_kl_closed_form():
    mean = jnp.array([[0.0, 1.0], [0.0, 0.0]])
    log_variance = jnp.array([[0.0, math.log(2.0)], [0.0, 0.0]])
    kl = likelihood.gaussian_kl_per_dimension(mean, log_variance)
    # Per dimension: 0.5 (var + mean^2 - 1 - log var); zero where q is the prior.
    assert np.allclose(kl, [[0.0, 0.5 * (2.0 + 1.0 - 1.0 - math.log(2.0))], [0.0, 0.0]], atol=1e-6)


def test_bernoulli_log_likelihood_by_hand():
    logits = jnp.array([[0.0, math.log(3.0), -math.log(3.0)]])
    targets = jnp.array([[1.0, 1.0, 1.0]])
    expected = math.log(0.5) + math.log(0.75) + math.log(0.25)
    assert float(likelihood.bernoulli_log_likelihood(logits, targets)[0]) == pytest.approx(expected, rel=1e-6)
    assert float(likelihood.bernoulli_log_likelihood(logits, 1.0 - targets)[0]) == pytest.approx(
        math.log(0.5) + math.log(0.25) + math.log(0.75), rel=1e-6
    )


@pytest.mark.parametrize(("mean", "scale"), [(0.0, 0.3), (0.9, 0.05), (-0.99, 0.5), (0.2, 0.002)])
def test_discretized_gaussian_bins_sum_to_one_and_match_scipy(mean, scale):
    levels = jnp.arange(256, dtype=jnp.float32) / 127.5 - 1.0
    images = levels.reshape(256, 1)  # one "image" of one pixel per level
    log_p = likelihood.discretized_gaussian_log_likelihood(images, jnp.float32(mean), jnp.log(jnp.float32(scale)))
    probabilities = np.exp(np.asarray(log_p, np.float64))
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-4)
    edges = (np.arange(257) - 0.5) / 127.5 - 1.0
    edges[0], edges[-1] = -np.inf, np.inf
    reference = np.diff(stats.norm.cdf(edges, loc=mean, scale=scale))
    big = reference > 1e-6
    assert np.allclose(probabilities[big], reference[big], rtol=2e-3)


def test_discretized_gaussian_gradients_stay_finite_in_the_tails():
    images = jnp.array([[-1.0, -0.2, 0.0, 0.6, 1.0]])

    def total(mean, log_scale):
        return jnp.sum(likelihood.discretized_gaussian_log_likelihood(images, mean, log_scale))

    for mean, log_scale in [(0.9, -9.0), (-0.99, -7.0), (0.0, 2.0), (0.3, -4.0)]:
        grads = jax.grad(total, argnums=(0, 1))(jnp.float32(mean), jnp.float32(log_scale))
        assert all(np.isfinite(float(g)) for g in grads), (mean, log_scale, grads)
        assert np.isfinite(float(total(jnp.float32(mean), jnp.float32(log_scale))))


def test_bits_per_dim_converts_nats():
    assert float(likelihood.bits_per_dim(jnp.float32(1024 * math.log(2.0)), 1024)) == pytest.approx(1.0)
