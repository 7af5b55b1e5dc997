"""`folder:PATH` — a directory tree of PNG/JPEG files, indexed at open and decoded per example on access.

Layout rules, chosen to match how image folders are usually shipped:
- If `PATH` has split folders (`train`, `test`, `validation`, `val`), `PATH/<split>` serves that split and a
  split without its folder is an error; without split folders the whole folder serves every split.
- If every image lies inside a subdirectory, the sorted top-level subdirectory names are the classes;
  if any image lies directly in the folder, the data is unlabeled (`num_classes == 0`, labels 0).
- Files are found recursively and sorted by relative path, so indices (and therefore shuffles) are the same
  on every machine; hidden files and folders (leading '.') are skipped.
- Files that are not images (by suffix) are skipped and counted in one warning line on stderr. Grayscale,
  RGBA, palette and 16-bit images are always converted (`images.pil_pixels`).

Opening lists and sorts the files and decodes none, so a large folder opens in about a second in every process
and on every restart. A corrupt or truncated file, or one smaller than the resolution, is therefore found when
an example first reads it: per `bad_images` ("error" | "skip") and `small_images` ("upscale" | "skip") it stops
the run with one line naming the file, or the example takes the next usable file in index order (wrapping)
in its place, with its label, and one warning line per bad file. The replacement depends only on the files, so
batches stay the same for any thread count, host layout or resume; `len` counts the bad files too. To find
every bad file before a long run, prepare the folder with `python -m genimg_jax.tools.dataset_tool` (it decodes
each file once, lists those it leaves out, and the `tfds:` source it writes is the faster one to read).
`checked=True` (the translate mode, `folder_captions`, whose outputs and captions belong to one file each)
instead decodes every image at open, on a thread pool, and leaves the bad ones out (`usable_images`).
"""

import os
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath
from typing import BinaryIO

import numpy as np
from PIL import Image

from genimg_jax.data.errors import DataError
from genimg_jax.data.images import fit_image, pil_pixels
from genimg_jax.data.sources import example, labelled_image_fields

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Folder names read as splits rather than classes.
SPLIT_NAMES = frozenset({"train", "test", "validation", "val"})
BAD_IMAGE_POLICIES = ("error", "skip")
SMALL_IMAGE_POLICIES = ("upscale", "skip")
NOT_AN_IMAGE, UNDECODABLE, TOO_SMALL = "not an image", "cannot be decoded", "smaller than the resolution"


def decode_file(path: Path, file: BinaryIO | None = None) -> np.ndarray:
    """Pixels of one image file (see `pil_pixels`), read from `file` if given (e.g. a zip member) else from `path`;
    DataError naming the file if it cannot be decoded."""
    try:
        with Image.open(path if file is None else file) as image:
            image.load()
            return pil_pixels(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot decode image file '{path}': {type(error).__name__}: {error}") from error


def _checked_file(path: Path, resolution: int, columns: int) -> tuple[np.ndarray | None, tuple[str, str] | None]:
    """(pixels or None, (kind, detail) of what is wrong or None) of one image file holding `columns` images side
    by side."""
    try:
        pixels = decode_file(path)
    except DataError as error:
        return None, (UNDECODABLE, str(error.__cause__))
    height, width = pixels.shape[:2]
    if min(height, width // columns) < resolution:
        return pixels, (TOO_SMALL, f"{width}x{height}")
    return pixels, None


def problem_summary(problems: dict[str, list[tuple[PurePath | str, str]]]) -> str:
    """'2 cannot be decoded (e.g. a.png: ...), 1 not an image (e.g. notes.txt)' for a one-line message."""
    parts = []
    for kind, found in problems.items():
        if found:
            example_path, detail = found[0]
            parts.append(f"{len(found)} {kind} (e.g. '{example_path}'{': ' + detail if detail else ''})")
    return ", ".join(parts)


def split_root(path: str, split: str, where: str) -> Path:
    """The folder that serves `split`: PATH/<split> if PATH has split folders, else PATH itself."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder '{root}' is missing or not a directory {where}")
    split_folders = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name in SPLIT_NAMES)
    if split in split_folders:
        return root / split
    if split_folders:  # never let another split's images stand in for this one
        raise DataError(f"image folder '{root}' has split folders {split_folders} but none named '{split}' {where}")
    return root


def _visible_below(folder: str, rel: PurePath) -> Iterator[PurePath]:
    """The files below `folder` (at `rel`) outside hidden files and folders; one `scandir` per folder, whose
    entries know their type without a `stat` per file. Links to folders are not followed (as `Path.rglob`)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from _visible_below(entry.path, rel / entry.name)
            elif entry.is_file():
                yield rel / entry.name


def visible_files(root: Path, where: str) -> list[Path]:
    """Every file below `root` outside hidden files and folders, relative to it, sorted by path."""
    found = sorted((Path(rel) for rel in _visible_below(str(root), PurePath())), key=Path.as_posix)
    if not found:
        raise DataError(f"image folder '{root}' is empty {where}")
    return found


def _find_problems(
    root: Path, found: list[Path], resolution: int, small_images: str, columns: int
) -> dict[str, list[tuple[Path, str]]]:
    """{kind: [(file, detail)]} of the files left out: not images, undecodable, and (if skipped) too small."""
    candidates = [rel for rel in found if rel.suffix.lower() in IMAGE_SUFFIXES]
    problems = {NOT_AN_IMAGE: [(rel, "") for rel in found if rel.suffix.lower() not in IMAGE_SUFFIXES]}
    problems |= {UNDECODABLE: [], TOO_SMALL: []}
    with ThreadPoolExecutor(max_workers=4) as pool:  # PIL decoders release the GIL
        checks = list(pool.map(lambda rel: _checked_file(root / rel, resolution, columns)[1], candidates))
    for rel, problem in zip(candidates, checks, strict=True):
        if problem and (problem[0] == UNDECODABLE or small_images == "skip"):
            problems[problem[0]].append((rel, problem[1]))
    return problems


def _check_policies(bad_images: str, small_images: str) -> None:
    if bad_images not in BAD_IMAGE_POLICIES or small_images not in SMALL_IMAGE_POLICIES:
        raise DataError(f"bad_images={bad_images!r} / small_images={small_images!r} are not valid policies")


def _warn_skipped(root: Path, used: int, found: int, problems: dict[str, list[tuple[Path, str]]]) -> None:
    print(
        f"warning: image folder '{root}': using {used} of {found} files; skipped {problem_summary(problems)}",
        file=sys.stderr,
        flush=True,
    )


def listed_images(
    root: Path, bad_images: str, small_images: str, where: str, companion_suffix: str = ""
) -> tuple[list[Path], dict[str, list[Path]]]:
    """(the image files below `root` by suffix, {NOT_AN_IMAGE: the other files}), relative to `root`, found without
    opening any file (the policies apply on access, module docstring); `companion_suffix` as in `usable_images`."""
    _check_policies(bad_images, small_images)
    found = [rel for rel in visible_files(root, where) if not companion_suffix or rel.suffix != companion_suffix]
    files = [rel for rel in found if rel.suffix.lower() in IMAGE_SUFFIXES]
    problems = {NOT_AN_IMAGE: [(rel, "") for rel in found if rel.suffix.lower() not in IMAGE_SUFFIXES]}
    if not files:
        raise DataError(f"image folder '{root}' has no usable images: {problem_summary(problems)} {where}")
    if problems[NOT_AN_IMAGE]:
        _warn_skipped(root, len(files), len(found), problems)
    return files, {NOT_AN_IMAGE: [rel for rel, _ in problems[NOT_AN_IMAGE]]}


def usable_images(
    root: Path,
    resolution: int,
    bad_images: str,
    small_images: str,
    where: str,
    companion_suffix: str = "",
    columns: int = 1,
) -> tuple[list[Path], dict[str, list[Path]]]:
    """(the image files below `root` to use, {problem kind: files left out}), relative to `root`, after decoding
    every one and applying the policies (`checked=True` in the module docstring); an image file may hold `columns`
    images side by side (the size check then applies to each). Files ending in `companion_suffix` (captions
    beside their images) are expected, so neither used nor counted."""
    _check_policies(bad_images, small_images)
    found = [rel for rel in visible_files(root, where) if not companion_suffix or rel.suffix != companion_suffix]
    problems = _find_problems(root, found, resolution, small_images, columns)
    if problems[UNDECODABLE] and bad_images == "error":
        raise DataError(
            f"image folder '{root}': {problem_summary({UNDECODABLE: problems[UNDECODABLE]})}; remove or fix "
            f"them, or set config.data.bad_images=skip to leave them out {where}"
        )
    skipped = {rel for found_problems in problems.values() for rel, _ in found_problems}
    files = [rel for rel in found if rel not in skipped]  # non-images are among the skipped
    if not files:
        raise DataError(f"image folder '{root}' has no usable images: {problem_summary(problems)} {where}")
    if skipped:
        _warn_skipped(root, len(files), len(found), problems)
    return files, {kind: [rel for rel, _ in found_problems] for kind, found_problems in problems.items()}


def class_labels(files: Sequence[PurePath]) -> tuple[tuple[str, ...], list[int]]:
    """(class names, label per file): the top-level folders if every file lies in one, else no classes."""
    if not all(len(rel.parts) > 1 for rel in files):
        return (), [0] * len(files)
    class_names = tuple(sorted({rel.parts[0] for rel in files}))
    index = {name: i for i, name in enumerate(class_names)}
    return class_names, [index[rel.parts[0]] for rel in files]


class FolderSource:
    """Images under one folder; see the module docstring for the layout and the checks."""

    def __init__(
        self,
        path: str,
        split: str,
        resolution: int,
        channels: int,
        bad_images: str = "error",
        small_images: str = "upscale",
        companion_suffix: str = "",
        checked: bool = False,
    ):
        self._where = f"(source '{'folder_captions' if companion_suffix else 'folder'}:{path}')"
        self.root = split_root(path, split, self._where)
        policies = (bad_images, small_images, self._where, companion_suffix)
        if checked:
            self._files, self.skipped = usable_images(self.root, resolution, *policies)
        else:
            self._files, self.skipped = listed_images(self.root, *policies)
        self._resolution, self._channels = resolution, channels
        self._bad_images, self._small_images = bad_images, small_images
        self._bad: set[int] = set()  # indices whose file was found bad and is replaced (policy "skip")
        self._lock = threading.Lock()
        self.class_names, self._labels = class_labels(self._files)
        self.num_classes = len(self.class_names)
        self.fields = labelled_image_fields(resolution, channels)

    def __getstate__(self) -> dict:
        """Pickled for grain's worker processes, without the lock (each worker makes its own)."""
        return {key: value for key, value in self.__dict__.items() if key != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    @property
    def files(self) -> tuple[PurePath, ...]:
        """The image files, relative to the split's folder, in index order."""
        return tuple(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        for offset in range(len(self._files)):
            candidate = (index + offset) % len(self._files)
            pixels = None if candidate in self._bad else self._pixels(candidate)
            if pixels is not None:
                return example(fit_image(pixels, self._resolution, self._channels), self._labels[candidate])
        raise DataError(f"image folder '{self.root}' has no usable images: every file is bad {self._where}")

    def _pixels(self, index: int) -> np.ndarray | None:
        """The decoded file `index`, or None if it is bad and the policy replaces it (recorded, warned once)."""
        rel = self._files[index]
        pixels, problem = _checked_file(self.root / rel, self._resolution, 1)
        if problem is None or (problem[0] == TOO_SMALL and self._small_images == "upscale"):
            return pixels
        kind, detail = problem
        if kind == UNDECODABLE and self._bad_images == "error":
            raise DataError(
                f"image folder '{self.root}': '{rel}' {kind} ({detail}); remove or fix it, or set "
                f"config.data.bad_images=skip to use the next image in its place {self._where}"
            )
        with self._lock:
            first = index not in self._bad
            self._bad.add(index)
        if first:
            print(
                f"warning: image folder '{self.root}': '{rel}' {kind} ({detail}); its examples use the next usable "
                f"image",
                file=sys.stderr,
                flush=True,
            )
        return None
