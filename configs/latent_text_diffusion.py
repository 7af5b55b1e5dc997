"""Latent text-to-image diffusion, Stable-Diffusion-style (methods/latent_text_diffusion.py): the cross-attention
U-Net, jointly trained text encoder and classifier-free guidance of configs/text_diffusion.py, on the latents of a
frozen VQ-VAE.

Two commands: first the autoencoder, then diffusion in its latent space.

    python -m genimg_jax.main --config=configs/vqvae.py:digits_f4 --workdir=runs/vq_f4
    python -m genimg_jax.main --config=configs/latent_text_diffusion.py --workdir=runs/latent_text \
        --config.model.first_stage_workdir=runs/vq_f4

Variant `digits` (the only one): the embedded digits with template captions (`data.source = "digits_captions"`),
32x32 grayscale, encoded to the VQ-VAE's 8x8x4 pre-quantisation map; a U-Net of widths 64, 128, 128 (8x8, 4x4,
2x2) with self- and cross-attention at 8x8 and 4x4 and in the middle, one residual block per level; the 2-layer,
64-wide text encoder of text_diffusion.py:digits; 5000 steps of batch 64.

Stable Diffusion's (Rombach et al. 2022) choices followed: diffusion of a frozen autoencoder's spatial latent at
1/f of the resolution, scaled to unit variance by 1 / std of training latents (`model.latent_scale` = 0 measures
it, their `scale_by_std`); a VQ-regularised first stage used as LDM's `VQModelInterface`: diffusion on the
continuous pre-quantisation output, quantised to the nearest codes before decoding; the eps-parameterised DDPM
loss on a 1000-step schedule from beta 0.00085 to 0.012; cross-attention to per-token text features; caption
dropout 0.1 for classifier-free guidance; a 50-step deterministic DDIM sampler (eta = 0), latents not clipped.

Deviations: the first stage is `vqvae` (f = 4, 4 channels, 128 codes, trained with MSE only) where Stable Diffusion
uses KL-f8 trained with perceptual and adversarial losses; the schedule is linear in beta (theirs is linear in
sqrt(beta), "scaled_linear"); the text encoder is a small transformer trained jointly with the U-Net (as LDM's
own text-to-image model) where Stable Diffusion uses a frozen pretrained CLIP text tower; the caption also adds a
pooled feature to the time embedding (models/unet.py); guidance w = 2 ((1 + w) D(x | c) - w D(x | null), a
scale of 3 in their convention) where their default scale is 7.5; a much smaller U-Net. No published number
applies.
"""

import ml_collections

from genimg_jax.config import check_variant
from genimg_jax.methods.text_diffusion import text_diffusion_config

VARIANTS = ("digits",)


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = text_diffusion_config()
    config.method = "latent_text_diffusion"
    config.data.update(source="digits_captions", resolution=32, channels=1)  # those of configs/vqvae.py:digits_f4
    config.model.first_stage_workdir = ""
    config.model.latent_scale = 0.0
    config.model.text.vocab_size = 32  # len(data.vocabulary_for(config.data)): the digits grammar's 28 words + 4
    config.model.update(
        features=64,
        channel_multipliers=(1, 2, 2),
        num_res_blocks=1,
        attention_resolutions=(8, 4),
        dropout=0.0,
        beta_start=0.00085,
        beta_end=0.012,
    )
    config.optim.denoiser.update(learning_rate=1e-3, warmup_steps=100)
    config.train.update(steps=5000, batch_size=64, ema_decay=0.999, sample_every=1000, checkpoint_every=1000)
    config.sample.update(sampler="ddim", steps=50, eta=0.0, guidance_scale=2.0, clip_denoised=False)
    config.eval.every = 1000
    return config
