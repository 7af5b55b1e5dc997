"""DRAW (Gregor et al. 2015) trained by its variational bound: Bernoulli NLL of the final canvas + Σ_t KL_t.

The β / KL-annealing / free-bits options of `methods.variational` apply to the summed per-step KLs as to a VAE's.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections

from genimg_jax.config import adam_config, base_config, require
from genimg_jax.losses import likelihood
from genimg_jax.losses.likelihood import binarize
from genimg_jax.methods.base import Batch
from genimg_jax.methods.variational import VariationalMethod, VariationalState
from genimg_jax.models.draw import DrawNetwork

CANVAS_ROWS = 8


def draw_config() -> ml_collections.ConfigDict:
    """`base_config()` with every DRAW key at its default: small settings that train on the digits in minutes."""
    config = base_config()
    config.method = "draw"
    config.model = ml_collections.ConfigDict(
        {
            "steps": 8,  # T, the number of canvas updates
            "hidden": 128,  # LSTM units of the encoder and of the decoder
            "latent_dim": 8,  # dimensions of z_t at each step
            "read_size": 3,  # N x N read attention grid
            "write_size": 5,  # N x N write attention grid
            "beta": 1.0,
            "kl_warmup_steps": 0,
            "free_bits": 0.0,
        }
    )
    config.optim = ml_collections.ConfigDict({"draw": adam_config(1e-3)})
    config.optim.draw.grad_clip_norm = 10.0  # LSTMs over T steps: an occasional large gradient is clipped
    return config


@flax.struct.dataclass
class DRAWState(VariationalState):
    """params: the one recurrent network's (read, encoder and decoder LSTMs, write)."""


class DRAW(VariationalMethod[DRAWState]):
    """Recurrent VAE with attention: T steps of read, encode, sample z_t, decode, write, on binarised images."""

    NETWORK = "draw"  # the one optimiser of `optim.draw`
    state_class = DRAWState

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        model = config.model
        for key in ("steps", "hidden", "latent_dim", "read_size", "write_size"):
            require(model[key] > 0, f"model.{key}", model[key], "must be positive")
        self.network = DrawNetwork(
            resolution=config.data.resolution,
            channels=config.data.channels,
            steps=model.steps,
            hidden=model.hidden,
            latent_dim=model.latent_dim,
            read_size=model.read_size,
            write_size=model.write_size,
        )

    def _noise(self, rng: jax.Array, batch: int) -> jax.Array:
        return jax.random.normal(rng, (self.config.model.steps, batch, self.config.model.latent_dim))

    def init_params(self, rng: jax.Array, images: jax.Array) -> Any:
        return self.network.init(rng, binarize(images), self._noise(rng, images.shape[0]))["params"]

    def elbo_terms(self, params: Any, images: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        targets = binarize(images)
        canvases, means, log_variances = self.network.apply(
            {"params": params}, targets, self._noise(rng, images.shape[0])
        )
        kl_per_dimension = jnp.moveaxis(likelihood.gaussian_kl_per_dimension(means, log_variances), 0, 1)
        return likelihood.bernoulli_log_likelihood(canvases[-1], targets), kl_per_dimension

    def _generate(self, state: DRAWState, rng: jax.Array, num: int) -> jax.Array:
        """Mean images in [-1, 1] after each step, (T, num, H, W, C)."""
        canvases = self.network.apply({"params": state.params}, self._noise(rng, num), method=DrawNetwork.generate)
        return 2.0 * jax.nn.sigmoid(canvases) - 1.0

    def sample(self, state: DRAWState, rng: jax.Array, num: int, conditioning: Batch | None = None) -> jax.Array:
        return self._generate(state, rng, num)[-1]

    def illustrations(self, state: DRAWState, batch: Batch, rng: jax.Array) -> dict[str, jax.Array]:
        """ "canvas": one row per sample from the prior, the canvas after each of the T steps left to right."""
        num = min(CANVAS_ROWS, batch["image"].shape[0])
        return {"canvas": jnp.moveaxis(self._generate(state, rng, num), 0, 1)}
