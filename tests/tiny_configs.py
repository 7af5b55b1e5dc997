"""Overrides that shrink the shipped DCGAN config so that tests compile and train in seconds."""

TINY_GAN = [
    "data.resolution=16",
    "model.g_features=8",
    "model.d_features=8",
    "model.latent_dim=16",
    "train.batch_size=16",
    "train.num_sample_images=16",
]


def as_flags(overrides: list[str]) -> list[str]:
    """The same overrides as command-line arguments."""
    return [f"--config.{override}" for override in overrides]
