"""Generative adversarial networks: alternating D and G updates, separate optimizers, EMA generator for samples."""

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genimg_jax import data, parallel
from genimg_jax.config import require, require_choice
from genimg_jax.losses.adversarial import LOSSES
from genimg_jax.methods.base import Batch, Metrics, adam, ema_update
from genimg_jax.models import dcgan

ARCHITECTURES = {"dcgan": (dcgan.Generator, dcgan.Discriminator)}


@flax.struct.dataclass
class GANState:
    step: jax.Array
    rng: jax.Array
    generator: Any  # {"params": ..., "batch_stats": ...}
    discriminator: Any
    g_opt_state: Any
    d_opt_state: Any
    ema_generator: Any  # EMA of generator params; batch statistics copied from the live generator


class GAN:
    """DCGAN-style training (Radford et al. 2016) with a loss chosen from `losses.adversarial.LOSSES`."""

    def __init__(self, config: ml_collections.ConfigDict):
        model = config.model
        require_choice(config, "model.architecture", ARCHITECTURES)
        require_choice(config, "model.loss", LOSSES)
        require(model.latent_dim > 0, "model.latent_dim", model.latent_dim, "must be positive")
        require(
            0.0 <= config.train.ema_decay < 1.0,
            "train.ema_decay",
            config.train.ema_decay,
            "must be in [0, 1)",
        )
        self.config = config
        generator_cls, discriminator_cls = ARCHITECTURES[model.architecture]
        self.generator = generator_cls(
            resolution=config.data.resolution, channels=config.data.channels, base_features=model.g_features
        )
        self.discriminator = discriminator_cls(base_features=model.d_features)
        self.generator_loss, self.discriminator_loss = LOSSES[model.loss]
        self.g_optimizer = adam(config.optim.g)
        self.d_optimizer = adam(config.optim.d)

    def _latents(self, rng: jax.Array, num: int) -> jax.Array:
        return parallel.constrain_batch(jax.random.normal(rng, (num, self.config.model.latent_dim)))

    def init_state(self, rng: jax.Array, example_batch: Batch) -> GANState:
        g_rng, d_rng, z_rng, state_rng = jax.random.split(rng, 4)
        images = data.to_unit_range(example_batch["image"])
        generator = self.generator.init(g_rng, self._latents(z_rng, images.shape[0]), train=False)
        discriminator = self.discriminator.init(d_rng, images, train=False)
        return GANState(
            step=jnp.zeros((), jnp.int32),
            rng=state_rng,
            generator=generator,
            discriminator=discriminator,
            g_opt_state=self.g_optimizer.init(generator["params"]),
            d_opt_state=self.d_optimizer.init(discriminator["params"]),
            ema_generator=generator,
        )

    def _generate(self, variables: Any, z: jax.Array) -> tuple[jax.Array, Any]:
        """Generator in training mode; returns images and the updated batch statistics."""
        images, updates = self.generator.apply(variables, z, train=True, mutable=["batch_stats"])
        return images, updates["batch_stats"]

    def _discriminate(self, params: Any, batch_stats: Any, images: jax.Array) -> tuple[jax.Array, Any]:
        logits, updates = self.discriminator.apply(
            {"params": params, "batch_stats": batch_stats}, images, train=True, mutable=["batch_stats"]
        )
        return logits, updates["batch_stats"]

    def train_step(self, state: GANState, batch: Batch) -> tuple[GANState, Metrics]:
        real = data.to_unit_range(batch["image"])
        num = real.shape[0]
        d_rng, g_rng = jax.random.split(jax.random.fold_in(state.rng, state.step))

        # Discriminator: real and fake batches pass separately, as in the DCGAN recipe (separate BN statistics).
        fake, _ = self._generate(state.generator, self._latents(d_rng, num))
        fake = jax.lax.stop_gradient(fake)

        def d_loss_fn(d_params):
            stats = state.discriminator["batch_stats"]
            real_logits, stats = self._discriminate(d_params, stats, real)
            fake_logits, stats = self._discriminate(d_params, stats, fake)
            return self.discriminator_loss(real_logits, fake_logits), (stats, real_logits, fake_logits)

        d_params = state.discriminator["params"]
        (d_loss, (d_stats, real_logits, fake_logits)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_params)
        d_updates, d_opt_state = self.d_optimizer.update(d_grads, state.d_opt_state, d_params)
        discriminator = {"params": optax.apply_updates(d_params, d_updates), "batch_stats": d_stats}

        # Generator, against the updated discriminator.
        def g_loss_fn(g_params):
            images, g_stats = self._generate(
                {"params": g_params, "batch_stats": state.generator["batch_stats"]}, self._latents(g_rng, num)
            )
            logits, _ = self._discriminate(discriminator["params"], discriminator["batch_stats"], images)
            return self.generator_loss(logits), g_stats

        g_params = state.generator["params"]
        (g_loss, g_stats), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g_params)
        g_updates, g_opt_state = self.g_optimizer.update(g_grads, state.g_opt_state, g_params)
        generator = {"params": optax.apply_updates(g_params, g_updates), "batch_stats": g_stats}

        ema_generator = {
            "params": ema_update(
                state.ema_generator["params"], generator["params"], state.step, self.config.train.ema_decay
            ),
            "batch_stats": g_stats,
        }
        new_state = GANState(
            step=state.step + 1,
            rng=state.rng,
            generator=generator,
            discriminator=discriminator,
            g_opt_state=g_opt_state,
            d_opt_state=d_opt_state,
            ema_generator=ema_generator,
        )
        metrics = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": jnp.mean(nn.sigmoid(real_logits)),  # D's mean probability that real images are real
            "d_fake": jnp.mean(nn.sigmoid(fake_logits)),
            "d_grad_norm": optax.tree.norm(d_grads),
            "g_grad_norm": optax.tree.norm(g_grads),
        }
        return new_state, metrics

    def sample(self, state: GANState, rng: jax.Array, num: int) -> jax.Array:
        return self.generator.apply(state.ema_generator, self._latents(rng, num), train=False)

    def evaluate_batch(self, state: GANState, batch: Batch, rng: jax.Array) -> Metrics:
        """Held-out sample-quality metrics (FID, KID, ...) live in the evaluation module, not here."""
        return {}
