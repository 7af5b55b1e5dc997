"""Paper table: DDPM and EDM on CIFAR-10, 3 seeds, FID and IS (DDPM with its 1000-step ancestral sampler, EDM with
18 Heun steps).

Launch as experiments/cifar10_gan_family.py says (with `--config.eval.inception_weights=...`).
"""

from experiments import published
from experiments.cifar10_protocol import CIFAR10_EVAL, METRICS, SEEDS
from genimg_jax.experiments import Cell, Study

STUDY = Study(
    name="cifar10_diffusion",
    description="DDPM (Ho et al. 2020) and EDM (Karras et al. 2022) CIFAR-10 setups.",
    config="configs/ddpm.py:cifar10",
    overrides=CIFAR10_EVAL,
    cells={
        "DDPM": Cell(config="configs/ddpm.py:cifar10"),
        "EDM, unconditional": Cell(config="configs/edm.py:cifar10"),
        "EDM, conditional": Cell({"model.num_classes": 10}, config="configs/edm.py:cifar10"),
    },
    seeds=SEEDS,
    metrics=METRICS,
    published={
        "DDPM": published.DDPM,
        "EDM, unconditional": published.EDM_UNCONDITIONAL,
        "EDM, conditional": published.EDM_CONDITIONAL,
    },
)
