"""DDPM's variational bound (`diffusion.vlb`) against closed forms on Gaussian data.

With the exact denoiser of x_0 ~ N(mu, s^2), E[x_0 | x_t] = mu + k (x - mu), k = s^2 / (s^2 + sigma^2), every KL
term has a closed-form expectation over x_t given x_0: the means differ by c0 (x_0 - E[x_0 | x_t]), whose second
moment is (1 - k)^2 (x_0 - mu)^2 + k^2 sigma^2. The decoder term L_0 is integrated over x_1 by Gauss-Hermite
quadrature with scipy's normal CDF, and L_T is KL(N(sqrt(a) x_0, 1 - a) || N(0, 1)).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genimg_jax.diffusion import samplers, schedules, vlb
from genimg_jax.losses import likelihood

T = 1000
ALPHA_BAR = schedules.make_alpha_bars("linear", T, 1e-4, 0.02)
MU, STD = 0.1, 0.3
NUM, DIMS = 4000, 4


def exact_denoiser(x, sigma, labels):
    sigma = jnp.reshape(sigma, (-1,) + (1,) * (x.ndim - 1))
    return MU + STD**2 / (STD**2 + sigma**2) * (x - MU)


def gaussian_images(seed=0):
    """Gaussian data on the uint8 grid in [-1, 1]."""
    x = MU + STD * np.random.default_rng(seed).standard_normal((NUM, DIMS))
    return (np.clip(np.round((x + 1) * 127.5), 0, 255) / 127.5 - 1).astype(np.float32)


def expected_bound(x0, variance):
    """(sum of expected KL terms, expected L_0, L_T) per example, in nats, float64."""
    alpha_bar_prev = np.append(1, ALPHA_BAR[:-1])
    betas = 1 - ALPHA_BAR / alpha_bar_prev
    posterior_variance = betas * (1 - alpha_bar_prev) / (1 - ALPHA_BAR)
    c0 = betas * np.sqrt(alpha_bar_prev) / (1 - ALPHA_BAR)
    sigma2 = (1 - ALPHA_BAR) / ALPHA_BAR
    k = STD**2 / (STD**2 + sigma2)
    model_variance = posterior_variance if variance == "beta_tilde" else betas
    t = np.arange(1, T)[:, None, None]
    second_moment = (1 - k[t]) ** 2 * (x0[None] - MU) ** 2 + k[t] ** 2 * sigma2[t]
    ratio = posterior_variance[t] / model_variance[t]
    kl = 0.5 * (ratio - 1 - np.log(ratio) + c0[t] ** 2 * second_moment / model_variance[t])
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    mean = MU + k[0] * (x0[..., None] + np.sqrt(sigma2[0]) * nodes - MU)  # the decoder mean is E[x_0 | x_1]
    std, half_bin = np.sqrt(posterior_variance[1]), 1 / 255
    lower = np.where(x0[..., None] < -1 + half_bin, -np.inf, (x0[..., None] - half_bin - mean) / std)
    upper = np.where(x0[..., None] > 1 - half_bin, np.inf, (x0[..., None] + half_bin - mean) / std)
    mass = np.where(
        lower > 0, stats.norm.sf(lower) - stats.norm.sf(upper), stats.norm.cdf(upper) - stats.norm.cdf(lower)
    )
    decoder = -(np.log(mass) @ (weights / weights.sum())).sum(-1)
    last = ALPHA_BAR[-1]
    prior = 0.5 * (last * x0**2 + (1 - last) - 1 - np.log(1 - last)).sum(-1)
    return kl.sum(axis=(0, 2)), decoder, prior


def bound(x0, variance, terms, seed=0):
    run = jax.jit(lambda x, rng: vlb.bound_nats(exact_denoiser, x, None, rng, ALPHA_BAR, variance, terms))
    return {
        name: np.asarray(value, np.float64) for name, value in run(jnp.asarray(x0), jax.random.PRNGKey(seed)).items()
    }


@pytest.mark.parametrize("variance", samplers.VARIANCES)
def test_full_bound_matches_its_closed_form_expectation(variance):
    x0 = gaussian_images()
    kl, decoder, prior = expected_bound(x0, variance)
    values = bound(x0, variance, T)
    np.testing.assert_allclose(values["prior"], prior, rtol=1e-3, atol=1e-7)
    for name, estimate, expected in [
        ("total", values["total"], kl + decoder + prior),
        ("decoder", values["decoder"], decoder),
    ]:
        standard_error = estimate.std() / np.sqrt(NUM)
        assert abs(estimate.mean() - expected.mean()) < 4 * standard_error, name
    # The two variances give bounds further apart than the estimates' errors (fixedlarge is the tighter here).
    other = "beta" if variance == "beta_tilde" else "beta_tilde"
    assert abs(kl.mean() - expected_bound(x0, other)[0].mean()) > 20 * values["total"].std() / np.sqrt(NUM)


def test_strided_bound_is_an_unbiased_estimate():
    x0 = gaussian_images(1)
    kl, decoder, prior = expected_bound(x0, "beta")
    total = bound(x0, "beta", 50, seed=3)["total"]
    assert abs(total.mean() - (kl + decoder + prior).mean()) < 4 * total.std() / np.sqrt(NUM)


def test_decoder_term_is_the_discretised_gaussian_with_variance_beta_tilde_1():
    """At index 0 the term is -log of the uint8-bin likelihood of x_0 under N(x_0 estimate, beta-tilde_1)."""
    x0 = jnp.asarray(gaussian_images()[:16])
    estimate = x0 + 0.01
    beta_tilde_1 = (1 - ALPHA_BAR[1] / ALPHA_BAR[0]) * (1 - ALPHA_BAR[0]) / (1 - ALPHA_BAR[1])
    expected = -likelihood.discretized_gaussian_log_likelihood(x0, estimate, jnp.float32(0.5 * np.log(beta_tilde_1)))
    for variance in samplers.VARIANCES:
        term = vlb.term_nats(x0, x0, estimate, jnp.zeros(16, jnp.int32), ALPHA_BAR, variance)
        np.testing.assert_allclose(term, expected, rtol=1e-5)


def test_strata_cover_every_kl_index_once():
    starts, sizes = vlb.strata(T, 7)
    covered = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, sizes, strict=True)])
    np.testing.assert_array_equal(covered, np.arange(1, T))
    np.testing.assert_array_equal(vlb.strata(T, T)[1], np.ones(T - 1))
