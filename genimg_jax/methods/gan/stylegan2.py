"""StyleGAN2 and StyleGAN2-ADA training (Karras et al. CVPR 2020; NeurIPS 2020), after stylegan2-ada-pytorch.

One train step runs the reference's four phases in order, on one global batch:
  G main  non-saturating logistic loss, with style mixing;
  G reg   path-length penalty, every `loss.pl_interval` steps, scaled by the interval (lazy regularisation);
  D main  logistic loss on real and fake images (both augmented as `config.augment` says);
  D reg   R1 penalty gamma/2 E||grad D(x_real)||^2, every `loss.r1_interval` steps, scaled by the interval.
Each phase is its own Adam update, so on regularisation steps a network takes two optimizer steps; as in the
paper, Adam's lr is multiplied and its betas raised to the power c = k / (k + 1) to keep their effective values,
for both networks whatever the penalty weights (the reference's G_reg_interval = 4 and D_reg_interval = 16
apply even with pl_weight = 0, as in its CIFAR-10 setup). Fakes are conditioned on labels drawn anew for each
generator pass from the real batch's labels (with replacement): the label distribution of the data, as the
reference draws each phase's labels from the dataset. The lazy
phases are `jax.lax.cond` branches of the one compiled step (`gan.common.when_due`): only the taken branch runs,
so ordinary steps pay nothing for the regularisers. On the CPU backend, which runs backward convolutions inside
conditionals about 30x slower, they are computed on every step and selected instead.

The state also holds the EMA generator (StyleGAN's half-life in images, with ramp-up), the running average w_avg
used for truncation, the path-length running mean and the ADA state (p and its r_t sums), so all are checkpointed.
"""

from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genimg_jax import data, parallel
from genimg_jax.augment import AdaState, init_ada_state
from genimg_jax.config import adam_config, base_config, require, require_choice
from genimg_jax.losses.adversarial import non_saturating_discriminator_loss, non_saturating_generator_loss
from genimg_jax.losses.path_length import path_length_noise, path_length_penalty, path_lengths
from genimg_jax.losses.penalties import gradient_norm_penalty
from genimg_jax.methods.base import COMPUTE_DTYPES, Batch, Metrics, adam, class_conditioning, ema_update, sample_labels
from genimg_jax.methods.gan.augmentation import adapt_probability, augment_config, build_augment
from genimg_jax.methods.gan.common import rampup_ema_decay, when_due
from genimg_jax.models.style_layers import NOISE_MODES
from genimg_jax.models.stylegan2 import (
    D_ARCHITECTURES,
    OUTPUT_ACTIVATIONS,
    Discriminator,
    Generator,
    mix_styles,
    truncate,
)

W_AVG_BETA = 0.995  # decay of the running average of w, as in stylegan2-ada-pytorch
CONST_NOISE_KEY = 0  # the fixed key of noise_mode="const"


@flax.struct.dataclass
class StyleGAN2State:
    step: jax.Array
    rng: jax.Array
    generator: Any  # params
    discriminator: Any
    g_opt_state: Any
    d_opt_state: Any
    ema_generator: Any  # EMA of the generator params: what `sample` uses
    w_avg: jax.Array  # running mean of w, the centre of truncation
    pl_mean: jax.Array  # running mean of path lengths
    ada: AdaState


class _StepDraws(NamedTuple):
    """One step's random draws, shared out among the phases (index 0: G main, 1: path length, 2: D main)."""

    latents: jax.Array  # (3, 2, N, z_dim): two latents per image for style mixing, per generator pass
    mixing: jax.Array  # (3, 2) ~ U[0, 1): whether to mix and where, per generator pass
    direction_rng: jax.Array  # the path-length projection directions
    noise_keys: jax.Array  # noise inputs, per generator pass
    augment_keys: jax.Array  # augmentation: G main, D main, R1
    label_indices: jax.Array  # (3, N): which real example's label each fake gets, per generator pass


def lazy_adam(optim_config: ml_collections.ConfigDict, key: str, interval: int) -> optax.GradientTransformation:
    """`methods.base.adam` of the section at `key`, its lr multiplied and betas raised to c = k / (k + 1) for lazy
    regularisation every k steps, which keeps their effective values over the k + 1 updates."""
    c = interval / (interval + 1)
    corrected = {"learning_rate": optim_config.learning_rate * c, "b1": optim_config.b1**c, "b2": optim_config.b2**c}
    return adam(ml_collections.ConfigDict({**optim_config.to_dict(), **corrected}), key)


def ema_beta(step: jax.Array, batch_size: int, ema_kimg: float, ema_rampup: float) -> jax.Array:
    """Per-step EMA decay for a half-life of ema_kimg thousand images, shortened to ema_rampup x images seen."""
    decay = 0.5 ** (batch_size / max(ema_kimg * 1000.0, 1e-8))
    if ema_rampup > 0:
        return rampup_ema_decay(step, batch_size, decay, ema_rampup)
    return jnp.float32(decay)


def stylegan2_config() -> ml_collections.ConfigDict:
    """base_config() plus every StyleGAN2 key, at stylegan2-ada-pytorch's defaults for config F (`--cfg=stylegan2`).

    Experiment files (configs/stylegan2.py, configs/stylegan2_ada.py) start from this and set their variant.
    """
    config = base_config()
    config.method = "stylegan2"
    config.model = ml_collections.ConfigDict(
        {
            "z_dim": 512,
            "w_dim": 512,
            "mapping_layers": 8,
            # Depth of the conditional D's label mapping: stylegan2-ada-pytorch's default 8 (its D mapping_kwargs
            # are empty); the TF code the ADA paper ran has 0 (the label embedding alone).
            "d_mapping_layers": 8,
            "mapping_lr_mul": 0.01,
            "channel_base": 32768,  # feature maps at resolution r: min(channel_base / r, channel_max)
            "channel_max": 512,
            "num_classes": 0,  # > 0: labels condition the mapping network and a projection discriminator
            "output_activation": "linear",  # linear (StyleGAN2) | tanh, for data saturated at -1/1 (digits)
            "d_architecture": "resnet",  # resnet | orig
            "mbstd_group_size": 4,
            "mbstd_channels": 1,
            "dtype": "float32",  # float32 | bfloat16: compute type of the convolutions (params stay float32)
            "remat": False,  # recompute each G layer's and D block's activations in the backward pass
        }
    )
    config.loss = ml_collections.ConfigDict(
        {
            "r1_gamma": 10.0,
            "r1_interval": 16,
            "pl_weight": 2.0,  # 0 disables path-length regularisation
            "pl_interval": 4,
            "pl_decay": 0.01,
            "pl_batch_shrink": 2,
            "style_mixing_prob": 0.9,
        }
    )
    config.optim = ml_collections.ConfigDict({"g": adam_config(0.002, 0.0, 0.99), "d": adam_config(0.002, 0.0, 0.99)})
    config.train.batch_size = 32
    config.train.ema_kimg = 10.0  # half-life of the EMA generator in thousands of images
    config.train.ema_rampup = 0.0  # > 0: half-life at most ema_rampup x images seen (0 disables)
    config.augment = augment_config()
    # noise_mode "random" (fresh noise per sample) is what the reference's metrics use; "const" is for viewing only.
    config.sample = ml_collections.ConfigDict({"truncation_psi": 1.0, "noise_mode": "random"})
    return config


def _validate(config: ml_collections.ConfigDict) -> None:
    model, loss, sample = config.model, config.loss, config.sample
    for key in ("z_dim", "w_dim", "channel_base", "channel_max", "mbstd_group_size", "mbstd_channels"):
        require(model[key] > 0, f"model.{key}", model[key], "must be positive")
    require(model.mapping_layers >= 1, "model.mapping_layers", model.mapping_layers, "must be >= 1")
    require(model.d_mapping_layers >= 0, "model.d_mapping_layers", model.d_mapping_layers, "must be >= 0")
    require(model.num_classes >= 0, "model.num_classes", model.num_classes, "must be >= 0 (0 = unconditional)")
    require_choice(config, "model.d_architecture", D_ARCHITECTURES)
    require_choice(config, "model.output_activation", OUTPUT_ACTIVATIONS)
    require_choice(config, "model.dtype", COMPUTE_DTYPES)
    for key in ("r1_gamma", "pl_weight"):
        require(loss[key] >= 0, f"loss.{key}", loss[key], "must be >= 0 (0 disables)")
    for key in ("r1_interval", "pl_interval", "pl_batch_shrink"):
        require(loss[key] >= 1, f"loss.{key}", loss[key], "must be >= 1")
    require(0 <= loss.style_mixing_prob <= 1, "loss.style_mixing_prob", loss.style_mixing_prob, "must be in [0, 1]")
    require(0 < loss.pl_decay <= 1, "loss.pl_decay", loss.pl_decay, "must be in (0, 1]")
    require(config.train.ema_kimg >= 0, "train.ema_kimg", config.train.ema_kimg, "must be >= 0")
    require(config.train.ema_rampup >= 0, "train.ema_rampup", config.train.ema_rampup, "must be >= 0 (0 disables)")
    require_choice(config, "sample.noise_mode", NOISE_MODES)
    require(sample.truncation_psi >= 0, "sample.truncation_psi", sample.truncation_psi, "must be >= 0")
    batch, group = config.train.batch_size, model.mbstd_group_size
    require(batch % min(group, batch) == 0, "model.mbstd_group_size", group, f"must divide train.batch_size={batch}")


class StyleGAN2:
    """StyleGAN2 (config-F networks, lazy R1 + path-length regularisation), optionally with ADA and labels."""

    KEY_METRICS = ("d_loss", "g_loss")  # what the progress line shows; every metric is logged

    def __init__(self, config: ml_collections.ConfigDict):
        _validate(config)
        self.config = config
        model, loss = config.model, config.loss
        dtype = COMPUTE_DTYPES[model.dtype]
        self.generator = Generator(
            resolution=config.data.resolution,
            channels=config.data.channels,
            z_dim=model.z_dim,
            w_dim=model.w_dim,
            mapping_layers=model.mapping_layers,
            channel_base=model.channel_base,
            channel_max=model.channel_max,
            num_classes=model.num_classes,
            mapping_lr_mul=model.mapping_lr_mul,
            dtype=dtype,
            output_activation=model.output_activation,
            remat=model.remat,
        )
        self.discriminator = Discriminator(
            channel_base=model.channel_base,
            channel_max=model.channel_max,
            architecture=model.d_architecture,
            mbstd_group_size=model.mbstd_group_size,
            mbstd_channels=model.mbstd_channels,
            num_classes=model.num_classes,
            mapping_layers=model.d_mapping_layers,
            dtype=dtype,
            remat=model.remat,
        )
        self.augment = build_augment(config)
        self.use_pl = loss.pl_weight > 0
        self.use_r1 = loss.r1_gamma > 0
        self.g_optimizer = lazy_adam(config.optim.g, "optim.g", loss.pl_interval)
        self.d_optimizer = lazy_adam(config.optim.d, "optim.d", loss.r1_interval)

    # Networks as functions of their parameters.

    def _real_labels(self, batch: Batch) -> jax.Array | None:
        """The classes of a real batch, for conditional models."""
        return batch["label"] if self.config.model.num_classes else None

    def _map(self, params: Any, z: jax.Array, labels: jax.Array | None) -> jax.Array:
        return self.generator.apply({"params": params}, z, labels, method="map")

    def _synthesize(self, params: Any, ws: jax.Array, noise_rng: jax.Array, noise_mode: str = "random") -> jax.Array:
        return self.generator.apply({"params": params}, ws, noise_mode, method="synthesize", rngs={"noise": noise_rng})

    def _styles(
        self, params: Any, latents: jax.Array, mixing: jax.Array, labels: jax.Array | None
    ) -> tuple[jax.Array, jax.Array]:
        """(ws (N, num_ws, w_dim), the unmixed w) from `latents` (2, N, z_dim) and `mixing` ~ U[0, 1)^2.

        Style mixing: if mixing[0] < style_mixing_prob, the layers from cutoff = 1 + floor(mixing[1] (num_ws - 1))
        on take their w from the second latent (one cutoff per batch, as in the reference).
        """
        num, num_ws = latents.shape[1], self.generator.num_ws
        both_labels = None if labels is None else jnp.concatenate([labels, labels])
        # Split like the batch: otherwise every device runs the synthesis on all N latents (see parallel/mesh.py).
        mapped = self._map(params, latents.reshape(2 * num, -1), both_labels)
        w, w2 = map(parallel.constrain_batch, jnp.split(mapped, 2))
        cutoff = 1 + jnp.floor(mixing[1] * (num_ws - 1)).astype(jnp.int32)
        cutoff = jnp.where(mixing[0] < self.config.loss.style_mixing_prob, cutoff, num_ws)
        ws = mix_styles(jnp.repeat(w[:, None], num_ws, axis=1), jnp.repeat(w2[:, None], num_ws, axis=1), cutoff)
        return ws, w

    def _critic(self, params: Any, labels: jax.Array | None, rng: jax.Array | None = None, p: jax.Array | None = None):
        """D(augment(x)) as a function of the images x (no augmentation without `rng`), logits in float32."""

        def critic(images: jax.Array) -> jax.Array:
            if rng is not None:
                images = self.augment(rng, images, p)
            logits = self.discriminator.apply({"params": params}, images, labels)
            return logits.astype(jnp.float32)

        return critic

    # The method protocol.

    def init_state(self, rng: jax.Array, example_batch: Batch) -> StyleGAN2State:
        g_rng, d_rng, state_rng = jax.random.split(rng, 3)
        images = data.to_unit_range(example_batch["image"])
        labels = self._real_labels(example_batch)
        z = jnp.zeros((images.shape[0], self.config.model.z_dim))
        generator = self.generator.init(g_rng, z, labels, noise_mode="none")["params"]
        discriminator = self.discriminator.init(d_rng, images, labels)["params"]
        return StyleGAN2State(
            step=jnp.zeros((), jnp.int32),
            rng=state_rng,
            generator=generator,
            discriminator=discriminator,
            g_opt_state=self.g_optimizer.init(generator),
            d_opt_state=self.d_optimizer.init(discriminator),
            ema_generator=generator,
            w_avg=jnp.zeros((self.config.model.w_dim,), jnp.float32),
            pl_mean=jnp.zeros((), jnp.float32),
            ada=init_ada_state(self.config.augment.p),
        )

    def train_step(self, state: StyleGAN2State, batch: Batch) -> tuple[StyleGAN2State, Metrics]:
        """The four phases of the module docstring in order, then the running averages and ADA's p."""
        real = data.to_unit_range(batch["image"])
        num = real.shape[0]
        labels = self._real_labels(batch)
        draws = self._draws(state, num)
        fake_labels = [None] * 3 if labels is None else list(parallel.constrain_batch(labels[draws.label_indices]))
        g_params, g_opt_state, g_loss, w = self._g_main(state, draws, fake_labels[0])
        g_params, g_opt_state, pl_mean, pl_penalty = self._g_reg(state, draws, fake_labels[1], g_params, g_opt_state)
        d_params, d_opt_state, d_loss, real_logits, fake_logits = self._d_main(
            state, draws, labels, fake_labels[2], real, g_params
        )
        d_params, d_opt_state, r1_penalty = self._d_reg(state, draws, labels, real, d_params, d_opt_state)
        ema_generator, w_avg, ada, beta = self._averages(state, num, g_params, w, real_logits)
        new_state = state.replace(
            step=state.step + 1,
            generator=g_params,
            discriminator=d_params,
            g_opt_state=g_opt_state,
            d_opt_state=d_opt_state,
            ema_generator=ema_generator,
            w_avg=w_avg,
            pl_mean=pl_mean,
            ada=ada,
        )
        metrics = {
            "g_loss": g_loss,
            "d_loss": d_loss,
            "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
            "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),
            "r_t": jnp.mean(jnp.sign(real_logits)),  # ADA's overfitting heuristic on this batch
            "r1_penalty": r1_penalty,  # E||grad D(x)||^2 on R1 steps, 0 on the others
            "pl_penalty": pl_penalty,  # E(length - a)^2 on path-length steps, 0 on the others
            "pl_mean": pl_mean,
            "ada_p": ada.p,
            "ema_beta": beta,
        }
        return new_state, metrics

    def _draws(self, state: StyleGAN2State, num: int) -> _StepDraws:
        # Few random call sites keep the compiled step small: one draw each for latents and mixing choices of
        # the three generator passes (G main, path length, D main), keys for noise and augmentation per pass.
        latent_rng, mixing_rng, direction_rng, noise_rng, augment_rng, label_rng = jax.random.split(
            jax.random.fold_in(state.rng, state.step), 6
        )
        return _StepDraws(
            latents=jax.random.normal(latent_rng, (3, 2, num, self.config.model.z_dim)),
            mixing=jax.random.uniform(mixing_rng, (3, 2)),
            direction_rng=direction_rng,
            noise_keys=jax.random.split(noise_rng, 3),
            augment_keys=jax.random.split(augment_rng, 3),
            label_indices=jax.random.randint(label_rng, (3, num), 0, num),
        )

    def _g_main(
        self, state: StyleGAN2State, draws: _StepDraws, labels: jax.Array | None
    ) -> tuple[Any, Any, jax.Array, jax.Array]:
        """G main: the non-saturating loss of mixed-style fakes; (params, opt state, loss, the unmixed w)."""

        def g_main_loss(g_params):
            ws, w = self._styles(g_params, draws.latents[0], draws.mixing[0], labels)
            fake = self._synthesize(g_params, ws, draws.noise_keys[0])
            logits = self._critic(state.discriminator, labels, draws.augment_keys[0], state.ada.p)(fake)
            return non_saturating_generator_loss(logits), w

        (g_loss, w), g_grads = jax.value_and_grad(g_main_loss, has_aux=True)(state.generator)
        g_params, g_opt_state = _adam_step(self.g_optimizer, g_grads, state.g_opt_state, state.generator)
        return g_params, g_opt_state, g_loss, w

    def _g_reg(
        self, state: StyleGAN2State, draws: _StepDraws, labels: jax.Array | None, g_params: Any, g_opt_state: Any
    ) -> tuple[Any, Any, jax.Array, jax.Array]:
        """G reg: the lazy path-length penalty on 1/pl_batch_shrink of the batch, when due.

        Returns (params, opt state, path-length mean, penalty); on other steps the inputs and a zero penalty.
        """
        pl_penalty = jnp.zeros((), jnp.float32)
        if not self.use_pl:
            return g_params, g_opt_state, state.pl_mean, pl_penalty
        config, loss = self.config, self.config.loss
        pl_num = max(1, draws.latents.shape[2] // loss.pl_batch_shrink)
        pl_labels = None if labels is None else labels[:pl_num]

        def pl_loss(g_params, pl_mean, direction):
            ws, _ = self._styles(g_params, draws.latents[1, :, :pl_num], draws.mixing[1], pl_labels)
            synthesis = lambda ws: self._synthesize(g_params, ws, draws.noise_keys[1])  # noqa: E731
            penalty, new_mean = path_length_penalty(path_lengths(synthesis, ws, direction), pl_mean, loss.pl_decay)
            return penalty * loss.pl_weight * loss.pl_interval, (penalty, new_mean)

        def g_reg(operands):
            g_params, g_opt_state, pl_mean = operands
            shape = (pl_num, config.data.resolution, config.data.resolution, config.data.channels)
            direction = path_length_noise(draws.direction_rng, shape)
            (_, (penalty, new_mean)), grads = jax.value_and_grad(pl_loss, has_aux=True)(g_params, pl_mean, direction)
            return (*_adam_step(self.g_optimizer, grads, g_opt_state, g_params), new_mean, penalty)

        due = state.step % loss.pl_interval == 0
        return when_due(
            due, loss.pl_interval, g_reg, lambda ops: (*ops, pl_penalty), (g_params, g_opt_state, state.pl_mean)
        )

    def _d_main(
        self,
        state: StyleGAN2State,
        draws: _StepDraws,
        labels: jax.Array | None,
        fake_labels: jax.Array | None,
        real: jax.Array,
        g_params: Any,
    ) -> tuple[Any, Any, jax.Array, jax.Array, jax.Array]:
        """D main: the logistic loss on real images (with their labels) and fakes of the updated generator (with
        `fake_labels`), both augmented.

        Returns (params, opt state, loss, real logits, fake logits).
        """
        ws, _ = self._styles(g_params, draws.latents[2], draws.mixing[2], fake_labels)
        fake = jax.lax.stop_gradient(self._synthesize(g_params, ws, draws.noise_keys[2]))
        # Real and fake images are augmented in one call (each image independently), then judged separately.
        both = self.augment(draws.augment_keys[1], jnp.concatenate([fake, real]), state.ada.p)
        augmented_fake, augmented_real = jnp.split(both, 2)

        def d_main_loss(d_params):
            fake_logits = self._critic(d_params, fake_labels)(augmented_fake)
            real_logits = self._critic(d_params, labels)(augmented_real)
            return non_saturating_discriminator_loss(real_logits, fake_logits), (real_logits, fake_logits)

        (d_loss, (real_logits, fake_logits)), d_grads = jax.value_and_grad(d_main_loss, has_aux=True)(
            state.discriminator
        )
        d_params, d_opt_state = _adam_step(self.d_optimizer, d_grads, state.d_opt_state, state.discriminator)
        return d_params, d_opt_state, d_loss, real_logits, fake_logits

    def _d_reg(
        self,
        state: StyleGAN2State,
        draws: _StepDraws,
        labels: jax.Array | None,
        real: jax.Array,
        d_params: Any,
        d_opt_state: Any,
    ) -> tuple[Any, Any, jax.Array]:
        """D reg: the lazy R1 penalty on the real images, through the augmentation as in the reference, when due.

        Returns (params, opt state, penalty); on other steps the inputs and a zero penalty.
        """
        r1_penalty = jnp.zeros((), jnp.float32)
        if not self.use_r1:
            return d_params, d_opt_state, r1_penalty
        loss = self.config.loss

        def r1_loss(d_params):
            critic = self._critic(d_params, labels, draws.augment_keys[2], state.ada.p)
            penalty = gradient_norm_penalty(critic, real)
            return penalty * (loss.r1_gamma / 2) * loss.r1_interval, penalty

        def d_reg(operands):
            d_params, d_opt_state = operands
            (_, penalty), grads = jax.value_and_grad(r1_loss, has_aux=True)(d_params)
            return (*_adam_step(self.d_optimizer, grads, d_opt_state, d_params), penalty)

        due = state.step % loss.r1_interval == 0
        return when_due(due, loss.r1_interval, d_reg, lambda ops: (*ops, r1_penalty), (d_params, d_opt_state))

    def _averages(
        self, state: StyleGAN2State, num: int, g_params: Any, w: jax.Array, real_logits: jax.Array
    ) -> tuple[Any, jax.Array, AdaState, jax.Array]:
        """(EMA generator, w_avg, ADA state, the EMA decay used) after this step's updates."""
        config = self.config
        ada = adapt_probability(config.augment, state.ada, real_logits)
        beta = ema_beta(state.step, num, config.train.ema_kimg, config.train.ema_rampup)
        ema_generator = ema_update(state.ema_generator, g_params, state.step, beta, warmup=False)
        w_avg = state.w_avg + (1 - W_AVG_BETA) * (jnp.mean(jax.lax.stop_gradient(w), axis=0) - state.w_avg)
        return ema_generator, w_avg, ada, beta

    def conditioning_fields(self) -> tuple[str, ...]:
        return class_conditioning(self.config.model.num_classes)

    def sample(
        self,
        state: StyleGAN2State,
        rng: jax.Array,
        num: int,
        conditioning: Batch | None = None,
        truncation_psi: float | None = None,
        noise_mode: str | None = None,
    ) -> jax.Array:
        """Images from the EMA generator, w truncated towards w_avg by psi (default `sample.truncation_psi`),
        clipped to [-1, 1]. noise_mode (default `sample.noise_mode`): "random" draws each sample's noise from
        `rng`, as the reference's metrics do (sample grids, drawn from one fixed key, then keep their noise from
        grid to grid); "const" shares one fixed noise map per layer across samples and calls, so that psi=0 gives
        one image, and biases FID if used for evaluation."""
        z_rng, noise_rng = jax.random.split(rng)
        z = jax.random.normal(z_rng, (num, self.config.model.z_dim))
        return self.sample_latents(state, z, noise_rng, conditioning, truncation_psi, noise_mode)

    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.model.z_dim,)

    def sample_latents(
        self,
        state: StyleGAN2State,
        latents: jax.Array,
        rng: jax.Array,
        conditioning: Batch | None = None,
        truncation_psi: float | None = None,
        noise_mode: str | None = None,
    ) -> jax.Array:
        """The images of `sample` from given latents z (N, z_dim); `rng` draws the noise inputs."""
        w = self.map_latents(state, latents, conditioning)
        return self.synthesize_styles(state, w, rng, truncation_psi, noise_mode)

    def map_latents(self, state: StyleGAN2State, latents: jax.Array, conditioning: Batch | None = None) -> jax.Array:
        """w (N, w_dim) of latents z (N, z_dim) through the EMA mapping network, before truncation."""
        labels = sample_labels(conditioning, latents.shape[0], self.config.model.num_classes)
        return self._map(state.ema_generator, parallel.constrain_batch(latents), labels)

    def synthesize_styles(
        self,
        state: StyleGAN2State,
        w: jax.Array,
        rng: jax.Array,
        truncation_psi: float | None = None,
        noise_mode: str | None = None,
    ) -> jax.Array:
        """Images of `w` (N, w_dim) at every layer, truncated and with noise as `sample` says."""
        psi = self.config.sample.truncation_psi if truncation_psi is None else truncation_psi
        noise_mode = self.config.sample.noise_mode if noise_mode is None else noise_mode
        ws = jnp.repeat(truncate(w, state.w_avg, psi)[:, None], self.generator.num_ws, axis=1)
        noise_rng = jax.random.PRNGKey(CONST_NOISE_KEY) if noise_mode == "const" else rng
        return jnp.clip(self._synthesize(state.ema_generator, ws, noise_rng, noise_mode), -1.0, 1.0)

    def evaluate_batch(self, state: StyleGAN2State, batch: Batch, rng: jax.Array) -> Metrics:
        """Sample-quality metrics (FID, KID, ...) live in the evaluation module, not here."""
        return {}


def _adam_step(optimizer: optax.GradientTransformation, grads: Any, opt_state: Any, params: Any) -> tuple[Any, Any]:
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state
