"""DDPM's variational bound on -log p(x_0) (Ho et al. 2020, eq. 5), per example, in nats.

L = L_T + sum_{t=1}^{T-1} L_t + L_0 with L_T = KL(q(x_T | x_0) || N(0, I)), L_t = KL(q(x_{t-1} | x_t, x_0) ||
p(x_{t-1} | x_t)) and L_0 = -log p(x_0 | x_1) under a Gaussian integrated over each uint8 bin, as in the
reference's `calc_bpd_loop`: x_t drawn once per term, the model's mean from its (optionally clipped) x_0 estimate,
its variance the sampler's (`samplers.VARIANCES`), and L_0's variance beta-tilde_1 for either choice. Index
t = 0..T-1 here is the paper's t = 1..T, so `L_0` is the term at index 0.

All T terms need T network passes. With fewer terms S, L_0 and L_T stay exact and the KL sum is estimated without
bias by stratified sampling: indices 1..T-1 are cut into S - 1 contiguous strata, each example draws one index per
stratum, weighted by the stratum's size. S = T is the exact bound.
"""

import jax
import jax.numpy as jnp
import numpy as np

from genimg_jax.diffusion.samplers import VARIANCES, Denoiser
from genimg_jax.losses import likelihood


def betas_from_alpha_bars(alpha_bar: np.ndarray) -> np.ndarray:
    return 1.0 - alpha_bar / np.append(1.0, alpha_bar[:-1])


def posterior_variances(alpha_bar: np.ndarray) -> np.ndarray:
    """Variance beta-tilde_t of q(x_{t-1} | x_t, x_0); 0 at index 0."""
    alpha_bar_prev = np.append(1.0, alpha_bar[:-1])
    return betas_from_alpha_bars(alpha_bar) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)


def reverse_log_variances(alpha_bar: np.ndarray, variance: str) -> np.ndarray:
    """log of p(x_{t-1} | x_t)'s variance at each index: beta-tilde (fixedsmall) or beta (fixedlarge), and
    beta-tilde_1 at index 0 for both (the reference's choice for the decoder L_0; q's own variance is 0 there)."""
    posterior = posterior_variances(alpha_bar)
    if variance == "beta_tilde":
        later = posterior[1:]
    elif variance == "beta":
        later = betas_from_alpha_bars(alpha_bar)[1:]
    else:
        raise ValueError(f"unknown variance {variance!r}; choose one of {VARIANCES}")
    return np.log(np.append(posterior[1], later))


def posterior_mean(x0: jax.Array, x_t: jax.Array, t: jax.Array, alpha_bar: np.ndarray) -> jax.Array:
    """Mean of q(x_{t-1} | x_t, x_0) for VP-space x_t at per-example indices t."""
    alpha_bar_prev = np.append(1.0, alpha_bar[:-1])
    betas = betas_from_alpha_bars(alpha_bar)
    coef_x0 = betas * np.sqrt(alpha_bar_prev) / (1.0 - alpha_bar)
    coef_xt = (1.0 - alpha_bar_prev) * np.sqrt(1.0 - betas) / (1.0 - alpha_bar)
    return _at(coef_x0, t, x0) * x0 + _at(coef_xt, t, x0) * x_t


def normal_kl(mean1: jax.Array, log_var1: jax.Array, mean2: jax.Array, log_var2: jax.Array) -> jax.Array:
    """KL(N(mean1, exp(log_var1)) || N(mean2, exp(log_var2))), elementwise."""
    return 0.5 * (log_var2 - log_var1 - 1.0 + jnp.exp(log_var1 - log_var2) + (mean1 - mean2) ** 2 * jnp.exp(-log_var2))


def prior_nats(x0: jax.Array, alpha_bar: np.ndarray) -> jax.Array:
    """L_T = KL(q(x_T | x_0) || N(0, I)) per example."""
    last = float(alpha_bar[-1])
    kl = normal_kl(np.sqrt(last) * x0, np.log(1.0 - last), 0.0, 0.0)
    return likelihood.sum_per_example(kl)


def term_nats(
    x0: jax.Array, x_t: jax.Array, x0_estimate: jax.Array, t: jax.Array, alpha_bar: np.ndarray, variance: str
) -> jax.Array:
    """Per example, L_t at index t (> 0: the KL) or L_0 (t = 0: the discretised decoder), for VP-space x_t and the
    model's estimate of x_0 from it."""
    model_log_var = _at(reverse_log_variances(alpha_bar, variance), t, x0)
    model_mean = posterior_mean(x0_estimate, x_t, t, alpha_bar)
    true_log_var = _at(reverse_log_variances(alpha_bar, "beta_tilde"), t, x0)  # only used where t > 0
    kl = normal_kl(posterior_mean(x0, x_t, t, alpha_bar), true_log_var, model_mean, model_log_var)
    kl = likelihood.sum_per_example(kl)
    decoder = -likelihood.discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var)
    return jnp.where(t == 0, decoder, kl)


def strata(num_timesteps: int, num_terms: int) -> tuple[np.ndarray, np.ndarray]:
    """(first index, size) of the num_terms - 1 strata that cover indices 1..T-1."""
    if not 2 <= num_terms <= num_timesteps:
        raise ValueError(f"the bound needs 2..{num_timesteps} terms, got {num_terms}")
    bounds = np.round(np.linspace(1, num_timesteps, num_terms)).astype(int)
    return bounds[:-1], np.diff(bounds)


def bound_nats(
    denoise: Denoiser,
    x0: jax.Array,
    labels: jax.Array | None,
    rng: jax.Array,
    alpha_bar: np.ndarray,
    variance: str,
    num_terms: int,
) -> dict[str, jax.Array]:
    """The bound per example (`total`) and its exact parts `decoder` (L_0) and `prior` (L_T), in nats, for x_0 in
    [-1, 1] on the uint8 grid; `denoise` is D(x, sigma, labels) in VE coordinates x = x_t / sqrt(alpha_bar_t)."""
    num = x0.shape[0]
    signal, noise_scale = np.sqrt(alpha_bar), np.sqrt(1.0 - alpha_bar)  # in float64 before the cast
    starts, sizes = strata(len(alpha_bar), num_terms)
    starts, sizes = jnp.asarray(np.append(0, starts)), jnp.asarray(np.append(1, sizes))  # term 0: L_0 itself

    def term(k, rng_k):
        index_rng, noise_rng = jax.random.split(rng_k)
        t = starts[k] + jnp.floor(jax.random.uniform(index_rng, (num,)) * sizes[k]).astype(jnp.int32)
        noise = jax.random.normal(noise_rng, x0.shape)
        x_t = _at(signal, t, x0) * x0 + _at(noise_scale, t, x0) * noise
        sigma = jnp.asarray(noise_scale / signal, jnp.float32)[t]
        estimate = denoise(x_t / _at(signal, t, x0), sigma, labels)
        return sizes[k] * term_nats(x0, x_t, estimate, t, alpha_bar, variance)

    decoder = term(0, jax.random.fold_in(rng, 0))
    kl_sum = jax.lax.fori_loop(1, num_terms, lambda k, total: total + term(k, jax.random.fold_in(rng, k)), decoder * 0)
    prior = prior_nats(x0, alpha_bar)
    return {"total": decoder + kl_sum + prior, "decoder": decoder, "prior": prior}


def _at(values, t: jax.Array, like: jax.Array) -> jax.Array:
    """values[t] (one per example) shaped to broadcast against `like`."""
    return jnp.asarray(values, jnp.float32)[t].reshape((-1,) + (1,) * (like.ndim - 1))
