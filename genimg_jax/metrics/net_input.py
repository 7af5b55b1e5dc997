"""Generated images fitted to the input of a feature net (the digits net, the DAMSM image encoder, CLIP's vision
tower): RGB reduced to BT.601 luma where the net reads one channel, as the data sources reduce colour images, grey
repeated where it reads three, then resized to the net's resolution (antialiased, so downsampling averages as
PIL's resize does)."""

import jax
import jax.numpy as jnp
import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # numpy: a jnp constant would start the backend at import


def fit_to_net(images: jax.Array, resolution: int, channels: int, method: str = "bilinear") -> jax.Array:
    """[-1, 1] NHWC `images` of 1 or 3 channels as float32 (N, resolution, resolution, channels), resized with
    `jax.image.resize`'s `method`."""
    images = images.astype(jnp.float32)
    if images.shape[-1] == 3 and channels == 1:
        images = (images @ _LUMA)[..., None]
    elif images.shape[-1] == 1 and channels == 3:
        images = jnp.repeat(images, 3, axis=-1)
    shape = (images.shape[0], resolution, resolution, images.shape[-1])
    return jax.image.resize(images, shape, method=method, antialias=True)
