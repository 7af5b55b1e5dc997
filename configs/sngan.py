"""SNGAN (Miyato et al. 2018, "Spectral Normalization for GANs"). Variants: `digits`, `cifar10`, and the
limited-data `faces` (DiffAugment) and `faces_ada` (ADA) on the 160 embedded face crops.

ResNet generator (batch norm) and discriminator with spectral normalisation on every layer, hinge loss,
n_dis = 5, Adam lr 2e-4, betas (0, 0.9), batch 64.

cifar10: the paper's CIFAR-10 ResNet (architecture: Appendix B.4, Table 4, G 256 and D 128 channels;
optimiser: Appendix B.2). The 50k generator updates with learning rates decaying linearly to 0 come from the
authors' code (pfnet-research/sngan_projection, configs/sn_cifar10_unconditional.yml); the paper's text says
100k updates unless noted. As in that code: the generator step draws 128 samples (`train.g_batch_multiple` 2,
n_gen_samples), the discriminator's output layer has no bias (`model.d_head_bias`), and samples come from the
live generator with its batch-norm running statistics (`train.sample_generator`: the code evaluates in test
mode, no EMA). Published (Table 2, ResNet, SN-GANs with the hinge loss Eq. 17): Inception score 8.22 +- .05, FID
21.7 +- .21 (checked against text transcriptions of the paper, not the PDF); protocol (Appendix B.1): IS of 5000
samples, mean and std of 10 repetitions; FID "over 10000 and 5000 samples". This config evaluates 50k samples
(`config.CIFAR10_EVAL`), and FID falls as N grows, so its FID is not the paper's estimator. Deliberate deviations:
flax's default initialisers (the code: Glorot uniform, gain sqrt(2) in the residual blocks) and batch-norm epsilon
1e-5 (chainer's 2e-5); both are negligible under spectral and batch norm.
digits: 32-wide networks at 16x16 on the embedded digits.
faces / faces_ada: the limited-data setting of Zhao et al. 2020 (DiffAugment "color,translation,cutout") and
Karras et al. 2020 (ADA, target r_t = 0.6), on 160 grey 32x32 faces, with one D step per G step.
"""

import ml_collections

from genimg_jax.config import CIFAR10_DATA, CIFAR10_EVAL, adam_config, check_variant
from genimg_jax.methods.gan.gan import decay_learning_rates_linearly, gan_config

VARIANTS = ("digits", "cifar10", "faces", "faces_ada")


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = gan_config()
    config.model.update(
        {"architecture": "resnet", "latent_dim": 128, "d_spectral_norm": True, "g_spectral_norm": False}
    )
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
    elif variant == "digits":
        config.data.resolution = 16
        config.model.update({"g_features": 32, "d_features": 32, "latent_dim": 64})
        config.train.update({"steps": 1500, "batch_size": 5 * 32, "sample_every": 250})
    else:
        config.data.update({"source": "faces", "resolution": 32, "channels": 1})
        config.model.update({"g_features": 32, "d_features": 32, "latent_dim": 64})
        config.augment.mode = "diffaugment" if variant == "faces" else "ada"
        config.augment.policy = "color,translation,cutout"  # DiffAugment's (mode diffaugment)
        config.augment.adjust_kimg = 20.0  # 160 images: p must be able to move within a short run (mode ada)
        config.train.update({"steps": 2000, "batch_size": 32, "d_steps": 1, "sample_every": 250})
    return config
