"""VQ-VAE (van den Oord et al. 2017) with an EMA codebook (their appendix A.1) and dead-code restarts, and a causal
transformer prior over its 8x8 code map, on the embedded digits at 32x32.

Variants (`--config=configs/vqvae.py:VARIANT`):
- `digits` (default): 128 codes of dimension 32, beta = 0.25, EMA decay 0.99, an unconditional prior.
- `digits_conditional`: the prior conditioned on the digit's class (its start token), so samples can be asked
  for by class and scored by label accuracy and CAS.
- `digits_f4`: the first stage of latent text diffusion (configs/latent_text_diffusion.py): codes of dimension 4
  (LDM's VQ-f4 has 3 channels), so its 8x8 pre-quantisation map is a 4-channel latent at 1/4 of the resolution.

Evaluation on the test split: reconstruction MSE and PSNR, and the prior's exact NLL of the code maps in bits per
code. The prior trains beside the VQ-VAE on its current codes, not after it as in the paper (the method's
docstring, methods/vqvae.py, says why). No published number is quoted: the paper's are of other data sets.
"""

import ml_collections

from genimg_jax.config import check_variant
from genimg_jax.methods.vqvae import vqvae_config

VARIANTS = {"digits": 0, "digits_conditional": 10, "digits_f4": 0}


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = vqvae_config()
    config.model.num_classes = VARIANTS[variant]
    config.train.steps = 1500
    config.train.batch_size = 64
    config.eval.every = 500
    if variant == "digits_f4":
        config.model.code_dim = 4
    return config
