"""Training shared by latent-variable models fit by a variational bound (VAE, β-VAE, DRAW).

A subclass supplies its own state class (a `VariationalState`), its networks' parameters and, per example,
log p(x|z) and the KL of each latent dimension; this class turns them into the training objective (β-weighted,
annealed, with free bits) and the reported bound (always the true ELBO: β = 1, no free bits) in nats per image
and bits/dim.
"""

from typing import Any, Generic, TypeVar

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genimg_jax import data
from genimg_jax.config import require
from genimg_jax.losses import elbo, likelihood
from genimg_jax.methods.base import Batch, Metrics, adam


@flax.struct.dataclass
class VariationalState:
    """The fields every method of the family trains; each method subclasses it as its own state class."""

    step: jax.Array
    rng: jax.Array
    params: Any  # network parameters, e.g. {"encoder": ..., "decoder": ..., "log_scale": (C,)} for the VAE
    opt_state: Any


State = TypeVar("State", bound=VariationalState)


class VariationalMethod(Generic[State]):
    """Base of the VAE family: subclasses set `state_class` and `NETWORK` (the name of their `optim.<net>`
    section) and define `init_params`, `elbo_terms` and `sample`."""

    KEY_METRICS = ("loss", "bits_per_dim")  # the objective and the true ELBO: the progress line; all are logged

    state_class: type[State]
    NETWORK: str

    def __init__(self, config: ml_collections.ConfigDict):
        model = config.model
        require(model.beta >= 0, "model.beta", model.beta, "must be >= 0")
        require(model.kl_warmup_steps >= 0, "model.kl_warmup_steps", model.kl_warmup_steps, "must be >= 0")
        require(model.free_bits >= 0, "model.free_bits", model.free_bits, "must be >= 0 nats per latent dimension")
        self.config = config
        self.optimizer = adam(config.optim[self.NETWORK], f"optim.{self.NETWORK}")
        self.num_dims = config.data.resolution**2 * config.data.channels

    def conditioning_fields(self) -> tuple[str, ...]:
        return ()  # the VAE family models p(x) only

    def init_params(self, rng: jax.Array, images: jax.Array) -> Any:
        raise NotImplementedError

    def elbo_terms(self, params: Any, images: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(log p(x|z) per example (batch,), KL of each latent dimension (batch, ...)) for one posterior sample."""
        raise NotImplementedError

    def init_state(self, rng: jax.Array, example_batch: Batch) -> State:
        params_rng, state_rng = jax.random.split(rng)
        params = self.init_params(params_rng, data.to_unit_range(example_batch["image"]))
        return self.state_class(jnp.zeros((), jnp.int32), state_rng, params, self.optimizer.init(params))

    def train_step(self, state: State, batch: Batch) -> tuple[State, Metrics]:
        model = self.config.model
        images = data.to_unit_range(batch["image"])
        rng = jax.random.fold_in(state.rng, state.step)
        weight = elbo.kl_weight(state.step, model.beta, model.kl_warmup_steps)

        def loss_fn(params):
            log_likelihood, kl_per_dimension = self.elbo_terms(params, images, rng)
            kl_penalty = elbo.free_bits_kl(kl_per_dimension, model.free_bits)
            return jnp.mean(-log_likelihood) + weight * kl_penalty, (log_likelihood, kl_per_dimension)

        (loss, (log_likelihood, kl_per_dimension)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1, params=optax.apply_updates(state.params, updates), opt_state=opt_state
        )
        kl = jnp.mean(likelihood.sum_per_example(kl_per_dimension))
        negative_elbo = kl - jnp.mean(log_likelihood)
        metrics = {
            "loss": loss,
            "negative_elbo": negative_elbo,
            "bits_per_dim": likelihood.bits_per_dim(negative_elbo, self.num_dims),
            "reconstruction": -jnp.mean(log_likelihood),
            "kl": kl,
            "kl_weight": weight,
            "grad_norm": optax.tree.norm(grads),
        }
        return new_state, metrics

    def evaluate_batch(self, state: State, batch: Batch, rng: jax.Array) -> Metrics:
        """The true ELBO (β = 1, no free bits) per example, one posterior sample, in nats and bits/dim."""
        images = data.to_unit_range(batch["image"])
        log_likelihood, kl_per_dimension = self.elbo_terms(state.params, images, rng)
        kl = likelihood.sum_per_example(kl_per_dimension)
        negative_elbo = kl - log_likelihood
        return {
            "negative_elbo": negative_elbo,
            "bits_per_dim": likelihood.bits_per_dim(negative_elbo, self.num_dims),
            "kl": kl,
        }
