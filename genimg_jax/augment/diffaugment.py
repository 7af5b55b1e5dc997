"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The same random, differentiable transforms are applied to every image D sees, real or generated, in both the
D and the G step; the policy is a comma-separated list of "color", "translation" and "cutout", as in the paper.
"""

import jax

from genimg_jax.augment import ops

TRANSLATION_RATIO = 0.125  # shifts up to 1/8 of the image size
CUTOUT_RATIO = 0.5  # a square hole of half the image size


def _color(rng: jax.Array, images: jax.Array) -> jax.Array:
    brightness, saturation, contrast = jax.random.uniform(rng, (3, images.shape[0]))
    images = ops.adjust_brightness(images, brightness - 0.5)
    images = ops.adjust_saturation(images, saturation * 2.0)
    return ops.adjust_contrast(images, contrast + 0.5)


def _translation(rng: jax.Array, images: jax.Array) -> jax.Array:
    height, width = images.shape[1:3]
    y_rng, x_rng = jax.random.split(rng)
    max_y, max_x = int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5)
    shift_y = jax.random.randint(y_rng, (images.shape[0],), -max_y, max_y + 1)
    shift_x = jax.random.randint(x_rng, (images.shape[0],), -max_x, max_x + 1)
    return ops.translate(images, shift_y, shift_x)


def _cutout(rng: jax.Array, images: jax.Array) -> jax.Array:
    height, width = images.shape[1:3]
    y_rng, x_rng = jax.random.split(rng)
    size = int(height * CUTOUT_RATIO + 0.5)
    center_y = jax.random.randint(y_rng, (images.shape[0],), 0, height + (1 - height % 2))
    center_x = jax.random.randint(x_rng, (images.shape[0],), 0, width + (1 - width % 2))
    return ops.cutout(images, center_y, center_x, size)


POLICY_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def parse_policy(policy: str) -> tuple[str, ...]:
    """The op names of a policy string like "color,translation,cutout"; raises ValueError on unknown names."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in POLICY_OPS]
    if unknown:
        raise ValueError(f"unknown DiffAugment op(s) {unknown} in policy {policy!r}; choose from {sorted(POLICY_OPS)}")
    return names


def diff_augment(rng: jax.Array, images: jax.Array, policy: str = "color,translation,cutout") -> jax.Array:
    """Apply the policy's ops in order, each with fresh per-image randomness."""
    names = parse_policy(policy)
    for name, op_rng in zip(names, jax.random.split(rng, len(names)), strict=True):
        images = POLICY_OPS[name](op_rng, images)
    return images
