"""Checksums of a checkpoint step's files, written at save and verified at restore.

Orbax (0.12) checks no array data: TensorStore's zarr3 layout checksums only the shard index, and OCDBT data files
carry none, so a few flipped bytes in a committed step (bit rot, a bad copy) restore as if nothing happened and the
damage shows up later as NaN losses. `write_manifest` records the SHA-256 of every file of a step's items in
`checksums.json` inside the step folder, before Orbax commits the folder (so a committed step always has it);
`find_damage` reads every listed file again and names the first that is missing or differs.
"""

from __future__ import annotations

import hashlib
import json

from etils import epath

from genimg_jax.training.paths import as_path, files_under

MANIFEST = "checksums.json"


def file_digest(path: epath.Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def write_manifest(step_folder: epath.Path, items: tuple[str, ...]) -> None:
    """Record `{relative path: sha256}` of every file under `step_folder/<item>` in `step_folder/checksums.json`."""
    step_folder = as_path(step_folder)
    digests = {
        str(path.relative_to(step_folder)): file_digest(path)
        for item in items
        for path in sorted(files_under(step_folder / item))
    }
    (step_folder / MANIFEST).write_text(json.dumps({"sha256": digests}, indent=0, sort_keys=True) + "\n")


def manifest_digest(step_folder: epath.Path) -> str | None:
    """SHA-256 of the step's manifest, one hash that changes with any byte of its files; None without a manifest."""
    manifest = step_folder / MANIFEST
    return file_digest(manifest) if manifest.is_file() else None


def find_damage(step_folder: epath.Path) -> str | None:
    """What is wrong with `step_folder`'s files (the first missing or changed one), or None if all match.

    A step without a manifest (saved before checksums existed) is not checked.
    """
    manifest = step_folder / MANIFEST
    if not manifest.is_file():
        return None
    try:
        digests = json.loads(manifest.read_text())["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return f"{MANIFEST} is damaged"
    for name, expected in digests.items():
        path = step_folder / name
        if not path.is_file():
            return f"{name} is missing"
        if file_digest(path) != expected:
            return f"{name} differs from its checksum written at save (sha256)"
    return None
