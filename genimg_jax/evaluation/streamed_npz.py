"""An `.npz` written one batch at a time, so that a set of N images never sits in host memory whole.

An `.npz` is a zip of `.npy` members, and `np.savez` needs every array at once. Here the large array's member is
streamed batch by batch (uncompressed and zip64, as `np.savez` writes), the small arrays follow, and the file
appears under its name only when complete; `np.load` reads it like any other.
"""

from __future__ import annotations

import pathlib
import zipfile

import numpy as np


class StreamedNpz:
    """`path` holding array `name` of `shape` and `dtype`, filled by `append` in order, plus the small arrays of
    `close`."""

    def __init__(self, path: str | pathlib.Path, name: str, shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.shape, self.dtype = pathlib.Path(path), tuple(shape), np.dtype(dtype)
        self._temporary = self.path.with_name(self.path.name + ".tmp")
        self._zip = zipfile.ZipFile(self._temporary, "w", zipfile.ZIP_STORED, allowZip64=True)
        self._member = self._zip.open(f"{name}.npy", "w", force_zip64=True)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_1_0(self._member, header)
        self._rows = 0

    def append(self, rows: np.ndarray) -> None:
        """The next rows of the large array (shape[1:] and dtype as declared)."""
        if rows.shape[1:] != self.shape[1:] or rows.dtype != self.dtype or self._rows + len(rows) > self.shape[0]:
            raise ValueError(f"rows {rows.dtype} {rows.shape} after {self._rows} do not fit {self.dtype} {self.shape}")
        self._member.write(np.ascontiguousarray(rows).tobytes())
        self._rows += len(rows)

    def close(self, **arrays: np.ndarray) -> None:
        """Add the small `arrays` and put the complete file in place; every row must have been appended."""
        if self._rows != self.shape[0]:
            raise ValueError(f"{self.path}: {self._rows} of {self.shape[0]} rows were written")
        self._member.close()
        for key, value in arrays.items():
            with self._zip.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
        self._zip.close()
        self._temporary.replace(self.path)
