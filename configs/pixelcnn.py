"""PixelCNN++ (Salimans et al. 2017): exact likelihood of the 256 grey / colour levels, autoregressive in raster order.

Variants (`--config=configs/pixelcnn.py:VARIANT`):
- `digits` (default): the embedded digits at 16x16 in 256 grey levels, a small network (1 block per stream and
  resolution, 24 filters, 5 logistics, no dropout) sized to train in minutes on a CPU. Its test bits/dim and
  sampling speed: experiments/records/pixelcnn_digits.md.
- `digits_conditional`: the same, class-conditional (a learned bias per class in every gated block); samples show
  the classes in order, and a classifier trained on them can score the model (Classification Accuracy Score).
- `cifar10`: the reference's CIFAR-10 model (openai/pixel-cnn, train.py defaults): nr_resnet 5, nr_filters 160,
  10 logistics, dropout 0.5, concat_elu; Adam with b1 0.95, b2 0.9995, lr 1e-3 decayed by 0.999995 per step, batch
  16 x 8 GPUs = 128, Polyak averaging 0.9995 of the weights for evaluation and sampling. Published: 2.92 bits/dim
  on the CIFAR-10 test set (checked: the official README and Papers with Code's results from the paper, not the
  paper's table; the README says 5 days on 8 GPUs to reach it). `eval.every` is the per-epoch test evaluation of
  the reference (390 steps of 128); sample metrics stay off, as the paper reports likelihood only.
  Deviations: no data-dependent initialisation (weight-norm gains start at their target scale: see
  `models.pixelcnn`); Adam's epsilon outside the square root (the reference adds 1e-8 to the second moment inside
  it); the EMA warm-up min(decay, (1 + s) / (10 + s)) (the reference's TF average has none); the decay starts at
  factor 1 on the first step (the reference's at 0.999995); a step count instead of the reference's 5000 epochs
  (the `train.steps` below is about 1000 epochs; the README's model converged in about 5 days); samples are rounded
  to the uint8 grid as they are drawn (the reference feeds back unrounded values).
"""

import ml_collections

from genimg_jax.config import CIFAR10_DATA, check_variant
from genimg_jax.methods.autoregressive import pixelcnn_config

VARIANTS = ("digits", "digits_conditional", "cifar10")
DIGITS_MODEL = {"nr_resnet": 1, "nr_filters": 24, "nr_logistic_mix": 5, "dropout": 0.0}


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = pixelcnn_config()
    if variant == "cifar10":
        config.data.update(CIFAR10_DATA)
        config.train.update(steps=390_000, batch_size=128, sample_every=39_000, checkpoint_every=3900)
        config.eval.update(every=390, batch_size=128)
        return config
    config.data.resolution = 16
    config.model.update(DIGITS_MODEL)
    config.model.num_classes = 10 if variant == "digits_conditional" else 0
    # With 1500 training digits a long constant-rate run overfits: a faster decay and a short average.
    config.optim.pixelcnn.exponential_decay = 0.999
    config.train.update(steps=600, batch_size=16, ema_decay=0.999, sample_every=600, num_sample_images=16)
    config.eval.update(every=200, batch_size=256)
    return config
