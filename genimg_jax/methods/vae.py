"""Variational autoencoder (Kingma & Welling 2014) with a β-weighted KL (Higgins et al. 2017).

Training minimises E_q[-log p(x|z)] + β KL(q(z|x) || p(z)); evaluation always reports the true ELBO (β = 1) of the
held-out split in nats per image and bits/dim, over discrete pixels (see `losses.likelihood`).
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genimg_jax import data
from genimg_jax.config import require, require_choice
from genimg_jax.losses import likelihood
from genimg_jax.methods.base import Batch, Metrics, adam
from genimg_jax.models import vae as vae_models

LIKELIHOODS = ("bernoulli", "gaussian")


@flax.struct.dataclass
class VAEState:
    step: jax.Array
    rng: jax.Array
    params: Any  # {"encoder": ..., "decoder": ..., "log_scale": (C,)}
    opt_state: Any


class VAE:
    """Convolutional encoder/decoder, diagonal Gaussian posterior, Bernoulli or discretised Gaussian likelihood."""

    def __init__(self, config: ml_collections.ConfigDict):
        model = config.model
        require_choice(config, "model.likelihood", LIKELIHOODS)
        require(model.latent_dim > 0, "model.latent_dim", model.latent_dim, "must be positive")
        require(model.beta >= 0, "model.beta", model.beta, "must be >= 0")
        self.config = config
        self.encoder = vae_models.Encoder(latent_dim=model.latent_dim, base_features=model.features)
        self.decoder = vae_models.Decoder(
            resolution=config.data.resolution, channels=config.data.channels, base_features=model.features
        )
        self.optimizer = adam(config.optim)
        self.num_dims = config.data.resolution**2 * config.data.channels

    def init_state(self, rng: jax.Array, example_batch: Batch) -> VAEState:
        enc_rng, dec_rng, state_rng = jax.random.split(rng, 3)
        images = data.to_unit_range(example_batch["image"])
        params = {
            "encoder": self.encoder.init(enc_rng, images)["params"],
            "decoder": self.decoder.init(dec_rng, jnp.zeros((1, self.config.model.latent_dim)))["params"],
            # A starting scale of about 0.2 (of the [-1, 1] range) instead of 1: Adam moves it only ~lr per step.
            "log_scale": jnp.full((self.config.data.channels,), -1.5),
        }
        return VAEState(jnp.zeros((), jnp.int32), state_rng, params, self.optimizer.init(params))

    def _log_likelihood(self, params: Any, decoded: jax.Array, images: jax.Array) -> jax.Array:
        if self.config.model.likelihood == "bernoulli":
            return likelihood.bernoulli_log_likelihood(decoded, binarize(images))
        return likelihood.discretized_gaussian_log_likelihood(images, decoded, params["log_scale"])

    def _elbo_terms(self, params: Any, images: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Per-example (log-likelihood, KL) with one reparameterised posterior sample."""
        mean, log_variance = self.encoder.apply({"params": params["encoder"]}, images)
        z = mean + jnp.exp(0.5 * log_variance) * jax.random.normal(rng, mean.shape)
        decoded = self.decoder.apply({"params": params["decoder"]}, z)
        log_likelihood = self._log_likelihood(params, decoded, images)
        return log_likelihood, likelihood.gaussian_kl_to_standard_normal(mean, log_variance)

    def train_step(self, state: VAEState, batch: Batch) -> tuple[VAEState, Metrics]:
        images = data.to_unit_range(batch["image"])
        rng = jax.random.fold_in(state.rng, state.step)

        def loss_fn(params):
            log_likelihood, kl = self._elbo_terms(params, images, rng)
            loss = jnp.mean(-log_likelihood + self.config.model.beta * kl)
            return loss, (log_likelihood, kl)

        (loss, (log_likelihood, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        new_state = VAEState(state.step + 1, state.rng, optax.apply_updates(state.params, updates), opt_state)
        negative_elbo = jnp.mean(kl - log_likelihood)
        metrics = {
            "loss": loss,
            "negative_elbo": negative_elbo,
            "bits_per_dim": likelihood.bits_per_dim(negative_elbo, self.num_dims),
            "reconstruction": -jnp.mean(log_likelihood),
            "kl": jnp.mean(kl),
            "grad_norm": optax.tree.norm(grads),
        }
        return new_state, metrics

    def _mean_image(self, params: Any, decoded: jax.Array) -> jax.Array:
        """Mean of p(x|z) in [-1, 1]: what a sample grid shows."""
        if self.config.model.likelihood == "bernoulli":
            return 2.0 * jax.nn.sigmoid(decoded) - 1.0
        return jnp.clip(decoded, -1.0, 1.0)

    def sample(self, state: VAEState, rng: jax.Array, num: int) -> jax.Array:
        z = jax.random.normal(rng, (num, self.config.model.latent_dim))
        decoded = self.decoder.apply({"params": state.params["decoder"]}, z)
        return self._mean_image(state.params, decoded)

    def evaluate_batch(self, state: VAEState, batch: Batch, rng: jax.Array) -> Metrics:
        images = data.to_unit_range(batch["image"])
        log_likelihood, kl = self._elbo_terms(state.params, images, rng)
        negative_elbo = kl - log_likelihood
        return {
            "negative_elbo": negative_elbo,
            "bits_per_dim": likelihood.bits_per_dim(negative_elbo, self.num_dims),
            "kl": kl,
        }


def binarize(images: jax.Array) -> jax.Array:
    """Deterministic binarisation at mid-grey, giving the binary data a Bernoulli likelihood is defined on."""
    return (images > 0.0).astype(jnp.float32)
