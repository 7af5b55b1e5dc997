"""Differentiable augmentations: DiffAugment and ADA for discriminators, EDM's non-leaky pipe for diffusion."""

from genimg_jax.augment.ada import ada_augment
from genimg_jax.augment.ada_controller import AdaState, ada_observe, ada_update, init_ada_state
from genimg_jax.augment.diffaugment import diff_augment, parse_policy

__all__ = ["AdaState", "ada_augment", "ada_observe", "ada_update", "diff_augment", "init_ada_state", "parse_policy"]
