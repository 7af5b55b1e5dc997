"""EDM (Karras et al. 2022): preconditioned denoiser, log-normal training noise levels, Heun sampling.

sigma_data = 0.5, ln(sigma) ~ N(-1.2, 1.2^2), lambda(sigma) = 1 / c_out^2; sampling with 18 Heun steps from
sigma_max = 80 to sigma_min = 0.002 with rho = 7 (35 network evaluations per sample).

Variants (`--config=configs/edm.py:VARIANT`):
- `digits` (default): the embedded digits at 16x16 with the small U-Net of `configs/ddpm.py:digits`.
- `cifar10`: EDM's CIFAR-10 setup (Table 7, config F): batch 512, Adam lr 1e-3 ramped up over the first 10M
  images (19.5k steps), no gradient clipping, EMA half-life 0.5M images (decay 0.5^(512/5e5) = 0.99929 per step),
  dropout 0.13, EDM's non-leaky augmentation at p = 0.12 (`--augment=0.12`: x-flips, y-flips, isotropic
  scaling, rotation, anisotropic scaling, fractional translation, with the 9 augment labels fed to the network,
  `model.augment_dim` = 9; no unlabelled dataset flips, as EDM's `--xflip` is off), 200M images (390k steps).
  The network is this project's DDPM U-Net at the widths of
  EDM's DDPM++ (channels 128, multipliers (2, 2, 2), 4 blocks per level, attention at 16x16), without DDPM++'s
  FIR resampling and skip rescaling. Published: FID 1.97 unconditional (VP, DDPM++),
  1.79 class-conditional, 35 NFE (Karras et al. 2022, Table 2; sample count and reference split
  not recorded here).
"""

import ml_collections

from genimg_jax.config import check_variant
from genimg_jax.methods.diffusion import default_config

VARIANTS = ("digits", "cifar10")


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = default_config("edm")
    if variant == "digits":
        config.data.resolution = 16
        config.model.update(
            features=16, channel_multipliers=(1, 2), num_res_blocks=1, attention_resolutions=(8,), dropout=0.0
        )
        config.optim.denoiser.update(learning_rate=1e-3, warmup_steps=100, grad_clip_norm=0.0)
        config.train.update(steps=3000, batch_size=64, ema_decay=0.999, sample_every=1000, checkpoint_every=1000)
        config.eval.every = 1000
        return config
    config.data.update(source="tfds:cifar10", resolution=32, channels=3, random_flip=False)
    config.augment.update(mode="edm", p=0.12)
    config.model.augment_dim = 9
    config.model.update(
        features=128, channel_multipliers=(2, 2, 2), num_res_blocks=4, attention_resolutions=(16,), dropout=0.13
    )
    config.optim.denoiser.update(learning_rate=1e-3, warmup_steps=19_531, grad_clip_norm=0.0)
    config.train.update(
        steps=390_625,
        batch_size=512,
        ema_decay=0.99929,
        log_every=500,
        sample_every=25_000,
        checkpoint_every=10_000,
    )
    return config
