"""Conditional diffusion for image-to-image tasks (SR3, Saharia et al. 2021; Palette, Saharia et al. 2022):
the source concatenated to the U-Net's input (methods/conditional_diffusion.py).

Embedded variants (32x32 faces, 1 channel, train here in minutes; `eval.metrics=psnr,ssim` against the batch's
target, as configs/pix2pix.py):
- `faces_sr4` (default): 4x super-resolution, 8x8 -> 32x32 (the source upsampled bicubically, as SR3), with
  `model.residual` (SRDiff's, not SR3's): it diffuses the target minus the bicubic upsampling, times
  `model.residual_scale` = 7 (1 / 0.141, the std of the training faces' residuals), x_0 estimates not clipped.
- `faces_inpaint`: box inpainting (Palette), the mask as an extra channel, the known pixels kept in samples.
- `faces_denoise`: Gaussian denoising, sigma 25 on the 0..255 scale.
(Colourisation, `data.degradation=gray`, needs a colour source: the embedded faces are gray already.)
They share a small U-Net (widths 32, 64; attention at 8x8), DDPM's eps-loss on a 1000-step linear schedule and
a 100-step DDPM sampler.

sr3_faces16_128: SR3's 16x16 -> 128x128 face setup, trained on FFHQ and evaluated on CelebA-HQ (pass each as
`--config.data.source=folder:PATH`, train and eval). The U-Net widths, schedule, batch, learning rate and step
count below are as recalled from the paper and NOT checked here (the paper's text could not be consulted in
this session); published numbers not verified here. Deviations, named: SR3 conditions the network on a
continuous noise level sqrt(alpha_bar) drawn between adjacent steps; this uses the discrete timestep of
`Diffusion`'s DDPM loss. It diffuses the target itself
(`model.residual` off), as SR3 does. SR3 samples with its own tuned 100-step schedule; this respaces the
training schedule.
"""

import ml_collections

from genimg_jax.config import check_variant
from genimg_jax.methods.conditional_diffusion import conditional_diffusion_config

EMBEDDED = {
    "faces_sr4": "downsample:4",
    "faces_inpaint": "mask:box",
    "faces_denoise": "noise:gaussian:25",
}
VARIANTS = (*EMBEDDED, "sr3_faces16_128")


def get_config(variant: str = "faces_sr4") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = conditional_diffusion_config()
    config.eval.metrics = "psnr,ssim"
    if variant == "sr3_faces16_128":
        config.data.update(source="folder:", resolution=128, channels=3, degradation="downsample:8", random_flip=True)
        config.model.update(
            features=64,
            channel_multipliers=(1, 2, 4, 8, 8),
            num_res_blocks=2,
            attention_resolutions=(16,),
            dropout=0.2,
            num_timesteps=2000,
            beta_start=1e-6,
            beta_end=1e-2,
        )
        config.optim.denoiser.update(learning_rate=1e-4, warmup_steps=10_000)
        config.train.update(steps=1_000_000, batch_size=256, sample_every=50_000, checkpoint_every=10_000)
        config.sample.steps = 100
        return config
    config.data.update(source="faces", resolution=32, channels=1, degradation=EMBEDDED[variant])
    config.model.update(
        features=32, channel_multipliers=(1, 2), num_res_blocks=1, attention_resolutions=(8,), dropout=0.0
    )
    config.model.use_mask = variant == "faces_inpaint"
    if variant == "faces_sr4":
        config.model.update(residual=True, residual_scale=7.0)
        config.sample.clip_denoised = False  # [-1, 1] would bound the scaled residual to 1/7 of the range
    config.optim.denoiser.update(learning_rate=1e-3, warmup_steps=100)
    config.train.update(steps=2000, batch_size=16, ema_decay=0.999, sample_every=500, checkpoint_every=500)
    config.train.num_sample_images = 16
    config.sample.steps = 100
    return config
