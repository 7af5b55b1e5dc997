"""What every method provides to the trainer: pure functions over its own train-state pytree."""

from typing import Any, Protocol

import jax
import jax.numpy as jnp
import ml_collections
import optax

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


def class_conditioning(num_classes: int) -> tuple[str, ...]:
    """`conditioning_fields` of a model that is class-conditional when `num_classes` > 0."""
    return ("label",) if num_classes else ()


def sample_labels(conditioning: Batch | None, num: int, num_classes: int) -> jax.Array | None:
    """The classes `Method.sample` draws for: none for unconditional methods, the `label` field of
    `conditioning` when given, else 0, 1, ... cycling; every class-conditional method takes them from here."""
    if not num_classes:
        return None
    return jnp.arange(num) % num_classes if conditioning is None else conditioning["label"]


def adam(optim_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam (AdamW when weight_decay > 0), optionally after global-norm gradient clipping (0 disables).

    The learning rate decays linearly to 0 over `decay_steps` updates when that is positive, as several GAN papers
    (WGAN-GP, SNGAN, projection cGAN) train.
    """
    learning_rate = optim_config.learning_rate
    if optim_config.decay_steps > 0:
        learning_rate = optax.linear_schedule(learning_rate, 0.0, optim_config.decay_steps)
    optimizer = optax.adamw(
        learning_rate,
        b1=optim_config.b1,
        b2=optim_config.b2,
        weight_decay=optim_config.weight_decay,
    )
    if optim_config.grad_clip_norm > 0:
        optimizer = optax.chain(optax.clip_by_global_norm(optim_config.grad_clip_norm), optimizer)
    return optimizer


def ema_update(average: Any, new: Any, step: jax.Array, decay: float | jax.Array, warmup: bool = True) -> Any:
    """Exponential moving average with warm-up: the decay starts near 0 and rises to `decay`.

    The warm-up min(decay, (1 + step) / (10 + step)) keeps early averages from being dominated by the random
    initialisation, which matters for short runs. `warmup=False` uses `decay` as given (a caller's own schedule).
    """
    step = step.astype(jax.numpy.float32)
    effective = jax.numpy.minimum(decay, (1.0 + step) / (10.0 + step)) if warmup else decay
    return jax.tree.map(lambda a, n: effective * a + (1.0 - effective) * n, average, new)
