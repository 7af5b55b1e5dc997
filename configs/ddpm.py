"""DDPM (Ho et al. 2020): eps-prediction on a linear schedule of T = 1000 steps, ancestral sampling.

Variants (`--config=configs/ddpm.py:VARIANT`):
- `digits` (default): the embedded handwritten digits at 16x16 with a small U-Net sized to train in minutes on a
  CPU (its measured speed and samples: experiments/records/embedded_configs.md).
- `digits_guided`: the same, class-conditional with classifier-free guidance (Ho & Salimans 2021): labels are
  dropped to the null class with probability 0.1 in training, samples use guidance scale w = 1 and show the
  classes in order.
- `faces_repaint`: RePaint inpainting (Lugmayr et al. 2022) with an unconditional model: DDPM trained on the
  embedded 32x32 faces with the U-Net, schedule and batch of configs/conditional_diffusion.py:faces_inpaint, then
  evaluated (PSNR/SSIM, grids) on their box-masked test faces; `sample.repaint` makes `sample` inpaint the masked
  source with 100 respaced steps and the paper's jumps (length 10, 10 resamplings). Training never sees a mask,
  so any unconditional DDPM checkpoint can be evaluated this way (`--mode=eval --config.sample.repaint=true
  --config.data.degradation=mask:box --config.eval.metrics=psnr,ssim`). Deviation from RePaint: 100 respaced
  steps instead of its 250 of T = 1000.
- `cifar10`: the paper's CIFAR-10 model (35.7M parameters: channels 128, multipliers (1, 2, 2, 2), 2 residual
  blocks per level, attention at 16x16, dropout 0.1), Adam lr 2e-4 with 5000 warm-up steps, gradient clipping
  at 1, batch 128, EMA 0.9999, random flips, 800k steps; ancestral sampling with sigma_t^2 = beta_t (the reference
  code's `fixedlarge`, scripts/run_cifar.py) and x_0 clipped, 1000 network evaluations per sample. Published (Ho et
  al. 2020, Table 1, unconditional CIFAR-10, the L_simple row): FID 3.17, Inception score 9.46 +- 0.11, NLL test
  (train) <= 3.75 (3.72) bits/dim; the 3.70 (3.69) of the same table is the model trained on the true bound L,
  with FID 13.51. Checked against text transcriptions of the paper (arXiv 2006.11239), not the PDF; protocol (Sec.
  4.1, Appendix B): IS and FID of 50000 samples (the OpenAI and TTUR code), FID against the training set, every
  number taken at the checkpoint of minimum FID over training. The bound is `eval.bpd_timesteps=1000` (1000 network
  passes per batch; fewer gives an estimate, reported as bpd_strided) on the eval split (the test split, as the NLL
  test column). Deviations: EMA warm-up min(decay, (1 + s) / (10 + s)) where the reference's TF EMA has none, and the
  learning-rate ramp (count + 1) / W for step / W: both negligible over 800k steps; the final model is evaluated
  (`eval.every` = 800k), where the paper evaluated throughout training and reports its minimum-FID checkpoint (set
  `eval.every` lower and `eval.best_metric=fid` to keep the minimum-FID checkpoint; each evaluation is 50k samples
  of 1000 steps).
Any sampler works with the trained model: `--config.sample.sampler=ddim --config.sample.steps=50` (add
`--config.sample.respacing=uniform` for DDIM's own t = 0, T/S, 2T/S, ... instead of T-1 .. 0 evenly rounded).
"""

import ml_collections

from genimg_jax.config import CIFAR10_EVAL, check_variant
from genimg_jax.methods.diffusion import default_config

VARIANTS = ("digits", "digits_guided", "faces_repaint", "cifar10")


def digits(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A tiny U-Net on 16x16 digits: 2 levels (16, 8), attention at 8x8, a few thousand steps."""
    config.data.resolution = 16
    config.model.update(
        features=16, channel_multipliers=(1, 2), num_res_blocks=1, attention_resolutions=(8,), dropout=0.0
    )
    config.optim.denoiser.update(learning_rate=1e-3, warmup_steps=100)
    config.train.update(steps=3000, batch_size=64, ema_decay=0.999, sample_every=1000, checkpoint_every=1000)
    config.sample.steps = 250
    config.eval.every = 1000
    return config


def faces_repaint(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The unconditional counterpart of conditional_diffusion.py:faces_inpaint, inpainting with RePaint."""
    config.data.update(source="faces", resolution=32, channels=1, degradation="mask:box")
    config.model.update(
        features=32, channel_multipliers=(1, 2), num_res_blocks=1, attention_resolutions=(8,), dropout=0.0
    )
    config.optim.denoiser.update(learning_rate=1e-3, warmup_steps=100)
    config.train.update(steps=2000, batch_size=16, ema_decay=0.999, sample_every=500, checkpoint_every=500)
    config.train.num_sample_images = 16
    config.sample.update(steps=100, repaint=True)
    config.eval.update(metrics="psnr,ssim", batch_size=40)  # the 40 test faces in one batch: RePaint is 1720 passes
    return config


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = default_config()
    if variant == "cifar10":
        config.data.update(source="tfds:cifar10", resolution=32, channels=3, random_flip=True)
        config.eval.update(CIFAR10_EVAL, every=800_000)  # the final model (the paper: minimum FID over training)
        config.train.update(steps=800_000, sample_every=50_000, checkpoint_every=10_000, log_every=500)
        config.sample.variance = "beta"
        return config
    if variant == "faces_repaint":
        return faces_repaint(config)
    config = digits(config)
    if variant == "digits_guided":
        config.model.update(num_classes=10, label_dropout=0.1)
        config.sample.guidance_scale = 1.0
    return config
