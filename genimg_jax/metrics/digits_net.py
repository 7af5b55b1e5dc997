"""A small CNN classifier of 32x32 grayscale digits, trained by the project, as an offline feature network.

Inception-v3 needs weights we cannot download here and means little on 8x8 digits; this network is trained on
the digits train split (`python -m genimg_jax.tools.train_digits_net`) and ships in the package, so FID, KID,
IS and precision/recall run anywhere. Its 128-d penultimate activations are the features, its 10 logits give IS.
Smaller images (the 16x16 digit configs) are upsampled to 32x32 first, so numbers at different resolutions are
not comparable with each other; the evaluation record names the resolution.
"""

import pathlib

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

RESOLUTION = 32
CHANNELS = 1
WEIGHTS_PATH = pathlib.Path(__file__).parent / "weights" / "digits_net.msgpack"
RESIZE_METHOD = "bilinear up to 32x32, half-pixel centres, no antialias (none at 32x32)"


def preprocess(images: jax.Array) -> jax.Array:
    """[-1, 1] NHWC grayscale images of at most 32x32 -> 32x32 (unchanged when already 32x32)."""
    if images.shape[1:3] == (RESOLUTION, RESOLUTION):
        return images
    shape = (images.shape[0], RESOLUTION, RESOLUTION, images.shape[-1])
    return jax.image.resize(images.astype(jnp.float32), shape, method="bilinear", antialias=False)


class DigitsNet(nn.Module):
    """Two conv stages with average pooling, a third conv stage with global average pooling, two dense layers."""

    num_classes: int = 10
    feature_dim: int = 128

    @nn.compact
    def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
        """`images`: [-1, 1] NHWC, 32x32x1. Returns {"features": (N, 128), "logits": (N, 10)}."""
        x = images
        for width in (32, 64):
            x = nn.relu(nn.Conv(width, (3, 3))(x))
            x = nn.relu(nn.Conv(width, (3, 3))(x))
            x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = nn.relu(nn.Conv(128, (3, 3))(x))
        x = jnp.mean(x, axis=(1, 2))
        features = nn.relu(nn.Dense(self.feature_dim)(x))
        return {"features": features, "logits": nn.Dense(self.num_classes)(features)}


def init_params(rng: jax.Array, channels: int = CHANNELS, num_classes: int = 10) -> dict:
    """Fresh parameters for images of `channels` channels (any size: the last stage pools globally)."""
    model = DigitsNet(num_classes=num_classes)
    return model.init(rng, jnp.zeros((1, RESOLUTION, RESOLUTION, channels)))["params"]


def load_params(path: pathlib.Path = WEIGHTS_PATH) -> dict:
    """The shipped (or a freshly trained) weights file, as a params pytree."""
    if not path.is_file():
        raise FileNotFoundError(
            f"digits feature-network weights {path} are missing; recreate them with "
            "`python -m genimg_jax.tools.train_digits_net`"
        )
    # The target's shapes alone: drawing random initial values first costs seconds of compilation on CPU.
    target = jax.eval_shape(init_params, jax.random.PRNGKey(0))
    return jax.tree.map(jnp.asarray, flax.serialization.from_bytes(target, path.read_bytes()))
