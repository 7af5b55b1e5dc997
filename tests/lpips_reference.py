"""LPIPS for tests: random weights in torch's layouts and files, and LPIPS recomputed in numpy from those layouts
(torchvision's AlexNet conv/ReLU/max-pool, the lpips package's scaling, normalisation and heads), independent of
the Flax modules and of the converter."""

import numpy as np
from torch_format import write_state_dict

SHIFT = np.array([-0.030, -0.088, -0.188])
SCALE = np.array([0.458, 0.448, 0.450])
# (torchvision features index, in channels, out channels, kernel, stride, padding, max pool before)
CONVS = (
    (0, 3, 64, 11, 4, 2, False),
    (3, 64, 192, 5, 1, 2, True),
    (6, 192, 384, 3, 1, 1, True),
    (8, 384, 256, 3, 1, 1, False),
    (10, 256, 256, 3, 1, 1, False),
)


def random_torch_weights(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(AlexNet state dict with an unused classifier entry, lpips heads state dict), He-scaled, heads >= 0."""
    rng = np.random.default_rng(seed)
    alexnet, linear = {}, {}
    for index, channels_in, channels_out, kernel, *_ in CONVS:
        fan_in = channels_in * kernel * kernel
        shape = (channels_out, channels_in, kernel, kernel)
        alexnet[f"features.{index}.weight"] = rng.normal(0, np.sqrt(2 / fan_in), shape)
        alexnet[f"features.{index}.bias"] = rng.normal(0, 0.1, channels_out)
    alexnet["classifier.1.weight"] = rng.normal(size=(4, 9))  # the converter ignores AlexNet's classifier
    for layer, (_, _, channels_out, *_) in enumerate(CONVS):
        linear[f"lin{layer}.model.1.weight"] = rng.uniform(0, 1, (1, channels_out, 1, 1))
    return _float32(alexnet), _float32(linear)


def _float32(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """As the files store them, so the numpy reference uses exactly the converted values."""
    return {name: value.astype(np.float32) for name, value in arrays.items()}


def write_torch_weights(directory, seed: int = 0) -> tuple[str, str, dict, dict]:
    """Both files in `directory` (AlexNet in torch's legacy format, heads as a zip): (paths..., state dicts...)."""
    alexnet, linear = random_torch_weights(seed)
    alexnet_path, linear_path = str(directory / "alexnet.pth"), str(directory / "alex.pth")
    write_state_dict(alexnet_path, alexnet, legacy=True)
    write_state_dict(linear_path, linear)
    return alexnet_path, linear_path, alexnet, linear


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """NHWC cross-correlation with an OIHW weight, zero padding, as torch's Conv2d."""
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    kernel = weight.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("nhwcij,ocij->nhwo", windows, weight) + bias


def _max_pool(x: np.ndarray) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2].max(axis=(-2, -1))


def alexnet_features(alexnet: dict[str, np.ndarray], images: np.ndarray) -> list[np.ndarray]:
    """relu1..relu5 (NHWC, float64) of [-1, 1] images after the scaling layer."""
    x = (np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images).astype(np.float64)
    x = (x - SHIFT) / SCALE
    outputs = []
    for index, _, _, _, stride, padding, pool in CONVS:
        if pool:
            x = _max_pool(x)
        weight, bias = alexnet[f"features.{index}.weight"], alexnet[f"features.{index}.bias"]
        x = np.maximum(_conv(x, weight, bias, stride, padding), 0.0)
        outputs.append(x)
    return outputs


def distance_from_features(linear: dict[str, np.ndarray], features0: list, features1: list) -> np.ndarray:
    """The normalise-difference-weight-mean-sum stages: (N,) LPIPS from two images' relu1..relu5."""
    total = 0.0
    for layer, (f0, f1) in enumerate(zip(features0, features1, strict=True)):
        f0, f1 = (np.asarray(f, np.float64) for f in (f0, f1))
        n0 = f0 / (np.sqrt((f0**2).sum(-1, keepdims=True)) + 1e-10)
        n1 = f1 / (np.sqrt((f1**2).sum(-1, keepdims=True)) + 1e-10)
        weights = linear[f"lin{layer}.model.1.weight"].reshape(-1)
        total = total + ((n0 - n1) ** 2 * weights).sum(-1).mean(axis=(1, 2))
    return total
