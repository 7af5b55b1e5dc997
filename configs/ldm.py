"""Latent diffusion (Rombach et al. 2022) on the embedded digits, in the latent space of a trained VAE.

Two commands: first the autoencoder, then diffusion in its latent space.

    python -m genimg_jax.main --config=configs/vae.py --workdir=runs/vae
    python -m genimg_jax.main --config=configs/ldm.py --workdir=runs/ldm_digits \
        --config.model.first_stage_workdir=runs/vae

The first stage is frozen; images are encoded to the posterior mean scaled to unit variance (`model.latent_scale`
= 0 measures the scale; set a number to fix it). The latent is a flat vector, so the denoiser is a residual MLP.
EDM's objective (sigma_data = 1 for the unit-variance latents) and Heun sampler; data resolution and channels must
match the VAE run's. Deviation: images are encoded to the posterior mean where Rombach et al. train on a sample
of the posterior (`DiagonalGaussianDistribution.sample()`): the method's `encode` has no random key.
"""

import ml_collections

from genimg_jax.methods.diffusion import default_config


def get_config() -> ml_collections.ConfigDict:
    config = default_config("edm")
    config.method = "latent_diffusion"
    config.data.resolution = 32  # that of configs/vae.py
    # sigma_data = 1: the latents are scaled to unit standard deviation.
    config.model.update(network="mlp", features=256, num_res_blocks=3, dropout=0.0, sigma_data=1.0)
    config.sample.clip_denoised = False  # latents are unbounded
    config.model.first_stage_workdir = ""
    config.model.latent_scale = 0.0
    config.optim.denoiser.update(learning_rate=1e-3, warmup_steps=100, grad_clip_norm=0.0)
    config.train.update(steps=3000, batch_size=64, ema_decay=0.999, sample_every=1000, checkpoint_every=1000)
    config.eval.every = 1000
    return config
