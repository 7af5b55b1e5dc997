"""StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020).

Variants (`--config=configs/stylegan2.py:VARIANT`):
- "digits" (default): the embedded handwritten digits at 32x32, small enough to train usefully in minutes on
  a CPU: z = w = 128 dimensions, 2 mapping layers instead of 8 (the ADA paper's CIFAR-10 choice),
  feature maps 32 up to 16x16 and 16 at 32x32 instead of 512, batch 16, R1 gamma 0.01 (StyleGAN2-ADA's
  heuristic 0.0002 res^2 / batch gives 0.013 here), learning rate 0.0025, EMA with ramp-up. All other
  StyleGAN2 features stay on: style mixing 0.9, path-length regularisation (weight 2, every 4 steps), lazy R1
  every 16 steps, residual D with minibatch stddev, equalized learning rate, noise inputs. One deviation: the
  generator's output goes through tanh (`model.output_activation`). Most pixels of the upscaled 8x8 digits are
  exactly -1, which StyleGAN2's linear output does not reach, so D separates fakes by their background and G
  collapses (the runs: experiments/records/stylegan2_digits.md). The faces, without saturated pixels, train with
  the linear output.
- "cifar10": `tfds:cifar10` with the tuned CIFAR-10 setup of the StyleGAN2-ADA paper (Karras et al., "Training
  Generative Adversarial Networks with Limited Data", NeurIPS 2020, appendix; stylegan2-ada-pytorch
  `--cfg=cifar`), without augmentation: 512 feature maps at every resolution, 2 mapping layers in G and 8 in
  D's label mapping (`model.d_mapping_layers`, stylegan2-ada-pytorch's default; the TF code the paper ran uses
  0), batch 64, minibatch-stddev group 32, lr 0.0025 (Adam lr and betas corrected by c = 4/5 for G and 16/17 for
  D, as the reference does although path length is off), R1 gamma 0.01, EMA half-life 500k images with ramp-up
  0.05, no style mixing, no path-length regularisation, plain ("orig") discriminator, no x-flips (the
  reference's `--mirror` is off by default and its CIFAR-10 commands do not set it), class-conditional. The
  paper trains for 100M images: 1.5625M steps at batch 64. No published number is quoted: the paper's table for
  CIFAR-10 could not be checked here, and its StyleGAN2 baseline row is not this setup (the reference names
  that one `--cfg=cifarbaseline`); the tuned setup with ADA is configs/stylegan2_ada.py:cifar10.

Deliberate deviations from stylegan2-ada-pytorch, in every variant: float32 everywhere (`model.dtype`) where the
reference runs the top 4 resolutions in float16 with activations clamped to +-256 (its CIFAR-10 setup included);
the upsampling convolution resamples then convolves with zero padding, which differs from the reference's
transposed convolution + FIR only in the outermost row and column of each resolution; w_avg (truncation only)
is updated once per step from G main's w, the reference in every training-mode mapping call; no nan_to_num on
the gradients. Sample grids use random noise from the fixed grid key (the reference's grids: constant noise).
"""

import ml_collections

from genimg_jax.config import CIFAR10_DATA, CIFAR10_EVAL, check_variant
from genimg_jax.methods.gan.stylegan2 import stylegan2_config

VARIANTS = ("digits", "cifar10")


def small_cpu_model(config: ml_collections.ConfigDict) -> None:
    """The reduced networks and schedule of the embedded-data variants (see the module docstring)."""
    config.data.resolution = 32
    config.model.z_dim = config.model.w_dim = 128
    config.model.mapping_layers = 2
    config.model.channel_base = 512
    config.model.channel_max = 32
    config.loss.r1_gamma = 0.01
    for optim in (config.optim.g, config.optim.d):
        optim.learning_rate = 0.0025
    config.train.batch_size = 16
    config.train.ema_kimg = 10.0
    config.train.ema_rampup = 0.05
    config.train.steps = 2000
    config.train.log_every = 50
    config.train.sample_every = 500
    config.train.checkpoint_every = 500


def cifar10_setup(config: ml_collections.ConfigDict) -> None:
    """The ADA paper's tuned CIFAR-10 hyperparameters (stylegan2-ada-pytorch `--cfg=cifar`)."""
    config.data.update(CIFAR10_DATA)
    config.eval.update(CIFAR10_EVAL, every=3_125)
    config.model.mapping_layers = 2
    config.model.channel_base = 32768
    config.model.channel_max = 512
    config.model.num_classes = 10
    config.model.d_architecture = "orig"
    config.model.mbstd_group_size = 32
    config.loss.r1_gamma = 0.01
    config.loss.pl_weight = 0.0
    config.loss.style_mixing_prob = 0.0
    for optim in (config.optim.g, config.optim.d):
        optim.learning_rate = 0.0025
    config.train.batch_size = 64
    config.train.ema_kimg = 500.0
    config.train.ema_rampup = 0.05
    config.train.steps = 1_562_500
    config.train.sample_every = 5000
    config.train.checkpoint_every = 5000
    config.train.log_every = 500


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = stylegan2_config()
    if variant == "digits":
        small_cpu_model(config)
        config.model.output_activation = "tanh"  # the digits' background is exactly -1 (module docstring)
    else:
        cifar10_setup(config)
    return config
