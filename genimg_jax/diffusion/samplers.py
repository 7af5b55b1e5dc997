"""Samplers over a denoiser D(x, sigma, labels) -> estimate of x_0, for x = x_0 + sigma n (EDM's formulation).

Every model is used through this one interface: an EDM network directly, a DDPM eps-network through
x_0 = x - sigma eps with its input rescaled to x / sqrt(1 + sigma^2) (see `schedules`). The samplers walk a
decreasing sequence of noise levels sigma_0 > ... > sigma_{N-1} > sigma_N = 0:

- `ddpm`: ancestral sampling with DDPM's reverse step (Ho et al. 2020, Alg. 2), written in the variance-preserving
  coordinates of the paper, with either of the paper's two step variances (`VARIANCES`): sigma_t^2 = beta_t
  ("beta", the reference code's `fixedlarge`, used for its CIFAR-10 FID) or the posterior variance beta-tilde_t
  ("beta_tilde", `fixedsmall`); the last step, to sigma = 0, adds no noise. On a subsequence of the training steps
  the betas are those of the respaced process (Nichol & Dhariwal 2021).
- `ddim`: DDIM (Song et al. 2021) with stochasticity eta; eta = 0 is deterministic, eta = 1 equals `ddpm`.
- `heun`: EDM's deterministic 2nd-order sampler (Karras et al. 2022, Alg. 1 without churn).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

SAMPLERS = ("ddpm", "ddim", "heun")
VARIANCES = ("beta", "beta_tilde")  # DDPM's reverse-step variance: fixedlarge, fixedsmall
RESPACINGS = ("linspace", "uniform")

Denoiser = Callable[[jax.Array, jax.Array, jax.Array | None], jax.Array]


def edm_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> jax.Array:
    """EDM's time discretisation (eq. 5): sigma_max to sigma_min evenly in sigma^(1/rho), then 0."""
    ramp = jnp.linspace(0.0, 1.0, steps)
    inverse_min, inverse_max = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (inverse_max + ramp * (inverse_min - inverse_max)) ** rho
    return jnp.append(sigmas, 0.0)


def schedule_sigmas(training_sigmas: np.ndarray, steps: int, respacing: str = "linspace") -> jax.Array:
    """`steps` of a discrete schedule's T noise levels from high to low, then 0.

    "linspace": t evenly spaced from T-1 down to 0 (rounded), so the walk starts at the last training step.
    "uniform": DDIM's t = 0, T/S, 2 T/S, ... (Song et al. 2021, `range(0, T, T // S)`), which starts below T-1;
    S must divide T (otherwise DDIM's range has more than S entries).
    """
    num_timesteps = len(training_sigmas)
    if respacing == "linspace":
        timesteps = np.round(np.linspace(num_timesteps - 1, 0, steps)).astype(int)
    elif respacing == "uniform":
        if num_timesteps % steps:
            raise ValueError(f"uniform respacing needs the {steps} steps to divide the {num_timesteps} timesteps")
        timesteps = np.arange(0, num_timesteps, num_timesteps // steps)[::-1]
    else:
        raise ValueError(f"unknown respacing {respacing!r}; choose one of {RESPACINGS}")
    return jnp.asarray(np.append(training_sigmas[timesteps], 0.0), jnp.float32)


def network_evaluations(sampler: str, steps: int, guided: bool = False) -> int:
    """Network evaluations (NFE) per sample; classifier-free guidance evaluates two predictions per call."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    calls = 2 * steps - 1 if sampler == "heun" else steps  # Heun's last step, to sigma = 0, is an Euler step
    return calls * (2 if guided else 1)


def initial_noise_scale(sigma_max: jax.Array, variance_preserving: bool) -> jax.Array:
    """The standard deviation of x at sigma_max: sqrt(1 + sigma^2) for a variance-preserving process, else sigma."""
    return jnp.sqrt(1.0 + sigma_max**2) if variance_preserving else sigma_max


def initial_noise(rng: jax.Array, shape: tuple[int, ...], sigma_max: jax.Array, variance_preserving: bool) -> jax.Array:
    """A draw of x at sigma_max: N(0, (1 + sigma^2) I) for a variance-preserving process, else N(0, sigma^2 I)."""
    return initial_noise_scale(sigma_max, variance_preserving) * jax.random.normal(rng, shape)


def ddim_step(
    x: jax.Array, denoised: jax.Array, sigma: jax.Array, sigma_next: jax.Array, eta: float, noise: jax.Array
) -> jax.Array:
    """DDIM's update divided by sqrt(alpha_bar_next): x' = D + sqrt(sigma'^2 - s^2) eps + s z.

    With s = eta sigma' sqrt(1 - sigma'^2 / sigma^2), this is Song et al.'s sigma_t(eta) in these coordinates.
    """
    eps = (x - denoised) / sigma
    stochastic = eta * sigma_next * jnp.sqrt(jnp.maximum(1.0 - sigma_next**2 / sigma**2, 0.0))
    return denoised + jnp.sqrt(jnp.maximum(sigma_next**2 - stochastic**2, 0.0)) * eps + stochastic * noise


def ddpm_step(
    x: jax.Array,
    denoised: jax.Array,
    sigma: jax.Array,
    sigma_next: jax.Array,
    noise: jax.Array,
    variance: str = "beta_tilde",
) -> jax.Array:
    """DDPM's x_{t-1} = (x_t - beta / sqrt(1 - alpha_bar) eps) / sqrt(alpha) + sigma_t z, in VP space, with
    sigma_t^2 = beta-tilde (`variance="beta_tilde"`) or beta (`"beta"`); no noise on the step to sigma_next = 0.

    alpha_bar = 1 / (1 + sigma^2); the one-minus terms are written in sigma to keep precision at small noise.
    """
    alpha_bar, alpha_bar_next = 1.0 / (1.0 + sigma**2), 1.0 / (1.0 + sigma_next**2)
    one_minus_alpha_bar = sigma**2 * alpha_bar
    beta = (sigma**2 - sigma_next**2) * alpha_bar  # 1 - alpha_bar / alpha_bar_next
    if variance == "beta_tilde":
        step_variance = beta * sigma_next**2 * alpha_bar_next / one_minus_alpha_bar
    elif variance == "beta":
        step_variance = jnp.where(sigma_next > 0, beta, 0.0)
    else:
        raise ValueError(f"unknown variance {variance!r}; choose one of {VARIANCES}")
    eps = (x - denoised) / sigma
    x_vp = x * jnp.sqrt(alpha_bar)
    mean = (x_vp - beta / jnp.sqrt(one_minus_alpha_bar) * eps) / jnp.sqrt(1.0 - beta)
    return (mean + jnp.sqrt(step_variance) * noise) / jnp.sqrt(alpha_bar_next)


def _first_order(step: Callable, denoise: Denoiser, x: jax.Array, sigmas: jax.Array, labels, rng) -> jax.Array:
    def body(i, x):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        noise = jax.random.normal(jax.random.fold_in(rng, i), x.shape)
        return step(x, denoise(x, sigma, labels), sigma, sigma_next, noise)

    return jax.lax.fori_loop(0, sigmas.shape[0] - 1, body, x)


def ddpm(
    denoise: Denoiser,
    x: jax.Array,
    sigmas: jax.Array,
    labels: jax.Array | None,
    rng: jax.Array,
    variance: str = "beta_tilde",
) -> jax.Array:
    def step(x, denoised, sigma, sigma_next, noise):
        return ddpm_step(x, denoised, sigma, sigma_next, noise, variance)

    return _first_order(step, denoise, x, sigmas, labels, rng)


def ddim(
    denoise: Denoiser, x: jax.Array, sigmas: jax.Array, labels: jax.Array | None, rng: jax.Array, eta: float = 0.0
) -> jax.Array:
    def step(x, denoised, sigma, sigma_next, noise):
        return ddim_step(x, denoised, sigma, sigma_next, eta, noise)

    return _first_order(step, denoise, x, sigmas, labels, rng)


def heun(denoise: Denoiser, x: jax.Array, sigmas: jax.Array, labels: jax.Array | None) -> jax.Array:
    """Heun steps on the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma; a last Euler step to 0."""

    def body(i, x):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        slope = (x - denoise(x, sigma, labels)) / sigma
        euler = x + (sigma_next - sigma) * slope
        slope_next = (euler - denoise(euler, sigma_next, labels)) / sigma_next
        return x + (sigma_next - sigma) * 0.5 * (slope + slope_next)

    last = sigmas.shape[0] - 2
    x = jax.lax.fori_loop(0, last, body, x)
    return denoise(x, sigmas[last], labels)


def run(
    sampler: str,
    denoise: Denoiser,
    x: jax.Array,
    sigmas: jax.Array,
    labels: jax.Array | None,
    rng: jax.Array,
    eta: float = 0.0,
    variance: str = "beta_tilde",
) -> jax.Array:
    """Sampler `sampler` (one of SAMPLERS) from x at sigmas[0] down to sigmas[-1] = 0; `eta` is DDIM's, `variance`
    DDPM's (one of VARIANCES)."""
    if sampler == "ddpm":
        return ddpm(denoise, x, sigmas, labels, rng, variance)
    if sampler == "ddim":
        return ddim(denoise, x, sigmas, labels, rng, eta)
    if sampler == "heun":
        return heun(denoise, x, sigmas, labels)
    raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
