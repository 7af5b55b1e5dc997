"""EDM (Karras et al. 2022): preconditioned denoiser, log-normal training noise levels, Heun sampling.

sigma_data = 0.5, ln(sigma) ~ N(-1.2, 1.2^2), lambda(sigma) = 1 / c_out^2; sampling with 18 Heun steps from
sigma_max = 80 to sigma_min = 0.002 with rho = 7 (35 network evaluations per sample), x_0 not clipped (as
`edm_sampler`; the default of `default_config("edm")`).

Variants (`--config=configs/edm.py:VARIANT`):
- `digits` (default): the embedded digits at 16x16 with the small U-Net of `configs/ddpm.py:digits`.
- `cifar10`: EDM's CIFAR-10 setup (Table 7, config F): batch 512, Adam lr 1e-3 ramped up over the first 10M
  images (19.5k steps), no gradient clipping, EMA half-life 0.5M images (decay 0.5^(512/5e5) = 0.99929 per step),
  dropout 0.13, EDM's non-leaky augmentation at p = 0.12 (`--augment=0.12`: x-flips, y-flips, isotropic
  scaling, rotation, anisotropic scaling, fractional translation, with the 9 augment labels fed to the network,
  `model.augment_dim` = 9; no unlabelled dataset flips, as EDM's `--xflip` is off), 200M images (390k steps).
  The step takes its batch in micro-batches of 64 examples per device (`train.microbatch`, EDM's `batch_gpu`):
  8 sequential passes on one device, 1 on eight; the averaged gradient is that of the full batch of 512 (dropout
  masks drawn per micro-batch, as in EDM). The network is EDM's DDPM++ (`models.ddpmpp`: channels 128,
  multipliers (2, 2, 2), 4 blocks per level, attention at 16x16, [1, 1] resampling in residual blocks, skip scale
  sqrt(1/2), EDM's initialisation; 55,732,739 parameters unconditional, as EDM's SongUNet counts, plus 1,152
  with the 9 augment labels); its weights differ from EDM's only in layout (NHWC, qkv as three contiguous
  blocks). For the class-conditional number set `model.num_classes=10 model.label_dropout=0` (EDM trains no
  null class).
  Published (checked: the paper's abstract and NVlabs/edm's README): FID 1.97 unconditional, 1.79
  class-conditional (VP, DDPM++, Table 2), 35 NFE; protocol: 50k generated images against the statistics of
  the 50k CIFAR-10 training images, each FID computed three times (three seed ranges) and the minimum reported.
  Deviations kept: the loss is a mean over pixels where EDM sums over pixels (and divides by the batch): with
  Adam and no clipping that only scales Adam's epsilon by 1/3072. The Heun sampler runs in float32 where EDM's
  runs in float64 (float64 is not available on TPUs); no S_churn, as EDM's deterministic CIFAR-10 sampler; one
  seed where EDM reports the minimum FID over 3. The EMA is a fixed per-step decay after the project's warm-up
  min(decay, (1 + s) / (10 + s)) where EDM ramps the half-life (ema_rampup_ratio 0.05) over training. The
  learning rate ramps as (step + 1) / 19,531 where EDM's is images seen / 10M (step / 19,531.25, 0 at the first
  step), and gradients are not passed through EDM's nan_to_num.
"""

import ml_collections

from genimg_jax.config import CIFAR10_EVAL, check_variant
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
    config.eval.update(CIFAR10_EVAL, every=390_625)  # the final model, as the paper
    config.augment.update(mode="edm", p=0.12)
    config.model.augment_dim = 9
    config.model.update(
        network="ddpmpp",
        features=128,
        channel_multipliers=(2, 2, 2),
        num_res_blocks=4,
        attention_resolutions=(16,),
        dropout=0.13,
    )
    config.optim.denoiser.update(learning_rate=1e-3, warmup_steps=19_531, grad_clip_norm=0.0)
    config.train.update(
        steps=390_625,
        batch_size=512,
        microbatch=64,
        ema_decay=0.99929,
        log_every=500,
        sample_every=25_000,
        checkpoint_every=10_000,
    )
    return config
