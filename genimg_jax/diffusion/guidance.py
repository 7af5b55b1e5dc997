"""Classifier-free guidance (Ho & Salimans 2021).

Convention: D_w = (1 + w) D(x | c) - w D(x | null), so w = 0 is the plain conditional model and w > 0
extrapolates away from the unconditional prediction. Combining denoised images is the same as combining noise
predictions, because eps = (x - D) / sigma is affine in D with the same x and sigma for both terms.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

Denoiser = Callable[[jax.Array, jax.Array, jax.Array | None], jax.Array]


def combine(conditional: jax.Array, unconditional: jax.Array, scale: float) -> jax.Array:
    return (1.0 + scale) * conditional - scale * unconditional


def guided(denoise: Denoiser, scale: float, null_label: int) -> Denoiser:
    """A denoiser applying guidance of `scale`; both predictions come from one batched network call."""

    def guided_denoise(x: jax.Array, sigma: jax.Array, labels: jax.Array) -> jax.Array:
        both = denoise(jnp.concatenate([x, x]), sigma, jnp.concatenate([labels, jnp.full_like(labels, null_label)]))
        conditional, unconditional = jnp.split(both, 2)
        return combine(conditional, unconditional, scale)

    return guided_denoise
