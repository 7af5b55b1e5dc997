"""The discriminator augmentation of both GAN methods, configured by one `config.augment` section.

Modes: "none"; "diffaugment" (Zhao et al. 2020: the ops of `policy`, always applied); "ada" (Karras et al. 2020:
the ops of `ops`, each with probability p, which moves towards keeping r_t = E[sign(D(real))] at `target`);
"fixed" (the ADA ops at the constant probability `p`). p lives in the train state, so it is checkpointed.
`ops` lists op names or stylegan2-ada-pytorch augpipe names ("bgc", the default, = "blit" + "geom" + "color").
"""

from collections.abc import Callable

import jax
import ml_collections

from genimg_jax.augment import AdaState, ada_augment, ada_observe, diff_augment, parse_policy
from genimg_jax.augment.ada import DEFAULT_ADA_OPS, expand_ops
from genimg_jax.config import ConfigError, require, require_choice

AUGMENT_MODES = ("none", "diffaugment", "ada", "fixed")

Augment = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]  # (rng, images, p) -> images


def augment_config() -> ml_collections.ConfigDict:
    """The `augment` section of every GAN config, off by default."""
    return ml_collections.ConfigDict(
        {
            "mode": "none",  # none | diffaugment | ada (p adapted to r_t) | fixed (p constant)
            "policy": "color,translation,cutout",  # DiffAugment's ops (mode diffaugment)
            "p": 0.0,  # initial (ada) or constant (fixed) augmentation probability
            "target": 0.6,  # ADA's target for r_t = E[sign(D(real))]
            "interval": 4,  # discriminator steps between adjustments of p
            "adjust_kimg": 500.0,  # thousands of real images for p to go from 0 to 1 at the fastest
            "ops": DEFAULT_ADA_OPS,  # the ADA ops or augpipes (modes ada and fixed), applied in the reference's order
        }
    )


def build_augment(config: ml_collections.ConfigDict) -> Augment:
    """The augmentation of `config.augment`, after checking every key of the section."""
    augment = config.augment
    require_choice(config, "augment.mode", AUGMENT_MODES)
    require(0 <= augment.p <= 1, "augment.p", augment.p, "must be in [0, 1]")
    require(augment.interval >= 1, "augment.interval", augment.interval, "must be >= 1")
    require(augment.adjust_kimg > 0, "augment.adjust_kimg", augment.adjust_kimg, "must be positive")
    try:
        ops = expand_ops(augment.ops)
    except ValueError as error:
        raise ConfigError(f"config.augment.ops={augment.ops!r} is invalid: {error}") from None
    policy = augment.policy
    try:
        parse_policy(policy)
    except ValueError as error:
        raise ConfigError(f"config.augment.policy={policy!r} is invalid: {error}") from None
    if augment.mode == "none":
        return lambda rng, images, p: images
    if augment.mode == "diffaugment":
        return lambda rng, images, p: diff_augment(rng, images, policy)
    return lambda rng, images, p: ada_augment(rng, images, p, ops)


def adapt_probability(augment: ml_collections.ConfigDict, ada: AdaState, real_logits: jax.Array) -> AdaState:
    """ADA's update of p from D's logits on real images (mode "ada"); the state as it is in every other mode."""
    if augment.mode != "ada":
        return ada
    return ada_observe(
        ada, real_logits, target=augment.target, adjust_kimg=augment.adjust_kimg, interval=augment.interval
    )
