"""pix2pix (Isola et al. 2017): a conditional GAN that translates the batch's `source` image into its `image`,
with pix2pixHD's multi-scale discriminator and feature matching (Wang et al. 2018) as options.

Each step follows the reference's order (junyanz/pytorch-CycleGAN-and-pix2pix, `Pix2PixModel`): G translates
the source once; D is updated on (source, target) against (source, G(source)) with its loss halved; then G is
updated on the adversarial loss against the *updated* D plus `loss.l1_weight` x the L1 distance to the target
(and pix2pixHD's feature matching when `loss.feature_matching_weight` > 0). D sees every patch: the losses
average over the logit map. A `source` smaller than the target (super-resolution) is upsampled bicubically
first; `model.use_mask` adds the `mask` field (1 = known pixel) as an input channel (inpainting), and
`model.keep_known` pastes the known pixels of the source over G's output, in training (so D judges, and L1
measures, the composite: only the hole is G's to fill) and at test time (a restoration never changes pixels it was
given). `model.residual` (not the reference's) makes G predict a correction of that upsampled source (SR) or of
the source itself (denoising, inpainting, sketches): the output is clip(source + G(source)), so an untrained G
starts at the baseline the restoration metrics score rather than at noise.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genimg_jax import data
from genimg_jax.config import adam_config, base_config, require, require_choice
from genimg_jax.losses import adversarial
from genimg_jax.methods.base import (
    COMPUTE_DTYPES,
    Batch,
    Metrics,
    adam,
    add_residual_base,
    source_input,
    translation_rows,
)
from genimg_jax.models.pix2pix import NORMS, MultiScalePatchDiscriminator, UNetGenerator

# The reference's `gan_mode`s: vanilla is binary cross-entropy on logits; lsgan its MSELoss (twice our 1/2-scaled
# least-squares losses), so that `loss.l1_weight` weighs the same adversarial term as there.
ADVERSARIAL = {
    "vanilla": (adversarial.non_saturating_generator_loss, adversarial.non_saturating_discriminator_loss),
    "lsgan": (
        lambda fake: 2.0 * adversarial.least_squares_generator_loss(fake),
        lambda real, fake: 2.0 * adversarial.least_squares_discriminator_loss(real, fake),
    ),
}


def pix2pix_config() -> ml_collections.ConfigDict:
    """`base_config()` with every pix2pix key at the reference's default (train.py's options)."""
    config = base_config()
    config.method = "pix2pix"
    config.model = ml_collections.ConfigDict(
        {
            "num_downs": 0,  # halvings of the U-Net (0: down to 1x1, i.e. log2 of the resolution; unet_256 = 8)
            "g_features": 64,  # ngf
            "d_features": 64,  # ndf
            "d_layers": 3,  # n_layers_D: 3 is the 70x70 PatchGAN
            "d_scales": 1,  # > 1: pix2pixHD's multi-scale discriminator (the image, then 2x, 4x ... smaller)
            "norm": "batch",  # batch | instance | instance_affine (= batch norm over one image): models/pix2pix.py
            "dropout": 0.5,  # in the U-Net's inner up blocks
            "sample_dropout": True,  # keep dropout on when sampling: the paper's test protocol (its noise source)
            "use_mask": False,  # give G the `mask` field as a channel (inpainting)
            "keep_known": False,  # with use_mask: the output takes the source's pixels where mask = 1
            "residual": False,  # output = clip(source at the target's size + G(...)); not in the reference
            "dtype": "float32",
        }
    )
    config.loss = ml_collections.ConfigDict(
        {"adversarial": "vanilla", "l1_weight": 100.0, "feature_matching_weight": 0.0}
    )
    config.optim = ml_collections.ConfigDict({"g": adam_config(2e-4, b1=0.5), "d": adam_config(2e-4, b1=0.5)})
    return config


def decay_over_second_half(config: ml_collections.ConfigDict) -> None:
    """The reference's `linear` policy (pix2pix and CycleGAN): both learning rates held for the first half of
    `train.steps`, then decayed linearly to 0 over the second. Fixed when the config is built, like
    `gan.decay_learning_rates_linearly`."""
    half = config.train.steps // 2
    for optim in (config.optim.g, config.optim.d):
        optim.update({"decay_start_steps": half, "decay_steps": half})


@flax.struct.dataclass
class Pix2PixState:
    step: jax.Array
    rng: jax.Array
    generator: Any  # {"params": ..., and "batch_stats" with batch norm}
    discriminator: Any
    g_opt_state: Any
    d_opt_state: Any


def _with_params(variables: Any, params: Any) -> Any:
    return {**variables, "params": params}


def _patch_mean(loss_fn, *logit_maps: list[jax.Array]) -> jax.Array:
    """A GAN loss averaged over every patch of each scale's logit map, summed over scales (pix2pixHD)."""
    return sum(loss_fn(*(maps[scale].reshape(-1) for maps in logit_maps)) for scale in range(len(logit_maps[0])))


class Pix2Pix:
    """Paired image-to-image translation; see `pix2pix_config` for the keys."""

    KEY_METRICS = ("d_loss", "g_gan", "g_l1")

    def __init__(self, config: ml_collections.ConfigDict):
        model, loss = config.model, config.loss
        require_choice(config, "model.norm", NORMS)
        require_choice(config, "model.dtype", COMPUTE_DTYPES)
        require_choice(config, "loss.adversarial", tuple(ADVERSARIAL))
        num_downs = model.num_downs or config.data.resolution.bit_length() - 1
        require(
            2**num_downs == config.data.resolution,
            "model.num_downs",
            model.num_downs,
            f"must take the resolution {config.data.resolution} to 1x1 (a power of 2), or be 0 to do so",
        )
        require(0.0 <= model.dropout < 1.0, "model.dropout", model.dropout, "must be in [0, 1)")
        require(model.d_layers >= 1, "model.d_layers", model.d_layers, "must be >= 1")
        require(model.d_scales >= 1, "model.d_scales", model.d_scales, "must be >= 1")
        require(not model.keep_known or model.use_mask, "model.keep_known", True, "needs model.use_mask=True")
        for key in ("l1_weight", "feature_matching_weight"):
            require(loss[key] >= 0, f"loss.{key}", loss[key], "must be >= 0")
        self.config = config
        dtype = COMPUTE_DTYPES[model.dtype]
        self.generator = UNetGenerator(
            config.data.channels, num_downs, model.g_features, model.norm, model.dropout, dtype=dtype
        )
        self.discriminator = MultiScalePatchDiscriminator(
            model.d_features, model.d_layers, model.norm, model.d_scales, dtype=dtype
        )
        self.generator_loss, self.discriminator_loss = ADVERSARIAL[loss.adversarial]
        self.g_optimizer = adam(config.optim.g, "optim.g")
        self.d_optimizer = adam(config.optim.d, "optim.d")

    def generator_input(self, fields: Batch) -> jax.Array:
        """The source in [-1, 1] at the target's size (bicubic upsampling if smaller), with the mask as a last
        channel when `model.use_mask`."""
        return source_input(fields, self.config.data.resolution, self.config.model.use_mask)

    def _translate(self, variables: Any, inputs: jax.Array, rng: jax.Array, train: bool, dropout: bool):
        """G(inputs) and the variables with updated batch statistics when training."""
        kwargs = dict(train=train, deterministic=not dropout, rngs={"dropout": rng})
        if not train:
            return self._output(inputs, self.generator.apply(variables, inputs, **kwargs)), variables
        images, updates = self.generator.apply(variables, inputs, mutable=["batch_stats"], **kwargs)
        return self._output(inputs, images), {**variables, **updates}

    def _output(self, inputs: jax.Array, generated: jax.Array) -> jax.Array:
        """G's images, or with `model.residual` the source plus G's residual; then `_keep_known`."""
        if self.config.model.residual:
            generated = add_residual_base(generated, self._source_channels(inputs))
        return self._keep_known(inputs, generated)

    def _source_channels(self, inputs: jax.Array) -> jax.Array:
        """The (upsampled) source in `generator_input`'s inputs, without the mask channel."""
        return inputs[..., : inputs.shape[-1] - int(self.config.model.use_mask)]

    def _keep_known(self, inputs: jax.Array, images: jax.Array) -> jax.Array:
        """With `model.keep_known`: the source where the mask (the inputs' last channel) is 1, G's images elsewhere."""
        if not self.config.model.keep_known:
            return images
        known = inputs[..., -1:]
        return known * inputs[..., :-1] + (1.0 - known) * images

    def _discriminate(self, variables: Any, inputs: jax.Array, images: jax.Array) -> tuple[list, list, Any]:
        (logits, features), updates = self.discriminator.apply(
            variables, jnp.concatenate([inputs, images], axis=-1), train=True, mutable=["batch_stats"]
        )
        return logits, features, {**variables, **updates}

    def init_state(self, rng: jax.Array, example_batch: Batch) -> Pix2PixState:
        g_rng, d_rng, state_rng = jax.random.split(rng, 3)
        inputs = self.generator_input(example_batch)
        target = data.to_unit_range(example_batch["image"])
        generator = self.generator.init(g_rng, inputs, train=False, deterministic=True)
        discriminator = self.discriminator.init(d_rng, jnp.concatenate([inputs, target], axis=-1), train=False)
        return Pix2PixState(
            step=jnp.zeros((), jnp.int32),
            rng=state_rng,
            generator=generator,
            discriminator=discriminator,
            g_opt_state=self.g_optimizer.init(generator["params"]),
            d_opt_state=self.d_optimizer.init(discriminator["params"]),
        )

    def train_step(self, state: Pix2PixState, batch: Batch) -> tuple[Pix2PixState, Metrics]:
        loss = self.config.loss
        inputs = self.generator_input(batch)
        target = data.to_unit_range(batch["image"])
        dropout_rng = jax.random.fold_in(state.rng, state.step)
        fake, _ = self._translate(state.generator, inputs, dropout_rng, train=True, dropout=True)

        def d_loss_fn(params):
            variables = _with_params(state.discriminator, params)
            real_logits, _, variables = self._discriminate(variables, inputs, target)
            fake_logits, _, variables = self._discriminate(variables, inputs, jax.lax.stop_gradient(fake))
            return 0.5 * _patch_mean(self.discriminator_loss, real_logits, fake_logits), (variables, real_logits)

        d_params = state.discriminator["params"]
        (d_loss, (discriminator, real_logits)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_params)
        d_updates, d_opt_state = self.d_optimizer.update(d_grads, state.d_opt_state, d_params)
        discriminator = _with_params(discriminator, optax.apply_updates(d_params, d_updates))

        def g_loss_fn(params):
            # The same dropout mask as above: the fake D was trained on, now differentiated.
            images, variables = self._translate(
                _with_params(state.generator, params), inputs, dropout_rng, train=True, dropout=True
            )
            fake_logits, fake_features, _ = self._discriminate(discriminator, inputs, images)
            gan = _patch_mean(self.generator_loss, fake_logits)
            l1 = jnp.mean(jnp.abs(images - target))
            matching = jnp.zeros((), jnp.float32)
            if loss.feature_matching_weight:
                _, real_features, _ = self._discriminate(discriminator, inputs, target)
                matching = feature_matching(fake_features, real_features)
            total = gan + loss.l1_weight * l1 + loss.feature_matching_weight * matching
            return total, (variables, gan, l1, matching)

        g_params = state.generator["params"]
        (_, (generator, g_gan, g_l1, g_matching)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g_params)
        g_updates, g_opt_state = self.g_optimizer.update(g_grads, state.g_opt_state, g_params)
        generator = _with_params(generator, optax.apply_updates(g_params, g_updates))
        new_state = Pix2PixState(
            step=state.step + 1,
            rng=state.rng,
            generator=generator,
            discriminator=discriminator,
            g_opt_state=g_opt_state,
            d_opt_state=d_opt_state,
        )
        metrics = {
            "d_loss": d_loss,
            "g_gan": g_gan,
            "g_l1": g_l1,
            "g_feature_matching": g_matching,
            "real_logit": jnp.mean(jnp.stack([jnp.mean(logits) for logits in real_logits])),
            "d_grad_norm": optax.tree.norm(d_grads),
            "g_grad_norm": optax.tree.norm(g_grads),
        }
        return new_state, metrics

    def conditioning_fields(self) -> tuple[str, ...]:
        return ("source", "mask") if self.config.model.use_mask else ("source",)

    def sample(self, state: Pix2PixState, rng: jax.Array, num: int, conditioning: Batch | None = None) -> jax.Array:
        """The translations of `conditioning`'s `num` sources (normalisation in inference mode; dropout on when
        `model.sample_dropout`, as the paper tests)."""
        if conditioning is None or "source" not in conditioning:
            raise ValueError("pix2pix translates source images: `sample` needs conditioning={'source': ...}")
        return self._sample_inputs(state, self.generator_input(conditioning), rng)

    def _sample_inputs(self, state: Pix2PixState, inputs: jax.Array, rng: jax.Array) -> jax.Array:
        """`sample` from the generator's inputs (`generator_input`), for callers that already made them."""
        images, _ = self._translate(state.generator, inputs, rng, train=False, dropout=self.config.model.sample_dropout)
        return images

    def evaluate_batch(self, state: Pix2PixState, batch: Batch, rng: jax.Array) -> Metrics:
        """Per example: the mean absolute error of the translation (on [-1, 1]) and of the bare input, its
        baseline (restoration metrics such as PSNR are the evaluation module's)."""
        target = data.to_unit_range(batch["image"])
        inputs = self.generator_input(batch)
        images = self._sample_inputs(state, inputs, rng)
        values = {"l1": jnp.mean(jnp.abs(images - target), axis=(1, 2, 3))}
        if inputs.shape[-1] == target.shape[-1]:
            values["l1_input"] = jnp.mean(jnp.abs(inputs - target), axis=(1, 2, 3))
        return values

    def illustrations(self, state: Pix2PixState, batch: Batch, rng: jax.Array) -> dict[str, jax.Array]:
        """`translation_rows`: (source, translation, target[, mask]) per example."""
        inputs = self.generator_input(batch)
        images = self._sample_inputs(state, inputs, rng)
        return translation_rows(self._source_channels(inputs), images, batch, self.config.model.use_mask)


def feature_matching(fake_features: list[list[jax.Array]], real_features: list[list[jax.Array]]) -> jax.Array:
    """pix2pixHD's feature-matching loss: the L1 distance between D's activations on the fake and on the real
    pair (held fixed), layer by layer, weighted 4 / (layers + 1) per layer and 1 / scales per scale as there."""
    total = jnp.zeros((), jnp.float32)
    for fake_scale, real_scale in zip(fake_features, real_features, strict=True):
        weight = 4.0 / len(fake_scale) / len(fake_features)
        for fake, real in zip(fake_scale, real_scale, strict=True):
            total += weight * jnp.mean(jnp.abs(fake - jax.lax.stop_gradient(real)))
    return total
