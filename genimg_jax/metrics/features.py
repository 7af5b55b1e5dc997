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
    channels: tuple[int, ...] = (1, 3)  # channel counts the net accepts
    max_resolution: int | None = None  # the net upsamples smaller images, never downsamples larger ones

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
        return {"feature_net": self.name, "feature_net_weights_sha256": self.weights_hash, "resize": self.resize_method}


def file_hash(path: pathlib.Path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()[:16]


def digits_feature_net() -> FeatureNet:
    model = digits_net.DigitsNet()
    return FeatureNet(
        name="digits",
        weights_hash=file_hash(digits_net.WEIGHTS_PATH),
        resize_method=digits_net.RESIZE_METHOD,
        variables={"params": digits_net.load_params()},
        apply=lambda variables, images: model.apply(variables, digits_net.preprocess(images)),
        channels=(digits_net.CHANNELS,),
        max_resolution=digits_net.RESOLUTION,
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
