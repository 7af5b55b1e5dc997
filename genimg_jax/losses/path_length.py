"""Path-length regularisation (Karras et al., CVPR 2020, section 3.2).

For each sample, the length of J_w^T y, with J_w the Jacobian of the synthesis network at w and y a random
image-space direction, is pushed towards its running mean a: E_w,y (||J_w^T y|| - a)^2. This favours a generator
whose fixed-size steps in W change the image by a fixed amount, whatever the direction.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp


def path_length_noise(rng: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The random image-space direction y ~ N(0, I) / sqrt(H W), which makes lengths independent of resolution."""
    return jax.random.normal(rng, shape) / jnp.sqrt(shape[1] * shape[2])


def path_lengths(synthesis_fn: Callable[[jax.Array], jax.Array], ws: jax.Array, noise: jax.Array) -> jax.Array:
    """Per-sample ||J^T y||, with the squared norm summed over w's dimensions and averaged over its layers.

    `ws` is (N, num_ws, w_dim); `noise` is image-shaped. Samples are independent, so the gradient of
    sum_i <synthesis(ws)_i, y_i> with respect to ws holds every J_i^T y_i at once. Differentiable in the
    parameters `synthesis_fn` closes over (double backpropagation).
    """
    gradients = jax.grad(lambda w: jnp.sum(synthesis_fn(w).astype(jnp.float32) * noise))(ws)
    return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(gradients), axis=2), axis=1))


def path_length_penalty(lengths: jax.Array, pl_mean: jax.Array, decay: float) -> tuple[jax.Array, jax.Array]:
    """(mean (length - a)^2, the updated running mean a), with a moved towards the batch mean by `decay` first."""
    new_mean = pl_mean + decay * (jnp.mean(jax.lax.stop_gradient(lengths)) - pl_mean)
    return jnp.mean(jnp.square(lengths - new_mean)), new_mean
