"""Random-access image sources and the `make_source` spec parser.

A source is anything with `__len__`, `__getitem__(i) -> {"image": uint8 HWC, "label": int32}`,
`num_classes` and `class_names`: grain's `RandomAccessDataSource` protocol plus metadata, so the pipeline can
shuffle by index and resume from an integer position without reading data it skips.

The two embedded sources are real data that ship inside installed packages, so tests and the default
configs run offline: scikit-learn's handwritten digits and scikit-image's LFW subset. Their train/test split
is fixed by hashing each example's index (`_fixed_split`), independent of any run seed and of the numpy
version, so evaluation numbers stay comparable between runs and machines.
"""

import hashlib
from collections.abc import Sequence
from typing import Protocol

import ml_collections
import numpy as np

from genimg_jax.data.errors import DataError
from genimg_jax.data.images import fit_image

SPEC_FORMS = ("digits", "faces", "tfds:NAME", "tfds:NAME:SPLIT", "folder:PATH")


class ImageSource(Protocol):
    """What every source provides; see the module docstring."""

    num_classes: int  # 0 when unlabeled (then every label is 0)
    class_names: tuple[str, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, np.ndarray]: ...


def example(image: np.ndarray, label: int) -> dict[str, np.ndarray]:
    """The one element layout all sources return."""
    return {"image": image, "label": np.int32(label)}


def _fixed_split(name: str, num_examples: int, num_test: int, split: str) -> np.ndarray:
    """Sorted indices of `split` ("train" or "test"): the test set is the `num_test` indices with the smallest
    BLAKE2 hash of `name:index`, a permutation that no library upgrade can change."""
    order = sorted(range(num_examples), key=lambda i: hashlib.blake2b(f"{name}:{i}".encode()).digest())
    if split == "test":
        return np.sort(order[:num_test])
    if split == "train":
        return np.sort(order[num_test:])
    raise DataError(f"source '{name}' has splits 'train' and 'test', not '{split}'")


class ArraySource:
    """Images held in memory at their native size (0..255 scale floats), fitted to the resolution on access,
    so memory stays small whatever resolution a config asks for."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str],
        resolution: int,
        channels: int,
    ):
        self._images = images
        self._labels = labels
        self._resolution = resolution
        self._channels = channels
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return example(fit_image(self._images[index], self._resolution, self._channels), self._labels[index])


def _digits(split: str, resolution: int, channels: int) -> ArraySource:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    keep = _fixed_split("digits", len(bunch.images), 297, split)
    images = bunch.images[keep].astype(np.float32) * (255.0 / 16.0)  # stored values are 0..16
    return ArraySource(images, bunch.target[keep], [str(d) for d in range(10)], resolution, channels)


def _faces(split: str, resolution: int, channels: int) -> ArraySource:
    from skimage.data import lfw_subset

    faces = lfw_subset()  # float64 in [0, 1]: the first 100 are faces, the last 100 background crops
    keep = _fixed_split("faces", len(faces), 40, split)
    labels = (np.arange(len(faces)) >= 100).astype(np.int32)
    return ArraySource(faces[keep].astype(np.float32) * 255.0, labels[keep], ("face", "non_face"), resolution, channels)


def source_from_config(data_config: ml_collections.ConfigDict, split: str) -> ImageSource:
    """The source a `config.data` section names, for `split`, with every option of that section applied; a
    failure names the config key it came from."""
    try:
        return make_source(
            data_config.source,
            split=split,
            resolution=data_config.resolution,
            channels=data_config.channels,
            data_dir=data_config.data_dir or None,
            bad_images=data_config.bad_images,
            small_images=data_config.small_images,
        )
    except DataError as error:
        raise DataError(f"config.data.source: {error}") from None


def make_source(
    spec: str,
    *,
    split: str,
    resolution: int,
    channels: int,
    data_dir: str | None = None,
    bad_images: str = "error",
    small_images: str = "upscale",
) -> ImageSource:
    """Builds the source named by `spec` (one of `SPEC_FORMS`); `data_dir` is where tfds looks for prepared
    datasets (None: tfds' default); `bad_images` / `small_images` are the image-folder policies for undecodable
    and too-small files (see `folder_source`). Heavy imports (tensorflow_datasets) happen only for the form that
    needs them."""
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels} (source '{spec}')")
    if resolution < 1:
        raise DataError(f"resolution must be positive, got {resolution} (source '{spec}')")
    if spec == "digits":
        return _digits(split, resolution, channels)
    if spec == "faces":
        return _faces(split, resolution, channels)
    if spec.startswith("tfds:"):
        from genimg_jax.data.tfds_source import TfdsSource

        name, _, split_override = spec[len("tfds:") :].partition(":")
        return TfdsSource(name, split_override or split, resolution, channels, data_dir)
    if spec.startswith("folder:"):
        from genimg_jax.data.folder_source import FolderSource

        return FolderSource(spec[len("folder:") :], split, resolution, channels, bad_images, small_images)
    raise DataError(f"unknown data source '{spec}'; valid forms: {', '.join(SPEC_FORMS)}")
