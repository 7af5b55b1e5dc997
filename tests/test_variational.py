"""Variational objectives and bounds against closed forms: IWAE on a linear Gaussian model, free bits, β schedule."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genimg_jax.losses import elbo, likelihood

# A linear Gaussian model p(z) = N(0, I), p(x|z) = N(Wz + b, s²I) has log p(x) = log N(x; b, WWᵀ + s²I) and a
# Gaussian posterior; W has orthogonal columns so that the posterior is diagonal, i.e. inside q's family.
W = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
B = np.array([0.5, -1.0, 0.2])
NOISE_VARIANCE = 0.5


def _log_likelihood(x):
    return lambda z: likelihood.diagonal_gaussian_log_density(
        x, z @ W.T.astype(np.float32) + B.astype(np.float32), jnp.full(x.shape, math.log(NOISE_VARIANCE))
    )


def _exact_log_marginal(x):
    return stats.multivariate_normal(B, W @ W.T + NOISE_VARIANCE * np.eye(3)).logpdf(np.asarray(x, np.float64))


def _exact_posterior(x):
    precision = np.eye(2) + W.T @ W / NOISE_VARIANCE
    covariance = np.linalg.inv(precision)
    mean = (np.asarray(x, np.float64) - B) @ W @ covariance.T / NOISE_VARIANCE
    return mean.astype(np.float32), np.log(np.diag(covariance)).astype(np.float32)


def _data(num):
    return jnp.asarray(stats.multivariate_normal(B, W @ W.T + NOISE_VARIANCE * np.eye(3)).rvs(num, random_state=0))


@functools.partial(jax.jit, static_argnums=3)
def _iwae(x, mean, log_variance, k):
    return elbo.importance_weighted_log_likelihood(
        _log_likelihood(x.astype(jnp.float32)), mean, log_variance, jax.random.PRNGKey(0), k, chunk_size=16
    )


def test_diagonal_gaussian_log_density_matches_scipy():
    x, mean, log_variance = np.array([[0.3, -1.2]]), np.array([[0.0, -1.0]]), np.array([[0.0, math.log(0.25)]])
    expected = stats.multivariate_normal(mean[0], np.diag(np.exp(log_variance[0]))).logpdf(x[0])
    assert float(likelihood.diagonal_gaussian_log_density(x, mean, log_variance)[0]) == pytest.approx(expected)


def test_iwae_with_the_exact_posterior_is_log_p_x_for_every_k():
    """With q = p(z|x) every importance weight equals p(x): the bound is exact whatever k (and even k = 1)."""
    x = _data(6)
    mean, log_variance = _exact_posterior(x)
    log_variance = np.broadcast_to(log_variance, mean.shape)
    for k in (1, 8):
        np.testing.assert_allclose(_iwae(x, mean, log_variance, k), _exact_log_marginal(x), rtol=1e-5, atol=1e-4)


def test_iwae_with_a_poor_posterior_rises_with_k_towards_log_p_x():
    """With q shifted and too wide: E[IWAE_1] is the ELBO, E[IWAE_k] grows with k and approaches log p(x)."""
    x = _data(1000)
    exact_mean, exact_log_variance = _exact_posterior(x)
    mean = exact_mean + 0.7
    log_variance = np.broadcast_to(exact_log_variance + math.log(3.0), mean.shape)
    log_marginal = float(np.mean(_exact_log_marginal(x)))
    # ELBO in closed form: E_q log p(x|z) - KL(q || p), the quadratic expectation taken over q's moments.
    variance = np.exp(log_variance)
    residual = np.asarray(x) - B - np.asarray(mean) @ W.T
    expected_square = np.sum(residual**2, axis=1) + np.sum(variance * np.sum(W**2, axis=0), axis=1)
    expected_log_likelihood = -0.5 * (expected_square / NOISE_VARIANCE + 3 * math.log(2 * math.pi * NOISE_VARIANCE))
    kl = 0.5 * np.sum(variance + np.asarray(mean) ** 2 - 1.0 - log_variance, axis=1)  # KL(q || N(0, I))
    elbos = expected_log_likelihood - kl
    single = np.asarray(_iwae(x, mean, log_variance, 1))
    # One sample is an unbiased estimate of each example's ELBO: the paired mean difference is within noise.
    difference = single - elbos
    assert abs(difference.mean()) < 4 * difference.std() / math.sqrt(len(x))
    elbo = float(np.mean(elbos))
    bounds = {k: float(jnp.mean(_iwae(x, mean, log_variance, k))) for k in (16, 512)}
    assert elbo < bounds[16] < bounds[512] <= log_marginal + 0.01
    assert log_marginal - elbo > 0.5  # the poor posterior leaves a real gap ...
    assert log_marginal - bounds[512] < 0.05 * (log_marginal - elbo)  # ... which 512 samples nearly close


def test_free_bits_clamps_each_dimension_of_the_batch_mean_kl():
    kl = jnp.array([[0.1, 2.0, 0.0], [0.3, 1.0, 0.6]])  # batch means per dimension: 0.2, 1.5, 0.3
    assert float(elbo.free_bits_kl(kl, 0.0)) == pytest.approx(2.0)
    assert float(elbo.free_bits_kl(kl, 0.25)) == pytest.approx(0.25 + 1.5 + 0.3)
    gradient = jax.grad(lambda values: elbo.free_bits_kl(values, 0.25))(kl)
    # The dimension under its free bits gets no gradient; the others get that of a batch mean.
    np.testing.assert_allclose(gradient, [[0.0, 0.5, 0.5], [0.0, 0.5, 0.5]])


def test_kl_weight_ramps_linearly_to_beta():
    weights = [float(elbo.kl_weight(jnp.array(step), 4.0, 100)) for step in (0, 25, 100, 500)]
    assert weights == pytest.approx([0.0, 1.0, 4.0, 4.0])
    assert float(elbo.kl_weight(jnp.array(0), 2.0, 0)) == 2.0
