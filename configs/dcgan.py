"""DCGAN (Radford, Metz & Chintala 2016). Variants: `digits` (default demo) and `cifar10`.

digits: the embedded handwritten digits at 32x32. Architecture and optimiser follow the paper (Adam, lr 2e-4,
beta1 0.5, batch norm, non-saturating loss); the widths are reduced from 64 to 32 so that the demo is quick on a
CPU (its measured speed and results: experiments/records/embedded_configs.md).

cifar10: the paper's setup (Sec. 4: batch 128, Adam lr 2e-4, beta1 0.5, N(0, 0.02) init, ngf = ndf = 64,
latent 100) on `tfds:cifar10`. The paper reports no FID/IS for CIFAR-10 generation, so none is quoted. This
codebase's choice, not the paper's: samples come from an EMA generator (0.999), run with the live generator's
batch-norm running statistics (`train.sample_generator=live` samples the trained generator itself).
"""

import ml_collections

from genimg_jax.config import CIFAR10_DATA, CIFAR10_EVAL, check_variant
from genimg_jax.methods.gan.gan import gan_config

VARIANTS = ("digits", "cifar10")


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = gan_config()
    config.model.update({"architecture": "dcgan", "latent_dim": 100})
    config.loss.adversarial = "non_saturating"
    config.train.ema_decay = 0.999
    if variant == "digits":
        config.model.update({"g_features": 32, "d_features": 32})
        config.train.update({"steps": 2500, "batch_size": 64, "sample_every": 500, "checkpoint_every": 500})
        config.eval.metrics = "fid,kid,is,pr"  # with the digits feature net: --mode=eval, or set eval.every
    else:
        config.data.update(CIFAR10_DATA)
        config.eval.update(CIFAR10_EVAL, every=10_000)
        config.model.update({"g_features": 64, "d_features": 64})
        config.train.update({"steps": 100_000, "batch_size": 128, "sample_every": 5000, "checkpoint_every": 5000})
    return config
