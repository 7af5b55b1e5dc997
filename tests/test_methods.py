"""Each method for a few steps on real digits: losses move, samples have the right shape and range."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from digits_training import train_on_digits
from tiny_configs import load

from genimg_jax import data
from genimg_jax.methods import build_method
from genimg_jax.methods.base import ema_update
from genimg_jax.methods.vae import binarize

SMALL = ["data.resolution=16", "train.batch_size=32"]


def _digits_batches(config, steps):
    source = data.make_source("digits", split="train", resolution=config.data.resolution, channels=1)
    stream = data.make_train_stream(source, global_batch_size=config.train.batch_size, seed=0)
    return [jax.tree.map(jnp.asarray, next(stream)) for _ in range(steps)]


def _train(config, steps):
    method, state, history, _ = train_on_digits(config, steps)
    return method, state, history


def test_gan_few_steps():
    config = load("dcgan.py", *SMALL, "model.g_features=16", "model.d_features=16")
    method, state, history = _train(config, steps=12)
    assert int(state.step) == 12
    d_losses = [float(m["d_loss"]) for m in history]
    g_losses = [float(m["g_loss"]) for m in history]
    assert all(np.isfinite(d_losses + g_losses))
    # D learns to tell digits from the untrained generator's output: its loss falls well below the 2 log 2 start.
    assert d_losses[-1] < 0.8 * d_losses[0]
    assert float(history[-1]["d_real"]) > float(history[0]["d_real"])
    images = jax.jit(lambda s, r: method.sample(s, r, 9))(state, jax.random.PRNGKey(1))
    assert images.shape == (9, 16, 16, 1)
    assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0
    # The EMA generator moved away from the initial weights, but lags behind the trained one.
    initial = method.init_state(jax.random.PRNGKey(0), _digits_batches(config, 1)[0]).generator["params"]
    live, ema = state.generator["params"], state.ema_generator["params"]
    moved = sum(
        float(jnp.sum((e - i) ** 2)) for e, i in zip(jax.tree.leaves(ema), jax.tree.leaves(initial), strict=True)
    )
    assert moved > 0
    lag = sum(float(jnp.sum((e - lv) ** 2)) for e, lv in zip(jax.tree.leaves(ema), jax.tree.leaves(live), strict=True))
    assert lag > 0


@pytest.mark.parametrize("likelihood", [pytest.param("bernoulli", marks=pytest.mark.slow), "gaussian"])  # ~30 s each
def test_vae_few_steps(likelihood):
    config = load("vae.py", *SMALL, f"model.likelihood={likelihood}")
    method, state, history = _train(config, steps=30)
    elbos = [float(m["negative_elbo"]) for m in history]
    assert all(np.isfinite(elbos))
    assert np.mean(elbos[-5:]) < 0.8 * np.mean(elbos[:5])
    last = history[-1]
    assert float(last["negative_elbo"]) == pytest.approx(float(last["reconstruction"] + last["kl"]), rel=1e-5)
    assert float(last["bits_per_dim"]) == pytest.approx(float(last["negative_elbo"]) / (16 * 16 * np.log(2)), rel=1e-5)
    images = method.sample(state, jax.random.PRNGKey(1), 4)
    assert images.shape == (4, 16, 16, 1)
    assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0

    batch = _digits_batches(config, 1)[0]
    values = method.evaluate_batch(state, batch, jax.random.PRNGKey(2))
    assert values["negative_elbo"].shape == (32,)
    assert bool(jnp.all(values["kl"] >= 0))


def test_bernoulli_vae_negative_elbo_bounded_by_uniform_model_at_init():
    """At initialisation the decoder is near p = 1/2 per pixel, so -ELBO is about D log 2 plus a small KL."""
    config = load("vae.py", *SMALL)
    method = build_method(config)
    batch = _digits_batches(config, 1)[0]
    state = method.init_state(jax.random.PRNGKey(0), batch)
    values = method.evaluate_batch(state, batch, jax.random.PRNGKey(1))
    assert float(jnp.mean(values["bits_per_dim"])) == pytest.approx(1.0, abs=0.2)


def test_binarize_thresholds_at_mid_grey():
    images = data.to_unit_range(jnp.array([0, 127, 128, 255], jnp.uint8))
    assert binarize(images).tolist() == [0.0, 0.0, 1.0, 1.0]


def test_ema_update_warms_up_then_uses_the_decay():
    average, new = {"w": jnp.zeros(())}, {"w": jnp.ones(())}
    # Step 0: effective decay min(0.999, 1/10) = 0.1, so the average jumps 90% of the way.
    assert float(ema_update(average, new, jnp.array(0), 0.999)["w"]) == pytest.approx(0.9)
    # Late in training the configured decay applies.
    assert float(ema_update(average, new, jnp.array(10**6), 0.999)["w"]) == pytest.approx(0.001, rel=1e-3)
