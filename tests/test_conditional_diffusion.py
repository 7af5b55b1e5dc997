"""Conditional diffusion (SR3 / Palette): the source reaches the network, is upsampled as bicubic resizing gives,
the known pixels survive inpainting, and training lowers the loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from random_states import random_diffusion_state
from tiny_configs import TINY_UNET, load

from genimg_jax import data
from genimg_jax.config import ConfigError
from genimg_jax.methods import build_method

TINY = [*TINY_UNET, "train.batch_size=4", "data.degradation=downsample:4"]


def _batch(seed: int, mask: bool = False, source_size: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    if not mask:
        return {"image": image, "source": rng.integers(0, 256, (4, source_size, source_size, 1), dtype=np.uint8)}
    known = (rng.random((4, 8, 8, 1)) < 0.5).astype(np.uint8)
    return {"image": image, "source": np.where(known == 1, image, 127).astype(np.uint8), "mask": known}


def _sr_method():
    return build_method(load("conditional_diffusion.py:faces_sr4", *TINY))


@pytest.fixture(scope="module")
def sr():
    method = _sr_method()
    return method, random_diffusion_state(method, _batch(0), seed=1)


def test_source_is_upsampled_bicubically_to_the_target_size():
    method = _sr_method()
    batch = _batch(2)
    expected = jax.image.resize(batch["source"].astype(np.float32) / 127.5 - 1.0, (4, 8, 8, 1), "bicubic")
    np.testing.assert_allclose(method._labels(batch), expected, atol=1e-6)
    assert method.conditioning_fields() == ("source",)


def test_network_output_has_data_channels_and_depends_on_the_source(sr):
    method, state = sr
    x = jax.random.normal(jax.random.PRNGKey(3), (4, 8, 8, 1))
    t = jnp.full((4,), 500.0)
    source = method._labels(_batch(4))
    other = method._labels(_batch(5))

    @jax.jit
    def output(cond):
        return method._network(state.params, x, t, cond, None)

    first, second = output(source), output(other)
    assert first.shape == (4, 8, 8, method.config.data.channels)
    assert float(jnp.max(jnp.abs(first - second))) > 1e-3
    gradient = jax.jit(jax.grad(lambda cond: jnp.sum(output(cond) ** 2)))(source)
    assert float(jnp.max(jnp.abs(gradient))) > 0.0


def test_inpainting_samples_equal_the_known_pixels_where_the_mask_is_one():
    config = load("conditional_diffusion.py:faces_inpaint", *TINY_UNET, "train.batch_size=4")
    method = build_method(config)
    batch = _batch(6, mask=True)
    state = random_diffusion_state(method, batch, seed=2)
    assert method.conditioning_fields() == ("source", "mask")
    samples = np.asarray(jax.jit(lambda s, b: method.sample(s, jax.random.PRNGKey(7), 4, b))(state, batch))
    known = batch["mask"] == 1
    target = np.asarray(data.to_unit_range(batch["image"]))
    np.testing.assert_array_equal(samples[known], target[known])
    np.testing.assert_allclose(target, batch["image"] / 127.5 - 1.0, atol=1e-6)
    assert not np.allclose(samples[~known], target[~known])


def test_config_without_a_source_is_one_clear_error():
    config = load("conditional_diffusion.py:faces_sr4", *TINY_UNET, "data.degradation=")
    with pytest.raises(ConfigError, match=r"data\.degradation"):
        build_method(config)


@pytest.mark.slow
def test_short_training_lowers_the_loss():
    method = _sr_method()
    batch = _batch(8)
    state = jax.jit(method.init_state)(jax.random.PRNGKey(0), batch)
    step = jax.jit(method.train_step)
    losses = []
    for _ in range(60):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
