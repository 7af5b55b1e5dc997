"""Generated images fitted to the input of one of the project's own grey feature nets (the digits net, the DAMSM
image encoder): RGB reduced to BT.601 luma where the net reads one channel, as the data sources reduce colour
images, then resized to the net's resolution (bilinear, antialiased)."""

import jax
import jax.numpy as jnp
import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # numpy: a jnp constant would start the backend at import


def fit_to_net(images: jax.Array, resolution: int, channels: int) -> jax.Array:
    """[-1, 1] NHWC `images` of 1 or 3 channels as float32 (N, resolution, resolution, C) for a net of `channels`."""
    images = images.astype(jnp.float32)
    if images.shape[-1] == 3 and channels == 1:
        images = (images @ _LUMA)[..., None]
    shape = (images.shape[0], resolution, resolution, images.shape[-1])
    return jax.image.resize(images, shape, method="bilinear", antialias=True)
