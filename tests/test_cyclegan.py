"""CycleGAN: the history pool's semantics, the cycle and identity losses against closed forms, the ResNet
generator against the reference's parameter count, and a short training run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genimg_jax import data
from genimg_jax.config import ConfigError
from genimg_jax.methods import build_method
from genimg_jax.methods.cyclegan import reconstruction_losses
from genimg_jax.methods.image_pool import empty_pool, query_pool
from genimg_jax.models.resnet_translator import ResnetGenerator
from tests.tiny_configs import load

TINY = [
    "data.resolution=16",
    "model.n_blocks=1",
    "model.g_features=4",
    "model.d_features=4",
    "model.d_layers=1",
    "loss.pool_size=4",
]


def _images(seed: int, n: int, side: int = 2) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(seed), (n, side, side, 1))


def test_an_empty_pool_returns_its_inputs_and_stores_them_in_order():
    pool = empty_pool(5, (2, 2, 1))
    images = _images(0, 3)
    pool, shown = query_pool(pool, images, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(shown, images)
    assert int(pool.count) == 3
    np.testing.assert_array_equal(pool.images[:3], images)
    # Filling across a batch boundary: the first two fill the pool, the rest meet a full pool.
    more = _images(2, 2)
    pool, shown = query_pool(pool, more, jax.random.PRNGKey(3))
    np.testing.assert_array_equal(shown, more)
    np.testing.assert_array_equal(pool.images, jnp.concatenate([images, more]))
    assert int(pool.count) == 5


def test_a_full_pool_swaps_half_the_images_exactly():
    """Each returned image is either the new one (pool unchanged) or a stored one, whose slot then holds the new
    image; the swap rate over many queries is 1/2 within 4 standard errors."""
    size, n = 8, 400
    pool = empty_pool(size, (2, 2, 1))
    stored = _images(0, size)
    pool, _ = query_pool(pool, stored, jax.random.PRNGKey(0))
    new = _images(1, n)
    after, shown = jax.jit(query_pool)(pool, new, jax.random.PRNGKey(2))
    # Replay the queries one by one against a numpy model of the pool, driven by what came back.
    model = np.asarray(stored).copy()
    swaps = 0
    for image, out in zip(np.asarray(new), np.asarray(shown), strict=True):
        if np.array_equal(out, image):
            continue
        matches = [i for i in range(size) if np.array_equal(model[i], out)]
        assert len(matches) == 1, "a returned image is either the new one or exactly one stored image"
        model[matches[0]] = image
        swaps += 1
    np.testing.assert_array_equal(after.images, model)
    assert abs(swaps / n - 0.5) < 4 * np.sqrt(0.25 / n)
    assert int(after.count) == size


def test_a_pool_of_size_zero_passes_images_through():
    images = _images(0, 3)
    _, shown = query_pool(empty_pool(0, (2, 2, 1)), images, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(shown, images)


def _loss_config(lambda_identity: float = 0.5):
    return load("cyclegan.py", f"loss.lambda_identity={lambda_identity}", "loss.lambda_a=10", "loss.lambda_b=4").loss


def test_identity_translators_have_zero_cycle_and_identity_losses():
    a, b = _images(0, 2, 4), _images(1, 2, 4)
    terms, fake_b, fake_a = reconstruction_losses(lambda x: x, lambda x: x, a, b, _loss_config())
    assert set(terms) == {"cycle_a", "cycle_b", "identity_a", "identity_b"}
    assert all(float(value) == 0.0 for value in terms.values())
    np.testing.assert_array_equal(fake_b, a)
    np.testing.assert_array_equal(fake_a, b)


def test_a_constant_offset_costs_lambda_times_the_offset():
    """G_A(x) = x + c, G_B(x) = x: both cycles are off by c, G_A's identity too (weighted by lambda_B), G_B's not."""
    a, b, c = _images(0, 2, 4), _images(1, 2, 4), 0.3
    terms, _, _ = reconstruction_losses(lambda x: x + c, lambda x: x, a, b, _loss_config())
    np.testing.assert_allclose(
        [terms["cycle_a"], terms["cycle_b"], terms["identity_a"], terms["identity_b"]],
        [10 * c, 4 * c, 0.5 * 4 * c, 0.0],
        rtol=1e-5,
    )
    terms, _, _ = reconstruction_losses(lambda x: x + c, lambda x: x - c, a, b, _loss_config(0.0))
    assert set(terms) == {"cycle_a", "cycle_b"}
    np.testing.assert_allclose([terms["cycle_a"], terms["cycle_b"]], [0.0, 0.0], atol=1e-6)


def test_resnet_9blocks_has_the_reference_parameter_counts():
    """The reference prints "Total number of parameters: 11378179" (11.378 M) for resnet_9blocks, RGB, ngf 64,
    instance norm without affine parameters (its issue #169), and 11388675 with affine instance norm (an early
    version, issue #45): a scale and a shift on each of 64 + 128 + 256 + 9 x 2 x 256 + 128 + 64 channels. Six
    blocks drop three blocks of two 3x3 256 -> 256 convolutions."""

    def count(blocks: int, norm: str = "instance") -> int:
        generator = ResnetGenerator(3, blocks, norm=norm)
        variables = jax.eval_shape(lambda: generator.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
        return sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))

    assert count(9) == 11_378_179
    assert count(9, "instance_affine") == 11_388_675 == count(9) + 2 * (64 + 128 + 256 + 9 * 2 * 256 + 128 + 64)
    assert count(9) - count(6) == 3 * 2 * (3 * 3 * 256 * 256 + 256)


def test_the_generator_keeps_the_image_size_and_range():
    """On N(0, 0.3) weights drawn by numpy: flax's own init takes tens of seconds to compile here."""
    generator = ResnetGenerator(1, 1, 4)
    x = _images(0, 2, 12)
    shapes = jax.eval_shape(lambda: generator.init(jax.random.PRNGKey(0), x))
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda leaf: jnp.asarray(0.3 * rng.normal(size=leaf.shape), jnp.float32), shapes)
    y = jax.jit(generator.apply)(variables, x)
    assert y.shape == x.shape and float(jnp.max(jnp.abs(y))) <= 1.0
    with pytest.raises(ValueError, match="divide by 4"):
        generator.apply(variables, _images(0, 1, 10))


def test_cyclegan_needs_a_second_domain():
    with pytest.raises(ConfigError, match=r"data\.unpaired_source"):
        build_method(load("cyclegan.py", *TINY, "data.unpaired_source="))


@pytest.mark.slow
def test_training_lowers_the_cycle_loss_and_fills_the_pools():
    config = load("cyclegan.py", *TINY, "train.batch_size=4", "optim.g.learning_rate=1e-3")
    method = build_method(config)
    rng = np.random.default_rng(0)
    batch = {
        "image": jnp.asarray(rng.integers(0, 256, (4, 16, 16, 1)), jnp.uint8),
        "source": jnp.asarray(rng.integers(0, 256, (4, 16, 16, 1)), jnp.uint8),
    }
    state = method.init_state(jax.random.PRNGKey(0), batch)
    step = jax.jit(method.train_step)
    cycles = []
    for _ in range(20):
        state, metrics = step(state, batch)
        cycles.append(float(metrics["cycle_a"] + metrics["cycle_b"]))
    assert np.mean(cycles[-3:]) < 0.8 * np.mean(cycles[:3])
    assert int(state.pool_a.count) == int(state.pool_b.count) == 4
    sample = method.sample(state, jax.random.PRNGKey(1), 4, {"source": batch["source"]})
    rows = method.illustrations(state, batch, jax.random.PRNGKey(1))["cycles"]
    assert rows.shape == (4, 3, 16, 16, 1)
    np.testing.assert_allclose(rows[:, 1], sample, atol=1e-6)


def test_the_horse2zebra_setup_traces_a_train_step_and_translates_to_the_target_shape():
    """Abstractly (no arrays): the paper's 256 px resnet_9blocks setup fits its fields (the embedded variant
    trains in the slow test)."""
    config = load("cyclegan.py:horse2zebra", "data.source=folder:unused", "data.unpaired_source=folder:unused")
    method = build_method(config)
    batch = data.example_batch(config.data, 1)
    state = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), batch)
    _, metrics = jax.eval_shape(method.train_step, state, batch)
    assert {"d_loss", "g_gan", "cycle_a", "cycle_b", "identity_a", "identity_b"} <= set(metrics)
    assert state.pool_a.images.shape == (50, *batch["image"].shape[1:])
    images = jax.eval_shape(method.sample, state, jax.random.PRNGKey(1), 1, {"source": batch["source"]})
    assert images.shape == batch["image"].shape
