"""Discrete variance-preserving noise schedules of DDPM (Ho et al. 2020) and improved DDPM (Nichol & Dhariwal 2021).

Index t = 0..T-1 is the noising step: alpha_bar[t] = prod_{i<=t} (1 - beta_i), and
x_t = sqrt(alpha_bar[t]) x_0 + sqrt(1 - alpha_bar[t]) eps. The same process in the variance-exploding coordinates
x_t / sqrt(alpha_bar[t]) = x_0 + sigma_t eps has sigma_t = sqrt((1 - alpha_bar[t]) / alpha_bar[t]), which is how
the samplers (written for x = x_0 + sigma n, as in EDM) use a DDPM model.
"""

import jax
import jax.numpy as jnp
import numpy as np

SCHEDULES = ("linear", "cosine")


def linear_betas(num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """DDPM's schedule: betas linear from beta_start to beta_end (1e-4 to 0.02 for T = 1000)."""
    return np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)


def cosine_betas(num_timesteps: int, offset: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Improved DDPM's schedule: alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2) / alpha_bar(0), betas clipped."""
    steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
    alpha_bar = np.cos((steps + offset) / (1 + offset) * np.pi / 2) ** 2
    return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)


def alpha_bars(betas: np.ndarray) -> np.ndarray:
    return np.cumprod(1.0 - betas)


def make_alpha_bars(name: str, num_timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
    """alpha_bar[0..T-1] of the schedule `name` (one of SCHEDULES)."""
    if name == "linear":
        return alpha_bars(linear_betas(num_timesteps, beta_start, beta_end))
    if name == "cosine":
        return alpha_bars(cosine_betas(num_timesteps))
    raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULES}")


def sigmas_from_alpha_bars(alpha_bar: np.ndarray) -> np.ndarray:
    """Noise level of each step in variance-exploding coordinates, increasing with t."""
    return np.sqrt((1.0 - alpha_bar) / alpha_bar)


def add_noise(x0: jax.Array, noise: jax.Array, alpha_bar_t: jax.Array) -> jax.Array:
    """Sample of q(x_t | x_0) given standard normal `noise`; `alpha_bar_t` has one value per example."""
    shape = (-1,) + (1,) * (x0.ndim - 1)
    alpha_bar_t = alpha_bar_t.reshape(shape)
    return jnp.sqrt(alpha_bar_t) * x0 + jnp.sqrt(1.0 - alpha_bar_t) * noise
