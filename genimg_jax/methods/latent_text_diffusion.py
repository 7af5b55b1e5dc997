"""Latent text-to-image diffusion, Stable-Diffusion-style: `TextDiffusion`'s cross-attention U-Net, jointly trained
text encoder and classifier-free guidance, on `LatentDiffusion`'s latents of a frozen first stage (a `vqvae` run:
its pre-quantisation map is spatial, so the U-Net applies).

Nothing is added: the class composes the two. `LatentDiffusion` swaps the data space (`encode`/`decode`, the
first stage in the train state, the latent shape) around `TextDiffusion`'s conditioning (caption labels, null
caption, caption dropout), which in turn sits on `Diffusion`'s losses and samplers. The train state's
`first_stage` slot holds the autoencoder, so a pretrained CLIP text tower (`model.text.pretrained`, which
`TextDiffusion` keeps there) is not offered here yet.
"""

import ml_collections

from genimg_jax.config import require
from genimg_jax.methods.latent_diffusion import FirstStage, LatentDiffusion
from genimg_jax.methods.text_diffusion import TextDiffusion


class LatentTextDiffusion(LatentDiffusion, TextDiffusion):
    """Caption-conditioned diffusion of first-stage latents; see the module docstring."""

    def __init__(self, config: ml_collections.ConfigDict, first_stage: FirstStage):
        pretrained = config.model.text.get("pretrained", "")
        require(not pretrained, "model.text.pretrained", pretrained, "latent text diffusion trains its text encoder")
        super().__init__(config, first_stage)
