"""The denoiser of latent diffusion on flat latent vectors: residual MLP blocks with the U-Net's conditioning."""

import flax.linen as nn
import jax

from genimg_jax.models.unet import ConditioningEmbedding


class LatentMLP(nn.Module):
    """Denoiser for flat latent vectors (N, D) of a first-stage autoencoder: residual MLP blocks.

    A VAE latent has no spatial structure for convolutions to exploit, so latent diffusion on it uses this network
    with the U-Net's conditioning embedding and the same call signature.
    """

    features: int = 256
    num_blocks: int = 3
    dropout: float = 0.0
    time_embedding: str = "positional"
    num_classes: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, labels: jax.Array | None = None, train: bool = False) -> jax.Array:
        embedding = ConditioningEmbedding(self.features, self.time_embedding, self.num_classes)(t, labels)
        h = nn.Dense(self.features)(x)
        for _ in range(self.num_blocks):
            residual = nn.Dense(self.features)(nn.swish(nn.LayerNorm()(h))) + nn.Dense(self.features)(embedding)
            residual = nn.Dropout(self.dropout, deterministic=not train)(nn.swish(residual))
            h = h + nn.Dense(self.features, kernel_init=nn.initializers.zeros_init())(residual)
        return nn.Dense(x.shape[-1], kernel_init=nn.initializers.zeros_init())(nn.swish(nn.LayerNorm()(h)))
