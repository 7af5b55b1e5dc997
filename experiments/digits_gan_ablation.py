"""Ablation on the embedded digits: GAN loss x spectral norm in D x DiffAugment, 2 seeds, FID/KID/PR with the
digits feature net. Small enough to run here in minutes:

    python -m genimg_jax.experiments run experiments/digits_gan_ablation.py --root=runs/digits_ablation --parallel=2
    python -m genimg_jax.experiments table experiments/digits_gan_ablation.py --root=runs/digits_ablation

The SNGAN ResNets of configs/sngan.py:digits with one D step per G step and a short run (600 steps of batch 32),
so the numbers compare the knobs early in training, not converged models.
"""

from genimg_jax.experiments import Study

STUDY = Study(
    name="digits_gan_ablation",
    description="SNGAN ResNets on the embedded digits (16x16), 600 steps of batch 32, one D step per G step.",
    config="configs/sngan.py:digits",
    overrides={
        "train.steps": 600,
        "train.d_steps": 1,
        "train.batch_size": 32,
        "train.log_every": 50,
        "train.sample_every": 600,
        "train.checkpoint_every": 600,
        "eval.every": 300,
        "eval.metrics": "fid,kid,pr",
        "eval.num_samples": 1000,
        "eval.kid_subsets": 20,
        "eval.kid_subset_size": 500,
    },
    grid={
        "loss.adversarial": ["non_saturating", "hinge"],
        "model.d_spectral_norm": [False, True],
        "augment.mode": ["none", "diffaugment"],
    },
    seeds=(0, 1),
    metrics=("fid", "kid_mean", "precision", "recall"),
)
