"""SAGAN (Zhang et al. 2019, "Self-Attention GANs"). Variants: `digits`, `cifar10`.

SNGAN-style ResNets with spectral normalisation in both G and D, self-attention blocks, hinge loss, and the
two time-scale update rule: Adam with lr 1e-4 for G and 4e-4 for D, betas (0, 0.9), one D step per G step
(Sec. 5 and 6).

cifar10: the SAGAN recipe at CIFAR-10 scale, attention on the 16x16 feature maps (the paper places it on the
middle-to-high-level maps). The paper reports ImageNet 128x128 only: Inception score 52.52, FID 18.65 (checked:
the abstract; sample count and reference split not recorded here); there is no published CIFAR-10 number for
this setup. This codebase's choices, not the paper's: samples from an EMA generator (0.9999, running batch-norm
statistics of the live generator), the attention's keys and values are not max-pooled 2x.
digits: 32-wide networks at 16x16 with attention on the 8x8 maps.
"""

import ml_collections

from genimg_jax.config import CIFAR10_DATA, CIFAR10_EVAL, adam_config, check_variant
from genimg_jax.methods.gan.gan import gan_config

VARIANTS = ("digits", "cifar10")


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = gan_config()
    config.model.update({"architecture": "resnet", "latent_dim": 128, "d_spectral_norm": True, "g_spectral_norm": True})
    config.loss.adversarial = "hinge"
    config.optim = ml_collections.ConfigDict({"g": adam_config(1e-4, 0.0, 0.9), "d": adam_config(4e-4, 0.0, 0.9)})
    config.train.update({"d_steps": 1, "ema_decay": 0.9999})
    if variant == "cifar10":
        config.data.update(CIFAR10_DATA)
        config.eval.update(CIFAR10_EVAL, every=10_000)
        config.model.update({"g_features": 256, "d_features": 128, "attention_resolution": 16})
        config.train.update({"steps": 100_000, "batch_size": 64, "sample_every": 5000, "checkpoint_every": 5000})
    else:
        config.data.resolution = 16
        config.model.update({"g_features": 32, "d_features": 32, "latent_dim": 64, "attention_resolution": 8})
        config.train.update({"steps": 2000, "batch_size": 32, "sample_every": 250, "ema_decay": 0.999})
    return config
