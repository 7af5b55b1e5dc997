"""Adaptive discriminator augmentation (Karras et al. 2020, "Training GANs with Limited Data").

The pipeline is stylegan2-ada-pytorch's AugmentPipe: each enabled op is applied to each image independently with
probability p (all probability multipliers 1, as in its augpipes), so at p < 0.8 or so the generator cannot learn
the augmentations ("non-leaking"). The geometric ops (xflip, rotate90, xint, scale, rotate, aniso, xfrac) compose
into one inverse affine per image, applied once with reflect padding and wavelet resampling (`geometric`); the
colour ops (brightness, contrast, lumaflip, hue, saturation) into one 4x4 colour matrix (`colour`); cutout, which
no default pipe uses, comes last. Ops run in the reference's order whatever the order of `enabled`, and each has
its own draws, so enabling one op does not change another's.
p itself is adapted by `ada_controller`.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from genimg_jax.augment import colour, geometric, ops

XINT_MAX = 0.125  # integer translation: uniform in +-1/8 of the image size
SCALE_LOG2_STD = 0.2
ROTATE_MAX = 1.0  # arbitrary rotation: uniform over the full circle
ANISO_LOG2_STD = 0.2
XFRAC_STD = 0.125  # fractional translation: normal, std 1/8 of the image size
BRIGHTNESS_STD = 0.2
CONTRAST_LOG2_STD = 0.5
HUE_MAX = 1.0  # hue rotation: uniform over the full circle
SATURATION_LOG2_STD = 1.0
CUTOUT_RATIO = 0.5

Shape = tuple[int, int, int, int]


class Draws(NamedTuple):
    """One stage's randomness per image: `uniform[:, 0]` decides whether it applies, the rest parameterise it."""

    uniform: jax.Array  # (batch, 3) in [0, 1)
    normal: jax.Array  # (batch, 2)


Stage = Callable[[Draws, jax.Array, Shape], jax.Array]  # (draws, p, NHWC shape) -> per-image matrices


def _gated(draws: Draws, probability: jax.Array, value: jax.Array, identity: float) -> jax.Array:
    """`value` (leading axis batch) where the op applies to the image, `identity` elsewhere."""
    applied = (draws.uniform[:, 0] < probability).reshape(-1, *([1] * (value.ndim - 1)))
    return jnp.where(applied, value, identity)


def rotation_probability(p: jax.Array) -> jax.Array:
    """Probability of each of the two arbitrary rotations (before and after aniso), so that either happens with p."""
    return 1 - jnp.sqrt(jnp.clip(1 - p, 0.0, 1.0))


def _symmetric(draws: Draws, maximum: float) -> jax.Array:
    """Uniform in [-maximum, maximum)."""
    return (draws.uniform[:, 1] * 2 - 1) * maximum


def _xflip(draws: Draws, p: jax.Array, shape: Shape) -> jax.Array:
    flip = _gated(draws, p, jnp.floor(draws.uniform[:, 1] * 2), 0.0)
    return geometric.scale2d(1 - 2 * flip, jnp.ones_like(flip))


def _rotate90(draws: Draws, p: jax.Array, shape: Shape) -> jax.Array:
    return geometric.rotate2d(np.pi / 2 * _gated(draws, p, jnp.floor(draws.uniform[:, 1] * 4), 0.0))


def _xint(draws: Draws, p: jax.Array, shape: Shape) -> jax.Array:
    shift = _gated(draws, p, (draws.uniform[:, 1:] * 2 - 1) * XINT_MAX, 0.0)
    return geometric.translate2d(-jnp.round(shift[:, 0] * shape[2]), -jnp.round(shift[:, 1] * shape[1]))


def _scale(draws: Draws, p: jax.Array, shape: Shape) -> jax.Array:
    factor = _gated(draws, p, jnp.exp2(draws.normal[:, 0] * SCALE_LOG2_STD), 1.0)
    return geometric.scale2d(1 / factor, 1 / factor)


def _rotate(draws: Draws, p: jax.Array, shape: Shape) -> jax.Array:
    return geometric.rotate2d(_gated(draws, rotation_probability(p), _symmetric(draws, np.pi * ROTATE_MAX), 0.0))


def _aniso(draws: Draws, p: jax.Array, shape: Shape) -> jax.Array:
    factor = _gated(draws, p, jnp.exp2(draws.normal[:, 0] * ANISO_LOG2_STD), 1.0)
    return geometric.scale2d(1 / factor, factor)


def _xfrac(draws: Draws, p: jax.Array, shape: Shape) -> jax.Array:
    shift = _gated(draws, p, draws.normal * XFRAC_STD, 0.0)
    return geometric.translate2d(-shift[:, 0] * shape[2], -shift[:, 1] * shape[1])


def _brightness(draws: Draws, p: jax.Array, shape: Shape) -> jax.Array:
    return colour.brightness(_gated(draws, p, draws.normal[:, 0] * BRIGHTNESS_STD, 0.0))


def _contrast(draws: Draws, p: jax.Array, shape: Shape) -> jax.Array:
    return colour.contrast(_gated(draws, p, jnp.exp2(draws.normal[:, 0] * CONTRAST_LOG2_STD), 1.0))


def _lumaflip(draws: Draws, p: jax.Array, shape: Shape) -> jax.Array:
    return colour.lumaflip(_gated(draws, p, jnp.floor(draws.uniform[:, 1] * 2), 0.0))


def _hue(draws: Draws, p: jax.Array, shape: Shape) -> jax.Array:
    return colour.hue(_gated(draws, p, _symmetric(draws, np.pi * HUE_MAX), 0.0))


def _saturation(draws: Draws, p: jax.Array, shape: Shape) -> jax.Array:
    return colour.saturation(_gated(draws, p, jnp.exp2(draws.normal[:, 0] * SATURATION_LOG2_STD), 1.0))


# The reference's order. Each stage's inverse matrix is right-multiplied onto the geometric product (an arbitrary
# rotation both before and after aniso); each colour matrix is left-multiplied onto the colour product.
GEOMETRIC_STAGES: tuple[tuple[str, Stage], ...] = (
    ("xflip", _xflip),
    ("rotate90", _rotate90),
    ("xint", _xint),
    ("scale", _scale),
    ("rotate", _rotate),
    ("aniso", _aniso),
    ("rotate", _rotate),
    ("xfrac", _xfrac),
)
COLOUR_STAGES: tuple[tuple[str, Stage], ...] = (
    ("brightness", _brightness),
    ("contrast", _contrast),
    ("lumaflip", _lumaflip),
    ("hue", _hue),
    ("saturation", _saturation),
)
CHROMA_OPS = ("hue", "saturation")  # no-ops on grey images, skipped there as in the reference
ADA_OPS = (*dict.fromkeys(name for name, _ in GEOMETRIC_STAGES), *(name for name, _ in COLOUR_STAGES), "cutout")

# stylegan2-ada-pytorch's `--augpipe` names; "filter" and "noise" (and the pipes that include them) are not here.
_BLIT = ("xflip", "rotate90", "xint")
_GEOM = ("scale", "rotate", "aniso", "xfrac")
_COLOR = tuple(name for name, _ in COLOUR_STAGES)
AUGMENT_PIPES = {
    "blit": _BLIT,
    "geom": _GEOM,
    "color": _COLOR,
    "bg": (*_BLIT, *_GEOM),
    "bgc": (*_BLIT, *_GEOM, *_COLOR),
    "cutout": ("cutout",),
}
DEFAULT_ADA_OPS = AUGMENT_PIPES["bgc"]


def expand_ops(names: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    """The op names of `names`, each an op or an augpipe name (a lone string is one name); ValueError if unknown."""
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [name for name in names if name not in ADA_OPS and name not in AUGMENT_PIPES]
    if unknown:
        raise ValueError(
            f"unknown ADA op(s) {unknown}; choose ops from {list(ADA_OPS)} or pipes from {sorted(AUGMENT_PIPES)}"
        )
    return tuple(dict.fromkeys(op for name in names for op in AUGMENT_PIPES.get(name, (name,))))


def _draws(rng: jax.Array, batch: int) -> list[Draws]:
    """The randomness of every stage, geometric then colour then cutout, drawn in two calls (which keeps the
    compiled program small) whichever ops are enabled."""
    num_stages = len(GEOMETRIC_STAGES) + len(COLOUR_STAGES) + 1
    uniform_rng, normal_rng = jax.random.split(rng)
    uniform = jax.random.uniform(uniform_rng, (num_stages, batch, 3))
    normal = jax.random.normal(normal_rng, (num_stages, batch, 2))
    return [Draws(uniform[i], normal[i]) for i in range(num_stages)]


def _geometric_product(draws: list[Draws], p: jax.Array, enabled: tuple[str, ...], shape: Shape) -> jax.Array:
    matrix = geometric.identity(shape[0])
    for (name, stage), stage_draws in zip(GEOMETRIC_STAGES, draws[: len(GEOMETRIC_STAGES)], strict=True):
        if name in enabled:
            matrix = geometric.compose(matrix, stage(stage_draws, p, shape))
    return matrix


def _colour_product(draws: list[Draws], p: jax.Array, enabled: tuple[str, ...], shape: Shape) -> jax.Array:
    matrix = colour.identity(shape[0])
    colour_draws = draws[len(GEOMETRIC_STAGES) : len(GEOMETRIC_STAGES) + len(COLOUR_STAGES)]
    for (name, stage), stage_draws in zip(COLOUR_STAGES, colour_draws, strict=True):
        if name in enabled and not (shape[3] == 1 and name in CHROMA_OPS):
            matrix = colour.compose(stage(stage_draws, p, shape), matrix)
    return matrix


def geometric_matrix(rng: jax.Array, p: jax.Array, enabled: tuple[str, ...], shape: Shape) -> jax.Array:
    """The per-image inverse affine (batch, 3, 3) that `ada_augment` applies: output pixel -> input pixel."""
    return _geometric_product(_draws(rng, shape[0]), p, expand_ops(enabled), shape)


def colour_matrix(rng: jax.Array, p: jax.Array, enabled: tuple[str, ...], shape: Shape) -> jax.Array:
    """The per-image colour matrix (batch, 4, 4) that `ada_augment` applies: colour in -> colour out."""
    return _colour_product(_draws(rng, shape[0]), p, expand_ops(enabled), shape)


def _cutout(draws: Draws, p: jax.Array, images: jax.Array) -> jax.Array:
    height, width = images.shape[1:3]
    center_y = jnp.floor(draws.uniform[:, 1] * height).astype(jnp.int32)
    center_x = jnp.floor(draws.uniform[:, 2] * width).astype(jnp.int32)
    cut = ops.cutout(images, center_y, center_x, int(height * CUTOUT_RATIO + 0.5))
    return jnp.where((draws.uniform[:, 0] < p)[:, None, None, None], cut, images)


def ada_augment(
    rng: jax.Array, images: jax.Array, p: jax.Array, enabled: tuple[str, ...] = DEFAULT_ADA_OPS
) -> jax.Array:
    """Apply each op in `enabled` (op or augpipe names) to each image with probability `p`; p = 0 returns `images`."""
    enabled = expand_ops(enabled)
    shape = images.shape
    draws = _draws(rng, shape[0])
    if any(name in enabled for name, _ in GEOMETRIC_STAGES):
        images = geometric.apply_affine(images, _geometric_product(draws, p, enabled, shape))
    if any(name in enabled for name, _ in COLOUR_STAGES):
        images = colour.apply_colour_matrix(images, _colour_product(draws, p, enabled, shape))
    if "cutout" in enabled:
        images = _cutout(draws[-1], p, images)
    return images
