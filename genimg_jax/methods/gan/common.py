"""What both GAN methods (the compare_gan-style GAN and StyleGAN2) share: lazy regularisation's control flow
and StyleGAN2-ADA's EMA ramp-up."""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def when_due(due: jax.Array, interval: int, regularize: Callable[..., Any], skip: Callable[..., Any], *operands):
    """`regularize(*operands)` on steps where `due`, else `skip(*operands)`: lazy regularisation every `interval`.

    Interval 1 calls `regularize` with no conditional. Otherwise a `lax.cond`, so that other steps pay nothing,
    except on the CPU backend: XLA:CPU runs backward convolutions inside a conditional about 30x slower than
    outside (jax-ml/jax#12868), so there the regulariser runs on every step and its result is selected.
    """
    if interval == 1:
        return regularize(*operands)
    if jax.default_backend() != "cpu":
        return jax.lax.cond(due, regularize, skip, *operands)
    done, skipped = regularize(*operands), skip(*operands)
    return jax.tree.map(lambda a, b: jnp.where(due, a, b), done, skipped)


def rampup_ema_decay(step: jax.Array, batch_size: int, decay: float, rampup: float) -> jax.Array:
    """EMA decay with StyleGAN2-ADA's ramp-up: the half-life in images, batch * log(1/2) / log(decay) at full
    speed, is capped at `rampup` times the number of images seen so far, so early averages forget the
    initialisation quickly."""
    half_life = batch_size * math.log(0.5) / math.log(decay)
    seen = step.astype(jnp.float32) * batch_size
    return 0.5 ** (batch_size / jnp.maximum(jnp.minimum(half_life, seen * rampup), 1e-8))
