"""VAE family on real digits: the β-VAE schedule, the IWAE bound beside the ELBO, and the pictures."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from digits_training import train_on_digits
from tiny_configs import load

from genimg_jax import data
from genimg_jax.config import ConfigError
from genimg_jax.methods import build_method

SMALL = [
    "data.resolution=16",
    "train.batch_size=32",
    "model.features=8",
    "optim.vae.learning_rate=0.005",
    "eval.iwae_chunk_size=8",
]


@pytest.fixture(scope="module")
def trained_beta_vae():
    config = load("vae.py:beta", *SMALL, "model.kl_warmup_steps=20")
    method, state, history, _ = train_on_digits(config, steps=30)
    return method, state, history


@pytest.mark.slow  # share a trained beta-VAE (~40 s)
def test_beta_vae_anneals_its_kl_weight_and_lowers_the_bound(trained_beta_vae):
    _, _, history = trained_beta_vae
    weights = [float(m["kl_weight"]) for m in history]
    np.testing.assert_allclose(weights[:21], 4.0 * np.arange(21) / 20, rtol=1e-6)
    assert weights[-1] == 4.0
    elbos = [float(m["negative_elbo"]) for m in history]
    assert np.mean(elbos[-5:]) < 0.8 * np.mean(elbos[:5])
    # With β = 0 at step 0 the loss is the reconstruction term alone; free bits only ever add to it later.
    assert float(history[0]["loss"]) == pytest.approx(float(history[0]["reconstruction"]), rel=1e-6)
    late = history[-1]
    assert float(late["loss"]) >= float(late["reconstruction"] + 4.0 * late["kl"]) - 1e-3


@pytest.mark.slow  # share a trained beta-VAE (~40 s)
def test_iwae_bound_is_tighter_than_the_elbo_and_tightens_with_k(trained_beta_vae):
    method, state, _ = trained_beta_vae
    source = data.make_source("digits", split="test", resolution=16, channels=1)
    batch = next(data.iterate_once(source, batch_size=64))
    nll = {}
    for k in (1, 64):
        method.config.eval.iwae_samples = k
        values = jax.jit(method.evaluate_batch)(state, batch, jax.random.PRNGKey(1))
        nll[k] = float(jnp.mean(values["nll_iwae_nats"]))
        elbo = float(jnp.mean(values["negative_elbo"]))
        np.testing.assert_allclose(values["nll_iwae_bpd"], values["nll_iwae_nats"] / (256 * np.log(2)), rtol=1e-5)
    # k = 1 is itself a one-sample ELBO estimate; 64 samples give a bound that is tighter by a clear margin.
    assert nll[1] == pytest.approx(elbo, rel=0.05)
    assert nll[64] < elbo and nll[64] < nll[1] - 1.0


@pytest.mark.slow  # share a trained beta-VAE (~40 s)
def test_reconstructions_and_interpolations(trained_beta_vae):
    method, state, _ = trained_beta_vae
    source = data.make_source("digits", split="test", resolution=16, channels=1)
    batch = next(data.iterate_once(source, batch_size=16))
    pictures = jax.jit(method.illustrations)(state, batch, jax.random.PRNGKey(0))
    reconstructions, interpolations = pictures["reconstructions"], pictures["interpolations"]
    assert reconstructions.shape == (2, 16, 16, 16, 1)  # 16 (input, reconstruction) pairs, 8 pairs per row
    assert interpolations.shape == (8, 8, 16, 16, 1)  # a row of 8 steps for each of 8 pairs
    pairs = reconstructions.reshape(16, 2, 16, 16, 1)
    np.testing.assert_allclose(pairs[:, 0], data.to_unit_range(batch["image"]), atol=1e-6)
    # Each interpolation runs from the reconstruction of image 2i to that of image 2i + 1.
    np.testing.assert_allclose(interpolations[:, 0], pairs[0::2, 1], atol=1e-5)
    np.testing.assert_allclose(interpolations[:, -1], pairs[1::2, 1], atol=1e-5)
    assert float(jnp.abs(interpolations[:, 3] - interpolations[:, 0]).max()) > 0.01


def test_unknown_variant_and_negative_free_bits_are_config_errors():
    with pytest.raises(ConfigError, match="config variant 'gamma' is unknown"):
        load("vae.py:gamma")
    config = load("vae.py", "model.free_bits=-1")
    with pytest.raises(ConfigError, match=r"config.model.free_bits=-1.0 is invalid"):
        build_method(config)
