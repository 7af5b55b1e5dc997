"""Paper table: StyleGAN2 without augmentation and StyleGAN2-ADA on CIFAR-10, class-conditional and not, 3 seeds.

Launch as experiments/cifar10_gan_family.py says (with `--config.eval.inception_weights=...`). Only the conditional
ADA FID could be checked against the paper (configs/stylegan2_ada.py); the other rows have ours only.
"""

from experiments import published
from experiments.cifar10_protocol import CIFAR10_EVAL, METRICS, SEEDS
from genimg_jax.experiments import Cell, Study

UNCONDITIONAL = {"model.num_classes": 0}

STUDY = Study(
    name="cifar10_stylegan2_ada",
    description="StyleGAN2 (no augmentation) and StyleGAN2-ADA, the ADA paper's tuned CIFAR-10 setup.",
    config="configs/stylegan2.py:cifar10",
    overrides=CIFAR10_EVAL,
    cells={
        "StyleGAN2, conditional": Cell(config="configs/stylegan2.py:cifar10"),
        "StyleGAN2, unconditional": Cell(UNCONDITIONAL, config="configs/stylegan2.py:cifar10"),
        "StyleGAN2-ADA, conditional": Cell(config="configs/stylegan2_ada.py:cifar10"),
        "StyleGAN2-ADA, unconditional": Cell(UNCONDITIONAL, config="configs/stylegan2_ada.py:cifar10"),
    },
    seeds=SEEDS,
    metrics=METRICS,
    published={
        "StyleGAN2-ADA, conditional": published.STYLEGAN2_ADA_CONDITIONAL,
    },
)
