"""Adversarial losses on given logits, and spectral normalisation against numpy's largest singular value."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genimg_jax.losses import adversarial
from genimg_jax.models import gan_layers

REAL = jnp.array([2.0, -0.5, 0.0, 1.5])
FAKE = jnp.array([-1.0, 0.5, 3.0, -2.5])


def _softplus(x):
    return np.log1p(np.exp(x))


@pytest.mark.parametrize(
    ("name", "g_expected", "d_expected"),
    [
        (
            "non_saturating",
            np.mean(_softplus(-np.asarray(FAKE))),
            np.mean(_softplus(-np.asarray(REAL))) + np.mean(_softplus(np.asarray(FAKE))),
        ),
        (
            "minimax",  # G minimises log(1 - sigmoid(fake)) = -softplus(fake)
            np.mean(np.log(1.0 - 1.0 / (1.0 + np.exp(-np.asarray(FAKE))))),
            np.mean(_softplus(-np.asarray(REAL))) + np.mean(_softplus(np.asarray(FAKE))),
        ),
        # hinge: relu(1 - real) = (0, 1.5, 1, 0) and relu(1 + fake) = (0, 1.5, 4, 0).
        ("hinge", -np.mean(FAKE), (0 + 1.5 + 1.0 + 0) / 4 + (0 + 1.5 + 4.0 + 0) / 4),
        ("wasserstein", -np.mean(FAKE), np.mean(FAKE) - np.mean(REAL)),
        (
            "least_squares",
            0.5 * np.mean((np.asarray(FAKE) - 1) ** 2),
            0.5 * np.mean((np.asarray(REAL) - 1) ** 2) + 0.5 * np.mean(np.asarray(FAKE) ** 2),
        ),
    ],
)
def test_losses_on_given_logits(name, g_expected, d_expected):
    g_loss, d_loss = adversarial.LOSSES[name]
    assert float(g_loss(FAKE)) == pytest.approx(float(g_expected), rel=1e-5)
    assert float(d_loss(REAL, FAKE)) == pytest.approx(float(d_expected), rel=1e-5)


def test_minimax_and_non_saturating_generator_losses_share_their_fixed_point_but_not_gradients():
    """Both push D(G(z)) up; at a confident D (fake logit -5) the minimax gradient nearly vanishes."""
    logit = jnp.array([-5.0])
    minimax = jax.grad(adversarial.LOSSES["minimax"][0])(logit)
    non_saturating = jax.grad(adversarial.LOSSES["non_saturating"][0])(logit)
    assert float(minimax[0]) < 0 and float(non_saturating[0]) < 0
    assert abs(float(minimax[0])) == pytest.approx(1 / (1 + math.exp(5)), rel=1e-4)
    assert abs(float(non_saturating[0])) > 100 * abs(float(minimax[0]))


def test_multi_head_logits_sum_the_per_head_means():
    two_heads = jnp.stack([REAL, 2 * REAL], axis=1)
    two_fakes = jnp.stack([FAKE, -FAKE], axis=1)
    for g_loss, d_loss in adversarial.LOSSES.values():
        expected = d_loss(REAL, FAKE) + d_loss(2 * REAL, -FAKE)
        assert float(d_loss(two_heads, two_fakes)) == pytest.approx(float(expected), rel=1e-5)
        assert float(g_loss(two_fakes)) == pytest.approx(float(g_loss(FAKE) + g_loss(-FAKE)), rel=1e-5)


def _power_iterate(layer, variables, x, steps):
    for _ in range(steps):
        _, updates = layer.apply(variables, x, train=True, mutable=["batch_stats"])
        variables = {**variables, **updates}
    return variables


def test_spectral_norm_of_a_dense_layer_matches_the_largest_singular_value():
    matrix = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    layer = gan_layers.Dense(4, spectral_norm=True)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 6)), jnp.float32)
    variables = layer.init(jax.random.PRNGKey(0), x, train=False)
    variables = {**variables, "params": {"Dense_0": {"kernel": jnp.asarray(matrix), "bias": jnp.zeros(4)}}}
    variables = _power_iterate(layer, variables, x, steps=30)
    sigma = np.linalg.svd(matrix, compute_uv=False)[0]
    (stats,) = jax.tree.leaves(variables["batch_stats"]["SpectralNorm_0"]["Dense_0/kernel/sigma"])
    assert float(stats) == pytest.approx(sigma, rel=1e-4)
    # In evaluation the stored power-iteration vector is used without being written.
    np.testing.assert_allclose(layer.apply(variables, x, train=False), np.asarray(x) @ matrix / sigma, rtol=1e-4)


def test_spectral_norm_of_a_conv_kernel_uses_its_matrix_reshape():
    kernel = np.random.default_rng(2).normal(size=(3, 3, 2, 5)).astype(np.float32)
    layer = gan_layers.Conv(5, spectral_norm=True)
    x = jnp.ones((1, 4, 4, 2))
    variables = layer.init(jax.random.PRNGKey(0), x, train=False)
    variables = {**variables, "params": {"Conv_0": {"kernel": jnp.asarray(kernel), "bias": jnp.zeros(5)}}}
    variables = _power_iterate(layer, variables, x, steps=30)
    sigma = np.linalg.svd(kernel.reshape(-1, 5), compute_uv=False)[0]
    (stored,) = jax.tree.leaves(variables["batch_stats"]["SpectralNorm_0"]["Conv_0/kernel/sigma"])
    assert float(stored) == pytest.approx(sigma, rel=1e-4)
    # Normalised weights have unit spectral norm: the layer's output is the plain conv's divided by sigma.
    plain = gan_layers.Conv(5).apply({"params": {"Conv_0": {"kernel": kernel / sigma, "bias": jnp.zeros(5)}}}, x, False)
    np.testing.assert_allclose(layer.apply(variables, x, train=False), plain, rtol=1e-4, atol=1e-6)
