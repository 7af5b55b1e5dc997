"""Class-conditional GAN with a projection discriminator (Miyato & Koyama 2018, "cGANs with Projection
Discriminator"). Variants: `digits`, `cifar10`.

Generator with class-conditional batch norm; discriminator with spectral normalisation whose logit adds the
inner product of a class embedding with its pooled features; hinge loss, n_dis = 5, Adam lr 2e-4, betas (0, 0.9).

cifar10: the paper's CIFAR-10 setup (Sec. 4.1 and appendix: SNGAN ResNets with G 256 / D 128 channels,
batch 64, 50k generator updates; learning rates decay linearly to 0 as in the paper). As in the authors'
code (pfnet-research/sngan_projection, configs/sn_cifar10_conditional.yml): 128 samples per generator step
(`train.g_batch_multiple` 2), no bias in the discriminator's output layer, samples from the live generator
with its running batch-norm statistics (no EMA), fake labels uniform over the classes. Published for CIFAR-10
with projection: Inception score 8.62, FID 17.5 (checked: Papers with Code's listing for the paper, not the
paper's table itself; sample count and reference split not recorded here). Deliberate deviations: flax's default
initialisers and batch-norm epsilon 1e-5 (the code: Glorot uniform, chainer's 2e-5), negligible under spectral
and batch norm.
digits: the ten digit classes at 16x16 with 32-wide networks; sample grids show classes 0..9 in order. It runs
4500 steps because class conditioning takes hold late (the runs: experiments/records/embedded_configs.md).
"""

import ml_collections

from genimg_jax.config import CIFAR10_DATA, CIFAR10_EVAL, adam_config, check_variant
from genimg_jax.methods.gan.gan import decay_learning_rates_linearly, gan_config

VARIANTS = ("digits", "cifar10")


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = gan_config()
    config.model.update({"architecture": "resnet", "latent_dim": 128, "num_classes": 10, "d_spectral_norm": True})
    config.loss.adversarial = "hinge"
    config.optim = ml_collections.ConfigDict({"g": adam_config(2e-4, 0.0, 0.9), "d": adam_config(2e-4, 0.0, 0.9)})
    config.train.update({"d_steps": 5, "batch_size": 5 * 64, "ema_decay": 0.999})
    if variant == "cifar10":
        config.data.update(CIFAR10_DATA)
        config.eval.update(CIFAR10_EVAL, every=5_000)
        config.model.update({"g_features": 256, "d_features": 128})
        config.train.update({"steps": 50_000, "sample_every": 5000, "checkpoint_every": 5000})
        config.train.update({"g_batch_multiple": 2, "sample_generator": "live"})
        config.model.d_head_bias = False
        decay_learning_rates_linearly(config)
    else:
        config.data.resolution = 16
        config.model.update({"g_features": 32, "d_features": 32, "latent_dim": 64})
        config.train.update({"steps": 4500, "batch_size": 5 * 32, "sample_every": 500, "num_sample_images": 100})
    return config
