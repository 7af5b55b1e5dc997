"""Gradient penalties against closed forms for linear and quadratic critics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genimg_jax.losses.penalties import gradient_norm_penalty, wgan_gradient_penalty
from genimg_jax.methods.gan.common import when_due

SHAPE = (6, 4, 4, 2)


def _linear_critic(weights, bias=0.3):
    return lambda x: jnp.sum(x * weights, axis=(1, 2, 3)) + bias


def _images(seed):
    return jax.random.normal(jax.random.PRNGKey(seed), SHAPE)


def test_gradient_penalty_of_linear_critic_is_squared_distance_of_weight_norm_to_one():
    weights = jax.random.normal(jax.random.PRNGKey(0), SHAPE[1:])
    norm = float(jnp.linalg.norm(weights))
    penalty = wgan_gradient_penalty(_linear_critic(weights), _images(1), _images(2), jax.random.PRNGKey(3))
    assert float(penalty) == pytest.approx((norm - 1.0) ** 2, rel=1e-5)
    # A critic with unit-norm weights is exactly 1-Lipschitz along every direction: no penalty.
    unit = wgan_gradient_penalty(_linear_critic(weights / norm), _images(1), _images(2), jax.random.PRNGKey(3))
    assert float(unit) == pytest.approx(0.0, abs=1e-8)
    # target generalises the Lipschitz constant.
    two = wgan_gradient_penalty(_linear_critic(weights), _images(1), _images(2), jax.random.PRNGKey(3), target=2.0)
    assert float(two) == pytest.approx((norm - 2.0) ** 2, rel=1e-5)


def test_gradient_penalty_gradient_wrt_critic_weights_matches_closed_form():
    weights = 0.3 * jax.random.normal(jax.random.PRNGKey(0), SHAPE[1:])

    def penalty(w):
        return wgan_gradient_penalty(_linear_critic(w), _images(1), _images(2), jax.random.PRNGKey(3))

    norm = jnp.linalg.norm(weights)
    expected = 2.0 * (norm - 1.0) * weights / norm  # d/dw (||w|| - 1)^2
    np.testing.assert_allclose(jax.grad(penalty)(weights), expected, rtol=1e-4, atol=1e-6)


def test_gradient_penalty_samples_uniformly_between_real_and_fake():
    """Critic 0.5 ||x - real_i||^2 has gradient norm alpha_i ||fake_i - real_i||; with unit distances the penalty
    is the mean of (alpha - 1)^2, whose expectation under alpha ~ U[0, 1] is 1/3."""
    batch = 4096
    real = jax.random.normal(jax.random.PRNGKey(0), (batch, 2, 2, 1))
    direction = jax.random.normal(jax.random.PRNGKey(1), (batch, 2, 2, 1))
    direction = direction / jnp.linalg.norm(direction.reshape(batch, -1), axis=1).reshape(batch, 1, 1, 1)

    def critic(x):
        return 0.5 * jnp.sum((x - real) ** 2, axis=(1, 2, 3))

    penalty = wgan_gradient_penalty(critic, real, real + direction, jax.random.PRNGKey(2))
    assert float(penalty) == pytest.approx(1.0 / 3.0, abs=0.02)


def test_zero_centred_penalty_of_linear_and_quadratic_critics():
    weights = jax.random.normal(jax.random.PRNGKey(0), SHAPE[1:])
    images = _images(1)
    linear = gradient_norm_penalty(_linear_critic(weights), images)
    assert float(linear) == pytest.approx(float(jnp.sum(weights**2)), rel=1e-5)
    # Critic 0.5 ||x||^2 has gradient x: the penalty is the mean squared norm of the images.
    quadratic = gradient_norm_penalty(lambda x: 0.5 * jnp.sum(x**2, axis=(1, 2, 3)), images)
    expected = np.mean(np.sum(np.asarray(images) ** 2, axis=(1, 2, 3)))
    assert float(quadratic) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("backend", ["cpu", "gpu"])  # "gpu": the lax.cond path, run here on the CPU
@pytest.mark.parametrize("interval", [1, 4])
def test_when_due_regularises_only_on_due_steps_and_masks_gradients(interval, backend, monkeypatch):
    """Due: the regulariser's value and gradient; not due: the skip value and a zero gradient (interval 1: always)."""
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    w = jnp.array([3.0, -2.0])

    def loss(w, due):
        return when_due(due, interval, lambda v: jnp.sum(v**2), lambda v: jnp.zeros(()), w)

    uses_cond = "cond" in str(jax.make_jaxpr(loss)(w, jnp.array(True)))
    assert uses_cond == (backend == "gpu" and interval > 1)
    for due in (True, False):
        value, grad = jax.value_and_grad(loss)(w, jnp.array(due))
        regularised = due or interval == 1
        assert float(value) == (13.0 if regularised else 0.0)
        np.testing.assert_array_equal(grad, 2 * w if regularised else jnp.zeros(2))
    # Pytrees of results are selected leaf by leaf.
    state = (jnp.ones(3), jnp.zeros(()))
    stepped = when_due(jnp.array(False), interval, lambda s: (s[0] + 1, s[1] + 1), lambda s: s, state)
    np.testing.assert_array_equal(stepped[0], 2.0 if interval == 1 else 1.0)
