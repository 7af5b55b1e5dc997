"""One filesystem layer for everything a run reads and writes: a workdir is a local folder or a `gs://` bucket path.

`pathlib` turns `gs://b/run` into the local folder `gs:/b/run`, so every host of a pod would write its own copy.
`etils.epath` keeps the scheme and reaches the bucket through TensorFlow's gfile or, with `EPATH_USE_TF=false`,
fsspec's gcsfs (which honours `STORAGE_EMULATOR_HOST`, as the emulator test uses). An object store differs from a
disk in three ways that matter here: there is no atomic exclusive create, no append, and no recursive glob; the
helpers below name the one place each difference is handled.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from etils import epath


def as_path(path: str | os.PathLike) -> epath.Path:
    """`path` (a local path or a `scheme://` URL) as an epath.Path, local paths left as given (relative stays
    relative)."""
    return epath.Path(path)


def is_local(path: str | os.PathLike) -> bool:
    """Whether `path` is on a local (POSIX) file system rather than an object store such as gs://."""
    return "://" not in os.fspath(path)


def absolute(path: str | os.PathLike) -> epath.Path:
    """`path` made absolute if local (Orbax wants absolute directories); a URL is absolute already, and
    `Path.absolute()` would turn it into a local folder."""
    path = as_path(path)
    return path.absolute() if is_local(path) else path


def files_under(folder: str | os.PathLike) -> Iterator[epath.Path]:
    """Every file below `folder`, at any depth. epath refuses `rglob`, and its `walk` over fsspec names the folders
    without their `gs://`, so this descends by `iterdir`, which keeps `folder`'s form in every path it yields."""
    for child in as_path(folder).iterdir():
        if child.is_dir():
            yield from files_under(child)
        else:
            yield child


def append_text(path: epath.Path, text: str) -> None:
    """Append `text` to the file `path`, creating it. Object stores have no append: the object is rewritten whole,
    which suits the small logs this is for (metrics.jsonl, one write per log step)."""
    if is_local(path):
        with path.open("a") as file:
            file.write(text)
    else:
        path.write_text((path.read_text() if path.exists() else "") + text)
