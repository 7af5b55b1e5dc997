"""PixelCNN++ (Salimans et al. 2017): exact maximum likelihood of p(x) = prod_i p(x_i | x_<i) over pixels in raster
order, with a discretised logistic mixture per pixel (`losses.discretized_logistic`).

Training minimises the negative log-likelihood with Adam, its learning rate decayed by `optim.pixelcnn.
exponential_decay` per step, and keeps a Polyak (exponential moving) average of the weights with
`train.ema_decay`; evaluation and sampling use the average, as the reference does. The test split's value is exact:
-log p(x) in nats per image and bits/dim. Sampling runs the network once per pixel inside a `lax.fori_loop`.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genimg_jax import data, parallel
from genimg_jax.config import adam_config, base_config, require
from genimg_jax.losses import discretized_logistic, likelihood
from genimg_jax.methods.base import Batch, Metrics, adam, class_conditioning, ema_update, sample_labels
from genimg_jax.models.pixelcnn import PixelCNNPP


def pixelcnn_config() -> ml_collections.ConfigDict:
    """`base_config()` with every PixelCNN++ key at the reference's defaults (openai/pixel-cnn's train.py)."""
    config = base_config()
    config.method = "pixelcnn"
    config.model = ml_collections.ConfigDict(
        {
            "nr_resnet": 5,  # gated ResNet blocks per stream and resolution (0: one per coarse level, down pass only)
            "nr_filters": 160,
            "nr_logistic_mix": 10,
            "dropout": 0.5,  # in every gated block, training only
            "num_classes": 0,  # > 0: class-conditional on the `label` field
        }
    )
    config.optim = ml_collections.ConfigDict({"pixelcnn": adam_config(1e-3, b1=0.95, b2=0.9995)})
    config.optim.pixelcnn.exponential_decay = 0.999995
    config.train.ema_decay = 0.9995  # Polyak averaging of the weights
    return config


@flax.struct.dataclass
class PixelCNNState:
    step: jax.Array
    rng: jax.Array
    params: Any
    ema_params: Any  # what evaluation and sampling use
    opt_state: Any


class PixelCNN:
    """PixelCNN++ as a method: `model.*` sizes the network, `optim.pixelcnn` its Adam, `train.ema_decay` the average."""

    KEY_METRICS = ("bits_per_dim",)

    def __init__(self, config: ml_collections.ConfigDict):
        model = config.model
        for key in ("nr_filters", "nr_logistic_mix"):
            require(model[key] > 0, f"model.{key}", model[key], "must be positive")
        require(model.nr_resnet >= 0, "model.nr_resnet", model.nr_resnet, "must be >= 0")
        require(0.0 <= model.dropout < 1.0, "model.dropout", model.dropout, "must be in [0, 1)")
        require(model.num_classes >= 0, "model.num_classes", model.num_classes, "must be >= 0 (0 = unconditional)")
        ema = config.train.ema_decay
        require(0.0 <= ema < 1.0, "train.ema_decay", ema, "must be in [0, 1)")
        self.config = config
        self.channels = config.data.channels
        self.num_dims = config.data.resolution**2 * self.channels
        self.optimizer = adam(config.optim.pixelcnn, "optim.pixelcnn")
        self.network = PixelCNNPP(
            out_features=discretized_logistic.num_parameters(self.channels, model.nr_logistic_mix),
            nr_resnet=model.nr_resnet,
            nr_filters=model.nr_filters,
            dropout=model.dropout,
            num_classes=model.num_classes,
        )

    def conditioning_fields(self) -> tuple[str, ...]:
        return class_conditioning(self.config.model.num_classes)

    def _labels(self, batch: Batch) -> jax.Array | None:
        return batch["label"] if self.config.model.num_classes else None

    def init_state(self, rng: jax.Array, example_batch: Batch) -> PixelCNNState:
        params_rng, state_rng = jax.random.split(rng)
        images = data.to_unit_range(example_batch["image"])
        params = self.network.init(params_rng, images, self._labels(example_batch))["params"]
        return PixelCNNState(jnp.zeros((), jnp.int32), state_rng, params, params, self.optimizer.init(params))

    def log_likelihood(
        self, params: Any, images: jax.Array, labels: jax.Array | None, rng: jax.Array | None = None
    ) -> jax.Array:
        """log p(images) per example in nats; `rng` turns dropout on (training)."""
        train = rng is not None
        outputs = self.network.apply(
            {"params": params}, images, labels, train=train, rngs={"dropout": rng} if train else None
        )
        return discretized_logistic.log_likelihood(images, outputs)

    def train_step(self, state: PixelCNNState, batch: Batch) -> tuple[PixelCNNState, Metrics]:
        images = data.to_unit_range(batch["image"])
        rng = jax.random.fold_in(state.rng, state.step)

        def loss_fn(params):
            return -jnp.mean(self.log_likelihood(params, images, self._labels(batch), rng))

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema_params = ema_update(state.ema_params, params, state.step, self.config.train.ema_decay)
        new_state = state.replace(step=state.step + 1, params=params, ema_params=ema_params, opt_state=opt_state)
        metrics = {
            "nll_nats": loss,
            "bits_per_dim": likelihood.bits_per_dim(loss, self.num_dims),
            "grad_norm": optax.tree.norm(grads),
        }
        return new_state, metrics

    def evaluate_batch(self, state: PixelCNNState, batch: Batch, rng: jax.Array) -> Metrics:
        """The exact -log p(x) of each example under the averaged weights, in nats and bits/dim."""
        del rng  # exact and deterministic: no dropout, no sampling
        images = data.to_unit_range(batch["image"])
        nll = -self.log_likelihood(state.ema_params, images, self._labels(batch))
        return {"nll_nats": nll, "bits_per_dim": likelihood.bits_per_dim(nll, self.num_dims)}

    def sample(self, state: PixelCNNState, rng: jax.Array, num: int, conditioning: Batch | None = None) -> jax.Array:
        """`num` images on the uint8 grid in [-1, 1]: pixel i drawn from the network's output at i given the pixels
        drawn before it, one network pass per pixel (a pass sees only earlier pixels, so the rest may be anything)."""
        resolution = self.config.data.resolution
        labels = sample_labels(conditioning, num, self.config.model.num_classes)
        images = parallel.constrain_batch(jnp.zeros((num, resolution, resolution, self.channels)))

        def draw_pixel(index, images):
            row, column = index // resolution, index % resolution
            outputs = self.network.apply({"params": state.ema_params}, images, labels)
            pixel_outputs = jax.lax.dynamic_slice_in_dim(
                jax.lax.dynamic_slice_in_dim(outputs, row, 1, axis=1), column, 1, axis=2
            )
            pixel = discretized_logistic.sample(jax.random.fold_in(rng, index), pixel_outputs, self.channels)
            return jax.lax.dynamic_update_slice(images, pixel, (0, row, column, 0))

        return jax.lax.fori_loop(0, resolution * resolution, draw_pixel, images)
