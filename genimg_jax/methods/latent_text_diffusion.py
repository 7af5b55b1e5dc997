"""Latent text-to-image diffusion, Stable-Diffusion-style: `TextDiffusion`'s cross-attention U-Net, jointly trained
text encoder and classifier-free guidance, on `LatentDiffusion`'s latents of a frozen first stage (a `vqvae` run:
its pre-quantisation map is spatial, so the U-Net applies).

Nothing is added: the class composes the two. `LatentDiffusion` swaps the data space (`encode`/`decode`, the
first stage in the train state, the latent shape) around `TextDiffusion`'s conditioning (caption labels, null
caption, caption dropout), which in turn sits on `Diffusion`'s losses and samplers.
"""

from genimg_jax.methods.latent_diffusion import LatentDiffusion
from genimg_jax.methods.text_diffusion import TextDiffusion


class LatentTextDiffusion(LatentDiffusion, TextDiffusion):
    """Caption-conditioned diffusion of first-stage latents; see the module docstring."""
