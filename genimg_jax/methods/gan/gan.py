"""Generative adversarial networks: one train step for every architecture, loss, penalty and augmentation.

Each step makes `train.d_steps` discriminator updates, each on its own slice of the global batch, then one
generator update on `train.g_batch_multiple` times a slice's worth of samples (SNGAN's and WGAN-GP's code use 2)
against the updated discriminator, then updates the EMA generator. The images D sees, real and fake, pass
through the configured differentiable augmentation; ADA's probability p is adapted from sign(D(real)) and lives
in the state. `sample` (grids and metrics) uses the generator `train.sample_generator` names: the EMA
generator, run with the live generator's batch-norm running statistics (an approximation while the weights
still move), or the live generator with its own statistics, which is what SNGAN and WGAN-GP evaluated.
"""

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genimg_jax import data, parallel
from genimg_jax.augment import AdaState, init_ada_state
from genimg_jax.config import adam_config, base_config, require, require_choice
from genimg_jax.losses.adversarial import LOSSES
from genimg_jax.methods.base import (
    COMPUTE_DTYPES,
    Batch,
    Metrics,
    adam,
    class_conditioning,
    ema_update,
    sample_labels,
)
from genimg_jax.methods.gan.augmentation import adapt_probability, augment_config, build_augment
from genimg_jax.methods.gan.common import rampup_ema_decay, when_due
from genimg_jax.methods.gan.components import ARCHITECTURES, PENALTIES, build_networks

SAMPLE_GENERATORS = ("ema", "live")


def gan_config() -> ml_collections.ConfigDict:
    """`base_config()` with every GAN key at its default; experiment files change what their paper uses."""
    config = base_config()
    config.method = "gan"
    config.model = ml_collections.ConfigDict(
        {
            "architecture": "dcgan",  # see methods.gan.components.ARCHITECTURES
            "latent_dim": 100,
            "g_features": 64,
            "d_features": 64,
            "num_classes": 0,  # > 0: class-conditional G (conditional batch norm) and projection D
            "g_spectral_norm": False,
            "d_spectral_norm": False,
            "attention_resolution": 0,  # side of the feature maps that get self-attention (0 = none)
            "d_scales": 1,  # > 1: multi-scale discriminator on the image and its 2x, 4x ... down-sampled copies
            "d_pooling": "sum",  # resnet D's global pooling: sum (SNGAN) | mean (the WGAN-GP code's critic)
            "d_head_bias": True,  # resnet D's output layer has a bias (the SNGAN / projection code's has none)
            "dtype": "float32",  # computation dtype: float32 | bfloat16 (parameters stay float32)
        }
    )
    config.loss = ml_collections.ConfigDict(
        {
            "adversarial": "non_saturating",  # see losses.adversarial.LOSSES
            "penalty": "none",  # none | wgan_gp | r1 | r2
            "penalty_weight": 10.0,  # lambda of WGAN-GP; gamma of R1/R2 (the penalty is gamma / 2 * ||grad||^2)
            "penalty_interval": 1,  # lazy regularisation: every k-th D step, scaled by k
        }
    )
    config.augment = augment_config()
    config.optim = ml_collections.ConfigDict({"g": adam_config(2e-4, b1=0.5), "d": adam_config(2e-4, b1=0.5)})
    config.train.d_steps = 1
    config.train.g_batch_multiple = 1  # G step batch = this x the D step batch (train.batch_size / d_steps)
    config.train.sample_generator = "ema"  # which generator `sample` uses, for grids and metrics: ema | live
    config.train.ema_decay = 0.999
    config.train.ema_rampup = 0.0  # > 0: StyleGAN2-ADA's ramp-up instead of the default EMA warm-up
    return config


def decay_learning_rates_linearly(config: ml_collections.ConfigDict) -> None:
    """Decay both learning rates linearly to 0 over the run, counting D's `train.d_steps` updates per step.

    Fixed when the config is built: a run that overrides `train.steps` should override `optim.*.decay_steps` too.
    """
    config.optim.g.decay_steps = config.train.steps
    config.optim.d.decay_steps = config.train.steps * config.train.d_steps


@flax.struct.dataclass
class GANState:
    step: jax.Array
    rng: jax.Array
    generator: Any  # {"params": ..., "batch_stats": ...}; batch_stats also holds spectral-norm power iterates
    discriminator: Any
    g_opt_state: Any
    d_opt_state: Any
    ema_generator: Any  # EMA of generator params; other collections copied from the live generator
    ada: AdaState  # augmentation probability (changes only with augment.mode = "ada")


def _with_params(variables: Any, params: Any) -> Any:
    return {**variables, "params": params}


class GAN:
    """GANs assembled from config-selected parts; see `gan_config` for the keys."""

    KEY_METRICS = ("d_loss", "g_loss")  # what the progress line shows; every metric is logged

    def __init__(self, config: ml_collections.ConfigDict):
        model, loss, train = config.model, config.loss, config.train
        require_choice(config, "model.architecture", ARCHITECTURES)
        require_choice(config, "loss.adversarial", LOSSES)
        require_choice(config, "loss.penalty", PENALTIES)
        require_choice(config, "model.dtype", COMPUTE_DTYPES)
        require(model.latent_dim > 0, "model.latent_dim", model.latent_dim, "must be positive")
        require(model.num_classes >= 0, "model.num_classes", model.num_classes, "must be >= 0 (0 = unconditional)")
        require(model.d_scales >= 1, "model.d_scales", model.d_scales, "must be >= 1")
        require(loss.penalty_weight >= 0, "loss.penalty_weight", loss.penalty_weight, "must be >= 0")
        require(loss.penalty_interval >= 1, "loss.penalty_interval", loss.penalty_interval, "must be >= 1")
        require(0.0 <= train.ema_decay < 1.0, "train.ema_decay", train.ema_decay, "must be in [0, 1)")
        require(train.ema_rampup >= 0.0, "train.ema_rampup", train.ema_rampup, "must be >= 0 (0 disables)")
        require(
            train.ema_rampup == 0.0 or train.ema_decay > 0.0,
            "train.ema_decay",
            train.ema_decay,
            "must be positive with train.ema_rampup",
        )
        require(train.d_steps >= 1, "train.d_steps", train.d_steps, "must be >= 1")
        require(train.g_batch_multiple >= 1, "train.g_batch_multiple", train.g_batch_multiple, "must be >= 1")
        require_choice(config, "train.sample_generator", SAMPLE_GENERATORS)
        require(
            train.batch_size % train.d_steps == 0,
            "train.batch_size",
            train.batch_size,
            f"must split evenly into train.d_steps={train.d_steps} discriminator batches",
        )
        self.config = config
        self.generator, self.discriminator = build_networks(config)
        self.augment = build_augment(config)
        self.generator_loss, self.discriminator_loss = LOSSES[loss.adversarial]
        self.penalty = PENALTIES[loss.penalty]
        self.g_optimizer = adam(config.optim.g, "optim.g")
        self.d_optimizer = adam(config.optim.d, "optim.d")

    # Inputs of G.
    def _latents(self, rng: jax.Array, num: int) -> jax.Array:
        return parallel.constrain_batch(jax.random.normal(rng, (num, self.config.model.latent_dim)))

    def _random_labels(self, rng: jax.Array, num: int) -> jax.Array | None:
        num_classes = self.config.model.num_classes
        return parallel.constrain_batch(jax.random.randint(rng, (num,), 0, num_classes)) if num_classes else None

    def _real_labels(self, batch: Batch) -> jax.Array | None:
        return batch["label"] if self.config.model.num_classes else None

    # Networks in training mode; each returns its output and the variables with updated batch statistics.
    def _generate(self, variables: Any, rng: jax.Array, num: int) -> tuple[jax.Array, jax.Array | None, Any]:
        z_rng, label_rng = jax.random.split(rng)
        labels = self._random_labels(label_rng, num)
        images, updates = self.generator.apply(
            variables, self._latents(z_rng, num), labels, train=True, mutable=["batch_stats"]
        )
        return images, labels, {**variables, **updates}

    def _discriminate(self, variables: Any, images: jax.Array, labels: jax.Array | None) -> tuple[jax.Array, Any]:
        logits, updates = self.discriminator.apply(variables, images, labels, train=True, mutable=["batch_stats"])
        return logits.astype(jnp.float32), {**variables, **updates}

    def init_state(self, rng: jax.Array, example_batch: Batch) -> GANState:
        g_rng, d_rng, z_rng, state_rng = jax.random.split(rng, 4)
        images = data.to_unit_range(example_batch["image"])
        labels = self._real_labels(example_batch)
        generator = self.generator.init(g_rng, self._latents(z_rng, images.shape[0]), labels, train=False)
        discriminator = self.discriminator.init(d_rng, images, labels, train=False)
        return GANState(
            step=jnp.zeros((), jnp.int32),
            rng=state_rng,
            generator=generator,
            discriminator=discriminator,
            g_opt_state=self.g_optimizer.init(generator["params"]),
            d_opt_state=self.d_optimizer.init(discriminator["params"]),
            ema_generator=generator,
            ada=init_ada_state(self.config.augment.p),
        )

    def _penalty_term(
        self,
        d_vars: Any,
        real: jax.Array,
        labels: jax.Array | None,
        fake: jax.Array,
        ada_p: jax.Array,
        rng: jax.Array,
        due: jax.Array,
    ) -> jax.Array:
        """The configured gradient penalty of D(augment(x)) on its inputs, 0 on steps between lazy evaluations."""
        if self.penalty is None:
            return jnp.zeros((), jnp.float32)
        augment_rng, penalty_rng = jax.random.split(rng)

        def critic(x):
            logits, _ = self._discriminate(d_vars, self.augment(augment_rng, x, ada_p), labels)
            return jnp.sum(logits.reshape(x.shape[0], -1), axis=1)

        return when_due(
            due,
            self.config.loss.penalty_interval,
            lambda: self.penalty(critic, real, fake, penalty_rng),
            lambda: jnp.zeros((), jnp.float32),
        )

    def _discriminator_step(self, g_vars: Any, carry: tuple, inputs: tuple) -> tuple[tuple, Metrics]:
        """One D update on one slice of the real batch; `carry` is (D variables, D optimiser state, ADA state)."""
        d_vars, d_opt_state, ada = carry
        real, labels, rng, d_step = inputs
        loss = self.config.loss
        fake_rng, real_aug_rng, fake_aug_rng, penalty_rng = jax.random.split(rng, 4)
        fake, fake_labels, _ = self._generate(g_vars, fake_rng, real.shape[0])
        fake = jax.lax.stop_gradient(fake)
        due = d_step % loss.penalty_interval == 0

        def loss_fn(params):
            variables = _with_params(d_vars, params)
            # Real and fake batches pass separately, as in the DCGAN recipe (separate batch statistics).
            real_logits, variables = self._discriminate(variables, self.augment(real_aug_rng, real, ada.p), labels)
            fake_logits, variables = self._discriminate(variables, self.augment(fake_aug_rng, fake, ada.p), fake_labels)
            adversarial = self.discriminator_loss(real_logits, fake_logits)
            penalty = self._penalty_term(_with_params(d_vars, params), real, labels, fake, ada.p, penalty_rng, due)
            total = adversarial + loss.penalty_weight * loss.penalty_interval * penalty
            return total, (variables, adversarial, penalty, real_logits, fake_logits)

        grads, (new_vars, adversarial, penalty, real_logits, fake_logits) = jax.grad(loss_fn, has_aux=True)(
            d_vars["params"]
        )
        updates, d_opt_state = self.d_optimizer.update(grads, d_opt_state, d_vars["params"])
        new_vars = _with_params(new_vars, optax.apply_updates(d_vars["params"], updates))
        ada = adapt_probability(self.config.augment, ada, real_logits)
        metrics = {
            "d_loss": adversarial,
            "penalty": penalty,
            "real_logit": jnp.mean(real_logits),
            "fake_logit": jnp.mean(fake_logits),
            "d_real": jnp.mean(nn.sigmoid(real_logits)),  # D's mean probability that real images are real
            "d_fake": jnp.mean(nn.sigmoid(fake_logits)),
            "r_t": jnp.mean(jnp.sign(real_logits)),  # ADA's overfitting heuristic
            "d_grad_norm": optax.tree.norm(grads),
        }
        return (new_vars, d_opt_state, ada), metrics

    def train_step(self, state: GANState, batch: Batch) -> tuple[GANState, Metrics]:
        d_steps = self.config.train.d_steps
        real = data.to_unit_range(batch["image"])
        labels = self._real_labels(batch)
        d_rng, g_rng, g_aug_rng = jax.random.split(jax.random.fold_in(state.rng, state.step), 3)

        def slices(x):
            return None if x is None else x.reshape(d_steps, x.shape[0] // d_steps, *x.shape[1:])

        d_step_indices = state.step * d_steps + jnp.arange(d_steps)
        d_inputs = (slices(real), slices(labels), jax.random.split(d_rng, d_steps), d_step_indices)
        (discriminator, d_opt_state, ada), d_metrics = _unrolled_scan(
            lambda carry, inputs: self._discriminator_step(state.generator, carry, inputs),
            (state.discriminator, state.d_opt_state, state.ada),
            d_inputs,
            d_steps,
        )

        # Generator, against the updated discriminator.
        def g_loss_fn(params):
            images, fake_labels, variables = self._generate(
                _with_params(state.generator, params),
                g_rng,
                real.shape[0] // d_steps * self.config.train.g_batch_multiple,
            )
            logits, _ = self._discriminate(discriminator, self.augment(g_aug_rng, images, ada.p), fake_labels)
            return self.generator_loss(logits), variables

        g_params = state.generator["params"]
        (g_loss, generator), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g_params)
        g_updates, g_opt_state = self.g_optimizer.update(g_grads, state.g_opt_state, g_params)
        generator = _with_params(generator, optax.apply_updates(g_params, g_updates))
        ema_params = self._update_ema(state.ema_generator["params"], generator["params"], state.step, real.shape[0])
        new_state = GANState(
            step=state.step + 1,
            rng=state.rng,
            generator=generator,
            discriminator=discriminator,
            g_opt_state=g_opt_state,
            d_opt_state=d_opt_state,
            ema_generator=_with_params(generator, ema_params),
            ada=ada,
        )
        metrics = {
            **jax.tree.map(jnp.mean, d_metrics),
            "g_loss": g_loss,
            "g_grad_norm": optax.tree.norm(g_grads),
            "ada_p": ada.p,
        }
        return new_state, metrics

    def _update_ema(self, average: Any, params: Any, step: jax.Array, batch_size: int) -> Any:
        train = self.config.train
        if train.ema_rampup > 0:
            decay = rampup_ema_decay(step, batch_size // train.d_steps, train.ema_decay, train.ema_rampup)
            return ema_update(average, params, step, decay, warmup=False)
        return ema_update(average, params, step, train.ema_decay)

    def conditioning_fields(self) -> tuple[str, ...]:
        return class_conditioning(self.config.model.num_classes)

    def sample(self, state: GANState, rng: jax.Array, num: int, conditioning: Batch | None = None) -> jax.Array:
        """`num` images from the `train.sample_generator` generator (module docstring), batch norm in inference
        mode; conditional models default to labels 0, 1, ... cycling."""
        return self.sample_latents(state, self._latents(rng, num), rng, conditioning)

    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.model.latent_dim,)

    def sample_latents(
        self, state: GANState, latents: jax.Array, rng: jax.Array, conditioning: Batch | None = None
    ) -> jax.Array:
        """The images of `sample` from given latents z (N, latent_dim); the generator uses no randomness (`rng`)."""
        del rng
        labels = sample_labels(conditioning, latents.shape[0], self.config.model.num_classes)
        variables = state.generator if self.config.train.sample_generator == "live" else state.ema_generator
        return self.generator.apply(variables, parallel.constrain_batch(latents), labels, train=False)

    def evaluate_batch(self, state: GANState, batch: Batch, rng: jax.Array) -> Metrics:
        """Held-out sample-quality metrics (FID, KID, ...) live in the evaluation module, not here."""
        return {}


def _unrolled_scan(step_fn, carry: Any, inputs: Any, length: int) -> tuple[Any, Any]:
    """`jax.lax.scan` unrolled in Python: XLA's CPU backend runs convolutions inside a loop body many times slower
    (a DCGAN step measured 12x slower under `lax.scan` than unrolled), and `train.d_steps` is small."""
    outputs = []
    for index in range(length):
        carry, output = step_fn(carry, jax.tree.map(lambda x, i=index: x[i], inputs))
        outputs.append(output)
    return carry, jax.tree.map(lambda *xs: jnp.stack(xs), *outputs)
