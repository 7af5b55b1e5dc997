"""PixelCNN++: the discretised logistic mixture against numpy, its sampler against its own bin masses, the
network's causality in raster order, and the method's training, evaluation, sampling and class conditioning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from digits_training import train_on_digits
from scipy.special import expit, logsumexp
from tiny_configs import TINY_PIXELCNN, load

from genimg_jax import data
from genimg_jax.config import ConfigError, adam_config
from genimg_jax.losses import discretized_logistic as dl
from genimg_jax.methods import build_method
from genimg_jax.methods.base import adam, learning_rate_factor
from genimg_jax.models.pixelcnn import PixelCNNPP

GRID = (np.arange(256) - 127.5) / 127.5


def _random_params(rng, shape, channels, mixtures, lowest_log_scale):
    """Network outputs with spread-out means and log-scales from `lowest_log_scale` (below -7: clamped) to 0.5."""
    params = rng.normal(0.0, 1.0, (*shape, dl.num_parameters(channels, mixtures))).astype(np.float32)
    log_scales = slice(mixtures * (1 + channels), mixtures * (1 + 2 * channels))
    params[..., log_scales] = rng.uniform(lowest_log_scale, 0.5, params[..., log_scales].shape)
    return params


def _numpy_bin_masses(mean, log_scale):
    """P(each of the 256 levels) of a logistic discretised on the grid, edge bins to +-inf, in float64."""
    upper = np.where(GRID > 0.999, np.inf, GRID + 1 / 255)
    lower = np.where(GRID < -0.999, -np.inf, GRID - 1 / 255)
    scale = np.exp(max(log_scale, -7.0))
    return expit((upper - mean) / scale) - expit((lower - mean) / scale)


def _numpy_pixel_probability(pixel, params, channels, mixtures):
    """P(pixel) of one output vector: sum_m pi_m prod_c P_c(x_c | mean_c + sum_j<c a_cj x_j), in float64."""
    params = params.astype(np.float64)
    logits = params[:mixtures]
    rest = params[mixtures:].reshape(-1, mixtures)
    means, log_scales, coefficients = rest[:channels], rest[channels : 2 * channels], np.tanh(rest[2 * channels :])
    weights = np.exp(logits - logsumexp(logits))
    total = 0.0
    for m in range(mixtures):
        probability, pair = weights[m], 0
        for c in range(channels):
            mean = means[c, m]
            for j in range(c):
                mean += coefficients[pair, m] * pixel[j]
                pair += 1
            level = round((pixel[c] + 1) * 127.5)
            probability *= _numpy_bin_masses(mean, log_scales[c, m])[level]
        total += probability
    return total


def test_grey_mixture_matches_numpy_and_sums_to_one_over_the_256_bins():
    mixtures = 4
    params = _random_params(np.random.default_rng(0), (6,), 1, mixtures, lowest_log_scale=-8.0)
    log_probs = jax.vmap(lambda p: dl.log_prob_per_pixel(jnp.asarray(GRID[:, None]), p[None]))(params)  # (6, 256)
    probabilities = np.exp(np.asarray(log_probs, np.float64))
    # Bins of mass below 1e-5 take the reference's density-at-the-centre approximation: off by less than that each.
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    expected = np.array([[_numpy_pixel_probability([x], p, 1, mixtures) for x in GRID] for p in params])
    np.testing.assert_allclose(probabilities, expected, rtol=2e-3, atol=1e-5)


def test_rgb_mixture_matches_numpy_and_sums_to_one_over_all_colours():
    rng = np.random.default_rng(1)
    mixtures = 3
    # Scales at least e^-2.5 of the range: the tail bins' density approximation is then accurate to 1e-3 too.
    params = _random_params(rng, (), 3, mixtures, lowest_log_scale=-2.5)
    params[mixtures : mixtures * 4] *= 0.3  # means near the middle: the linear coefficients keep them in range
    pixels = GRID[rng.integers(0, 256, (20, 3))]
    log_probs = dl.log_prob_per_pixel(jnp.asarray(pixels), jnp.broadcast_to(jnp.asarray(params), (20, params.size)))
    expected = [_numpy_pixel_probability(pixel, params, 3, mixtures) for pixel in pixels]
    np.testing.assert_allclose(np.exp(np.asarray(log_probs, np.float64)), expected, rtol=2e-3, atol=1e-9)

    # Summing out blue (256 values) leaves the red-green mixture, summing out green and blue the red marginal:
    # sum_m pi_m P_R(r) [P_G(g | r)], whatever the coefficients.
    def marginal(pixel, channels):
        rows = [0, 1, 3, 4, 6] if channels == 2 else [0, 3]  # their means, log-scales and coefficients
        head = np.concatenate([params[:mixtures], params[mixtures:].reshape(-1, mixtures)[rows].ravel()])
        return _numpy_pixel_probability(pixel, head, channels, mixtures)

    red_green = pixels[:4, :2]
    with_blue = np.concatenate([np.repeat(red_green, 256, axis=0), np.tile(GRID, 4)[:, None]], axis=1)
    outputs = jnp.broadcast_to(jnp.asarray(params), (with_blue.shape[0], params.size))
    summed = np.exp(np.asarray(dl.log_prob_per_pixel(jnp.asarray(with_blue), outputs), np.float64)).reshape(4, 256)
    np.testing.assert_allclose(summed.sum(axis=1), [marginal(p, 2) for p in red_green], rtol=2e-3)
    red = pixels[0, 0]
    green_blue = np.stack(np.meshgrid(GRID, GRID, indexing="ij"), axis=-1).reshape(-1, 2)
    full = np.concatenate([np.full((green_blue.shape[0], 1), red), green_blue], axis=1)
    outputs = jnp.broadcast_to(jnp.asarray(params), (full.shape[0], params.size))
    mass = np.exp(np.asarray(dl.log_prob_per_pixel(jnp.asarray(full, jnp.float32), outputs), np.float64)).sum()
    np.testing.assert_allclose(mass, marginal([red], 1), rtol=2e-3)


def test_samples_follow_the_bin_masses_of_the_likelihood():
    mixtures = 3
    params = _random_params(np.random.default_rng(2), (), 1, mixtures, lowest_log_scale=-3.0)
    count = 1_000_000
    draws = dl.sample(jax.random.PRNGKey(0), jnp.broadcast_to(jnp.asarray(params), (count, params.size)), 1)
    levels = np.rint((np.asarray(draws[:, 0], np.float64) + 1) * 127.5).astype(int)
    np.testing.assert_allclose(np.asarray(draws[:, 0]), GRID[levels], atol=1e-6)  # on the grid, in [-1, 1]
    empirical = np.bincount(levels, minlength=256) / count
    expected = np.exp(np.asarray(dl.log_prob_per_pixel(jnp.asarray(GRID[:, None]), jnp.asarray(params)[None])))
    assert 0.5 * np.abs(empirical - expected).sum() < 0.01  # total variation; sampling noise alone is about 0.004


def _tiny_network():
    """No up-pass blocks (nr_resnet 0): still every kind of layer, shifted, strided, transposed and gated."""
    return PixelCNNPP(dl.num_parameters(3, 2), nr_resnet=0, nr_filters=8, dropout=0.0)


def test_each_output_pixel_depends_only_on_earlier_pixels_in_raster_order():
    """The gradient of the outputs at pixel i w.r.t. every channel of pixels j >= i is exactly zero (so the RGB
    channels of a pixel interact only through the likelihood's coefficients); the pixel to the left and the one
    above always matter."""
    size = 8
    network = _tiny_network()
    image = jax.random.uniform(jax.random.PRNGKey(0), (size, size, 3), minval=-1.0, maxval=1.0)
    variables = jax.jit(network.init)(jax.random.PRNGKey(1), image[None])  # eager init: one compile per op

    def outputs_at(x, index):
        return jnp.sum(network.apply(variables, x[None])[0].reshape(size * size, -1)[index])

    gradients = jax.jit(jax.vmap(jax.grad(outputs_at), in_axes=(None, 0)))(image, jnp.arange(size * size))
    depends = np.abs(np.asarray(gradients)).reshape(size * size, size * size, 3).sum(-1) > 0  # (output, input)
    assert not depends[np.triu(np.ones((size * size, size * size), bool))].any()  # j >= i
    for index in range(1, size * size):
        row, column = divmod(index, size)
        assert column == 0 or depends[index, index - 1]
        assert row == 0 or depends[index, index - size]


@pytest.fixture(scope="module")
def trained():
    """The tiny class-conditional 8x8 model before and after 30 steps on the digits, its compiled evaluation, and the
    test split's mean bits/dim before and after."""
    overrides = ["optim.pixelcnn.learning_rate=0.004", "train.ema_decay=0.9"]
    config = load("pixelcnn.py:digits_conditional", *TINY_PIXELCNN, *overrides)
    method, state, history, first_batch = train_on_digits(config, steps=30, jit_init=True)
    source = data.make_source("digits", split="test", resolution=config.data.resolution, channels=1)
    test_batch = next(data.iterate_once(source, batch_size=256))
    test_batch = {name: jnp.asarray(test_batch[name]) for name in ("image", "label")}
    evaluate = jax.jit(method.evaluate_batch)
    initial = jax.jit(method.init_state)(jax.random.PRNGKey(0), first_batch)
    bits = [float(jnp.mean(evaluate(s, test_batch, jax.random.PRNGKey(0))["bits_per_dim"])) for s in (initial, state)]
    return config, method, state, history, test_batch, bits, evaluate


@pytest.mark.slow  # share a trained conditional PixelCNN++ (~1 min)
def test_training_lowers_the_test_bits_per_dim(trained):
    _, method, state, history, test_batch, (before, after), evaluate = trained
    assert all(np.isfinite([h["bits_per_dim"] for h in history]))
    assert after < 0.85 * before
    values = evaluate(state, test_batch, jax.random.PRNGKey(0))
    # Exact and deterministic: the nats per image are -log p(x) under the averaged weights, bits/dim its rescaling.
    apply = jax.jit(method.network.apply)
    outputs = apply({"params": state.ema_params}, data.to_unit_range(test_batch["image"]), test_batch["label"])
    expected = -dl.log_likelihood(data.to_unit_range(test_batch["image"]), outputs)
    np.testing.assert_allclose(values["nll_nats"], expected, rtol=1e-5)
    np.testing.assert_allclose(values["bits_per_dim"], expected / (8 * 8 * np.log(2)), rtol=1e-5)


@pytest.mark.slow  # share a trained conditional PixelCNN++ (~1 min)
def test_samples_lie_on_the_grid_and_a_key_fixes_them(trained):
    _, method, state, *_ = trained
    sample = jax.jit(lambda s, r: method.sample(s, r, 4))
    first, again, other = (np.asarray(sample(state, jax.random.PRNGKey(k))) for k in (3, 3, 4))
    assert first.shape == (4, 8, 8, 1)
    np.testing.assert_allclose(first, GRID[np.rint((first + 1) * 127.5).astype(int)], atol=1e-6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.slow  # share a trained conditional PixelCNN++ (~1 min)
def test_class_conditioning_changes_the_outputs_and_the_likelihood(trained):
    _, method, state, _, test_batch, _, evaluate = trained
    assert method.conditioning_fields() == ("label",)
    nll = [
        evaluate(state, {**test_batch, "label": jnp.full_like(test_batch["label"], c)}, None)["nll_nats"]
        for c in (0, 1)
    ]
    assert np.all(np.asarray(nll[0]) != np.asarray(nll[1]))
    assert build_method(load("pixelcnn.py", *TINY_PIXELCNN)).conditioning_fields() == ()


def test_exponential_learning_rate_decay_and_its_validation():
    optim_config = adam_config(1e-3)
    optim_config.exponential_decay = 0.5
    factor = learning_rate_factor(optim_config)
    np.testing.assert_allclose([float(factor(jnp.asarray(c))) for c in range(4)], [1.0, 0.5, 0.25, 0.125], rtol=1e-6)
    optim_config.exponential_decay = 1.5
    with pytest.raises(ConfigError, match=r"config.optim.x.exponential_decay=1.5 is invalid"):
        adam(optim_config, "optim.x")


def test_paper_setup_is_the_reference_recipe():
    config = load("pixelcnn.py:cifar10")
    model, optim = config.model, config.optim.pixelcnn
    assert (model.nr_resnet, model.nr_filters, model.nr_logistic_mix, model.dropout) == (5, 160, 10, 0.5)
    assert (optim.learning_rate, optim.b1, optim.b2, optim.exponential_decay) == (1e-3, 0.95, 0.9995, 0.999995)
    assert (config.train.batch_size, config.train.ema_decay, config.data.channels) == (128, 0.9995, 3)
    with pytest.raises(ConfigError, match=r"model\.nr_filters"):
        build_method(load("pixelcnn.py", "model.nr_filters=0"))
