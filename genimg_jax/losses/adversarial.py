"""Adversarial losses as functions of discriminator logits (Goodfellow et al. 2014)."""

from collections.abc import Callable

import jax
import jax.numpy as jnp


def non_saturating_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """-log D(G(z)): the generator loss that keeps gradients alive when D rejects fakes confidently."""
    return jnp.mean(jax.nn.softplus(-fake_logits))


def non_saturating_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """Binary cross-entropy of D: -log D(x) - log(1 - D(G(z)))."""
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


GeneratorLoss = Callable[[jax.Array], jax.Array]
DiscriminatorLoss = Callable[[jax.Array, jax.Array], jax.Array]

# Losses by config name (`config.model.loss`): each entry is (generator loss, discriminator loss).
LOSSES: dict[str, tuple[GeneratorLoss, DiscriminatorLoss]] = {
    "non_saturating": (non_saturating_generator_loss, non_saturating_discriminator_loss),
}
