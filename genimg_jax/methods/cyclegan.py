"""CycleGAN (Zhu et al. 2017): unpaired translation between domain A (the batch's `source` field, from
`config.data.unpaired_source`) and domain B (its `image` field), following junyanz/pytorch-CycleGAN-and-pix2pix
`CycleGANModel`.

G_A: A -> B and G_B: B -> A are ResNet generators; D_A judges B images (real B against G_A's fakes), D_B judges A
images, both 70x70 PatchGANs with instance norm. G minimises the least-squares GAN loss against both Ds plus the
cycle losses lambda_A |G_B(G_A(a)) - a| + lambda_B |G_A(G_B(b)) - b| and the identity losses lambda_identity x
(lambda_B |G_A(b) - b| + lambda_A |G_B(a) - a|), which keep the colours of an image already in the target domain.
Each step updates both Gs (one Adam, as the reference), then both Ds on the real images against fakes drawn from
a 50-image history of that step's fakes (`image_pool`), each D's loss halved so that it learns slower than G.
"""

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genimg_jax import data
from genimg_jax.config import adam_config, base_config, require, require_choice
from genimg_jax.methods.base import COMPUTE_DTYPES, Batch, Metrics, adam
from genimg_jax.methods.image_pool import ImagePool, empty_pool, query_pool
from genimg_jax.methods.pix2pix import ADVERSARIAL
from genimg_jax.models.pix2pix import PatchDiscriminator
from genimg_jax.models.resnet_translator import STATELESS_NORMS, ResnetGenerator

Translate = Callable[[jax.Array], jax.Array]


def cyclegan_config() -> ml_collections.ConfigDict:
    """`base_config()` with every CycleGAN key at the reference's default (train.py's and the model's options)."""
    config = base_config()
    config.method = "cyclegan"
    config.model = ml_collections.ConfigDict(
        {
            "n_blocks": 9,  # residual blocks: resnet_9blocks for 256 px, resnet_6blocks for 128 px
            "g_features": 64,  # ngf
            "d_features": 64,  # ndf
            "d_layers": 3,  # n_layers_D: 3 is the 70x70 PatchGAN
            "norm": "instance",  # instance | instance_affine (stateless, so G and D carry parameters only)
            "dtype": "float32",
        }
    )
    config.loss = ml_collections.ConfigDict(
        {
            "adversarial": "lsgan",  # the reference's default gan_mode (MSELoss); vanilla = BCE
            "lambda_a": 10.0,  # cycle A -> B -> A
            "lambda_b": 10.0,  # cycle B -> A -> B
            "lambda_identity": 0.5,  # identity loss weight, relative to lambda_a / lambda_b (0 disables)
            "pool_size": 50,  # history of fakes shown to each D (0: the newest fakes only)
        }
    )
    config.optim = ml_collections.ConfigDict({"g": adam_config(2e-4, b1=0.5), "d": adam_config(2e-4, b1=0.5)})
    return config


@flax.struct.dataclass
class CycleGANState:
    step: jax.Array
    rng: jax.Array
    generators: Any  # {"g_a": params, "g_b": params}
    discriminators: Any  # {"d_a": params, "d_b": params}
    g_opt_state: Any
    d_opt_state: Any
    pool_a: ImagePool  # past fakes of domain A (G_B's), shown to D_B
    pool_b: ImagePool  # past fakes of domain B (G_A's), shown to D_A


def reconstruction_losses(
    g_a: Translate, g_b: Translate, real_a: jax.Array, real_b: jax.Array, loss: ml_collections.ConfigDict
) -> tuple[dict[str, jax.Array], jax.Array, jax.Array]:
    """The weighted cycle and identity losses of translators `g_a` (A -> B) and `g_b` (B -> A) on a batch of
    each domain, and the fakes (G_A(a), G_B(b)) the GAN losses reuse. Mean absolute errors over every pixel."""
    fake_b, fake_a = g_a(real_a), g_b(real_b)
    terms = {
        "cycle_a": loss.lambda_a * jnp.mean(jnp.abs(g_b(fake_b) - real_a)),
        "cycle_b": loss.lambda_b * jnp.mean(jnp.abs(g_a(fake_a) - real_b)),
    }
    if loss.lambda_identity > 0:
        terms["identity_a"] = loss.lambda_identity * loss.lambda_b * jnp.mean(jnp.abs(g_a(real_b) - real_b))
        terms["identity_b"] = loss.lambda_identity * loss.lambda_a * jnp.mean(jnp.abs(g_b(real_a) - real_a))
    return terms, fake_b, fake_a


class CycleGAN:
    """Unpaired image-to-image translation; see `cyclegan_config` for the keys."""

    KEY_METRICS = ("d_loss", "g_gan", "cycle_a", "cycle_b")

    def __init__(self, config: ml_collections.ConfigDict):
        model, loss = config.model, config.loss
        require_choice(config, "model.norm", STATELESS_NORMS)
        require_choice(config, "model.dtype", COMPUTE_DTYPES)
        require_choice(config, "loss.adversarial", tuple(ADVERSARIAL))
        require(
            bool(config.data.unpaired_source),
            "data.unpaired_source",
            config.data.unpaired_source,
            "must name domain A's source: CycleGAN translates it into data.source",
        )
        require(config.data.resolution % 4 == 0, "data.resolution", config.data.resolution, "must divide by 4")
        require(model.n_blocks >= 0, "model.n_blocks", model.n_blocks, "must be >= 0")
        require(model.d_layers >= 1, "model.d_layers", model.d_layers, "must be >= 1")
        require(loss.pool_size >= 0, "loss.pool_size", loss.pool_size, "must be >= 0 (0 disables)")
        for key in ("lambda_a", "lambda_b", "lambda_identity"):
            require(loss[key] >= 0, f"loss.{key}", loss[key], "must be >= 0")
        self.config = config
        dtype = COMPUTE_DTYPES[model.dtype]
        self.generator = ResnetGenerator(config.data.channels, model.n_blocks, model.g_features, model.norm, dtype)
        self.discriminator = PatchDiscriminator(model.d_features, model.d_layers, model.norm, dtype)
        self.generator_loss, self.discriminator_loss = ADVERSARIAL[loss.adversarial]
        self.g_optimizer = adam(config.optim.g, "optim.g")
        self.d_optimizer = adam(config.optim.d, "optim.d")

    def _translator(self, params: Any) -> Translate:
        return lambda images: self.generator.apply({"params": params}, images)

    def _logits(self, params: Any, images: jax.Array) -> jax.Array:
        logits, _ = self.discriminator.apply({"params": params}, images, train=True)
        return logits.reshape(-1)  # every patch counts as one example, as the reference's MSELoss over the map

    def init_state(self, rng: jax.Array, example_batch: Batch) -> CycleGANState:
        keys = jax.random.split(rng, 5)
        image = data.to_unit_range(example_batch["image"])
        init_g = lambda key: self.generator.init(key, image)["params"]  # noqa: E731
        init_d = lambda key: self.discriminator.init(key, image, train=False)["params"]  # noqa: E731
        generators = {"g_a": init_g(keys[0]), "g_b": init_g(keys[1])}
        discriminators = {"d_a": init_d(keys[2]), "d_b": init_d(keys[3])}
        pool = empty_pool(self.config.loss.pool_size, image.shape[1:])
        return CycleGANState(
            step=jnp.zeros((), jnp.int32),
            rng=keys[4],
            generators=generators,
            discriminators=discriminators,
            g_opt_state=self.g_optimizer.init(generators),
            d_opt_state=self.d_optimizer.init(discriminators),
            pool_a=pool,
            pool_b=pool,
        )

    def train_step(self, state: CycleGANState, batch: Batch) -> tuple[CycleGANState, Metrics]:
        real_a, real_b = data.to_unit_range(batch["source"]), data.to_unit_range(batch["image"])
        d_params = state.discriminators

        def g_loss_fn(params):
            terms, fake_b, fake_a = reconstruction_losses(
                self._translator(params["g_a"]), self._translator(params["g_b"]), real_a, real_b, self.config.loss
            )
            gan = self.generator_loss(self._logits(d_params["d_a"], fake_b))
            gan = gan + self.generator_loss(self._logits(d_params["d_b"], fake_a))
            return gan + sum(terms.values()), ({**terms, "g_gan": gan}, fake_a, fake_b)

        g_params = state.generators
        (_, (g_terms, fake_a, fake_b)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g_params)
        g_updates, g_opt_state = self.g_optimizer.update(g_grads, state.g_opt_state, g_params)
        generators = optax.apply_updates(g_params, g_updates)

        key_a, key_b = jax.random.split(jax.random.fold_in(state.rng, state.step))
        pool_a, shown_a = query_pool(state.pool_a, jax.lax.stop_gradient(fake_a), key_a)
        pool_b, shown_b = query_pool(state.pool_b, jax.lax.stop_gradient(fake_b), key_b)

        def d_loss_fn(params):
            d_a = self.discriminator_loss(self._logits(params["d_a"], real_b), self._logits(params["d_a"], shown_b))
            d_b = self.discriminator_loss(self._logits(params["d_b"], real_a), self._logits(params["d_b"], shown_a))
            return 0.5 * (d_a + d_b), (0.5 * d_a, 0.5 * d_b)

        (d_loss, (d_a_loss, d_b_loss)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_params)
        d_updates, d_opt_state = self.d_optimizer.update(d_grads, state.d_opt_state, d_params)
        new_state = CycleGANState(
            step=state.step + 1,
            rng=state.rng,
            generators=generators,
            discriminators=optax.apply_updates(d_params, d_updates),
            g_opt_state=g_opt_state,
            d_opt_state=d_opt_state,
            pool_a=pool_a,
            pool_b=pool_b,
        )
        metrics = {
            **g_terms,
            "d_loss": d_loss,
            "d_a": d_a_loss,
            "d_b": d_b_loss,
            "d_grad_norm": optax.tree.norm(d_grads),
            "g_grad_norm": optax.tree.norm(g_grads),
        }
        return new_state, metrics

    def conditioning_fields(self) -> tuple[str, ...]:
        return ("source",)

    def sample(self, state: CycleGANState, rng: jax.Array, num: int, conditioning: Batch | None = None) -> jax.Array:
        """G_A's translations of `conditioning`'s `num` domain-A images (deterministic: `rng` is unused)."""
        if conditioning is None or "source" not in conditioning:
            raise ValueError("CycleGAN translates domain-A images: `sample` needs conditioning={'source': ...}")
        return self._translator(state.generators["g_a"])(data.to_unit_range(conditioning["source"]))

    def evaluate_batch(self, state: CycleGANState, batch: Batch, rng: jax.Array) -> Metrics:
        """Per example: the mean absolute cycle error |G_B(G_A(a)) - a| and |G_A(G_B(b)) - b| on [-1, 1]."""
        g_a, g_b = self._translator(state.generators["g_a"]), self._translator(state.generators["g_b"])
        real_a, real_b = data.to_unit_range(batch["source"]), data.to_unit_range(batch["image"])
        return {
            "cycle_l1_a": jnp.mean(jnp.abs(g_b(g_a(real_a)) - real_a), axis=(1, 2, 3)),
            "cycle_l1_b": jnp.mean(jnp.abs(g_a(g_b(real_b)) - real_b), axis=(1, 2, 3)),
        }

    def illustrations(self, state: CycleGANState, batch: Batch, rng: jax.Array) -> dict[str, jax.Array]:
        """ "cycles": one row per example of (a, G_A(a), G_B(G_A(a))), shape (N, 3, H, W, C)."""
        real_a = data.to_unit_range(batch["source"])
        fake_b = self._translator(state.generators["g_a"])(real_a)
        return {"cycles": jnp.stack([real_a, fake_b, self._translator(state.generators["g_b"])(fake_b)], axis=1)}
