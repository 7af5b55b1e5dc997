"""Convolutional VAE (Kingma & Welling 2014) on the embedded handwritten digits at 32x32.

Bernoulli likelihood of the binarised digits by default; `--config.model.likelihood=gaussian` models the 256
grey levels with a discretised Gaussian instead. The test-split ELBO is reported in nats and bits/dim.
With 1500 training digits the test ELBO is best after 500-800 steps (about -118 to -121 nats, 0.17 bits/dim of
the binarised images, one posterior sample per image); longer runs overfit.
"""

import ml_collections

from genimg_jax.config import adam_config, base_config


def get_config() -> ml_collections.ConfigDict:
    config = base_config()
    config.method = "vae"
    config.model = ml_collections.ConfigDict({"latent_dim": 16, "features": 32, "likelihood": "bernoulli", "beta": 1.0})
    config.optim = adam_config(1e-3)
    config.train.steps = 800
    config.train.batch_size = 64
    config.eval.every = 200
    return config
