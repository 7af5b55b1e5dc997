"""Adaptive discriminator augmentation (Karras et al. 2020, "Training GANs with Limited Data").

Each enabled op is applied to each image independently with probability p, so at p < 0.8 or so the generator
cannot learn the augmentations ("non-leaking"). p adapts to the overfitting heuristic r_t = E[sign(D(real))]:
every `interval` D steps p moves up when r_t exceeds the target and down otherwise, fast enough to go from 0 to 1
in `adjust_kimg` thousand real images. p lives in the train state, so it is checkpointed with everything else.
"""

from collections.abc import Callable

import flax
import jax
import jax.numpy as jnp

from genimg_jax.augment import ops

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5
BRIGHTNESS_STD = 0.2
CONTRAST_LOG2_STD = 0.5
SATURATION_LOG2_STD = 1.0


def _xflip(rng: jax.Array, images: jax.Array) -> jax.Array:
    return ops.flip_x(images, jax.random.bernoulli(rng, 0.5, (images.shape[0],)))


def _rotate90(rng: jax.Array, images: jax.Array) -> jax.Array:
    return ops.rotate90(images, jax.random.randint(rng, (images.shape[0],), 0, 4))


def _translation(rng: jax.Array, images: jax.Array) -> jax.Array:
    height, width = images.shape[1:3]
    fractions = jax.random.uniform(rng, (2, images.shape[0]), minval=-TRANSLATION_RATIO, maxval=TRANSLATION_RATIO)
    shift_y = jnp.round(fractions[0] * height).astype(jnp.int32)
    shift_x = jnp.round(fractions[1] * width).astype(jnp.int32)
    return ops.translate(images, shift_y, shift_x, mode="reflect")


def _brightness(rng: jax.Array, images: jax.Array) -> jax.Array:
    return ops.adjust_brightness(images, BRIGHTNESS_STD * jax.random.normal(rng, (images.shape[0],)))


def _contrast(rng: jax.Array, images: jax.Array) -> jax.Array:
    return ops.adjust_contrast(images, jnp.exp2(CONTRAST_LOG2_STD * jax.random.normal(rng, (images.shape[0],))))


def _saturation(rng: jax.Array, images: jax.Array) -> jax.Array:
    return ops.adjust_saturation(images, jnp.exp2(SATURATION_LOG2_STD * jax.random.normal(rng, (images.shape[0],))))


def _cutout(rng: jax.Array, images: jax.Array) -> jax.Array:
    height, width = images.shape[1:3]
    y_rng, x_rng = jax.random.split(rng)
    center_y = jax.random.randint(y_rng, (images.shape[0],), 0, height)
    center_x = jax.random.randint(x_rng, (images.shape[0],), 0, width)
    return ops.cutout(images, center_y, center_x, int(height * CUTOUT_RATIO + 0.5))


ADA_OPS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "xflip": _xflip,
    "rotate90": _rotate90,
    "translation": _translation,
    "brightness": _brightness,
    "contrast": _contrast,
    "saturation": _saturation,
    "cutout": _cutout,
}
DEFAULT_ADA_OPS = ("xflip", "translation", "brightness", "contrast", "saturation", "cutout")


def ada_augment(
    rng: jax.Array, images: jax.Array, p: jax.Array, enabled: tuple[str, ...] = DEFAULT_ADA_OPS
) -> jax.Array:
    """Apply each op in `enabled`, in order, to each image with probability `p`; p = 0 returns `images` exactly."""
    unknown = [name for name in enabled if name not in ADA_OPS]
    if unknown:
        raise ValueError(f"unknown ADA op(s) {unknown}; choose from {sorted(ADA_OPS)}")
    for name, op_rng in zip(enabled, jax.random.split(rng, len(enabled)), strict=True):
        gate_rng, param_rng = jax.random.split(op_rng)
        applied = jax.random.uniform(gate_rng, (images.shape[0], 1, 1, 1)) < p
        images = jnp.where(applied, ADA_OPS[name](param_rng, images), images)
    return images


@flax.struct.dataclass
class AdaState:
    """Augmentation probability and the running sums of sign(D(real)) since its last adjustment."""

    p: jax.Array
    sign_sum: jax.Array
    num_logits: jax.Array
    num_steps: jax.Array


def init_ada_state(p: float = 0.0) -> AdaState:
    return AdaState(
        p=jnp.float32(p),
        sign_sum=jnp.zeros((), jnp.float32),
        num_logits=jnp.zeros((), jnp.float32),
        num_steps=jnp.zeros((), jnp.int32),
    )


def ada_update(
    p: jax.Array, rt_estimate: jax.Array, *, target: float, batch_size: int, adjust_kimg: float, interval: int
) -> jax.Array:
    """One adjustment: p += sign(r_t - target) * batch_size * interval / (adjust_kimg * 1000), clipped to [0, 1]."""
    step = batch_size * interval / (adjust_kimg * 1000.0)
    return jnp.clip(p + jnp.sign(rt_estimate - target) * step, 0.0, 1.0)


def ada_observe(
    state: AdaState, real_logits: jax.Array, *, target: float = 0.6, adjust_kimg: float = 500.0, interval: int = 4
) -> AdaState:
    """Accumulate sign(D(real)) of one D step; every `interval` steps adjust p from their mean and reset the sums."""
    sign_sum = state.sign_sum + jnp.sum(jnp.sign(real_logits.astype(jnp.float32)))
    num_logits = state.num_logits + real_logits.size
    num_steps = state.num_steps + 1
    due = num_steps >= interval
    new_p = ada_update(
        state.p,
        sign_sum / jnp.maximum(num_logits, 1.0),
        target=target,
        batch_size=real_logits.shape[0],
        adjust_kimg=adjust_kimg,
        interval=interval,
    )
    return AdaState(
        p=jnp.where(due, new_p, state.p),
        sign_sum=jnp.where(due, 0.0, sign_sum),
        num_logits=jnp.where(due, 0.0, num_logits),
        num_steps=jnp.where(due, 0, num_steps),
    )
