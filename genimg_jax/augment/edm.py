"""EDM's non-leaky augmentation (Karras et al. 2022, appendix; NVlabs/edm `--augment`), with its augment labels.

The training images are augmented before noising, and the network is told what was done through a 9-dim label,
so it learns the augmented distributions as separate conditional ones and, given zero labels at sampling,
generates un-augmented images. The pipe is EDM's `train.py` one: x-flip (multiplier 1e8, so every image is
flipped with probability 1/2 as soon as p > 0), y-flip, isotropic scaling, arbitrary rotation, anisotropic scaling
(in a randomly rotated frame half the time) and fractional translation, each applied with probability p. The flips
are exact pixel blits; the rest compose into one inverse affine applied once (`geometric`).

Labels, in order: x-flip, y-flip (0 or 1); scale (the normal draw w, scale 2^(0.2 w)); rotation (cos - 1, sin);
aniso (w cos r, w sin r, for the normal draw w and frame angle r); translation (the two normal draws).
"""

import jax
import jax.numpy as jnp
import numpy as np

from genimg_jax.augment import geometric, ops

AUGMENT_DIM = 9
XFLIP_MULTIPLIER = 1e8
SCALE_LOG2_STD = 0.2
ROTATE_MAX = 1.0  # uniform over the full circle
ANISO_LOG2_STD = 0.2
ANISO_ROTATE_PROB = 0.5  # probability of scaling in a rotated frame, independent of p
TRANSLATE_STD = 0.125  # relative to the image size


def _gated(rng: jax.Array, probability: jax.Array, value: jax.Array) -> jax.Array:
    """`value` (leading axis batch) where the op applies to the image, 0 elsewhere."""
    applied = jax.random.uniform(rng, (value.shape[0],)) < probability
    return jnp.where(applied.reshape(-1, *([1] * (value.ndim - 1))), value, 0.0)


def edm_augment(rng: jax.Array, images: jax.Array, p: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(augmented NHWC images, augment labels of shape (batch, 9)); p = 0 gives the images and zero labels."""
    batch, height, width = images.shape[:3]
    keys = iter(jax.random.split(rng, 14))

    def coin() -> jax.Array:
        return jax.random.bernoulli(next(keys), 0.5, (batch,)).astype(jnp.float32)

    def normal(*shape: int) -> jax.Array:
        return jax.random.normal(next(keys), (batch, *shape))

    def angle() -> jax.Array:
        return jax.random.uniform(next(keys), (batch,), minval=-1, maxval=1) * np.pi

    xflip = _gated(next(keys), XFLIP_MULTIPLIER * p, coin())
    yflip = _gated(next(keys), p, coin())
    images = ops.flip_y(ops.flip_x(images, xflip > 0), yflip > 0)

    scale_draw = _gated(next(keys), p, normal())
    scale = jnp.exp2(scale_draw * SCALE_LOG2_STD)
    rotation = _gated(next(keys), p, angle() * ROTATE_MAX)
    aniso_draw = _gated(next(keys), p, normal())
    # The frame is rotated only where aniso applies, so that untouched images keep an exact identity matrix.
    frame = jnp.where(aniso_draw != 0, _gated(next(keys), ANISO_ROTATE_PROB, angle()), 0.0)
    aniso = jnp.exp2(aniso_draw * ANISO_LOG2_STD)
    shift = _gated(next(keys), p, normal(2))

    g_inv = geometric.scale2d(1 / scale, 1 / scale)
    g_inv = geometric.compose(g_inv, geometric.rotate2d(rotation))
    aniso_in_frame = geometric.compose(geometric.rotate2d(-frame), geometric.scale2d(1 / aniso, aniso))
    g_inv = geometric.compose(g_inv, geometric.compose(aniso_in_frame, geometric.rotate2d(frame)))
    g_inv = geometric.compose(
        g_inv, geometric.translate2d(-shift[:, 0] * width * TRANSLATE_STD, -shift[:, 1] * height * TRANSLATE_STD)
    )
    images = geometric.apply_affine(images, g_inv)

    labels = [
        xflip,
        yflip,
        scale_draw,
        jnp.cos(rotation) - 1,
        jnp.sin(rotation),
        aniso_draw * jnp.cos(frame),
        aniso_draw * jnp.sin(frame),
        shift[:, 0],
        shift[:, 1],
    ]
    return images, jnp.stack(labels, axis=1).astype(jnp.float32)
