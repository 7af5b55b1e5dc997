"""EDM preconditioning, loss weighting and training noise levels (Karras et al. 2022, Table 1, "Ours").

The network F sees c_in(sigma) x and c_noise(sigma); the denoiser is D(x, sigma) = c_skip x + c_out F, so that F's
input and training target both have unit variance at every noise level. The loss weight lambda = 1 / c_out^2 makes
the effective loss on F unit-weighted.
"""

import jax
import jax.numpy as jnp


def c_skip(sigma: jax.Array, sigma_data: float) -> jax.Array:
    return sigma_data**2 / (sigma**2 + sigma_data**2)


def c_out(sigma: jax.Array, sigma_data: float) -> jax.Array:
    return sigma * sigma_data / jnp.sqrt(sigma**2 + sigma_data**2)


def c_in(sigma: jax.Array, sigma_data: float) -> jax.Array:
    return 1.0 / jnp.sqrt(sigma**2 + sigma_data**2)


def c_noise(sigma: jax.Array) -> jax.Array:
    return jnp.log(sigma) / 4.0


def loss_weight(sigma: jax.Array, sigma_data: float) -> jax.Array:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 = 1 / c_out^2."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def sample_training_sigmas(rng: jax.Array, num: int, p_mean: float, p_std: float) -> jax.Array:
    """ln(sigma) ~ N(P_mean, P_std^2): training concentrates on the noise levels where the loss can improve."""
    return jnp.exp(p_mean + p_std * jax.random.normal(rng, (num,)))
