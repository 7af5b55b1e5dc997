"""Differentiable augmentations of the images a discriminator sees: DiffAugment and ADA."""

from genimg_jax.augment.ada import AdaState, ada_augment, ada_observe, ada_update, init_ada_state
from genimg_jax.augment.diffaugment import diff_augment, parse_policy

__all__ = ["AdaState", "ada_augment", "ada_observe", "ada_update", "diff_augment", "init_ada_state", "parse_policy"]
