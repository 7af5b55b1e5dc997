"""What every method provides to the trainer: pure functions over its own train-state pytree."""

import math
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import ml_collections
import optax

from genimg_jax import data
from genimg_jax.config import require

Batch = dict[str, jax.Array]
# Computation dtypes a model section may name (`model.dtype`); parameters stay float32.
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
Metrics = dict[str, jax.Array]


class Method(Protocol):
    """A model family as pure functions. The trainer jit-compiles them with the mesh's shardings.

    `state` is a pytree holding everything a resumed run needs (params, optimizer states, EMA, step, RNG key);
    randomness inside a step comes from `fold_in(state.rng, state.step)`, so a step is a pure function of its inputs.
    """

    config: ml_collections.ConfigDict
    # The few `train_step` metrics the progress line shows (its losses); metrics.jsonl and TensorBoard get all.
    KEY_METRICS: tuple[str, ...]

    def init_state(self, rng: jax.Array, example_batch: Batch) -> Any:
        """A fresh train state; `example_batch` gives shapes only."""

    def train_step(self, state: Any, batch: Batch) -> tuple[Any, Metrics]:
        """One optimisation step on a global batch; metrics are scalars."""

    def conditioning_fields(self) -> tuple[str, ...]:
        """The batch fields `sample` conditions on (`("label",)` for class-conditional models, `()` if none)."""

    def sample(self, state: Any, rng: jax.Array, num: int, conditioning: Batch | None = None) -> jax.Array:
        """`num` images in [-1, 1], NHWC, from the weights used for evaluation (e.g. the EMA generator).

        `conditioning` holds the `conditioning_fields` of `num` examples (e.g. from the eval split); image i is
        drawn for example i. `None` lets class-conditional models draw the classes 0, 1, ... cycling
        (`sample_labels`), so grids show the classes in order. Unconditional methods ignore it.
        """

    def evaluate_batch(self, state: Any, batch: Batch, rng: jax.Array) -> Metrics:
        """Per-example evaluation values, shape (batch,), averaged by the trainer over a whole split.

        Methods without a held-out metric return an empty dict.
        """


class LatentSampler(Protocol):
    """What a method that draws its samples from a standard-normal latent (a GAN's z, a diffusion model's initial
    noise) adds, so that tools can choose the latents (latent walks): `sample(state, rng, num, conditioning)` equals
    `sample_latents` of latents it draws from `rng`."""

    def latent_shape(self) -> tuple[int, ...]:
        """The shape of one sample's latent."""

    def sample_latents(
        self, state: Any, latents: jax.Array, rng: jax.Array, conditioning: Batch | None = None
    ) -> jax.Array:
        """Images in [-1, 1], NHWC, one per latent (N, *latent_shape()); `rng` is any other randomness of sampling."""


def class_conditioning(num_classes: int) -> tuple[str, ...]:
    """`conditioning_fields` of a model that is class-conditional when `num_classes` > 0."""
    return ("label",) if num_classes else ()


def source_input(fields: Batch, resolution: int, use_mask: bool) -> jax.Array:
    """The image-to-image methods' conditioning: the `source` field in [-1, 1] at the target's size (bicubic
    upsampling if smaller, as SR3 and pix2pix do), with the `mask` field (1 = known pixel) as a last channel when
    `use_mask`."""
    source = data.to_unit_range(fields["source"])
    if source.shape[1:3] != (resolution, resolution):
        source = jax.image.resize(source, (source.shape[0], resolution, resolution, source.shape[3]), "bicubic")
    if use_mask:
        source = jnp.concatenate([source, fields["mask"].astype(source.dtype)], axis=-1)
    return source


def add_residual_base(residual: jax.Array, source: jax.Array) -> jax.Array:
    """`model.residual`'s output: the network's residual plus the source at the target's size (`source_input`
    without the mask: for super-resolution the bicubic upsampling the restoration baseline scores), gray repeated to
    the residual's channels, clipped to [-1, 1]. A zero residual answers with the baseline itself."""
    return jnp.clip(residual + jnp.broadcast_to(source, residual.shape), -1.0, 1.0)


def translation_rows(source: jax.Array, output: jax.Array, batch: Batch, with_mask: bool) -> dict[str, jax.Array]:
    """The illustration of an image-to-image method, "translations": one row per example of (source, output,
    target[, mask]), shape (N, 3 or 4, H, W, C), each in [-1, 1] at the target's size; a one-channel column is
    repeated to the others' channels."""
    columns = [source, output, data.to_unit_range(batch["image"])]
    if with_mask:
        columns.append(batch["mask"].astype(jnp.float32) * 2.0 - 1.0)
    channels = max(column.shape[-1] for column in columns)
    columns = [jnp.broadcast_to(c, (*c.shape[:-1], channels)) if c.shape[-1] == 1 else c for c in columns]
    return {"translations": jnp.stack(columns, axis=1)}


def sample_labels(conditioning: Batch | None, num: int, num_classes: int) -> jax.Array | None:
    """The classes `Method.sample` draws for: none for unconditional methods, the `label` field of
    `conditioning` when given, else 0, 1, ... cycling; every class-conditional method takes them from here."""
    if not num_classes:
        return None
    return jnp.arange(num) % num_classes if conditioning is None else conditioning["label"]


def learning_rate_factor(optim_config: ml_collections.ConfigDict) -> optax.Schedule | None:
    """The schedule of an `optim.<net>` section as a multiplier of its learning rate after `count` updates, or None
    for a constant rate: a linear ramp (count + 1) / warmup_steps up to 1 (DDPM, EDM), times a linear decay
    1 - (count - decay_start_steps) / decay_steps down to 0 from update decay_start_steps on (WGAN-GP, SNGAN and
    projection cGAN from 0, pix2pix from half-way), times exponential_decay ** count (PixelCNN++). Either linear
    part is off at 0 steps, the exponential one at 1."""
    warmup, decay, exponential = optim_config.warmup_steps, optim_config.decay_steps, optim_config.exponential_decay
    if not warmup and not decay and exponential == 1.0:
        return None

    def factor(count: jax.Array) -> jax.Array:
        value = 1.0
        if warmup:
            value = jnp.minimum(1.0, (count + 1) / warmup)
        if decay:
            decayed = jnp.maximum(0.0, count - optim_config.decay_start_steps)
            value = value * jnp.maximum(0.0, 1.0 - decayed / decay)
        if exponential != 1.0:
            # The log in double precision: float32 rounds 0.999995 itself by ~1% of its distance from 1.
            value = value * jnp.exp(count * math.log(exponential))
        return value

    return factor


def adam(optim_config: ml_collections.ConfigDict, key: str) -> optax.GradientTransformation:
    """Adam (AdamW when weight_decay > 0) from an `optim.<net>` section (`config.adam_config`) at dotted `key`:
    after optional global-norm gradient clipping, with the warm-up and decay of `learning_rate_factor`.

    The schedule scales Adam's step, which is linear in the learning rate, so it is the learning-rate schedule.
    """
    for name in ("grad_clip_norm", "weight_decay", "warmup_steps", "decay_steps", "decay_start_steps"):
        require(optim_config[name] >= 0, f"{key}.{name}", optim_config[name], "must be >= 0 (0 disables)")
    require(optim_config.learning_rate > 0, f"{key}.learning_rate", optim_config.learning_rate, "must be positive")
    decay = optim_config.exponential_decay
    require(0.0 < decay <= 1.0, f"{key}.exponential_decay", decay, "must be in (0, 1] (1 disables)")
    transforms = []
    if optim_config.grad_clip_norm > 0:
        transforms.append(optax.clip_by_global_norm(optim_config.grad_clip_norm))
    transforms.append(
        optax.adamw(
            optim_config.learning_rate,
            b1=optim_config.b1,
            b2=optim_config.b2,
            eps=optim_config.eps,
            weight_decay=optim_config.weight_decay,
        )
    )
    factor = learning_rate_factor(optim_config)
    if factor is not None:
        transforms.append(optax.scale_by_schedule(factor))
    return transforms[0] if len(transforms) == 1 else optax.chain(*transforms)


def ema_update(average: Any, new: Any, step: jax.Array, decay: float | jax.Array, warmup: bool = True) -> Any:
    """Exponential moving average with warm-up: the decay starts near 0 and rises to `decay`.

    The warm-up min(decay, (1 + step) / (10 + step)) keeps early averages from being dominated by the random
    initialisation, which matters for short runs. `warmup=False` uses `decay` as given (a caller's own schedule).
    """
    step = step.astype(jax.numpy.float32)
    effective = jax.numpy.minimum(decay, (1.0 + step) / (10.0 + step)) if warmup else decay
    return jax.tree.map(lambda a, n: effective * a + (1.0 - effective) * n, average, new)
