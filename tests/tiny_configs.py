"""The shipped configs as tests load them, and overrides that shrink them so that tests compile and train in seconds."""

import pathlib

import ml_collections

from genimg_jax.config import apply_overrides, load_config

CONFIGS = pathlib.Path(__file__).parent.parent / "configs"


def load(name: str, *overrides: str) -> ml_collections.ConfigDict:
    """configs/<name> ("file.py" or "file.py:variant") with `overrides` ("key=value") applied."""
    return apply_overrides(load_config(str(CONFIGS / name)), list(overrides))


TINY_GAN = [
    "data.resolution=16",
    "model.g_features=8",
    "model.d_features=8",
    "model.latent_dim=16",
    "train.batch_size=16",
    "train.num_sample_images=16",
]

# configs/stylegan2.py and stylegan2_ada.py: 8x8 images, 8 feature maps.
TINY_STYLEGAN2 = [
    "data.resolution=8",
    "model.z_dim=16",
    "model.w_dim=16",
    "model.channel_base=64",
    "model.channel_max=8",
    "train.batch_size=8",
]

# configs/ddpm.py, edm.py and ldm.py: a two-level U-Net at 8x8.
TINY_UNET = [
    "data.resolution=8",
    "model.features=8",
    "model.channel_multipliers=(1, 2)",
    "model.attention_resolutions=(4,)",
    "train.batch_size=32",
    "optim.denoiser.warmup_steps=5",
    "sample.steps=4",
]

# configs/pixelcnn.py: the 8x8 digits, no up-pass blocks, 8 filters, 3 logistics.
TINY_PIXELCNN = [
    "data.resolution=8",
    "model.nr_resnet=0",
    "model.nr_filters=8",
    "model.nr_logistic_mix=3",
    "train.batch_size=16",
    "train.num_sample_images=8",
]


def as_flags(overrides: list[str]) -> list[str]:
    """The same overrides as command-line arguments."""
    return [f"--config.{override}" for override in overrides]
