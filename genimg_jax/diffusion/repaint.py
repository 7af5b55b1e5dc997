"""RePaint (Lugmayr et al. 2022): inpainting with an unconditional diffusion model, no retraining.

Each reverse step from noise level t to t-1 takes the known pixels from the forward process q(x_{t-1} | x_0)
and the missing ones from the model's ancestral step, joined by the mask. Alone this leaves the two regions
unharmonised (the model never sees the known content except through the noise-level-t input), so the walk
jumps back up: after every `jump_length` steps down it re-noises x_{t-1} -> x_{t-1+j} with q(x_{t+j-1} | x_{t-1})
and walks down again, `resamplings - 1` times per jump point, giving the model repeated chances to make the
missing region agree with the known one.

The walk is over the indices 0..S-1 of a sampler's decreasing noise levels sigma (written, as in `samplers`, for
x = x_0 + sigma n): index s has noise level sigmas[S-1-s], and the final step from s = 0 goes to sigma = 0. In these
coordinates the forward step between levels is x -> x + sqrt(sigma_hi^2 - sigma_lo^2) z, whatever the number of
training steps between them, so respaced schedules work unchanged.
"""

import jax
import jax.numpy as jnp
import numpy as np

from genimg_jax.diffusion import samplers


def jump_schedule(num_steps: int, jump_length: int, resamplings: int) -> np.ndarray:
    """The step indices RePaint visits: from num_steps-1 down to 0, jumping `jump_length` back up at every
    multiple of `jump_length` below num_steps - jump_length, `resamplings - 1` times each (the paper's schedule).

    A jump point is revisited on the way down after each jump; points above it were used up first, so every jump
    is exactly `jump_length` steps up and then `jump_length` down. `resamplings = 1` is the plain walk.
    """
    if num_steps < 1 or jump_length < 1 or resamplings < 1:
        raise ValueError(
            f"need positive num_steps, jump_length, resamplings; got {num_steps, jump_length, resamplings}"
        )
    jumps_left = {point: resamplings - 1 for point in range(0, num_steps - jump_length, jump_length)}
    t, visited = num_steps - 1, [num_steps - 1]
    while t > 0 or jumps_left.get(t, 0) > 0:
        if jumps_left.get(t, 0) > 0:
            jumps_left[t] -= 1
            visited.extend(range(t + 1, t + jump_length + 1))
            t += jump_length
        t -= 1
        visited.append(t)
    return np.asarray(visited, np.int32)


def renoise(x: jax.Array, sigma: jax.Array, sigma_up: jax.Array, noise: jax.Array) -> jax.Array:
    """A draw of q(x_up | x): the forward process from noise level sigma up to sigma_up."""
    return x + jnp.sqrt(sigma_up**2 - sigma**2) * noise


def inpaint(
    denoise: samplers.Denoiser,
    x: jax.Array,
    known: jax.Array,
    mask: jax.Array,
    sigmas: jax.Array,
    schedule: np.ndarray,
    labels: jax.Array | None,
    rng: jax.Array,
    variance: str = "beta_tilde",
) -> jax.Array:
    """RePaint from x at sigmas[0] (the noise level of schedule[0] = S-1) along `schedule` (`jump_schedule(S, ...)`)
    with DDPM's ancestral step; `mask` (broadcastable to x) is 1 where `known` holds the data, 0 where missing.

    Returns x_0: equal to `known` where the mask is 1 (the last step's forward draw has zero noise there).
    """
    num_steps = sigmas.shape[0] - 1
    indices = np.append(schedule, -1)  # -1: the data, at sigma = 0
    levels = jnp.asarray(num_steps - 1 - indices, jnp.int32)  # position of each visited index in `sigmas`
    mask = mask.astype(x.dtype)

    def body(i, x):
        sigma, sigma_next = sigmas[levels[i]], sigmas[levels[i + 1]]
        step_rng = jax.random.fold_in(rng, i)
        known_rng, model_rng = jax.random.split(step_rng)

        def down(x):
            known_next = known + sigma_next * jax.random.normal(known_rng, x.shape)
            noise = jax.random.normal(model_rng, x.shape)
            unknown_next = samplers.ddpm_step(x, denoise(x, sigma, labels), sigma, sigma_next, noise, variance)
            return mask * known_next + (1.0 - mask) * unknown_next

        def up(x):
            return renoise(x, sigma, sigma_next, jax.random.normal(step_rng, x.shape))

        return jax.lax.cond(sigma_next < sigma, down, up, x)

    return jax.lax.fori_loop(0, len(indices) - 1, body, x)
