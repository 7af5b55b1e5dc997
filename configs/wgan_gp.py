"""WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs"). Variants: `digits`, `cifar10`.

Wasserstein critic loss plus lambda * (||grad D(x_hat)|| - 1)^2 on real/fake interpolates, no batch norm in the
critic, n_critic = 5 critic steps per generator step, Adam betas (0, 0.9), lambda = 10 (Algorithm 1's defaults),
lr 2e-4 (Appendix F). One train step consumes `train.batch_size` = 5 x 64 real images: 64 per critic step, as in
the paper.

cifar10: the paper's CIFAR-10 ResNet (Appendix F: 128 feature maps, Adam lr 2e-4 decayed linearly to 0 over 100k
generator iterations, batch 64), with the official code's (igul222/improved_wgan_training, gan_cifar_resnet.py)
choices: 128 samples per generator step (`train.g_batch_multiple` 2, GEN_BS_MULTIPLE), mean pooling of the critic's
last maps (`model.d_pooling`), and samples from the live generator, no EMA (`train.sample_generator`). Published:
unsupervised Inception score 7.86 +- .07 (Table 3, "WGAN-GP ResNet (ours)"; checked against text transcriptions of
the paper, not the PDF); the sample count is not stated with the table. Deliberate deviations: the code computes its
Inception scores with batch norm in training mode (statistics of each 100-sample batch), here the running
statistics; it dequantises real images with U[0, 1/128) noise, here not; the other variants keep sum pooling, 64
generator samples and the EMA generator.
digits: the same recipe with 32-wide networks at 16x16 on the embedded digits.
"""

import ml_collections

from genimg_jax.config import CIFAR10_DATA, CIFAR10_EVAL, adam_config, check_variant
from genimg_jax.methods.gan.gan import decay_learning_rates_linearly, gan_config

VARIANTS = ("digits", "cifar10")


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = gan_config()
    config.model.update({"architecture": "resnet", "latent_dim": 128, "d_spectral_norm": False})
    config.loss.update({"adversarial": "wasserstein", "penalty": "wgan_gp", "penalty_weight": 10.0})
    config.optim = ml_collections.ConfigDict({"g": adam_config(2e-4, 0.0, 0.9), "d": adam_config(2e-4, 0.0, 0.9)})
    config.train.update({"d_steps": 5, "batch_size": 5 * 64, "ema_decay": 0.999})
    if variant == "cifar10":
        config.data.update(CIFAR10_DATA)
        config.eval.update(CIFAR10_EVAL, every=10_000)
        config.model.update({"g_features": 128, "d_features": 128})
        config.train.update({"steps": 100_000, "sample_every": 5000, "checkpoint_every": 5000})
        config.train.update({"g_batch_multiple": 2, "sample_generator": "live"})
        config.model.d_pooling = "mean"
        decay_learning_rates_linearly(config)
    else:
        config.data.resolution = 16
        config.model.update({"g_features": 32, "d_features": 32, "latent_dim": 64})
        config.train.update({"steps": 1500, "batch_size": 5 * 32, "sample_every": 250})
    return config
