"""Terms of the evidence lower bound (Kingma & Welling 2014), per example, in nats.

Likelihoods are of *discrete* pixels so that the ELBO bounds a true log-probability and bits/dim is comparable
with published numbers: Bernoulli on binarised pixels, or a Gaussian integrated over each of the 256 uint8 bins.
"""

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr, ndtr

_BIN_HALF_WIDTH = 1.0 / 255.0  # pixels scaled to [-1, 1]: 256 levels, spacing 2/255


def sum_per_example(values: jax.Array) -> jax.Array:
    """Sum over all but the leading (example) axis."""
    return jnp.sum(values.reshape(values.shape[0], -1), axis=-1)


def gaussian_kl_per_dimension(mean: jax.Array, log_variance: jax.Array) -> jax.Array:
    """KL(N(mean, exp(log_variance)) || N(0, 1)) of each latent dimension, elementwise."""
    return 0.5 * (jnp.exp(log_variance) + mean**2 - 1.0 - log_variance)


def diagonal_gaussian_log_density(x: jax.Array, mean: jax.Array, log_variance: jax.Array) -> jax.Array:
    """log N(x; mean, diag(exp(log_variance))), summed over all but the leading axis."""
    return -0.5 * sum_per_example((x - mean) ** 2 * jnp.exp(-log_variance) + log_variance + math.log(2 * math.pi))


def binarize(images: jax.Array) -> jax.Array:
    """Deterministic binarisation at mid-grey, giving the binary data a Bernoulli likelihood is defined on."""
    return (images > 0.0).astype(jnp.float32)


def bernoulli_log_likelihood(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """log p(targets | logits) for binary targets in {0, 1}, summed over pixels."""
    return -sum_per_example(jax.nn.softplus(-logits) * targets + jax.nn.softplus(logits) * (1.0 - targets))


def discretized_gaussian_log_likelihood(images: jax.Array, mean: jax.Array, log_scale: jax.Array) -> jax.Array:
    """log P(pixel bin) under N(mean, exp(log_scale)^2) for images in [-1, 1] on the uint8 grid.

    The end bins extend to +-infinity so the probabilities of the 256 bins sum to one.
    """
    inverse_scale = jnp.exp(-log_scale)
    centered = (images - mean) * inverse_scale
    upper = centered + _BIN_HALF_WIDTH * inverse_scale
    lower = centered - _BIN_HALF_WIDTH * inverse_scale
    # Bin mass, differenced on the side of the mean where the two CDF values are small (no cancellation).
    mass = jnp.where(lower > 0, ndtr(-lower) - ndtr(-upper), ndtr(upper) - ndtr(lower))
    # Far in a tail the difference underflows: use density at the bin centre times its width there instead.
    # Both branches stay finite so that gradients through jnp.where are never NaN.
    log_density_mass = -0.5 * centered**2 - 0.5 * math.log(2 * math.pi) - log_scale + math.log(2 * _BIN_HALF_WIDTH)
    log_mass = jnp.where(mass > 1e-8, jnp.log(jnp.maximum(mass, 1e-8)), log_density_mass)
    log_mass = jnp.where(images < -1.0 + _BIN_HALF_WIDTH, log_ndtr(upper), log_mass)
    log_mass = jnp.where(images > 1.0 - _BIN_HALF_WIDTH, log_ndtr(-lower), log_mass)
    return sum_per_example(log_mass)


def bits_per_dim(nats: jax.Array, num_dims: int) -> jax.Array:
    """Convert a per-example negative log-likelihood in nats to bits per dimension."""
    return nats / (num_dims * math.log(2.0))
