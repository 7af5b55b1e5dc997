"""Paths through latent spaces: spherical and linear interpolation, and walks through a sequence of keyframes.

Pure array math, shared by the VAE's interpolation pictures and the latent-walk videos of GANs and diffusion.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

Interpolation = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]

_PARALLEL_ANGLE = 1e-4  # below this angle (radians) slerp falls back to the straight line


def slerp(start: jax.Array, end: jax.Array, fractions: jax.Array) -> jax.Array:
    """Spherical interpolation from `start` to `end` (arrays of one shape, read as flat vectors) at each of
    `fractions`; shape (len(fractions), *start.shape).

    Shoemake's formula on the raw vectors, as White (2016) proposes for latent spaces: under a Gaussian prior the
    path keeps a typical norm where a straight line would pass near the (atypical) origin. Written with the weights
    sin((1 - t) angle) / sin(angle) and sin(t angle) / sin(angle), which are exactly 1 and 0 at the ends, so t = 0 and
    t = 1 give `start` and `end` bit for bit. Linear for (nearly) parallel vectors.
    """
    a, b = jnp.ravel(start), jnp.ravel(end)
    cosine = jnp.dot(a, b) / jnp.maximum(jnp.linalg.norm(a) * jnp.linalg.norm(b), 1e-12)
    angle = jnp.arccos(jnp.clip(cosine, -1.0, 1.0))
    spherical = angle > _PARALLEL_ANGLE
    safe_sine = jnp.where(spherical, jnp.sin(angle), 1.0)
    t = jnp.asarray(fractions, a.dtype)[:, None]
    start_weight = jnp.where(spherical, jnp.sin((1.0 - t) * angle) / safe_sine, 1.0 - t)
    end_weight = jnp.where(spherical, jnp.sin(t * angle) / safe_sine, t)
    return (start_weight * a + end_weight * b).reshape(-1, *jnp.shape(start))


def lerp(start: jax.Array, end: jax.Array, fractions: jax.Array) -> jax.Array:
    """Linear interpolation, shape (len(fractions), *start.shape); exact at t = 0 and t = 1. The path to use in
    StyleGAN's w space, which the mapping network does not make Gaussian."""
    t = jnp.asarray(fractions, jnp.result_type(start)).reshape(-1, *([1] * jnp.ndim(start)))
    return (1.0 - t) * start + t * end


def keyframe_walk(keyframes: jax.Array, frames: int, interpolate: Interpolation = slerp) -> jax.Array:
    """`frames` points (frames >= 2) evenly spaced along the path through `keyframes` (K >= 2, first axis), each
    segment drawn by `interpolate`: frame j sits at position j (K - 1) / (frames - 1), so the first frame is keyframe
    0 and the last is keyframe K - 1, exactly (linspace ends exactly at K - 1, a fraction of 1 of the last segment)."""
    count = keyframes.shape[0]
    if count < 2 or frames < 2:
        raise ValueError(f"a walk needs at least 2 keyframes and 2 frames, got {count} and {frames}")
    positions = jnp.linspace(0.0, count - 1.0, frames)
    segments = jnp.minimum(jnp.floor(positions).astype(jnp.int32), count - 2)
    fractions = positions - segments
    return jax.vmap(lambda s, t: interpolate(keyframes[s], keyframes[s + 1], t[None])[0])(segments, fractions)
