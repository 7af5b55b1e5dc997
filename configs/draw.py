"""DRAW (Gregor et al. 2015): recurrent VAE with Gaussian-filterbank attention, on binarised images.

Variants (`--config=configs/draw.py:VARIANT`):
- `digits` (default): the embedded 8x8 digits upsampled to 32x32; T = 8 steps, 3x3 read, 5x5 write, 128 LSTM
  units, 8-d z per step: small settings chosen to train in minutes on a CPU, not tuned (measured test bound:
  experiments/records/embedded_configs.md).
- `mnist`: `tfds:mnist` with the paper's MNIST generation settings (Table 3): T = 64, 2x2 read, 5x5 write, 256 LSTM
  units, 100-d z per step. The paper reports -log p(x) ≤ 80.97 nats on binarised MNIST (Table 2; checked only
  second-hand, in another paper's MNIST table that cites it). The trainer needs power-of-two resolutions, so MNIST
  is resized to 32x32 here and binarised at mid-grey rather than the paper's fixed binarisation: the numbers are
  close in kind, not comparable.

Initialisation (not given in the paper): the write's intensity starts at patch area / image area
(`genimg_jax/models/draw.py`), which keeps every prior sample from staying a blank canvas.

On `digits` the reported test ELBO is in nats per 32x32 binarised image: a different, much smaller data set than
MNIST, so it is not comparable with the paper's number either.
"""

import ml_collections

from genimg_jax.config import check_variant
from genimg_jax.methods.draw import draw_config

VARIANTS = {
    "digits": {
        "model": {"steps": 8, "hidden": 128, "latent_dim": 8, "read_size": 3, "write_size": 5},
        "data": {"source": "digits"},
        "train": {"steps": 1500, "batch_size": 64},
    },
    "mnist": {
        "model": {"steps": 64, "hidden": 256, "latent_dim": 100, "read_size": 2, "write_size": 5},
        "data": {"source": "tfds:mnist"},
        "train": {"steps": 100_000, "batch_size": 128},
    },
}


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    settings = VARIANTS[variant]
    config = draw_config()
    config.data.update(settings["data"])
    config.model.update(settings["model"])
    config.train.update(settings["train"])
    config.eval.every = 500
    return config
