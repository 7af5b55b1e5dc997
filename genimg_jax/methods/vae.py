"""Variational autoencoder (Kingma & Welling 2014), β-VAE (Higgins et al. 2017) with KL annealing and free bits.

Training minimises E_q[-log p(x|z)] + β KL(q(z|x) || p(z)) (see `methods.variational`); evaluation reports the true
ELBO of the held-out split and, beside it, the importance-weighted bound of Burda et al. (2016) with
`eval.iwae_samples` samples as an estimate of -log p(x), both in nats per image and bits/dim over discrete pixels
(see `losses.likelihood`).
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections

from genimg_jax import data
from genimg_jax.config import adam_config, base_config, require, require_choice
from genimg_jax.losses import elbo, likelihood
from genimg_jax.losses.likelihood import binarize
from genimg_jax.methods.base import Batch, Metrics
from genimg_jax.methods.variational import VariationalMethod, VariationalState
from genimg_jax.models import vae as vae_models
from genimg_jax.models.interpolation import slerp

__all__ = ["VAE", "VAEState", "binarize", "vae_config"]

LIKELIHOODS = ("bernoulli", "gaussian")
INTERPOLATION_STEPS = 8
PAIRS_PER_ROW = 8


def vae_config() -> ml_collections.ConfigDict:
    """`base_config()` with every VAE key at its default (a plain VAE: β = 1, no annealing, no free bits)."""
    config = base_config()
    config.method = "vae"
    config.model = ml_collections.ConfigDict(
        {
            "latent_dim": 16,
            "features": 32,  # channels of the first encoder level, doubled at each down-sampling
            "likelihood": "bernoulli",  # bernoulli (binarised pixels) | gaussian (discretised, 256 grey levels)
            "beta": 1.0,  # weight of the KL term in training
            "kl_warmup_steps": 0,  # steps over which the KL weight ramps up linearly from 0 to beta
            "free_bits": 0.0,  # nats per latent dimension below which the KL is not penalised
        }
    )
    config.optim = ml_collections.ConfigDict({"vae": adam_config(1e-3)})
    config.eval.iwae_samples = 64  # 0 skips the importance-weighted bound
    config.eval.iwae_chunk_size = 16  # samples decoded at once: bounds evaluation memory
    return config


@flax.struct.dataclass
class VAEState(VariationalState):
    """params: {"encoder": ..., "decoder": ..., "log_scale": (C,)} (log_scale is used by the Gaussian likelihood)."""


class VAE(VariationalMethod[VAEState]):
    """Convolutional encoder/decoder, diagonal Gaussian posterior, Bernoulli or discretised Gaussian likelihood."""

    NETWORK = "vae"  # encoder, decoder and likelihood scale share the optimiser of `optim.vae`
    state_class = VAEState

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        model = config.model
        require_choice(config, "model.likelihood", LIKELIHOODS)
        require(model.latent_dim > 0, "model.latent_dim", model.latent_dim, "must be positive")
        for key in ("iwae_samples", "iwae_chunk_size"):
            require(config.eval[key] >= 0, f"eval.{key}", config.eval[key], "must be >= 0")
        self.encoder = vae_models.Encoder(latent_dim=model.latent_dim, base_features=model.features)
        self.decoder = vae_models.Decoder(
            resolution=config.data.resolution, channels=config.data.channels, base_features=model.features
        )

    def init_params(self, rng: jax.Array, images: jax.Array) -> Any:
        enc_rng, dec_rng = jax.random.split(rng)
        return {
            "encoder": self.encoder.init(enc_rng, images)["params"],
            "decoder": self.decoder.init(dec_rng, jnp.zeros((1, self.config.model.latent_dim)))["params"],
            # A starting scale of about 0.2 (of the [-1, 1] range) instead of 1: Adam moves it only ~lr per step.
            "log_scale": jnp.full((self.config.data.channels,), -1.5),
        }

    def _encode(self, params: Any, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.encoder.apply({"params": params["encoder"]}, images)

    def _decode(self, params: Any, z: jax.Array) -> jax.Array:
        return self.decoder.apply({"params": params["decoder"]}, z)

    def _log_likelihood(self, params: Any, decoded: jax.Array, images: jax.Array) -> jax.Array:
        if self.config.model.likelihood == "bernoulli":
            return likelihood.bernoulli_log_likelihood(decoded, binarize(images))
        return likelihood.discretized_gaussian_log_likelihood(images, decoded, params["log_scale"])

    def elbo_terms(self, params: Any, images: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean, log_variance = self._encode(params, images)
        z = mean + jnp.exp(0.5 * log_variance) * jax.random.normal(rng, mean.shape)
        log_likelihood = self._log_likelihood(params, self._decode(params, z), images)
        return log_likelihood, likelihood.gaussian_kl_per_dimension(mean, log_variance)

    def mean_image(self, decoded: jax.Array) -> jax.Array:
        """Mean of p(x|z) in [-1, 1]: what a picture shows."""
        if self.config.model.likelihood == "bernoulli":
            return 2.0 * jax.nn.sigmoid(decoded) - 1.0
        return jnp.clip(decoded, -1.0, 1.0)

    # As latent diffusion's first stage (`methods.latent_diffusion.Autoencoder`): the flat posterior mean.
    def latent_params(self, state: VAEState) -> Any:
        return state.params

    def encode_latents(self, params: Any, images: jax.Array) -> jax.Array:
        """The posterior means (N, latent_dim) of uint8 `images`."""
        mean, _ = self._encode(params, data.to_unit_range(images))
        return mean

    def decode_latents(self, params: Any, z: jax.Array) -> jax.Array:
        return self.mean_image(self._decode(params, z))

    def sample(self, state: VAEState, rng: jax.Array, num: int, conditioning: Batch | None = None) -> jax.Array:
        z = jax.random.normal(rng, (num, self.config.model.latent_dim))
        return self.mean_image(self._decode(state.params, z))

    def evaluate_batch(self, state: VAEState, batch: Batch, rng: jax.Array) -> Metrics:
        """The true ELBO and, with `eval.iwae_samples` > 0, the IWAE estimate of -log p(x) (nll_iwae_*)."""
        elbo_rng, iwae_rng = jax.random.split(rng)
        values = super().evaluate_batch(state, batch, elbo_rng)
        num_samples = self.config.eval.iwae_samples
        if num_samples:
            images = data.to_unit_range(batch["image"])
            mean, log_variance = self._encode(state.params, images)
            nll = -elbo.importance_weighted_log_likelihood(
                lambda z: self._log_likelihood(state.params, self._decode(state.params, z), images),
                mean,
                log_variance,
                iwae_rng,
                num_samples,
                self.config.eval.iwae_chunk_size or num_samples,
            )
            values["nll_iwae_nats"] = nll
            values["nll_iwae_bpd"] = likelihood.bits_per_dim(nll, self.num_dims)
        return values

    def illustrations(self, state: VAEState, batch: Batch, rng: jax.Array) -> dict[str, jax.Array]:
        """Posterior-mean reconstructions beside their inputs, and interpolations between encoded pairs.

        "reconstructions": rows of (input, reconstruction) pairs, shape (rows, 2 * pairs, H, W, C);
        "interpolations": one row per pair of consecutive images, spherical in latent space (White 2016),
        from the first image's posterior mean to the second's, shape (pairs, INTERPOLATION_STEPS, H, W, C).
        """
        del rng  # posterior means only: the pictures are deterministic given the weights
        images = data.to_unit_range(batch["image"])
        mean, _ = self._encode(state.params, images)
        count, *image_shape = images.shape
        per_row = min(PAIRS_PER_ROW, count)
        shown = count // per_row * per_row
        reconstructions = self.mean_image(self._decode(state.params, mean[:shown]))
        pairs = jnp.stack([images[:shown], reconstructions], axis=1)  # (shown, 2, H, W, C)
        num_pairs = min(PAIRS_PER_ROW, count // 2)
        fractions = jnp.linspace(0.0, 1.0, INTERPOLATION_STEPS)
        latents = jax.vmap(lambda a, b: slerp(a, b, fractions))(
            mean[0 : 2 * num_pairs : 2], mean[1 : 2 * num_pairs : 2]
        )
        decoded = self.mean_image(self._decode(state.params, latents.reshape(-1, latents.shape[-1])))
        return {
            "reconstructions": pairs.reshape(shown // per_row, 2 * per_row, *image_shape),
            "interpolations": decoded.reshape(num_pairs, INTERPOLATION_STEPS, *image_shape),
        }
