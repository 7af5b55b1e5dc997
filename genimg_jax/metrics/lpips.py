"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"), the
AlexNet variant of the `lpips` package's v0.1 weights, the one restoration papers report.

Both images in [-1, 1] pass the package's scaling layer ((x - shift) / scale, ImageNet statistics on that scale)
and torchvision's AlexNet convolutions; at each of relu1..relu5 the features are unit-normalised over channels
(eps 1e-10 added to the norm), their squared difference is weighted per channel by a learned non-negative 1x1
head (no bias), averaged over positions, and the five layers' values are summed. Grayscale images are repeated
to RGB. Weights come from the `.npz` that `python -m genimg_jax.tools.convert_lpips` writes
(metrics/lpips_weights.py); nothing is downloaded.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# torchvision's AlexNet feature convolutions: (output channels, kernel, stride, padding); a 3x3 stride-2 max pool
# comes before conv2 and conv3.
ALEXNET_CONVS = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
POOL_BEFORE = (False, True, True, False, False)
NORM_EPS = 1e-10
MIN_RESOLUTION = 31  # the smallest input whose second pool still has a 3x3 window to take
PRECISION = "float32"  # full-precision convolutions on every backend, as the feature nets use


def scaled(images: jax.Array) -> jax.Array:
    """The package's scaling layer on [-1, 1] images; grayscale repeated to RGB first."""
    if images.shape[-1] == 1:
        images = jnp.repeat(images, 3, axis=-1)
    return (images.astype(jnp.float32) - jnp.asarray(SHIFT)) / jnp.asarray(SCALE)


class AlexNetFeatures(nn.Module):
    """relu1..relu5 of torchvision's AlexNet `features` (its classifier is not used)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> list[jax.Array]:
        outputs = []
        for index, (features, kernel, stride, padding) in enumerate(ALEXNET_CONVS):
            if POOL_BEFORE[index]:
                x = nn.max_pool(x, (3, 3), strides=(2, 2))
            pad = ((padding, padding), (padding, padding))
            x = nn.relu(nn.Conv(features, (kernel, kernel), strides=stride, padding=pad, name=f"conv{index + 1}")(x))
            outputs.append(x)
        return outputs


def unit_normalised(features: jax.Array) -> jax.Array:
    return features / (jnp.sqrt(jnp.sum(features * features, axis=-1, keepdims=True)) + NORM_EPS)


class LPIPS(nn.Module):
    """`LPIPS().apply(variables, x0, x1)` -> (N,) distances; `method=LPIPS.features` gives relu1..relu5."""

    def setup(self):
        self.alexnet = AlexNetFeatures()
        self.heads = [
            self.param(f"lin{index}", nn.initializers.ones, (features,))
            for index, (features, *_) in enumerate(ALEXNET_CONVS)
        ]

    def features(self, images: jax.Array) -> list[jax.Array]:
        return self.alexnet(scaled(images))

    def __call__(self, x0: jax.Array, x1: jax.Array) -> jax.Array:
        distance = 0.0
        for head, f0, f1 in zip(self.heads, self.features(x0), self.features(x1), strict=True):
            squared = jnp.square(unit_normalised(f0) - unit_normalised(f1))
            distance = distance + jnp.mean(squared @ head, axis=(1, 2))
        return distance


@jax.jit  # compiled whole; the weights are an argument, not constants baked into the program
def lpips_distance(variables: dict, x0: jax.Array, x1: jax.Array) -> jax.Array:
    """LPIPS of each pair of [-1, 1] NHWC images (N,), at full float32 precision."""
    with jax.default_matmul_precision(PRECISION):
        return LPIPS().apply(variables, x0, x1)
