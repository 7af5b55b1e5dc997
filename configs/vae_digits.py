"""Convolutional VAE (Kingma & Welling 2014) on the embedded handwritten digits at 32x32.

Bernoulli likelihood of the binarised digits by default; `--config.model.likelihood=gaussian` models the 256
grey levels with a discretised Gaussian instead. The test-split ELBO is reported in nats and bits/dim.
"""

import ml_collections

from genimg_jax.config import adam_config, base_config


def get_config() -> ml_collections.ConfigDict:
    config = base_config()
    config.method = "vae"
    config.model = ml_collections.ConfigDict({"latent_dim": 16, "features": 32, "likelihood": "bernoulli", "beta": 1.0})
    config.optim = adam_config(1e-3)
    config.train.steps = 2000
    config.train.batch_size = 64
    config.eval.every = 500
    return config
