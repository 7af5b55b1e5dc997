"""Diffusion models: DDPM (Ho et al. 2020) and EDM (Karras et al. 2022) training, one method for both.

`model.parameterization` picks the training objective:
- "ddpm_eps": t ~ U{0..T-1} on a linear or cosine schedule, the network predicts the noise, loss |eps - eps_hat|^2.
- "edm": ln(sigma) ~ N(P_mean, P_std^2), the network is preconditioned (`diffusion.edm`), loss
  lambda(sigma) |D(x + sigma n, sigma) - x|^2.
Both losses are means over data dimensions. A step can take its batch in micro-batches (`train.microbatch`,
`methods.microbatching`): the noise, noise levels, label dropout and augmentation are drawn for the whole batch
first, so the accumulated step equals the full-batch one (up to dropout masks, drawn per micro-batch).
Sampling turns either network into a denoiser D(x, sigma, labels) and runs any sampler of `diffusion.samplers`
(`sample.sampler`) with the EMA weights, optionally with classifier-free guidance (`sample.guidance_scale`; trained
by replacing labels with the null class with prob `model.label_dropout`) applied before the x_0 clipping.
Held-out evaluation reports the training loss and, with `eval.bpd_timesteps` (DDPM only), the variational bound
in bits/dim (`diffusion.vlb`). Subclasses change the data space through `encode`/`decode` (latent diffusion).

`augment.mode = "edm"` is EDM's non-leaky augmentation (`augment.edm`): each training image is augmented with
probability `augment.p` per op before noising, and the network is given the augment labels (`model.augment_dim`
= 9); sampling and the held-out loss give it none, i.e. zeros: the un-augmented distribution.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genimg_jax import data, parallel
from genimg_jax.augment import edm as edm_augment
from genimg_jax.config import adam_config, base_config, require, require_choice
from genimg_jax.diffusion import edm, guidance, repaint, samplers, schedules, vlb
from genimg_jax.losses import likelihood
from genimg_jax.methods import microbatching
from genimg_jax.methods.base import (
    Batch,
    Metrics,
    adam,
    class_conditioning,
    ema_update,
    sample_labels,
    source_input,
    translation_rows,
)
from genimg_jax.models import ddpmpp, latent_mlp, unet

PARAMETERIZATIONS = ("ddpm_eps", "edm")
NETWORKS = ("unet", "ddpmpp", "mlp")
AUGMENT_MODES = ("none", "edm")
_AUGMENT_STREAM = 0x417567  # folded into the loss key for the augmentation, leaving the other draws as they were


def default_config(parameterization: str = "ddpm_eps") -> ml_collections.ConfigDict:
    """Every key the diffusion methods read, with DDPM's CIFAR-10 values; `configs/*.py` change what differs.

    "edm" switches to EDM's parameterization and its 18-step Heun sampler (35 network evaluations per sample),
    which does not clip the x_0 estimates (EDM's `edm_sampler` does not): the clipping default follows the
    parameterization.
    """
    config = base_config()
    config.method = "diffusion"
    config.model = ml_collections.ConfigDict(
        {
            "parameterization": "ddpm_eps",
            "network": "unet",  # "ddpmpp": EDM's DDPM++; "mlp": LatentMLP for flat latents (num_res_blocks = blocks)
            "features": 128,
            "channel_multipliers": (1, 2, 2, 2),
            "num_res_blocks": 2,
            "attention_resolutions": (16,),
            "dropout": 0.1,
            "time_embedding": "positional",  # or "fourier"
            "num_classes": 0,  # > 0: class-conditional, with a null class for classifier-free guidance
            "label_dropout": 0.1,
            "augment_dim": 0,  # width of the augment labels the network gets: 9 with augment.mode = "edm"
            "remat": False,  # recompute each U-Net block's activations in the backward pass (memory for compute)
            # ddpm_eps
            "schedule": "linear",
            "num_timesteps": 1000,
            "beta_start": 1e-4,
            "beta_end": 0.02,
            # edm
            "sigma_data": 0.5,
            "p_mean": -1.2,
            "p_std": 1.2,
        }
    )
    config.augment = ml_collections.ConfigDict(
        {
            "mode": "none",  # none | edm (EDM's non-leaky augmentation with augment labels)
            "p": 0.0,  # probability of each augmentation op per image (EDM's --augment; 0.12 on CIFAR-10)
        }
    )
    config.optim = ml_collections.ConfigDict({"denoiser": adam_config(2e-4)})
    config.optim.denoiser.update(grad_clip_norm=1.0, warmup_steps=5000)
    config.sample = ml_collections.ConfigDict(
        {
            "sampler": "ddpm",  # ddpm | ddim | heun
            "steps": 1000,
            "respacing": "linspace",  # DDPM/DDIM steps < T: linspace (T-1 .. 0, rounded) | uniform (DDIM's T/S stride)
            "variance": "beta_tilde",  # DDPM step variance: beta_tilde (fixedsmall) | beta (fixedlarge, Ho et al.'s)
            "eta": 0.0,  # DDIM stochasticity
            "guidance_scale": 0.0,  # classifier-free guidance w; 0 = conditional model
            "clip_denoised": True,  # clip each x_0 estimate to the data range [-1, 1], as DDPM's sampler does
            # EDM time discretisation (used when model.parameterization = "edm")
            "sigma_min": 0.002,
            "sigma_max": 80.0,
            "rho": 7.0,
            # RePaint inpainting (`Diffusion.inpaint`, DDPM only): the paper's jump length and resamplings per jump
            "repaint": False,  # `sample` inpaints the batch's `source` where `mask` = 1 (needs data.degradation=mask:*)
            "repaint_jump_length": 10,
            "repaint_resamplings": 10,
        }
    )
    config.train.ema_decay = 0.9999
    config.train.batch_size = 128
    # DDPM's variational bound on the eval split, in bits/dim (methods' evaluate_batch): 0 = off, T = the exact bound
    # (T network passes per batch), 2 .. T-1 = an unbiased stratified estimate from that many passes (bpd_strided).
    config.eval.bpd_timesteps = 0
    if parameterization == "edm":
        config.model.parameterization = "edm"
        config.sample.update(sampler="heun", steps=18, clip_denoised=False)
    return config


@flax.struct.dataclass
class DiffusionState:
    step: jax.Array
    rng: jax.Array
    params: Any
    ema_params: Any  # what sampling and evaluation use
    opt_state: Any
    # frozen pretrained params kept with the run: latent diffusion's autoencoder, text diffusion's pretrained text
    # tower ({"text_tower": ...}); {} otherwise
    first_stage: Any


def _validate(config: ml_collections.ConfigDict) -> None:
    model, sample = config.model, config.sample
    require_choice(config, "model.parameterization", PARAMETERIZATIONS)
    require_choice(config, "model.network", NETWORKS)
    require_choice(config, "model.time_embedding", unet.TIME_EMBEDDINGS)
    require_choice(config, "model.schedule", schedules.SCHEDULES)
    require_choice(config, "sample.sampler", samplers.SAMPLERS)
    require_choice(config, "sample.variance", samplers.VARIANCES)
    require_choice(config, "sample.respacing", samplers.RESPACINGS)
    require(model.features > 0, "model.features", model.features, "must be positive")
    require(model.num_classes >= 0, "model.num_classes", model.num_classes, "must be >= 0 (0 = unconditional)")
    require(0.0 <= model.label_dropout < 1.0, "model.label_dropout", model.label_dropout, "must be in [0, 1)")
    require(0.0 <= model.dropout < 1.0, "model.dropout", model.dropout, "must be in [0, 1)")
    require(model.num_timesteps > 1, "model.num_timesteps", model.num_timesteps, "must be > 1")
    require(model.sigma_data > 0, "model.sigma_data", model.sigma_data, "must be positive")
    require(sample.steps > 1, "sample.steps", sample.steps, "must be > 1")
    require(
        sample.respacing != "uniform" or model.num_timesteps % sample.steps == 0,
        "sample.steps",
        sample.steps,
        f"must divide model.num_timesteps={model.num_timesteps} for sample.respacing='uniform'",
    )
    bpd_timesteps = config.eval.bpd_timesteps
    require(
        bpd_timesteps == 0 or 2 <= bpd_timesteps <= model.num_timesteps,
        "eval.bpd_timesteps",
        bpd_timesteps,
        f"must be 0 (off) or in 2..model.num_timesteps={model.num_timesteps}",
    )
    require(
        bpd_timesteps == 0 or model.parameterization == "ddpm_eps",
        "eval.bpd_timesteps",
        bpd_timesteps,
        "needs the discrete DDPM process (model.parameterization='ddpm_eps')",
    )
    require(sample.repaint_jump_length >= 1, "sample.repaint_jump_length", sample.repaint_jump_length, "must be >= 1")
    require(sample.repaint_resamplings >= 1, "sample.repaint_resamplings", sample.repaint_resamplings, "must be >= 1")
    require(
        not sample.repaint or config.data.degradation.startswith("mask:"),
        "sample.repaint",
        sample.repaint,
        f"inpaints masked sources: needs data.degradation='mask:...', not {config.data.degradation!r}",
    )
    require(0.0 <= sample.eta <= 1.0, "sample.eta", sample.eta, "must be in [0, 1]")
    require(0 < sample.sigma_min < sample.sigma_max, "sample.sigma_min", sample.sigma_min, "must be in (0, sigma_max)")
    require(0.0 <= config.train.ema_decay < 1.0, "train.ema_decay", config.train.ema_decay, "must be in [0, 1)")
    augment = config.augment
    require_choice(config, "augment.mode", AUGMENT_MODES)
    require(0.0 <= augment.p <= 1.0, "augment.p", augment.p, "must be in [0, 1]")
    expected_dim = edm_augment.AUGMENT_DIM if augment.mode == "edm" else 0
    require(
        model.augment_dim == expected_dim,
        "model.augment_dim",
        model.augment_dim,
        f"must be {expected_dim} with augment.mode={augment.mode!r}",
    )
    require(
        model.augment_dim == 0 or model.network != "mlp",
        "model.network",
        model.network,
        "augmentation (augment.mode='edm') needs an image network",
    )
    require(not model.remat or model.network != "mlp", "model.remat", model.remat, "applies to the U-Nets only")


def clipped(denoise: samplers.Denoiser) -> samplers.Denoiser:
    """x_0 estimates clipped to [-1, 1]: at high noise an eps-network's small errors are multiplied by sigma."""
    return lambda x, sigma, labels: jnp.clip(denoise(x, sigma, labels), -1.0, 1.0)


def _per_example(value: jax.Array, num: int) -> jax.Array:
    return jnp.broadcast_to(jnp.asarray(value, jnp.float32), (num,))


def _expand(value: jax.Array, x: jax.Array) -> jax.Array:
    return value.reshape((-1,) + (1,) * (x.ndim - 1))


class Diffusion:
    """Denoising diffusion in pixel space with a U-Net."""

    MICROBATCHING = True  # accepts train.microbatch
    KEY_METRICS = ("loss",)  # what the progress line shows; every metric is logged

    def __init__(self, config: ml_collections.ConfigDict):
        _validate(config)
        require(
            config.sample.guidance_scale == 0 or self.guidable(config),
            "sample.guidance_scale",
            config.sample.guidance_scale,
            "needs a class-conditional model (model.num_classes > 0)",
        )
        self.config = config
        self.data_shape: tuple[int, ...] = (config.data.resolution, config.data.resolution, config.data.channels)
        model = config.model
        network_options = {
            "features": model.features,
            "dropout": model.dropout,
            "time_embedding": model.time_embedding,
            "num_classes": model.num_classes,
        }
        if model.network in ("unet", "ddpmpp"):
            network = unet.UNet if model.network == "unet" else ddpmpp.DDPMPlusPlus
            self.network = network(
                channel_multipliers=tuple(model.channel_multipliers),
                num_res_blocks=model.num_res_blocks,
                attention_resolutions=tuple(model.attention_resolutions),
                augment_dim=model.augment_dim,
                remat=model.remat,
                **network_options,
            )
        else:
            self.network = latent_mlp.LatentMLP(num_blocks=model.num_res_blocks, **network_options)
        self.optimizer = adam(config.optim.denoiser, "optim.denoiser")
        alpha_bar = schedules.make_alpha_bars(model.schedule, model.num_timesteps, model.beta_start, model.beta_end)
        self.alpha_bar_float64 = alpha_bar
        self.alpha_bar = jnp.asarray(alpha_bar, jnp.float32)
        self.training_sigmas = schedules.sigmas_from_alpha_bars(alpha_bar)

    # Data space: pixels here; latent diffusion overrides these three.
    def first_stage_params(self) -> Any:
        return {}

    def encode(self, first_stage: Any, batch: Batch) -> jax.Array:
        return data.to_unit_range(batch["image"])

    def decode(self, first_stage: Any, x: jax.Array) -> jax.Array:
        return jnp.clip(x, -1.0, 1.0)

    def applied_params(self, params: Any, first_stage: Any) -> Any:
        """The parameters the network is applied with: the trained `params` here; text diffusion joins its frozen
        pretrained text tower (kept in the state's `first_stage`) to them, outside what is differentiated."""
        return params

    def _labels(self, batch: Batch) -> jax.Array | None:
        return batch["label"] if self.config.model.num_classes else None

    @staticmethod
    def guidable(config: ml_collections.ConfigDict) -> bool:
        """Whether classifier-free guidance applies: the model learns an unconditional branch (`null_labels`)."""
        return config.model.num_classes > 0

    def null_labels(self, labels: jax.Array) -> jax.Array:
        """The labels of the unconditional model: the null class, index `model.num_classes`."""
        return jnp.full_like(labels, self.config.model.num_classes)

    def drop_labels(self, rng: jax.Array, labels: jax.Array | None) -> jax.Array | None:
        """Classifier-free guidance: each training label replaced by `null_labels` with prob `model.label_dropout`."""
        if not self.config.model.num_classes:
            return labels
        dropped = jax.random.uniform(rng, labels.shape) < self.config.model.label_dropout
        return jnp.where(dropped, self.null_labels(labels), labels)

    def init_state(self, rng: jax.Array, example_batch: Batch) -> DiffusionState:
        init_rng, state_rng = jax.random.split(rng)
        first_stage = self.first_stage_params()
        x = self.encode(first_stage, example_batch)
        t = jnp.zeros((x.shape[0],))
        inputs, labels = self.network_input(x, self._labels(example_batch))
        params = self.network.init(init_rng, inputs, t, labels)["params"]
        opt_state = self.optimizer.init(params)
        return DiffusionState(jnp.zeros((), jnp.int32), state_rng, params, params, opt_state, first_stage)

    def network_input(self, x: jax.Array, labels) -> tuple[jax.Array, Any]:
        """(network input, labels) from the scaled noisy image and the labels the samplers carry: as given here;
        conditional diffusion carries its source image as the labels and concatenates it to x."""
        return x, labels

    def _network(
        self,
        params: Any,
        x: jax.Array,
        noise_input: jax.Array,
        labels,
        rng: jax.Array | None,
        augment_labels: jax.Array | None = None,
    ) -> jax.Array:
        train = rng is not None
        rngs = {"dropout": rng} if train else None
        augment = {} if augment_labels is None else {"augment_labels": augment_labels}
        x, labels = self.network_input(x, labels)
        return self.network.apply({"params": params}, x, noise_input, labels, train=train, rngs=rngs, **augment)

    def denoiser(
        self, params: Any, rng: jax.Array | None = None, augment_labels: jax.Array | None = None
    ) -> samplers.Denoiser:
        """D(x, sigma, labels) -> x_0 estimate, for x = x_0 + sigma n; sigma is a scalar or one per example.

        A DDPM network sees x / sqrt(1 + sigma^2) and the (fractional) timestep whose noise level is sigma.
        `augment_labels` (training with augment.mode = "edm") say how each x_0 was augmented.
        """
        model = self.config.model

        def denoise(x: jax.Array, sigma: jax.Array, labels: jax.Array | None) -> jax.Array:
            sigma = _per_example(sigma, x.shape[0])
            if model.parameterization == "edm":
                scaled = _expand(edm.c_in(sigma, model.sigma_data), x) * x
                output = self._network(params, scaled, edm.c_noise(sigma), labels, rng, augment_labels)
                skip, out = edm.c_skip(sigma, model.sigma_data), edm.c_out(sigma, model.sigma_data)
                return _expand(skip, x) * x + _expand(out, x) * output
            log_sigmas = jnp.log(jnp.asarray(self.training_sigmas, jnp.float32))
            t = jnp.interp(jnp.log(sigma), log_sigmas, jnp.arange(model.num_timesteps, dtype=jnp.float32))
            eps = self._network(params, x / _expand(jnp.sqrt(1.0 + sigma**2), x), t, labels, rng, augment_labels)
            return x - _expand(sigma, x) * eps

        return denoise

    def loss(self, params: Any, x0: jax.Array, labels: jax.Array | None, rng: jax.Array, train: bool) -> jax.Array:
        """Per-example training loss; `train` enables dropout and the augmentation of `config.augment`."""
        x0, augment_labels = self.augmented(rng, x0) if train else (x0, None)
        noise_rng, level_rng, dropout_rng = jax.random.split(rng, 3)
        noise, level = self.training_noise(noise_rng, level_rng, x0)
        return self.noised_loss(params, x0, noise, level, labels, dropout_rng if train else None, augment_labels)

    def training_noise(self, noise_rng: jax.Array, level_rng: jax.Array, x0: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(noise n, noise level) of each example: sigma for EDM, the timestep t for DDPM."""
        model, num = self.config.model, x0.shape[0]
        noise = parallel.constrain_batch(jax.random.normal(noise_rng, x0.shape))
        if model.parameterization == "edm":
            return noise, edm.sample_training_sigmas(level_rng, num, model.p_mean, model.p_std)
        return noise, jax.random.randint(level_rng, (num,), 0, model.num_timesteps)

    def augmented(self, rng: jax.Array, x0: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        """(x_0 as the network trains on it, augment labels): EDM's augmentation with `augment.mode = "edm"`."""
        if self.config.augment.mode != "edm":
            return x0, None
        augment_rng = jax.random.fold_in(rng, _AUGMENT_STREAM)
        return edm_augment.edm_augment(augment_rng, x0, jnp.float32(self.config.augment.p))

    def noised_loss(
        self,
        params: Any,
        x0: jax.Array,
        noise: jax.Array,
        level: jax.Array,
        labels: jax.Array | None,
        network_rng: jax.Array | None,
        augment_labels: jax.Array | None = None,
    ) -> jax.Array:
        """Per-example loss at the given noise and levels (`training_noise`); `network_rng` enables dropout."""
        model, num = self.config.model, x0.shape[0]
        if model.parameterization == "edm":
            denoise = self.denoiser(params, network_rng, augment_labels)
            denoised = denoise(x0 + _expand(level, x0) * noise, level, labels)
            squared_error = jnp.mean((denoised - x0).reshape(num, -1) ** 2, axis=-1)
            return edm.loss_weight(level, model.sigma_data) * squared_error
        x_t = schedules.add_noise(x0, noise, self.alpha_bar[level])
        eps = self._network(params, x_t, level.astype(jnp.float32), labels, network_rng, augment_labels)
        return jnp.mean((eps - noise).reshape(num, -1) ** 2, axis=-1)

    def train_step(self, state: DiffusionState, batch: Batch) -> tuple[DiffusionState, Metrics]:
        x0 = self.encode(state.first_stage, batch)
        loss_rng, label_rng = jax.random.split(jax.random.fold_in(state.rng, state.step))
        labels = self.drop_labels(label_rng, self._labels(batch))
        x0, augment_labels = self.augmented(loss_rng, x0)
        noise_rng, level_rng, dropout_rng = jax.random.split(loss_rng, 3)
        noise, level = self.training_noise(noise_rng, level_rng, x0)
        inputs = {"x0": x0, "noise": noise, "level": level, "labels": labels, "augment_labels": augment_labels}

        def loss_fn(params, micro, index):
            network_rng = dropout_rng if index is None else jax.random.fold_in(dropout_rng, index)
            losses = self.noised_loss(
                self.applied_params(params, state.first_stage),
                micro["x0"],
                micro["noise"],
                micro["level"],
                micro["labels"],
                network_rng,
                micro["augment_labels"],
            )
            return jnp.mean(losses), ()

        (loss, _), grads = microbatching.value_and_grad(loss_fn, state.params, inputs, self.config.train.microbatch)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema_params = ema_update(state.ema_params, params, state.step, self.config.train.ema_decay)
        new_state = state.replace(step=state.step + 1, params=params, ema_params=ema_params, opt_state=opt_state)
        return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    def sampling_sigmas(self) -> jax.Array:
        """The noise levels a sampler walks: EDM's discretisation, or a subsequence of the DDPM schedule."""
        sample = self.config.sample
        if self.config.model.parameterization == "edm":
            return samplers.edm_sigmas(sample.steps, sample.sigma_min, sample.sigma_max, sample.rho)
        return samplers.schedule_sigmas(self.training_sigmas, sample.steps, sample.respacing)

    def conditioning_fields(self) -> tuple[str, ...]:
        inpainted = ("source", "mask") if self.config.sample.repaint else ()
        return class_conditioning(self.config.model.num_classes) + inpainted

    def sample(
        self, state: DiffusionState, rng: jax.Array, num: int, conditioning: Batch | None = None, sampler: str = ""
    ) -> jax.Array:
        """`num` samples from the EMA weights with `sample.sampler` (or `sampler`); labels default to classes in order.

        Returns images in [-1, 1] (or decoded latents); class-conditional models use `conditioning["label"]`.
        With `sample.repaint` they are RePaint's inpaintings of `conditioning["source"]` where its `mask` is 1, so
        an unconditional checkpoint is evaluated (restoration metrics, grids) as an inpainting method.
        """
        if self.config.sample.repaint:
            require(conditioning is not None, "conditioning", conditioning, "sample.repaint inpaints given sources")
            return self.inpaint(state, rng, conditioning["source"], conditioning["mask"], conditioning)
        noise_rng, sampler_rng = jax.random.split(rng)
        latents = jax.random.normal(noise_rng, (num, *self.data_shape))
        return self.sample_latents(state, latents, sampler_rng, conditioning, sampler)

    def latent_shape(self) -> tuple[int, ...]:
        return self.data_shape

    def sample_latents(
        self,
        state: DiffusionState,
        latents: jax.Array,
        rng: jax.Array,
        conditioning: Batch | None = None,
        sampler: str = "",
    ) -> jax.Array:
        """The samples of `sample` from given standard-normal latents (N, *data_shape), scaled to the initial noise
        level; `rng` drives the stochastic samplers (DDPM, DDIM with eta > 0), the others are a function of the
        latents alone."""
        model, sample = self.config.model, self.config.sample
        sigmas = self.sampling_sigmas()
        scale = samplers.initial_noise_scale(sigmas[0], variance_preserving=model.parameterization == "ddpm_eps")
        x = parallel.constrain_batch(scale * latents)  # otherwise every device would run the whole sampling loop
        labels = self.sampling_labels(conditioning, latents.shape[0])
        params = self.applied_params(state.ema_params, state.first_stage)
        denoise = self.sampling_denoiser(params, guided=labels is not None and bool(sample.guidance_scale))
        x0 = samplers.run(sampler or sample.sampler, denoise, x, sigmas, labels, rng, sample.eta, sample.variance)
        return self.decode(state.first_stage, x0)

    def sampling_labels(self, conditioning: Batch | None, num: int) -> jax.Array | None:
        """What the denoiser gets as labels when sampling `num` images: the classes of `sample_labels`."""
        return sample_labels(conditioning, num, self.config.model.num_classes)

    def inpaint(
        self,
        state: DiffusionState,
        rng: jax.Array,
        known_images: jax.Array,
        mask: jax.Array,
        conditioning: Batch | None = None,
    ) -> jax.Array:
        """RePaint (`diffusion.repaint`) of uint8 NHWC `known_images` where `mask` (N, H, W, 1) is 1, with the EMA
        weights and the DDPM sampler's steps, variance and clipping; images in [-1, 1], the known pixels kept.

        The jumps are `sample.repaint_jump_length` and `sample.repaint_resamplings`; a pixel-space DDPM is needed
        (the mask is in pixels, and the jumps use the forward process of the variance-preserving schedule).
        """
        model, sample = self.config.model, self.config.sample
        parameterization = model.parameterization
        require(parameterization == "ddpm_eps", "model.parameterization", parameterization, "RePaint needs ddpm_eps")
        require(not state.first_stage, "method", self.config.method, "RePaint inpaints in pixel space only")
        known = data.to_unit_range(known_images)
        sigmas = self.sampling_sigmas()
        schedule = repaint.jump_schedule(sample.steps, sample.repaint_jump_length, sample.repaint_resamplings)
        noise_rng, sampler_rng = jax.random.split(rng)
        scale = samplers.initial_noise_scale(sigmas[0], variance_preserving=True)
        x = parallel.constrain_batch(scale * jax.random.normal(noise_rng, known.shape))
        labels = self.sampling_labels(conditioning, known.shape[0])
        params = self.applied_params(state.ema_params, state.first_stage)
        denoise = self.sampling_denoiser(params, guided=labels is not None and bool(sample.guidance_scale))
        x0 = repaint.inpaint(denoise, x, known, mask, sigmas, schedule, labels, sampler_rng, sample.variance)
        return self.decode(state.first_stage, x0)

    def illustrations(self, state: DiffusionState, batch: Batch, rng: jax.Array) -> dict[str, jax.Array]:
        """For image-to-image use (a `source` among the conditioning fields: SR3/Palette, `sample.repaint`) the
        `translation_rows` of the batch's examples; nothing for generation from noise, whose grid is the samples."""
        fields = self.conditioning_fields()
        if "source" not in fields:
            return {}
        conditioning = {name: batch[name] for name in fields}
        output = self.sample(state, rng, batch["image"].shape[0], conditioning)
        source = source_input(batch, self.config.data.resolution, use_mask=False)
        return translation_rows(source, output, batch, with_mask="mask" in fields)

    def sampling_denoiser(self, params: Any, guided: bool) -> samplers.Denoiser:
        """The denoiser samplers walk with: guided (if `guided`), then clipped (if `sample.clip_denoised`), so that the
        clipping bounds the x_0 estimate the sampler uses rather than each of guidance's two predictions."""
        sample = self.config.sample
        denoise = self.denoiser(params)
        if guided:
            denoise = guidance.guided_by(denoise, sample.guidance_scale, self.null_labels)
        return clipped(denoise) if sample.clip_denoised else denoise

    def evaluate_batch(self, state: DiffusionState, batch: Batch, rng: jax.Array) -> Metrics:
        """Per example on held-out data, from the EMA weights: the training loss and, with `eval.bpd_timesteps`, the
        variational bound in bits/dim of the uint8 data (`bpd`, or `bpd_strided` when estimated from fewer terms
        than T) with its exact parts L_0 (`bpd_decoder`) and L_T (`bpd_prior`), using the sampler's step variance
        and clipping, as the reference's `calc_bpd_loop`."""
        x0 = self.encode(state.first_stage, batch)
        labels = self._labels(batch)
        params = self.applied_params(state.ema_params, state.first_stage)
        values = {"loss": self.loss(params, x0, labels, rng, train=False)}
        terms = self.config.eval.bpd_timesteps
        if terms:
            sample = self.config.sample
            denoise = self.sampling_denoiser(params, guided=False)
            bound_rng = jax.random.fold_in(rng, 1)  # the loss's noise stays that of a run without the bound
            nats = vlb.bound_nats(denoise, x0, labels, bound_rng, self.alpha_bar_float64, sample.variance, terms)
            dims = x0[0].size
            total_name = "bpd" if terms == self.config.model.num_timesteps else "bpd_strided"
            values[total_name] = likelihood.bits_per_dim(nats["total"], dims)
            values["bpd_decoder"] = likelihood.bits_per_dim(nats["decoder"], dims)
            values["bpd_prior"] = likelihood.bits_per_dim(nats["prior"], dims)
        return values
