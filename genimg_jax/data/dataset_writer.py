"""Image files (a folder or a zip) -> a tensorflow-datasets dataset in array_record format, read by `tfds:NAME`.

The files are found as `folder:PATH` finds them (`folder_source`): sorted by relative path, hidden files and
folders left out; the classes are the top-level folders when every image lies in one, or come from a labels file:
JSON mapping each relative file name to its class, `{"a/1.png": 0, ...}`, or stylegan2-ada's `dataset.json`,
`{"labels": [["a/1.png", 0], ...]}`. Every image is decoded, converted to `channels`, centre-cropped and resized
with PIL's Lanczos filter (`images.fit_image`; the filter of stylegan2-ada's dataset tool), and stored PNG-encoded
in that order, as one split, "train" (slice it with `tfds:NAME:train[:90%]`).

Files left out, each listed with the reason in the summary: not an image (by suffix), cannot be decoded (corrupt,
truncated, a mode with no 0..255 scale), smaller than the resolution (unless `small_images="upscale"`), or without
a label in the labels file. tfds writes into a temporary folder and renames it only when it is complete, so a
failed run leaves no dataset behind, and an existing dataset of the same name is never overwritten.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import re
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import numpy as np
from absl import logging as absl_logging
from PIL import Image

from genimg_jax.data.errors import DataError
from genimg_jax.data.folder_source import (
    IMAGE_SUFFIXES,
    NOT_AN_IMAGE,
    SMALL_IMAGE_POLICIES,
    TOO_SMALL,
    UNDECODABLE,
    class_labels,
    decode_file,
    problem_summary,
    visible_files,
)
from genimg_jax.data.images import fit_image

SPLIT = "train"
VERSION = "1.0.0"
SUMMARY_FILE = "dataset_tool_summary.json"  # beside the tfds files
NO_LABEL = "not in the labels file"
RESIZE = "centre crop to a square, then PIL Lanczos (antialiased) resize"
_NAME = re.compile(r"[a-z][a-z0-9_]*")  # what tfds accepts as a dataset name
_CHUNK = 64  # images decoded in parallel at a time


class _FolderFiles:
    """The visible files under a folder, by relative POSIX path."""

    def __init__(self, root: Path):
        self._root = root
        self.names = [path.as_posix() for path in visible_files(root, f"(source '{root}')")]

    def read(self, name: str) -> bytes:
        return (self._root / name).read_bytes()


class _ZipFiles:
    """The visible members of a zip file, by name; reads are serialised (one file handle)."""

    def __init__(self, path: Path):
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as error:
            raise DataError(f"source '{path}' is not a readable zip file ({error})") from None
        self._lock = threading.Lock()
        self.names = sorted(
            info.filename
            for info in self._zip.infolist()
            if not info.is_dir() and not any(part.startswith((".", "__MACOSX")) for part in info.filename.split("/"))
        )
        if not self.names:
            raise DataError(f"zip file '{path}' holds no files")

    def read(self, name: str) -> bytes:
        with self._lock:
            return self._zip.read(name)


def open_image_files(source: str | Path) -> _FolderFiles | _ZipFiles:
    """The files of a folder or a zip file; DataError if `source` is neither."""
    path = Path(source).expanduser()
    if path.is_dir():
        return _FolderFiles(path)
    if not path.exists():
        raise DataError(f"source '{path}' does not exist (expected a folder or a zip file of images)")
    return _ZipFiles(path)


def read_labels(path: str | Path) -> dict[str, int]:
    """{relative file name: class} from a labels JSON file (see the module docstring); DataError naming the file."""
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"labels file '{path}' cannot be read: {error}") from None
    pairs = None
    if isinstance(content, dict) and isinstance(content.get("labels"), list):
        pairs = content["labels"]
    elif isinstance(content, dict) and "labels" not in content:
        pairs = list(content.items())
    if pairs is None or not all(isinstance(pair, list | tuple) and len(pair) == 2 for pair in pairs):
        raise DataError(f"labels file '{path}': expected {{name: label}} or {{\"labels\": [[name, label], ...]}}")
    labels = {}
    for name, label in pairs:
        if not isinstance(label, int) or isinstance(label, bool) or label < 0:
            raise DataError(f"labels file '{path}': the label of '{name}' must be an integer >= 0, got {label!r}")
        labels[str(name)] = label
    return labels


class _Plan(NamedTuple):
    """What to write: image files in order, their classes, the class names, and the files already left out."""

    files: list[str]
    labels: list[int]
    class_names: tuple[str, ...]
    skipped: dict[str, list[tuple[str, str]]]


def _plan(names: list[str], labels: dict[str, int] | None) -> _Plan:
    skipped = {NOT_AN_IMAGE: [(name, "") for name in names if PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES]}
    skipped |= {UNDECODABLE: [], TOO_SMALL: [], NO_LABEL: []}
    images = [name for name in names if PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES]
    if labels is None:
        class_names, image_labels = class_labels([PurePosixPath(name) for name in images])
        return _Plan(images, image_labels, class_names, skipped)
    skipped[NO_LABEL] = [(name, "") for name in images if name not in labels]
    files = [name for name in images if name in labels]
    class_names = tuple(str(label) for label in range(max(labels.values(), default=-1) + 1))
    return _Plan(files, [labels[name] for name in files], class_names, skipped)


class _Outcome(NamedTuple):
    pixels: np.ndarray | None  # the fitted image, or None if the file is left out
    problem: tuple[str, str] | None  # (kind, detail) of why


def _fitted(files: _FolderFiles | _ZipFiles, name: str, resolution: int, channels: int, small_images: str) -> _Outcome:
    try:
        buffer = io.BytesIO(files.read(name))
    except (OSError, zipfile.BadZipFile, zlib.error) as error:  # a damaged zip member
        return _Outcome(None, (UNDECODABLE, f"{type(error).__name__}: {error}"))
    try:
        pixels = decode_file(Path(name), buffer)
    except DataError as error:  # PIL names the buffer it read from; name the file instead
        return _Outcome(None, (UNDECODABLE, str(error.__cause__).replace(repr(buffer), f"'{name}'")))
    height, width = pixels.shape[:2]
    if min(height, width) < resolution and small_images == "skip":
        return _Outcome(None, (TOO_SMALL, f"{width}x{height}"))
    return _Outcome(fit_image(pixels, resolution, channels, Image.Resampling.LANCZOS), None)


@contextlib.contextmanager
def _quiet_tfds() -> Iterator[None]:
    """tfds prints 'Downloading and preparing' and draws progress bars; the summary says what happened."""
    import tensorflow_datasets as tfds

    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    tfds.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        absl_logging.set_verbosity(verbosity)


def write_dataset(
    source: str | Path,
    data_dir: str | Path,
    name: str,
    resolution: int,
    channels: int = 3,
    labels_file: str | Path | None = None,
    small_images: str = "skip",
) -> dict[str, Any]:
    """Write the images of `source` as tfds dataset `name` (version 1.0.0) under `data_dir`; returns the summary,
    also written as `SUMMARY_FILE` beside the dataset's files."""
    import tensorflow_datasets as tfds

    if not _NAME.fullmatch(name):
        raise DataError(f"dataset name {name!r} must be snake_case: a lowercase letter, then [a-z0-9_]")
    if resolution < 1 or channels not in (1, 3) or small_images not in SMALL_IMAGE_POLICIES:
        raise DataError(
            f"resolution={resolution} (>= 1), channels={channels} (1 or 3), small_images={small_images!r} "
            f"({' or '.join(SMALL_IMAGE_POLICIES)}): one is not valid"
        )
    files = open_image_files(source)
    plan = _plan(files.names, read_labels(labels_file) if labels_file else None)
    if not plan.files:
        raise DataError(f"source '{source}' has no image files to write: {problem_summary(plan.skipped)}")
    counts = collections.Counter()

    def examples() -> Iterator[tuple[str, dict[str, Any]]]:
        with ThreadPoolExecutor(max_workers=4) as pool:  # PIL's decoders and resampling release the GIL
            items = list(zip(plan.files, plan.labels, strict=True))
            for chunk in (items[start : start + _CHUNK] for start in range(0, len(items), _CHUNK)):
                outcomes = pool.map(lambda item: _fitted(files, item[0], resolution, channels, small_images), chunk)
                for (file, label), outcome in zip(chunk, outcomes, strict=True):
                    if outcome.problem:
                        plan.skipped[outcome.problem[0]].append((file, outcome.problem[1]))
                        continue
                    counts[label] += 1
                    yield file, {"image": outcome.pixels, **({"label": label} if plan.class_names else {})}
        if not counts:  # tfds then removes its unfinished folder
            raise DataError(f"source '{source}' has no usable images: {problem_summary(plan.skipped)}")

    features = {"image": tfds.features.Image(shape=(resolution, resolution, channels))}
    if plan.class_names:
        features["label"] = tfds.features.ClassLabel(names=plan.class_names)
    builder = tfds.dataset_builders.AdhocBuilder(
        name=name,
        version=VERSION,
        features=tfds.features.FeaturesDict(features),
        split_datasets={SPLIT: examples()},
        data_dir=str(data_dir),
        description=f"Written by genimg_jax.tools.dataset_tool from {source}.",
        file_format="array_record",
        disable_shuffling=True,  # stored in file order
    )
    with tempfile.TemporaryDirectory() as downloads, _quiet_tfds():
        if builder.is_prepared():
            raise DataError(
                f"dataset '{name}' already exists in {builder.data_dir}; choose another --name or remove it"
            )
        builder.download_and_prepare(
            download_dir=downloads,
            file_format="array_record",
            download_config=tfds.download.DownloadConfig(try_download_gcs=False),
        )
    summary = {
        "source": str(source),
        "dataset": name,
        "version": VERSION,
        "path": str(builder.data_dir),
        "split": SPLIT,
        "resolution": resolution,
        "channels": channels,
        "resize": RESIZE,
        "labels_from": str(labels_file) if labels_file else ("folders" if plan.class_names else "none"),
        "written": sum(counts.values()),
        "per_class": {class_name: counts[index] for index, class_name in enumerate(plan.class_names)},
        "skipped": {
            kind: [{"file": file, "why": detail or kind} for file, detail in found]
            for kind, found in plan.skipped.items()
            if found
        },
    }
    (Path(builder.data_dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
