"""Classifier-free guidance (Ho & Salimans 2021).

Convention: D_w = (1 + w) D(x | c) - w D(x | null), so w = 0 is the plain conditional model and w > 0
extrapolates away from the unconditional prediction. Combining denoised images is the same as combining noise
predictions, because eps = (x - D) / sigma is affine in D with the same x and sigma for both terms.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Denoiser = Callable[[jax.Array, jax.Array, Any], jax.Array]


def combine(conditional: jax.Array, unconditional: jax.Array, scale: float) -> jax.Array:
    return (1.0 + scale) * conditional - scale * unconditional


def guided_by(denoise: Denoiser, scale: float, null_labels: Callable[[Any], Any]) -> Denoiser:
    """A denoiser applying guidance of `scale`, the unconditional branch given `null_labels(labels)`; labels may be
    any pytree of per-example arrays (a caption's tokens and mask). Both predictions come from one batched call."""

    def guided_denoise(x: jax.Array, sigma: jax.Array, labels: Any) -> jax.Array:
        both_labels = jax.tree.map(lambda c, u: jnp.concatenate([c, u]), labels, null_labels(labels))
        conditional, unconditional = jnp.split(denoise(jnp.concatenate([x, x]), sigma, both_labels), 2)
        return combine(conditional, unconditional, scale)

    return guided_denoise


def guided(denoise: Denoiser, scale: float, null_label: int) -> Denoiser:
    """Guidance of a class-conditional denoiser, whose unconditional branch is the null class `null_label`."""
    return guided_by(denoise, scale, lambda labels: jnp.full_like(labels, null_label))
