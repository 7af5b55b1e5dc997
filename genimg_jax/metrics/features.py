"""Feature networks behind one interface: `net.apply(net.variables, images in [-1, 1] NHWC)` ->
{"features": (N, D), "logits": (N, C)}.

`features` feed FID, KID and precision/recall; `logits` feed the Inception Score. Each net carries what a
reported number needs to be reproducible: its name, a hash of its weights and how inputs are resized.
"""

import dataclasses
import hashlib
import pathlib
from collections.abc import Callable
from typing import Any

import jax

from genimg_jax.metrics import digits_net, inception, inception_weights

FEATURE_NETS = ("digits", "inception")


@dataclasses.dataclass(frozen=True)
class FeatureNet:
    name: str
    weights_hash: str  # first 16 hex digits of the SHA-256 of the weights file
    resize_method: str  # how inputs reach the net's resolution
    variables: Any  # passed to `apply` as an argument, so jitted callers do not bake weights into the program
    apply: Callable[[Any, jax.Array], dict[str, jax.Array]]  # (variables, images) -> outputs; pure and jittable
    required_shape: tuple[int, int, int] | None = None  # (H, W, C) the net accepts; None: any size, 1 or 3 channels

    def check_images(self, resolution: int, channels: int) -> None:
        """Raise ValueError unless images of this resolution and channel count are valid inputs."""
        if self.required_shape and (resolution, resolution, channels) != self.required_shape:
            raise ValueError(
                f"feature net {self.name!r} takes {self.required_shape[0]}x{self.required_shape[1]} images with "
                f"{self.required_shape[2]} channel(s), not {resolution}x{resolution}x{channels}; "
                "use the 'inception' feature net for other data"
            )

    def protocol(self) -> dict[str, str]:
        return {"feature_net": self.name, "feature_net_weights_sha256": self.weights_hash, "resize": self.resize_method}


def file_hash(path: pathlib.Path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()[:16]


def digits_feature_net() -> FeatureNet:
    return FeatureNet(
        name="digits",
        weights_hash=file_hash(digits_net.WEIGHTS_PATH),
        resize_method="none (32x32 grayscale input)",
        variables={"params": digits_net.load_params()},
        apply=digits_net.DigitsNet().apply,
        required_shape=(digits_net.RESOLUTION, digits_net.RESOLUTION, digits_net.CHANNELS),
    )


def inception_feature_net(weights_path: str | pathlib.Path) -> FeatureNet:
    variables = inception_weights.load_inception_variables(weights_path)  # first: says what is missing
    model = inception.FIDInceptionV3()
    return FeatureNet(
        name="inception",
        weights_hash=file_hash(weights_path),
        resize_method=inception.RESIZE_METHOD,
        variables=variables,
        apply=lambda variables, images: model.apply(variables, inception.preprocess(images)),
    )


def load_feature_net(name: str, inception_weights_path: str = "") -> FeatureNet:
    if name == "digits":
        return digits_feature_net()
    if name == "inception":
        return inception_feature_net(inception_weights_path)
    raise ValueError(f"unknown feature net {name!r}; choose one of {list(FEATURE_NETS)}")
