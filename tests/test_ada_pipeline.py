"""ADA's `bgc` pipeline and EDM's augment pipe against independent numpy computations, and their gating rates.

The geometric reference below re-implements stylegan2-ada-pytorch's resampling in numpy/scipy the way that code is
written (upfirdn2d's zero-stuffing and paddings, affine_grid / grid_sample's normalised coordinates, bilinear with
zeros outside), not the way genimg_jax.augment.geometric is (polyphase filters, pixel-index coordinates).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from genimg_jax.augment import ada, colour, edm, geometric

apply_affine = jax.jit(geometric.apply_affine)
apply_colour = jax.jit(colour.apply_colour_matrix)


def _random_images(shape, seed=0):
    return jax.random.uniform(jax.random.PRNGKey(seed), shape, minval=-1.0, maxval=1.0)


def _matrix(m):
    return jnp.asarray(m, jnp.float32)[None]


# --- numpy reference of the reference's geometric resampling ------------------------------------------------------


def _upsample_reference(x, axis):
    """upfirdn2d.upsample2d along one axis: zeros after every sample, pad (6, 5), convolve with 2 f / sum(f)."""
    f = np.asarray(geometric.SYM6, np.float64)
    f = 2 * f / f.sum()

    def one(v):
        stuffed = np.zeros(2 * len(v))
        stuffed[::2] = v
        return np.convolve(np.pad(stuffed, (6, 5)), f, mode="valid")

    return np.apply_along_axis(one, axis, x)


def _downsample_reference(x, axis):
    """upfirdn2d.downsample2d(padding=-6, flip_filter=True) along one axis: crop 1, correlate with f / sum(f), [::2]."""
    f = np.asarray(geometric.SYM6, np.float64)
    f = f / f.sum()
    return np.apply_along_axis(lambda v: np.correlate(v[1:-1], f, mode="valid")[::2], axis, x)


def _affine_reference(image, g_inv):
    """stylegan2-ada-pytorch's AugmentPipe geometric step for one HWC image, padded by (size - 1) on each side."""
    height, width, channels = image.shape
    hz_pad = len(geometric.SYM6) // 4
    padded = np.pad(image.astype(np.float64), ((height - 1,) * 2, (width - 1,) * 2, (0, 0)), mode="reflect")
    upsampled = _upsample_reference(_upsample_reference(padded, 1), 0)

    def scale(sx, sy):
        return np.diag([sx, sy, 1.0])

    def translate(tx, ty):
        return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1.0]])

    g = scale(2, 2) @ np.asarray(g_inv, np.float64) @ scale(0.5, 0.5)
    g = translate(-0.5, -0.5) @ g @ translate(0.5, 0.5)
    out_h, out_w = 2 * (height + 2 * hz_pad), 2 * (width + 2 * hz_pad)
    in_h, in_w = upsampled.shape[:2]
    g = scale(2 / in_w, 2 / in_h) @ g @ scale(out_w / 2, out_h / 2)
    # affine_grid(align_corners=False): normalised pixel centres; grid_sample: back to input pixel indices.
    ys, xs = np.meshgrid((2 * np.arange(out_h) + 1) / out_h - 1, (2 * np.arange(out_w) + 1) / out_w - 1, indexing="ij")
    grid = np.einsum("ij,hwj->hwi", g[:2], np.stack([xs, ys, np.ones_like(xs)], -1))
    cols, rows = ((grid[..., 0] + 1) * in_w - 1) / 2, ((grid[..., 1] + 1) * in_h - 1) / 2
    sampled = np.stack(
        [
            scipy.ndimage.map_coordinates(upsampled[..., c], [rows, cols], order=1, mode="grid-constant", cval=0.0)
            for c in range(channels)
        ],
        axis=-1,
    )
    return _downsample_reference(_downsample_reference(sampled, 1), 0)


def _general_matrices():
    """Inverse affines of the kinds `bgc` composes: flips, quarter turns, integer and fractional shifts, scalings,
    rotations; the last ones reach outside the image, into the reflected padding."""
    flip = geometric.scale2d(jnp.array([-1.0]), jnp.array([1.0]))
    quarter = geometric.rotate2d(jnp.array([np.pi / 2]))
    mixed = geometric.compose(
        geometric.compose(geometric.rotate2d(jnp.array([0.7])), geometric.scale2d(jnp.array([0.8]), jnp.array([1.25]))),
        geometric.translate2d(jnp.array([1.6]), jnp.array([-2.3])),
    )
    zoom_out = geometric.compose(
        geometric.scale2d(jnp.array([1.4]), jnp.array([1.4])), geometric.rotate2d(jnp.array([-2.0]))
    )
    return jnp.concatenate([flip, quarter, mixed, zoom_out])


def test_integer_translations_are_exact_with_reflect_padding():
    """Shifting by whole pixels upsamples, samples on the upsampled grid and downsamples: the orthogonal sym6
    filter makes that exact, so the result is numpy's reflect-padded shift up to float32 rounding."""
    size = 16
    images = _random_images((4, size, size, 3))
    shifts = np.array([[3, -2], [-4, 0], [0, 4], [1, 1]])  # content moves right by tx and down by ty
    out = apply_affine(images, geometric.translate2d(jnp.asarray(-shifts[:, 0]), jnp.asarray(-shifts[:, 1])))
    padded = np.pad(np.asarray(images), ((0, 0), (size, size), (size, size), (0, 0)), mode="reflect")
    for i, (tx, ty) in enumerate(shifts):
        expected = padded[i, size - ty : 2 * size - ty, size - tx : 2 * size - tx]
        np.testing.assert_allclose(out[i], expected, atol=2e-6)


def test_general_affine_matches_the_reference_resampling_in_numpy():
    """Same chain, computed independently in float64: only float32 rounding separates them (errors ~1e-6 on
    values of order 1; 1e-4 leaves room for the accumulations of the filters and the bilinear weights)."""
    images = _random_images((4, 12, 12, 3), seed=1)
    matrices = _general_matrices()
    out = np.asarray(apply_affine(images, matrices))
    for i in range(4):
        np.testing.assert_allclose(out[i], _affine_reference(np.asarray(images[i]), matrices[i]), atol=1e-4)


def test_affine_shows_the_input_at_the_inverse_matrix_of_each_output_pixel():
    """On a smooth image that is mirror-symmetric about its border pixels (so reflect padding continues it), the
    output at centred pixel u is f(g_inv u), up to resampling error. Measured: 0.005 for the flip and the quarter
    turn (the reference's half-sample convention leaves sym6's small group delay uncompensated when a transform
    reverses an axis: a shift of about 0.05 pixels times 2 |grad f| <= 0.05 per pixel) and 0.009 for the 1.4x
    zoom-out, whose content reaches 1.4x higher frequencies, where the filters' pass band droops. 2e-2 bounds
    both; a wrong centre, axis or direction errs by 0.1 or more."""
    size = 32
    index = np.arange(size)

    def f(x, y):
        return 0.5 * np.cos(np.pi * x / (size - 1)) + 0.3 * np.cos(2 * np.pi * y / (size - 1))

    xs, ys = np.meshgrid(index, index)
    images = jnp.asarray(np.broadcast_to(f(xs, ys)[None, :, :, None], (4, size, size, 1)), jnp.float32)
    matrices = _general_matrices()
    out = np.asarray(apply_affine(images, matrices))
    centre = (size - 1) / 2
    for i in range(4):
        source = np.stack([xs - centre, ys - centre, np.ones_like(xs)], -1) @ np.asarray(matrices[i]).T
        np.testing.assert_allclose(out[i, ..., 0], f(source[..., 0] + centre, source[..., 1] + centre), atol=2e-2)


def _colour_reference(pixels, brightness, contrast, lumaflip, hue, saturation):
    """The five colour ops one after another on (..., 3) RGB vectors, written with vector algebra."""
    v = np.ones(3) / np.sqrt(3)
    x = (pixels + brightness) * contrast
    if lumaflip:
        x = x - 2 * (x @ v)[..., None] * v
    luma = (x @ v)[..., None] * v
    x = luma + (x - luma) * np.cos(hue) + np.cross(v, x) * np.sin(hue)  # Rodrigues; v x luma = 0
    luma = (x @ v)[..., None] * v
    return luma + saturation * (x - luma)


def test_colour_matrix_matches_the_ops_applied_one_by_one():
    images = _random_images((3, 4, 4, 3), seed=2)
    params = [(0.3, 1.7, 1, 2.1, 0.4), (-0.25, 0.6, 0, -1.0, 2.5), (0.0, 1.0, 1, 0.0, 1.0)]
    b, c, flip, theta, s = (jnp.asarray(column, jnp.float32) for column in zip(*params, strict=True))
    matrix = colour.identity(3)
    for op in (
        colour.brightness(b),
        colour.contrast(c),
        colour.lumaflip(flip),
        colour.hue(theta),
        colour.saturation(s),
    ):
        matrix = colour.compose(op, matrix)
    out = np.asarray(apply_colour(images, matrix))
    for i, values in enumerate(params):
        np.testing.assert_allclose(out[i], _colour_reference(np.asarray(images[i], np.float64), *values), atol=1e-5)
    # Grey images get the mean of the matrix rows: the mean channel of the RGB result for the grey repeated.
    grey = images[..., :1]
    rgb_of_grey = apply_colour(jnp.repeat(grey, 3, axis=-1), matrix)
    np.testing.assert_allclose(apply_colour(grey, matrix), jnp.mean(rgb_of_grey, -1, keepdims=True), atol=1e-5)


def test_contrast_after_brightness_scales_around_zero():
    """The composed matrix of brightness b then contrast c maps x to c (x + b), with each op's own draws."""
    rng, shape, p = jax.random.PRNGKey(3), (64, 8, 8, 3), jnp.float32(1.0)
    offset = ada.colour_matrix(rng, p, ("brightness",), shape)[:, 0, 3]
    factor = ada.colour_matrix(rng, p, ("contrast",), shape)[:, 0, 0]
    both = ada.colour_matrix(rng, p, ("brightness", "contrast"), shape)
    np.testing.assert_allclose(both[:, 0, 0], factor, rtol=1e-6)
    np.testing.assert_allclose(both[:, 0, 3], factor * offset, rtol=1e-5, atol=1e-7)


def _not_identity(matrices):
    size = matrices.shape[-1]
    return jnp.any(jnp.abs(matrices - jnp.eye(size)) > 1e-7, axis=(1, 2))


@jax.jit
def _stage_rates(rng, p):
    """Fraction of images each stage of the pipeline changes, and of the two arbitrary rotations together."""
    shape = (40_000, 32, 32, 3)
    draws = ada._draws(rng, shape[0])
    stages = (*ada.GEOMETRIC_STAGES, *ada.COLOUR_STAGES)
    matrices = [stage(stage_draws, p, shape) for (_, stage), stage_draws in zip(stages, draws, strict=False)]
    rates = [jnp.mean(_not_identity(m)) for m in matrices]
    both_rotations = geometric.compose(matrices[4], matrices[6])  # before and after aniso
    return jnp.stack(rates), jnp.mean(_not_identity(both_rotations))


@pytest.mark.parametrize("p", [0.4, 1.5])
def test_each_op_applies_with_probability_p(p):
    """xflip and lumaflip then flip a fair coin, rotate90 draws 0-3 quarter turns, xint rounds shifts of at most
    4 pixels (both 0 with probability (1/8)^2); each arbitrary rotation has 1 - sqrt(1 - p), either one p. p above
    1 (the controller does not cap it) applies every op. Tolerance: 5 binomial standard deviations at 40k images."""
    rates, both_rotations = _stage_rates(jax.random.PRNGKey(4), jnp.float32(p))
    q = min(p, 1.0)
    rotation = 1 - np.sqrt(1 - q)
    expected = {
        "xflip": q / 2,
        "rotate90": 3 * q / 4,
        "xint": q * (1 - 1 / 64),
        "scale": q,
        "rotate": rotation,
        "aniso": q,
        "xfrac": q,
        "brightness": q,
        "contrast": q,
        "lumaflip": q / 2,
        "hue": q,
        "saturation": q,
    }
    names = [name for name, _ in (*ada.GEOMETRIC_STAGES, *ada.COLOUR_STAGES)]
    for name, rate in zip(names, np.asarray(rates), strict=True):
        assert rate == pytest.approx(expected[name], abs=5 * np.sqrt(0.25 / 40_000)), name
    assert float(both_rotations) == pytest.approx(q, abs=0.0125)
    assert float(ada.rotation_probability(jnp.float32(q))) == pytest.approx(rotation, abs=1e-6)


def test_cutout_applies_with_probability_p():
    images = jnp.ones((4000, 8, 8, 1))
    out = jax.jit(ada.ada_augment, static_argnums=3)(jax.random.PRNGKey(5), images, jnp.float32(0.3), ("cutout",))
    holed = jnp.any(out == 0, axis=(1, 2, 3))
    assert float(jnp.mean(holed)) == pytest.approx(0.3, abs=0.04)
    assert bool(jnp.all(jnp.sum(out == 0, axis=(1, 2, 3)) <= 16))  # at most a 4x4 square


# --- EDM -------------------------------------------------------------------------------------------------------------

edm_augment = jax.jit(edm.edm_augment)


EDM_SHAPE = (512, 16, 16, 3)  # one shape for both tests: one compilation


def test_edm_at_p_zero_is_the_identity_with_zero_labels():
    images = _random_images(EDM_SHAPE, seed=6)
    out, labels = edm_augment(jax.random.PRNGKey(6), images, jnp.float32(0.0))
    np.testing.assert_array_equal(out, images)
    np.testing.assert_array_equal(labels, np.zeros((EDM_SHAPE[0], edm.AUGMENT_DIM)))


def test_edm_labels_encode_the_applied_transform():
    """Images whose geometric labels are 0 are exactly their labelled flips; images with one geometric op are
    the flips resampled with that op's matrix as the labels give it (x-flip multiplier 1e8: a fair coin at any
    p > 0; y-flip p / 2)."""
    num, size, p = EDM_SHAPE[0], EDM_SHAPE[1], 0.3
    images = _random_images(EDM_SHAPE, seed=7)
    out, labels = edm_augment(jax.random.PRNGKey(7), images, jnp.float32(p))
    out, labels = np.asarray(out), np.asarray(labels)
    assert labels.shape == (num, 9)
    assert set(np.unique(labels[:, :2])) == {0.0, 1.0}
    assert labels[:, 0].mean() == pytest.approx(0.5, abs=0.08) and labels[:, 1].mean() == pytest.approx(p / 2, abs=0.05)
    flipped = np.asarray(images)
    flipped = np.where(labels[:, 0, None, None, None] > 0, flipped[:, :, ::-1], flipped)
    flipped = np.where(labels[:, 1, None, None, None] > 0, flipped[:, ::-1], flipped)

    active = labels[:, 2:] != 0
    untouched = ~active.any(axis=1)
    np.testing.assert_array_equal(out[untouched], flipped[untouched])
    scale = np.exp2(-edm.SCALE_LOG2_STD * labels[:, 2])
    angle = np.arctan2(labels[:, 4], labels[:, 3] + 1)
    shift = labels[:, 7:] * size * edm.TRANSLATE_STD
    candidates = {
        (0,): geometric.scale2d(jnp.asarray(scale), jnp.asarray(scale)),
        (1, 2): geometric.rotate2d(jnp.asarray(angle)),
        (5, 6): geometric.translate2d(jnp.asarray(-shift[:, 0]), jnp.asarray(-shift[:, 1])),
    }
    for columns, matrices in candidates.items():
        only = active[:, list(columns)].any(axis=1) & ~np.delete(active, columns, axis=1).any(axis=1)
        assert only.sum() >= 10
        expected = np.asarray(apply_affine(jnp.asarray(flipped), matrices))
        np.testing.assert_allclose(out[only], expected[only], atol=1e-5)
