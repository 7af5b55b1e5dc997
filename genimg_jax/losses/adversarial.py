"""Adversarial losses as functions of discriminator logits (compare_gan's "loss" axis).

Logits have shape (batch,) or (batch, heads), e.g. one head per scale of a multi-scale discriminator: each loss
is the batch mean per head, summed over heads.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _batch_mean(values: jax.Array) -> jax.Array:
    return jnp.sum(jnp.mean(values.astype(jnp.float32), axis=0))


def non_saturating_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """-log D(G(z)): the generator loss that keeps gradients alive when D rejects fakes confidently."""
    return _batch_mean(jax.nn.softplus(-fake_logits))


def non_saturating_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """Binary cross-entropy of D: -log D(x) - log(1 - D(G(z)))."""
    return _batch_mean(jax.nn.softplus(-real_logits)) + _batch_mean(jax.nn.softplus(fake_logits))


def minimax_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """log(1 - D(G(z))): the original minimax objective of G (Goodfellow et al. 2014), which saturates."""
    return -_batch_mean(jax.nn.softplus(fake_logits))


def hinge_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z))) (Lim & Ye 2017; used by SNGAN, SAGAN, BigGAN)."""
    return _batch_mean(jax.nn.relu(1.0 - real_logits)) + _batch_mean(jax.nn.relu(1.0 + fake_logits))


def critic_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """-D(G(z)): G's loss for both the hinge and the Wasserstein discriminator losses."""
    return -_batch_mean(fake_logits)


def wasserstein_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """D(G(z)) - D(x): the critic's estimate of the negative Wasserstein-1 distance (Arjovsky et al. 2017)."""
    return _batch_mean(fake_logits) - _batch_mean(real_logits)


def least_squares_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """1/2 (D(G(z)) - 1)^2 (Mao et al. 2017, LSGAN with targets a = 0, b = c = 1)."""
    return 0.5 * _batch_mean(jnp.square(fake_logits - 1.0))


def least_squares_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """1/2 (D(x) - 1)^2 + 1/2 D(G(z))^2."""
    return 0.5 * _batch_mean(jnp.square(real_logits - 1.0)) + 0.5 * _batch_mean(jnp.square(fake_logits))


GeneratorLoss = Callable[[jax.Array], jax.Array]
DiscriminatorLoss = Callable[[jax.Array, jax.Array], jax.Array]

# Losses by config name (`config.loss.adversarial`): each entry is (generator loss, discriminator loss).
LOSSES: dict[str, tuple[GeneratorLoss, DiscriminatorLoss]] = {
    "non_saturating": (non_saturating_generator_loss, non_saturating_discriminator_loss),
    "minimax": (minimax_generator_loss, non_saturating_discriminator_loss),
    "hinge": (critic_generator_loss, hinge_discriminator_loss),
    "wasserstein": (critic_generator_loss, wasserstein_discriminator_loss),
    "least_squares": (least_squares_generator_loss, least_squares_discriminator_loss),
}
