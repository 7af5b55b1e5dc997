"""A VAE knob: beta (the KL weight) on the embedded digits, 3 seeds: the held-out ELBO (always with beta = 1) and
sample FID / precision / recall with the digits feature net.

    python -m genimg_jax.experiments run experiments/vae_beta.py --root=runs/vae_beta --parallel=2
"""

from genimg_jax.experiments import Study

STUDY = Study(
    name="vae_beta",
    description="Convolutional VAE of configs/vae.py on the binarised digits, 800 steps; beta varies.",
    config="configs/vae.py",
    overrides={"eval.every": 200, "eval.metrics": "fid,pr", "eval.num_samples": 1000},
    grid={"model.beta": [0.5, 1.0, 2.0, 4.0]},
    seeds=(0, 1, 2),
    metrics=("negative_elbo", "bits_per_dim", "kl", "fid", "precision", "recall"),
)
