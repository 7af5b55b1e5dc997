"""Objectives and bounds of latent-variable models beyond the plain ELBO.

- β-weighting with linear KL annealing (Higgins et al. 2017; Bowman et al. 2016),
- free bits (Kingma et al. 2016, "Improving Variational Inference with Inverse Autoregressive Flow", eq. 15),
- the importance-weighted bound (Burda et al. 2016), which tightens towards log p(x) as samples grow.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from genimg_jax.losses.likelihood import diagonal_gaussian_log_density


def kl_weight(step: jax.Array, beta: float, warmup_steps: int) -> jax.Array:
    """β, ramped linearly from 0 at step 0 to β at `warmup_steps` (no ramp when warmup_steps is 0)."""
    if warmup_steps <= 0:
        return jnp.asarray(beta, jnp.float32)
    return beta * jnp.minimum(1.0, step.astype(jnp.float32) / warmup_steps)


def free_bits_kl(kl_per_dimension: jax.Array, free_bits: float) -> jax.Array:
    """Σ_d max(λ, mean over the batch of KL_d): dimensions using fewer than λ nats get no KL gradient.

    `kl_per_dimension` is (batch, ...); the clamp is applied per latent dimension on the batch mean, so one
    example cannot buy another's bits. With λ = 0 this is the batch-mean KL.
    """
    batch_mean = jnp.mean(kl_per_dimension.reshape(kl_per_dimension.shape[0], -1), axis=0)
    return jnp.sum(jnp.maximum(free_bits, batch_mean))


def importance_weighted_log_likelihood(
    log_likelihood: Callable[[jax.Array], jax.Array],
    mean: jax.Array,
    log_variance: jax.Array,
    rng: jax.Array,
    num_samples: int,
    chunk_size: int,
) -> jax.Array:
    """The IWAE bound log (1/k) Σ_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x) = N(mean, exp(log_variance)).

    Per example (shape (batch,)), under a standard normal prior. `log_likelihood(z)` gives log p(x|z) for a
    (batch, latent) sample. k = 1 is the ELBO's single-sample estimate; the bound never decreases in
    expectation as k grows and reaches log p(x) as k → ∞. Samples are evaluated `chunk_size` at a time
    (vectorised within a chunk, sequential across chunks) to bound memory.
    """

    def log_weight(key: jax.Array) -> jax.Array:
        z = mean + jnp.exp(0.5 * log_variance) * jax.random.normal(key, mean.shape)
        log_prior = diagonal_gaussian_log_density(z, jnp.zeros_like(z), jnp.zeros_like(z))
        return log_likelihood(z) + log_prior - diagonal_gaussian_log_density(z, mean, log_variance)

    log_weights = jax.lax.map(log_weight, jax.random.split(rng, num_samples), batch_size=chunk_size)
    return jax.nn.logsumexp(log_weights, axis=0) - jnp.log(num_samples)
