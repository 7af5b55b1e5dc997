"""`tfds:NAME[:SPLIT]` — a prepared tensorflow-datasets dataset read through its array_record data source.

`builder.as_data_source` gives random access (grain-compatible) without a `tf.data` pipeline. Loading never
downloads: `tfds.load` on a dataset that is not prepared starts a download that retries for minutes (and
cannot succeed on an offline cluster node), so we check `builder.is_prepared()` first and fail at once with
instructions for preparing the data elsewhere. NAME may carry a config (`celeb_a/...`); SPLIT accepts tfds
slicing syntax (`train[:90%]`), which is why only the first ':' separates the two.

`tfds_pairs:NAME:SOURCE_FEATURE:TARGET_FEATURE[:SPLIT]` reads datasets that hold pairs of images (e.g. a
translation dataset with features "input" and "target"): TARGET_FEATURE becomes field `image`, SOURCE_FEATURE
field `source`, both fitted like `image`; "label" as above.
"""

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from absl import logging as absl_logging

from genimg_jax.data.errors import DataError
from genimg_jax.data.images import fit_image
from genimg_jax.data.sources import example, labelled_image_fields, paired_image_fields

PAIRS_FORM = "tfds_pairs:NAME:SOURCE_FEATURE:TARGET_FEATURE[:SPLIT]"


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(verbosity)


def prepared_builder(name: str, data_dir: str | None, spec: str):  # -> tfds.core.DatasetBuilder
    """The builder of a dataset prepared in array_record format; DataError with instructions otherwise."""
    import tensorflow_datasets as tfds

    if not name:
        raise DataError(f"tfds source '{spec}' needs a dataset name")
    try:
        with _quiet_absl():  # tfds warns about missing version folders before we explain what is missing
            builder = tfds.builder(name, data_dir=data_dir)
            prepared = builder.is_prepared()
    except ValueError as error:  # DatasetNotFoundError and bad config names; keep only the first line
        raise DataError(f"{spec}: {str(error).splitlines()[0]} (data_dir={data_dir})") from error
    if not prepared:
        raise DataError(
            f"{spec}: not prepared under {builder.data_dir_root}, and this code never downloads. "
            f"Prepare it on a machine with network access (or with the files in a manual_dir): "
            f"`tfds build {name} --data_dir={builder.data_dir_root} --file_format=array_record` "
            f"(add --manual_dir=DIR if the dataset needs manual downloads), then copy the folder here "
            f"or pass its location as data_dir."
        )
    if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
        raise DataError(
            f"{spec}: prepared as {builder.info.file_format.value} under {builder.data_dir}, but random "
            f"access needs array_record: run `tfds convert_format "
            f"--dataset_version_dir={builder.data_dir} --out_file_format=array_record` or rebuild with "
            f"--file_format=array_record."
        )
    return builder


def _check_image_feature(features, key: str, spec: str) -> None:  # features: tfds.features.FeaturesDict
    if key not in features:
        raise DataError(f"{spec}: no '{key}' feature (features: {sorted(features.keys())})")
    stored_channels = features[key].shape[-1]
    if stored_channels not in (1, 3):
        raise DataError(f"{spec}: '{key}' images have {stored_channels} channels; only 1 or 3 are supported")


class TfdsSource:
    """Feature "image" (and "label" when it is a ClassLabel) of one split of a prepared tfds dataset; with
    `source_feature`, also that image feature as field `source` (`tfds_pairs:`, see the module docstring)."""

    def __init__(
        self,
        name: str,
        split: str,
        resolution: int,
        channels: int,
        data_dir: str | None,
        image_feature: str = "image",
        source_feature: str = "",
    ):
        import tensorflow_datasets as tfds

        spec = f"tfds_pairs:{name}:{source_feature}:{image_feature}" if source_feature else f"tfds:{name}"
        builder = prepared_builder(name, data_dir, spec)
        features = builder.info.features
        for key in (image_feature, source_feature) if source_feature else (image_feature,):
            _check_image_feature(features, key, spec)
        try:
            self._data = builder.as_data_source(split)
        except ValueError as error:
            raise DataError(f"{spec}: cannot read split '{split}': {error}") from error
        self._has_labels = "label" in features and isinstance(features["label"], tfds.features.ClassLabel)
        self.class_names = tuple(features["label"].names) if self._has_labels else ()
        self.num_classes = len(self.class_names)
        fields = paired_image_fields if source_feature else labelled_image_fields
        self.fields = fields(resolution, channels)
        self._image_feature, self._source_feature = image_feature, source_feature
        self._resolution = resolution
        self._channels = channels

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self._fitted(self._data[index])

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
        """Several examples in one batched array_record read (grain's optional protocol; the pipeline uses it)."""
        return [self._fitted(record) for record in self._data.__getitems__(list(indices))]

    def _fitted(self, record: dict[str, Any]) -> dict[str, np.ndarray]:
        label = record["label"] if self._has_labels else 0
        fitted = example(fit_image(record[self._image_feature], self._resolution, self._channels), label)
        if self._source_feature:
            fitted["source"] = fit_image(record[self._source_feature], self._resolution, self._channels)
        return fitted


def tfds_pairs(argument: str, split: str, resolution: int, channels: int, data_dir: str | None) -> TfdsSource:
    """The source of `tfds_pairs:NAME:SOURCE_FEATURE:TARGET_FEATURE[:SPLIT]` (`argument` is the text after the
    first ':'); `split` serves unless SPLIT is given."""
    parts = argument.split(":", 3)
    if len(parts) < 3 or not all(parts[:3]):
        raise DataError(f"'tfds_pairs:{argument}' does not have the form {PAIRS_FORM}")
    name, source_feature, image_feature = parts[:3]
    split = parts[3] if len(parts) == 4 else split
    return TfdsSource(name, split, resolution, channels, data_dir, image_feature, source_feature)
