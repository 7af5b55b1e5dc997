"""Feature networks behind one interface: `net.apply(net.variables, images in [-1, 1] NHWC)` ->
{"features": (N, D), "logits": (N, C)}.

`features` feed FID, KID and precision/recall; `logits` feed the Inception Score. Each net carries what a
reported number needs to be reproducible: its name, a hash of its weights and how inputs are resized.
Every net runs its convolutions and matmuls in full float32 on every backend (`FEATURE_PRECISION`): JAX's
default is TF32 on recent GPUs and single-pass bf16 on TPU, which moves the features and so FID.
"""

import dataclasses
import hashlib
import pathlib
from collections.abc import Callable
from typing import Any

import jax

from genimg_jax.metrics import digits_net, inception, inception_weights

FEATURE_NETS = ("digits", "inception")
FEATURE_PRECISION = "float32"


@dataclasses.dataclass(frozen=True)
class FeatureNet:
    name: str
    weights_hash: str  # first 16 hex digits of the SHA-256 of the weights file
    resize_method: str  # how inputs reach the net's resolution
    variables: Any  # passed to `apply` as an argument, so jitted callers do not bake weights into the program
    apply: Callable[[Any, jax.Array], dict[str, jax.Array]]  # (variables, images) -> outputs; pure and jittable
    channels: tuple[int, ...] = (1, 3)  # channel counts the net accepts
    max_resolution: int | None = None  # the net upsamples smaller images, never downsamples larger ones
    logits_description: str = "the net's class logits"

    def check_images(self, resolution: int, channels: int) -> None:
        """Raise ValueError unless images of this resolution and channel count are valid inputs."""
        too_large = self.max_resolution is not None and resolution > self.max_resolution
        if too_large or channels not in self.channels:
            largest = f"at most {self.max_resolution}x{self.max_resolution}" if self.max_resolution else "any size"
            raise ValueError(
                f"feature net {self.name!r} takes images of {largest} with {' or '.join(map(str, self.channels))} "
                f"channel(s), not {resolution}x{resolution}x{channels}; use the 'inception' feature net for other data"
            )

    def protocol(self) -> dict[str, str]:
        return {
            "feature_net": self.name,
            "feature_net_weights_sha256": self.weights_hash,
            "resize": self.resize_method,
            "matmul_precision": FEATURE_PRECISION,
            "logits": self.logits_description,
        }


def _at_full_precision(apply: Callable[[Any, jax.Array], dict[str, jax.Array]]) -> Callable:
    def apply_in_float32(variables: Any, images: jax.Array) -> dict[str, jax.Array]:
        with jax.default_matmul_precision(FEATURE_PRECISION):
            return apply(variables, images)

    return apply_in_float32


def file_hash(path: pathlib.Path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()[:16]


def digits_feature_net() -> FeatureNet:
    model = digits_net.DigitsNet()
    return FeatureNet(
        name="digits",
        weights_hash=file_hash(digits_net.WEIGHTS_PATH),
        resize_method=digits_net.RESIZE_METHOD,
        variables={"params": digits_net.load_params()},
        apply=_at_full_precision(lambda variables, images: model.apply(variables, digits_net.preprocess(images))),
        channels=(digits_net.CHANNELS,),
        max_resolution=digits_net.RESOLUTION,
    )


def inception_feature_net(weights_path: str | pathlib.Path) -> FeatureNet:
    variables = inception_weights.load_inception_variables(weights_path)  # first: says what is missing
    model = inception.FIDInceptionV3()

    def apply(variables: Any, images: jax.Array) -> dict[str, jax.Array]:
        outputs = model.apply(variables, inception.preprocess(images))
        # The Inception Score's logits leave out the fc bias, as the original improved-GAN code, stylegan2-ada
        # and torch-fidelity compute them (pool3 @ W).
        return {**outputs, "logits": outputs["logits"] - variables["params"]["fc"]["bias"]}

    return FeatureNet(
        name="inception",
        weights_hash=file_hash(weights_path),
        resize_method=inception.RESIZE_METHOD,
        variables=variables,
        apply=_at_full_precision(apply),
        logits_description="pool3 @ fc weights, without the fc bias (improved-GAN, stylegan2-ada)",
    )


def load_feature_net(name: str, inception_weights_path: str = "") -> FeatureNet:
    if name == "digits":
        return digits_feature_net()
    if name == "inception":
        return inception_feature_net(inception_weights_path)
    raise ValueError(f"unknown feature net {name!r}; choose one of {list(FEATURE_NETS)}")
