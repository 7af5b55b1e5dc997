"""Gradient penalties on a critic's input gradients (compare_gan's "penalty" axis).

`critic_fn` maps a batch of images to logits of shape (batch,). Penalties are plain means over the batch;
callers apply the weight (gamma / 2 for R1/R2, lambda for WGAN-GP) and, for lazy regularisation, the interval.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

CriticFn = Callable[[jax.Array], jax.Array]


def _input_gradients(critic_fn: CriticFn, images: jax.Array) -> jax.Array:
    """d critic(x_i) / d x_i for every example: the gradient of the summed logits, as examples are independent."""
    return jax.grad(lambda x: jnp.sum(critic_fn(x).astype(jnp.float32)))(images)


def _squared_norms(gradients: jax.Array) -> jax.Array:
    return jnp.sum(jnp.square(gradients.astype(jnp.float32)).reshape(gradients.shape[0], -1), axis=-1)


def wgan_gradient_penalty(
    critic_fn: CriticFn, real: jax.Array, fake: jax.Array, rng: jax.Array, target: float = 1.0
) -> jax.Array:
    """WGAN-GP (Gulrajani et al. 2017): mean (||grad critic(x_hat)|| - target)^2 on random real/fake interpolates.

    x_hat = real + alpha (fake - real), alpha ~ U[0, 1] per example. A tiny epsilon under the square root keeps the
    gradient of the penalty finite where the critic's input gradient vanishes.
    """
    alpha = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
    interpolates = real + alpha * (fake - real)
    norms = jnp.sqrt(_squared_norms(_input_gradients(critic_fn, interpolates)) + 1e-12)
    return jnp.mean(jnp.square(norms - target))


def gradient_norm_penalty(critic_fn: CriticFn, images: jax.Array) -> jax.Array:
    """Zero-centred penalty mean ||grad critic(x)||^2 (Mescheder et al. 2018): R1 on real images, R2 on fakes."""
    return jnp.mean(_squared_norms(_input_gradients(critic_fn, images)))
