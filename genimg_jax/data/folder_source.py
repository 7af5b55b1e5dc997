"""`folder:PATH` — a directory tree of PNG/JPEG files, decoded lazily.

Layout rules, chosen to match how image folders are usually shipped:
- If `PATH` has split folders (`train`, `test`, `validation`, `val`), `PATH/<split>` serves that split and a
  split without its folder is an error; without split folders the whole folder serves every split.
- If every image lies inside a subdirectory, the sorted top-level subdirectory names are the classes;
  if any image lies directly in the folder, the data is unlabeled (`num_classes == 0`, labels 0).
- Files are found recursively and sorted by relative path, so indices (and therefore shuffles) are the same
  on every machine; hidden files and folders (leading '.') are skipped.
Decoding happens in `__getitem__` so that opening a folder of a million images costs one directory walk.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from genimg_jax.data.errors import DataError
from genimg_jax.data.images import fit_image
from genimg_jax.data.sources import example

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
# Folder names read as splits rather than classes.
SPLIT_NAMES = frozenset({"train", "test", "validation", "val"})


class FolderSource:
    """Images under one folder; see the module docstring for the layout."""

    def __init__(self, path: str, split: str, resolution: int, channels: int):
        root = Path(path).expanduser()
        if not root.is_dir():
            raise DataError(f"image folder '{root}' is missing or not a directory (source 'folder:{path}')")
        split_folders = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name in SPLIT_NAMES)
        if split in split_folders:
            root = root / split
        elif split_folders:  # never let another split's images stand in for this one
            raise DataError(
                f"image folder '{root}' has split folders {split_folders} but none named '{split}' "
                f"(source 'folder:{path}')"
            )
        found = (file.relative_to(root) for file in root.rglob("*") if file.is_file())
        self._files = sorted(
            (
                rel
                for rel in found
                if rel.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in rel.parts)
            ),
            key=Path.as_posix,
        )
        if not self._files:
            raise DataError(f"image folder '{root}' contains no PNG or JPEG files (source 'folder:{path}')")
        self._root = root
        self._mode = "L" if channels == 1 else "RGB"
        self._resolution = resolution
        self._channels = channels
        if all(len(rel.parts) > 1 for rel in self._files):
            self.class_names = tuple(sorted({rel.parts[0] for rel in self._files}))
            index = {name: i for i, name in enumerate(self.class_names)}
            self._labels = [index[rel.parts[0]] for rel in self._files]
        else:
            self.class_names = ()
            self._labels = [0] * len(self._files)
        self.num_classes = len(self.class_names)

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        path = self._root / self._files[index]
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert(self._mode))
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise DataError(f"cannot decode image file '{path}': {error}") from error
        return example(fit_image(pixels, self._resolution, self._channels), self._labels[index])
