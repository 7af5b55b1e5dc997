"""The project's one classifier training recipe: the digits CNN (digits_net.DigitsNet) trained from scratch with
Adam, a cosine-decayed learning rate and random shifts (of up to 2 pixels by default), on uint8 images with labels.

It makes the shipped digits feature network (tools/train_digits_net.py) and the classifiers of the
Classification Accuracy Score (cas.py), so both are one recipe, not two. Batches are split over the given
sharding's batch axes (parameters replicated); every process holds the whole training set and draws the same
rows, so a run is a function of (images, labels, recipe, mesh) alone: same inputs, same parameters.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from genimg_jax import data
from genimg_jax.metrics import digits_net


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a trained classifier depends on beside its data; `seed` fixes the initialisation, the rows of each
    batch and the shifts."""

    steps: int
    batch_size: int = 64
    learning_rate: float = 2e-3
    max_shift: int = 2
    seed: int = 0


def random_shift(rng: jax.Array, images: jax.Array, max_shift: int = 2) -> jax.Array:
    """Each image translated by an integer offset in [-max_shift, max_shift]^2, filled with the background (-1)."""
    size = images.shape[1]
    padded = jnp.pad(images, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)), constant_values=-1.0)
    offsets = jax.random.randint(rng, (images.shape[0], 2), 0, 2 * max_shift + 1)
    return jax.vmap(lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (size, size, image.shape[-1])))(
        padded, offsets
    )


@functools.cache
def _compiled_training(num_classes: int, channels: int, recipe: Recipe, sharding: NamedSharding) -> tuple:
    """The jitted initialisation and training step of a recipe, made once per process: every classifier of an
    evaluation (and of later evaluations) reuses their compilation. A step takes the whole training set (on the
    devices once) and every step's rows; it picks its own, so only the step number travels to the devices."""
    model = digits_net.DigitsNet(num_classes=num_classes)
    optimizer = optax.adam(optax.cosine_decay_schedule(recipe.learning_rate, recipe.steps))
    replicated = NamedSharding(sharding.mesh, PartitionSpec())

    def step(params, opt_state, images, labels, all_rows, index):
        rows = jax.lax.with_sharding_constraint(all_rows[index], sharding)
        rng = jax.random.fold_in(jax.random.PRNGKey(recipe.seed + 1), index)

        def loss_fn(params):
            shifted = random_shift(rng, data.to_unit_range(images[rows]), recipe.max_shift)
            logits = model.apply({"params": params}, shifted)["logits"]
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels[rows]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    def init(rng):
        params = digits_net.init_params(rng, channels, num_classes)
        return params, optimizer.init(params)

    compiled_step = jax.jit(step, out_shardings=(replicated, replicated, replicated), donate_argnums=(0, 1))
    return jax.jit(init, out_shardings=replicated), compiled_step


def train_classifier(
    images: np.ndarray, labels: np.ndarray, num_classes: int, recipe: Recipe, sharding: NamedSharding
) -> dict:
    """Parameters of a DigitsNet with `num_classes` outputs trained by `recipe` on uint8 NHWC `images`."""
    init, step = _compiled_training(num_classes, images.shape[-1], recipe, sharding)
    params, opt_state = init(jax.random.PRNGKey(recipe.seed))
    order = np.random.default_rng(recipe.seed)
    all_rows = np.stack([order.choice(len(images), recipe.batch_size, replace=False) for _ in range(recipe.steps)])
    whole = {"images": images, "labels": labels.astype(np.int32), "rows": all_rows.astype(np.int32)}
    on_devices = data.shard_whole_batch(whole, NamedSharding(sharding.mesh, PartitionSpec()))
    for index in range(recipe.steps):
        params, opt_state, loss = step(
            params, opt_state, on_devices["images"], on_devices["labels"], on_devices["rows"], np.int32(index)
        )
        # One step in flight: queued steps of eight simulated CPU devices have starved each other's all-reduce.
        loss.block_until_ready()
        if (index + 1) % 250 == 0 and jax.process_index() == 0:
            print(f"classifier step {index + 1}/{recipe.steps} loss {float(loss):.4f}", flush=True)
    return jax.device_get(params)


@functools.cache
def _compiled_classify(num_classes: int, replicated: NamedSharding) -> Callable:
    model = digits_net.DigitsNet(num_classes=num_classes)
    return jax.jit(
        lambda params, batch: jnp.argmax(model.apply({"params": params}, data.to_unit_range(batch))["logits"], -1),
        out_shardings=replicated,
    )


def predict(params: dict, images: np.ndarray, num_classes: int, batch_size: int, sharding: NamedSharding) -> np.ndarray:
    """The class a DigitsNet with `params` assigns to each uint8 NHWC image, in batches split as `sharding` says
    (the last one padded with copies of the first image, then cut)."""
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    classify = _compiled_classify(num_classes, replicated)
    params = jax.device_put(params, replicated)
    predictions = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        padded = np.concatenate([batch, np.repeat(batch[:1], batch_size - len(batch), axis=0)])
        sharded = data.shard_whole_batch({"image": padded}, sharding)["image"]
        predictions.append(np.asarray(jax.device_get(classify(params, sharded)))[: len(batch)])
    return np.concatenate(predictions)


def class_accuracies(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[float, np.ndarray]:
    """(overall accuracy, accuracy within each class); a class absent from `labels` gets NaN."""
    correct = predictions == labels
    counts = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels, weights=correct, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = hits / counts
    return float(np.mean(correct)), per_class
