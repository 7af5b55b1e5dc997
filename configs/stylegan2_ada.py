"""StyleGAN2-ADA (Karras et al., "Training Generative Adversarial Networks with Limited Data", NeurIPS 2020).

StyleGAN2 with adaptive discriminator augmentation: every image D sees, real or fake (and the reals of the R1
penalty), goes through the reference's default pipeline `bgc` (`config.augment.ops`), each op applied to each
image independently with probability p: x-flip, quarter turns, integer translation (uniform within 1/8 of the
size), isotropic scaling (log2-normal, std 0.2), arbitrary rotation (before and after the anisotropic scaling,
each with probability 1 - sqrt(1 - p), so that one of them happens with p), anisotropic scaling (log2 std 0.2)
and fractional translation (normal, std 1/8 of the size), composed into one affine applied once with reflect
padding and sym6-wavelet 2x resampling; then brightness (+N(0, 0.2^2)), contrast (x 2^N(0, 0.5^2), around 0),
luma flip, hue rotation around the luma axis (uniform over the circle) and saturation (x 2^N(0, 1)), composed
into one colour matrix. Every 4 steps p moves towards keeping the overfitting heuristic r_t = E[sign(D(real))]
at 0.6, by 4 x batch / 500k, clamped at 0 only, as in stylegan2-ada-pytorch. Deviations: every image is padded
by the most the reference pads (it pads each batch by what its transforms need; the sampled values are the
same); an image none of whose ops fired is passed through untouched (the reference resamples it, the identity
up to float rounding); r_t averages the real logits of the D main step only, where the reference also counts
the real logits of its R1 step (one extra batch every 16 steps).

Variants (`--config=configs/stylegan2_ada.py:VARIANT`):
- "faces" (default): limited data, the 160 training images of the embedded `faces` source (100 face crops +
  60 non-face crops) at 32x32 grey, with the small CPU networks of configs/stylegan2.py:digits. p can go from
  0 to 1 in 100k images (500k in the paper), so that it adapts within a short run.
- "cifar10": the paper's tuned CIFAR-10 setup (stylegan2-ada-pytorch `--cfg=cifar --aug=ada`; see
  configs/stylegan2.py:cifar10 for the hyperparameters and deviations), class-conditional. Published:
  conditional FID 2.42 (checked: the abstract, repeated in both official READMEs, "improve the record FID from
  5.59 to 2.42"), with the reference's default metric fid50k_full: 50k generated images against the full
  training set (its README's metric table). Other numbers of the paper's CIFAR-10 table could not be checked here.
"""

import pathlib

import ml_collections

from genimg_jax.config import check_variant, load_config

VARIANTS = ("faces", "cifar10")


def get_config(variant: str = "faces") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    base_variant = "digits" if variant == "faces" else "cifar10"
    config = load_config(f"{pathlib.Path(__file__).with_name('stylegan2.py')}:{base_variant}")
    config.augment.mode = "ada"
    if variant == "faces":
        config.data.source = "faces"
        config.model.output_activation = "linear"  # StyleGAN2's; the tanh of the digits variant is not needed
        config.augment.adjust_kimg = 100.0
    return config
