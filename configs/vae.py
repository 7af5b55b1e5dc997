"""Convolutional VAE (Kingma & Welling 2014) and β-VAE (Higgins et al. 2017) on the embedded digits at 32x32.

Variants (`--config=configs/vae.py:VARIANT`):
- `digits` (default): β = 1, Bernoulli likelihood of the binarised digits (`--config.model.likelihood=gaussian`
  models the 256 grey levels with a discretised Gaussian instead).
- `beta`: β = 4 with the KL weight ramped up linearly over the first 200 steps (Bowman et al. 2016) and 0.25 free
  bits per latent dimension (Kingma et al. 2016): a more factorised, blurrier code.

The test split is scored by the true ELBO (β = 1, one posterior sample) and by the importance-weighted bound of
Burda et al. (2016) with `eval.iwae_samples` samples, in nats per image and bits/dim. Training stops at 800 steps
because with 1500 training digits longer runs overfit (the measured bounds: experiments/records/embedded_configs.md).

Published bounds of VAEs and IWAEs on binarised MNIST (28x28) are in Burda et al. (2016), Table 1; none is quoted
here, as they could not be checked against the paper's text in this project, and the digits here are 8x8 scans
with 17 grey levels upsampled to 32x32 and binarised, a different and much smaller data set, so the numbers would
not be comparable anyway.
"""

import ml_collections

from genimg_jax.config import check_variant
from genimg_jax.methods.vae import vae_config

VARIANTS = {
    "digits": {"beta": 1.0, "kl_warmup_steps": 0, "free_bits": 0.0},
    "beta": {"beta": 4.0, "kl_warmup_steps": 200, "free_bits": 0.25},
}


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = vae_config()
    config.model.update(VARIANTS[variant])
    config.train.steps = 800
    config.train.batch_size = 64
    config.eval.every = 200
    return config
