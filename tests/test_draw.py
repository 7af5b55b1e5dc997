"""DRAW: the Gaussian-filterbank attention against its defining properties, and a short training run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from digits_training import train_on_digits
from tiny_configs import load

from genimg_jax.models.draw import Attention, DrawNetwork, filterbank, glimpse, paste

TINY_DRAW = [
    "data.resolution=16",
    "model.steps=4",
    "model.hidden=32",
    "model.latent_dim=4",
    "model.write_size=3",
    "train.batch_size=32",
    "optim.draw.learning_rate=0.003",
]


def test_filterbank_rows_are_normalised_gaussians_on_the_grid():
    center, stride, log_variance = jnp.array([7.0, 3.0]), jnp.array([2.0, 0.5]), jnp.log(jnp.array([1.5, 0.3]))
    filters = filterbank(center, stride, log_variance, size=16, num=4)
    assert filters.shape == (2, 4, 16)
    np.testing.assert_allclose(filters.sum(axis=-1), 1.0, rtol=1e-6)
    # Filter i of example 0 is centred at 7 + (i - 1.5) * 2 = 4, 6, 8, 10: ratios of neighbours follow the Gaussian.
    pixels = np.arange(16)
    for i, mu in enumerate([4.0, 6.0, 8.0, 10.0]):
        expected = np.exp(-((pixels - mu) ** 2) / (2 * 1.5))
        np.testing.assert_allclose(filters[0, i], expected / expected.sum(), rtol=1e-5, atol=1e-7)


def test_full_size_grid_at_unit_stride_reads_the_image_back():
    """With centre 0, log-stride 0 and N = image size the paper's parametrisation puts one sharp filter on each
    pixel, so the glimpse is the image itself (up to the small Gaussian blur)."""
    size = 12
    attention = Attention(size=size, num=size)
    variables = attention.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    kernel = variables["params"]["Dense_0"]["kernel"]
    # (centre x, centre y, log variance, log stride, log intensity) from a zero state: all bias.
    bias = jnp.array([0.0, 0.0, math.log(0.04), 0.0, 0.0])
    params = {"Dense_0": {"kernel": jnp.zeros_like(kernel), "bias": bias}}
    filters_y, filters_x, intensity = attention.apply({"params": params}, jnp.zeros((2, 3)))
    images = jax.random.uniform(jax.random.PRNGKey(1), (2, size, size, 1))
    np.testing.assert_allclose(intensity, 1.0)
    np.testing.assert_allclose(glimpse(images, filters_y, filters_x), images, atol=1e-4)
    # A wider blur still keeps the image's mean intensity but no longer reproduces it pixel by pixel.
    blurred = Attention(size=size, num=size).apply(
        {"params": {"Dense_0": {"kernel": params["Dense_0"]["kernel"], "bias": bias.at[2].set(math.log(4.0))}}},
        jnp.zeros((2, 3)),
    )
    assert float(jnp.max(jnp.abs(glimpse(images, *blurred[:2]) - images))) > 0.1


def test_write_is_the_transpose_of_read():
    rng = iter(jax.random.split(jax.random.PRNGKey(0), 4))
    filters_y = jax.nn.softmax(jax.random.normal(next(rng), (2, 3, 10)), axis=-1)
    filters_x = jax.nn.softmax(jax.random.normal(next(rng), (2, 3, 10)), axis=-1)
    patches = jax.random.normal(next(rng), (2, 3, 3, 2))
    images = jnp.zeros((2, 10, 10, 2))
    (transposed,) = jax.linear_transpose(lambda x: glimpse(x, filters_y, filters_x), images)(patches)
    np.testing.assert_allclose(paste(patches, filters_y, filters_x), transposed, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def trained_draw():
    config = load("draw.py", *TINY_DRAW)
    return train_on_digits(config, steps=40)


@pytest.mark.slow  # share a trained DRAW (~30 s)
def test_draw_training_lowers_the_bound(trained_draw):
    method, state, history, batch = trained_draw
    elbos = [float(m["negative_elbo"]) for m in history]
    assert np.all(np.isfinite(elbos))
    assert np.mean(elbos[-5:]) < 0.8 * np.mean(elbos[:5])
    last = history[-1]
    assert float(last["negative_elbo"]) == pytest.approx(float(last["reconstruction"] + last["kl"]), rel=1e-5)
    values = jax.jit(method.evaluate_batch)(state, batch, jax.random.PRNGKey(2))
    assert values["negative_elbo"].shape == (32,) and bool(jnp.all(values["kl"] >= 0))
    np.testing.assert_allclose(values["bits_per_dim"], values["negative_elbo"] / (256 * math.log(2)), rtol=1e-5)


@pytest.mark.slow  # share a trained DRAW (~30 s)
def test_draw_canvas_shows_each_step_and_ends_at_the_sample(trained_draw):
    method, state, _, batch = trained_draw
    rng = jax.random.PRNGKey(3)
    canvas = jax.jit(method.illustrations)(state, batch, rng)["canvas"]
    assert canvas.shape == (8, 4, 16, 16, 1)  # 8 samples as rows, one column per step
    assert float(canvas.min()) >= -1.0 and float(canvas.max()) <= 1.0
    np.testing.assert_allclose(canvas[:, -1], jax.jit(method.sample, static_argnums=2)(state, rng, 8), atol=1e-5)
    # Every step writes something: consecutive canvases differ.
    assert float(jnp.min(jnp.abs(jnp.diff(canvas, axis=1)).max(axis=(0, 2, 3, 4)))) > 1e-3


@pytest.mark.slow  # share a trained DRAW (~30 s)
def test_no_sample_from_the_prior_stays_a_blank_canvas(trained_draw):
    """The write's gain 1/gamma starts at image area / patch area, so every sample writes from the first steps;
    started at 1 (gamma = 1), the decoder had to learn a ~250x gain through its LSTM state and the samples whose
    z never led it there stayed the grey canvas sigmoid(0) (4% of samples after the digits config's 1500 steps)."""
    method, state, _, _ = trained_draw
    samples = jax.jit(method.sample, static_argnums=2)(state, jax.random.PRNGKey(4), 256)
    grey = jnp.mean(jnp.abs(samples) < 0.2, axis=(1, 2, 3))  # pixels within 0.1 of sigmoid(0) = 0.5
    assert float(jnp.max(grey)) < 0.9


def test_write_gain_starts_at_image_area_over_patch_area():
    network = DrawNetwork(resolution=16, channels=1, steps=2, hidden=8, latent_dim=2, read_size=2, write_size=3)
    params = network.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)), jnp.zeros((2, 1, 2)))["params"]
    _, _, gamma = Attention(16, 3, math.log(9 / 256)).apply({"params": params["step"]["write"]}, jnp.zeros((1, 8)))
    assert float(gamma[0, 0]) == pytest.approx(9 / 256, rel=1e-6)
    _, _, read_gamma = Attention(16, 2).apply({"params": params["step"]["read"]}, jnp.zeros((1, 8)))
    assert float(read_gamma[0, 0]) == 1.0  # the read's intensity is not rescaled
