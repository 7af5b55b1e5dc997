"""DiffAugment and ADA: exact invariants of each op, identity at p = 0, gradients, and the p controller.

ADA's geometric and colour pipeline against numpy, its rates and EDM's pipe: tests/test_ada_pipeline.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genimg_jax.augment import (
    ada,
    ada_augment,
    ada_observe,
    ada_update,
    diff_augment,
    init_ada_state,
    ops,
    parse_policy,
)

BATCH, SIZE = 8, 8


def _images(seed=0, channels=3):
    return jax.random.uniform(jax.random.PRNGKey(seed), (BATCH, SIZE, SIZE, channels), minval=-1.0, maxval=1.0)


def test_flip_mirrors_exactly_the_selected_images():
    images = _images()
    flip = jnp.array([True, False] * (BATCH // 2))
    out = ops.flip_x(images, flip)
    np.testing.assert_array_equal(out[0], images[0, :, ::-1])
    np.testing.assert_array_equal(out[1], images[1])


def test_flip_y_mirrors_exactly_the_selected_images():
    images = _images()
    out = ops.flip_y(images, jnp.array([True, False] * (BATCH // 2)))
    np.testing.assert_array_equal(out[0], images[0, ::-1])
    np.testing.assert_array_equal(out[1], images[1])


def test_translation_moves_content_and_pads_with_zeros():
    images = _images()
    shift_y = jnp.array([2, -1, 0, 3, 0, 0, -3, 1])
    shift_x = jnp.array([1, 0, -2, 0, 0, 3, -1, -1])
    out = ops.translate(images, shift_y, shift_x)
    for i in range(BATCH):
        dy, dx = int(shift_y[i]), int(shift_x[i])
        expected = np.zeros((SIZE, SIZE, 3), np.float32)
        src = np.asarray(images[i])
        ys, xs = slice(max(dy, 0), SIZE + min(dy, 0)), slice(max(dx, 0), SIZE + min(dx, 0))
        expected[ys, xs] = src[max(-dy, 0) : SIZE - max(dy, 0), max(-dx, 0) : SIZE - max(dx, 0)]
        np.testing.assert_array_equal(out[i], expected)


def test_cutout_zeroes_a_square_clipped_at_the_border():
    images = jnp.ones((2, SIZE, SIZE, 1))
    out = ops.cutout(images, jnp.array([4, 0]), jnp.array([4, 7]), size=4)
    assert float(jnp.sum(out[0] == 0)) == 16 and bool(jnp.all(out[0, 2:6, 2:6] == 0))
    assert float(jnp.sum(out[1] == 0)) == 2 * 3  # rows 0..1 and columns 5..7 survive the clipping
    assert bool(jnp.all(out[1, 0:2, 5:8] == 0))


def test_colour_ops_match_their_formulas():
    images = _images()
    mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
    factor = jnp.linspace(0.5, 1.5, BATCH)
    np.testing.assert_allclose(
        ops.adjust_contrast(images, factor), (images - mean) * factor[:, None, None, None] + mean, atol=1e-6
    )
    grey = images[..., :1]
    np.testing.assert_allclose(ops.adjust_saturation(grey, factor), grey, atol=1e-6)  # no colour to scale
    desaturated = ops.adjust_saturation(images, jnp.zeros(BATCH))
    grey_of_each = jnp.broadcast_to(jnp.mean(images, -1, keepdims=True), images.shape)
    np.testing.assert_allclose(desaturated, grey_of_each, atol=1e-6)
    np.testing.assert_allclose(ops.adjust_brightness(images, factor), images + factor[:, None, None, None], atol=1e-6)


@pytest.mark.parametrize("channels", [3, 1])
def test_ada_at_p_zero_is_the_identity(channels):
    images = _images(channels=channels)
    out = jax.jit(ada_augment, static_argnums=3)(jax.random.PRNGKey(1), images, jnp.float32(0.0), ("bgc", "cutout"))
    np.testing.assert_array_equal(out, images)


def test_diffaugment_geometric_ops_keep_values_in_range():
    images = _images()
    out = diff_augment(jax.random.PRNGKey(3), images, "translation,cutout")
    assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0
    assert not np.array_equal(out, images)


def test_diffaugment_translation_shifts_by_at_most_an_eighth():
    """A single bright pixel in the middle moves by at most 1/8 of the image size in each direction."""
    size = 16
    images = jnp.full((256, size, size, 1), -1.0).at[:, 8, 8, 0].set(1.0)
    out = diff_augment(jax.random.PRNGKey(4), images, "translation")
    flat = jnp.argmax(out.reshape(256, -1), axis=1)
    rows, cols = flat // size, flat % size
    assert int(jnp.max(jnp.abs(rows - 8))) == 2 and int(jnp.max(jnp.abs(cols - 8))) == 2
    assert bool(jnp.all(jnp.sum(out == 1.0, axis=(1, 2, 3)) == 1))  # content moved, not duplicated


def test_gradients_flow_through_augmentations():
    images = _images()

    def total(x, augment):
        return jnp.sum(augment(x) ** 2)

    for augment in (
        lambda x: diff_augment(jax.random.PRNGKey(5), x, "color,translation,cutout"),
        lambda x: ada_augment(jax.random.PRNGKey(5), x, jnp.float32(1.0), ("bgc", "cutout")),
    ):
        grads = jax.jit(jax.grad(total), static_argnums=1)(images, augment)
        assert bool(jnp.all(jnp.isfinite(grads))) and float(jnp.sum(jnp.abs(grads))) > 0
    # Without colour changes every output pixel is an input pixel or 0: the gradient of sum(out) is 0 or 1.
    grads = jax.grad(lambda x: jnp.sum(diff_augment(jax.random.PRNGKey(6), x, "translation")))(images)
    assert set(np.unique(np.asarray(grads)).tolist()) <= {0.0, 1.0}


def test_unknown_policy_names_are_rejected():
    assert parse_policy("color, cutout") == ("color", "cutout")
    with pytest.raises(ValueError, match="colour"):
        parse_policy("colour,translation")
    with pytest.raises(ValueError, match="bgcf"):  # the reference's image-space filtering is not implemented
        ada_augment(jax.random.PRNGKey(0), _images(), jnp.float32(0.5), ("bgcf",))
    assert ada.expand_ops(("blit", "xflip", "cutout")) == ("xflip", "rotate90", "xint", "cutout")
    assert ada.expand_ops("bgc") == ada.DEFAULT_ADA_OPS == (*ada.AUGMENT_PIPES["bg"], *ada.AUGMENT_PIPES["color"])


def test_ada_update_moves_p_at_the_documented_speed():
    kwargs = {"target": 0.6, "batch_size": 64, "adjust_kimg": 500, "interval": 4}
    step = 64 * 4 / 500_000
    assert float(ada_update(jnp.float32(0.3), jnp.float32(0.9), **kwargs)) == pytest.approx(0.3 + step)
    assert float(ada_update(jnp.float32(0.3), jnp.float32(0.1), **kwargs)) == pytest.approx(0.3 - step)
    assert float(ada_update(jnp.float32(0.0), jnp.float32(0.1), **kwargs)) == 0.0  # clamped at 0
    assert float(ada_update(jnp.float32(1.0), jnp.float32(0.9), **kwargs)) == pytest.approx(1.0 + step)  # not at 1
    # From 0 to 1 takes adjust_kimg thousand real images when D overfits throughout.
    p = jnp.float32(0.0)
    for _ in range(int(500_000 / (64 * 4)) - 1):
        p = ada_update(p, jnp.float32(1.0), **kwargs)
    assert float(p) < 1.0 and float(ada_update(p, jnp.float32(1.0), **kwargs)) == pytest.approx(1.0, abs=1e-3)


def test_ada_observe_adjusts_every_interval_from_the_mean_sign_of_real_logits():
    state = init_ada_state(0.5)
    overfit = jnp.array([3.0, 1.0, 2.0, -1.0])  # r_t = 0.5 < 0.6 would lower p; r_t = 1.0 raises it
    confident = jnp.array([3.0, 1.0, 2.0, 1.0])
    observe = jax.jit(lambda s, logits: ada_observe(s, logits, target=0.6, adjust_kimg=1.0, interval=2))
    state = observe(state, confident)
    assert float(state.p) == 0.5 and int(state.num_steps) == 1
    state = observe(state, overfit)  # mean sign over both steps: (4 + 2) / 8 = 0.75 > 0.6
    assert float(state.p) == pytest.approx(0.5 + 4 * 2 / 1000.0)
    assert int(state.num_steps) == 0 and float(state.sign_sum) == 0.0
    state = observe(observe(state, overfit), overfit)  # r_t = 0.5 < 0.6
    assert float(state.p) == pytest.approx(0.5)
