"""DCGAN (Radford et al. 2016) on the embedded handwritten digits at 32x32: the default demo config.

Trains in about 3 minutes on 2 CPU cores (about 18 steps/s). Architecture and optimiser follow the paper
(Adam, lr 2e-4, beta1 0.5, batch norm, non-saturating loss); the widths are reduced from 64 to 32 so that the
demo is quick on a CPU (`--config.model.g_features=64 --config.model.d_features=64` for the paper's widths).
"""

import ml_collections

from genimg_jax.config import adam_config, base_config


def get_config() -> ml_collections.ConfigDict:
    config = base_config()
    config.method = "gan"
    config.model = ml_collections.ConfigDict(
        {
            "architecture": "dcgan",
            "loss": "non_saturating",
            "latent_dim": 100,
            "g_features": 32,
            "d_features": 32,
        }
    )
    config.optim = ml_collections.ConfigDict({"g": adam_config(2e-4, b1=0.5), "d": adam_config(2e-4, b1=0.5)})
    config.train.steps = 2500
    config.train.batch_size = 64
    config.train.sample_every = 500
    config.train.checkpoint_every = 500
    config.train.ema_decay = 0.999
    return config
