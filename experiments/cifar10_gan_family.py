"""Paper table: the GAN family on CIFAR-10 (configs' `:cifar10` variants), 3 seeds, FID and IS.

Needs `tfds:cifar10` prepared and pytorch-fid's Inception weights, passed to every run:

    python -m genimg_jax.experiments run experiments/cifar10_gan_family.py --root=/shared/cifar10_gans \
        --print-launch=slurm --config.eval.inception_weights=/shared/pt_inception-2015-12-05.pth | bash
    python -m genimg_jax.experiments table experiments/cifar10_gan_family.py --root=/shared/cifar10_gans \
        --config.eval.inception_weights=/shared/pt_inception-2015-12-05.pth

DCGAN and SAGAN have no checked published CIFAR-10 number (configs/dcgan.py, configs/sagan.py), so their rows
have ours only.
"""

from experiments import published
from experiments.cifar10_protocol import CIFAR10_EVAL, METRICS, SEEDS
from genimg_jax.experiments import Cell, Study

STUDY = Study(
    name="cifar10_gan_family",
    description="The GAN family's CIFAR-10 setups; FID/IS from 50k samples vs the training split.",
    config="configs/dcgan.py:cifar10",
    overrides=CIFAR10_EVAL,
    cells={
        "DCGAN": Cell(config="configs/dcgan.py:cifar10"),
        "WGAN-GP": Cell(config="configs/wgan_gp.py:cifar10"),
        "SNGAN": Cell(config="configs/sngan.py:cifar10"),
        "SAGAN": Cell(config="configs/sagan.py:cifar10"),
        "cGAN projection": Cell(config="configs/cgan_projection.py:cifar10"),
    },
    seeds=SEEDS,
    metrics=METRICS,
    published={
        "WGAN-GP": published.WGAN_GP,
        "SNGAN": published.SNGAN,
        "cGAN projection": published.CGAN_PROJECTION,
    },
)
