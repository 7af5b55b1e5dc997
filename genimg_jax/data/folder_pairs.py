"""`folder_pairs:PATH` — paired images for translation (pix2pix), in either of the two layouts pix2pix ships:

- `PATH/A` and `PATH/B`, two folders whose images pair up by relative path without the suffix (`A/x/1.png` with
  `B/x/1.jpg`); an image on one side without a partner on the other is a DataError naming it. Each side may have
  split folders of its own (`PATH/A/train`), or the split folder may hold both (`PATH/train/A`).
- otherwise a folder of side-by-side AB images, as pix2pix's `combine_A_and_B.py` writes them: the left half of
  each image is A, the right half B.

Each image is fitted like a `folder:` image (converted, centre-cropped, resized to the resolution). With
`direction` "AtoB" (pix2pix's default) field `source` is A and `image` is B; "BtoA" swaps them. Files are found,
decoded and checked as in `folder_source` (same split folders, hidden files, `bad_images` / `small_images`
policies; for AB images the size check applies to each half); a pair with a file left out on either side is left
out. Top-level subfolders of A (or of the AB folder) give class labels, as for `folder:`.
"""

from pathlib import Path

import numpy as np

from genimg_jax.data.errors import DataError
from genimg_jax.data.folder_source import NOT_AN_IMAGE, class_labels, decode_file, split_root, usable_images
from genimg_jax.data.images import fit_image
from genimg_jax.data.sources import paired_image_fields

DIRECTIONS = ("AtoB", "BtoA")


def _by_name(files: list[Path], where: str) -> dict[str, Path]:
    """{relative path without suffix: file}; two files of one name are ambiguous partners."""
    named: dict[str, Path] = {}
    for rel in files:
        key = rel.with_suffix("").as_posix()
        if key in named:
            raise DataError(f"'{named[key]}' and '{rel}' have the same name, so their partner is ambiguous {where}")
        named[key] = rel
    return named


class FolderPairsSource:
    """Pairs of images under one folder; see the module docstring for the layouts."""

    def __init__(
        self,
        path: str,
        split: str,
        resolution: int,
        channels: int,
        bad_images: str = "error",
        small_images: str = "upscale",
        direction: str = "AtoB",
    ):
        if direction not in DIRECTIONS:
            raise DataError(f"direction={direction!r} is not one of {list(DIRECTIONS)}")
        where = f"(source 'folder_pairs:{path}')"
        root = split_root(path, split, where)
        policies = (resolution, bad_images, small_images, where)
        if (root / "A").is_dir() and (root / "B").is_dir():
            roots = split_root(str(root / "A"), split, where), split_root(str(root / "B"), split, where)
            pairs = _pair_up(roots, [usable_images(side, *policies) for side in roots], where)
            self._pairs = [(roots[0] / a, roots[1] / b) for a, b in pairs]
            labelled = [a for a, _ in pairs]
        else:
            files, _ = usable_images(root, *policies, columns=2)
            self._pairs = [(root / rel, None) for rel in files]
            labelled = files
        self.class_names, self._labels = class_labels(labelled)
        self.num_classes = len(self.class_names)
        self.fields = paired_image_fields(resolution, channels)
        self._resolution, self._channels, self._swap = resolution, channels, direction == "BtoA"

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        a_path, b_path = self._pairs[index]
        if b_path is None:
            pixels = decode_file(a_path)
            half = pixels.shape[1] // 2
            a, b = pixels[:, :half], pixels[:, half : 2 * half]
        else:
            a, b = decode_file(a_path), decode_file(b_path)
        a, b = (fit_image(side, self._resolution, self._channels) for side in (a, b))
        source, image = (b, a) if self._swap else (a, b)
        return {"image": image, "label": np.int32(self._labels[index]), "source": source}


def _pair_up(
    roots: tuple[Path, Path], usable: list[tuple[list[Path], dict[str, list[Path]]]], where: str
) -> list[tuple[Path, Path]]:
    """(A file, B file) pairs, sorted by name, of the files both sides use; every image file on either side,
    whether used or left out by a policy, must have a partner."""
    named = [
        _by_name(files + [rel for kind, left_out in skipped.items() if kind != NOT_AN_IMAGE for rel in left_out], where)
        for files, skipped in usable
    ]
    for side, other in ((0, 1), (1, 0)):
        lonely = sorted(named[side].keys() - named[other].keys())
        if lonely:
            raise DataError(
                f"'{roots[side] / named[side][lonely[0]]}' has no partner in '{roots[other]}' ({len(lonely)} such "
                f"files; pairs match by relative path without the suffix) {where}"
            )
    used = [set(files) for files, _ in usable]
    return [(a, named[1][name]) for name, a in sorted(named[0].items()) if a in used[0] and named[1][name] in used[1]]
