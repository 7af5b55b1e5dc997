"""A workdir's identity: the resolved config it saves and reads back (`config.json`), and the refusal to resume
a workdir whose checkpoints belong to a different model or data layout.

Restoring the checkpoints of another config either fails deep inside Orbax (other shapes) or, worse, succeeds and
silently mixes two runs (same shapes, other loss or data). The config a run used is saved as `config.json` in its
workdir; before resuming, the keys that define the train state and the data it sees are compared with the new
config. Keys that only say how long or how visibly to train (`train.steps`, logging and checkpoint intervals,
evaluation) may change, so a finished run can be extended. A key the saved config lacks was added to the
codebase after that run: it reads as its `base_config()` default (the behaviour the run had), or None.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections

from genimg_jax.config import MOVED_KEYS, ConfigError, base_config
from genimg_jax.training.paths import as_path

# Dotted keys, or prefixes ending in '.', whose values must match for a checkpoint to be resumed.
IDENTITY_KEYS = (
    "method",
    "seed",
    "model.",
    "optim.",
    "loss.",
    "augment.",
    "data.source",
    "data.degradation",
    "data.unpaired_source",
    "data.direction",
    "data.resolution",
    "data.channels",
    "data.random_flip",
    "train.batch_size",
)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def _defines_state(key: str) -> bool:
    return any(key.startswith(k) if k.endswith(".") else key == k for k in IDENTITY_KEYS)


def identity_differences(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (saved value, new value)} for the state-defining keys that differ; a key `saved` lacks reads as
    its `base_config()` default, one missing from both sides as None."""
    saved_flat = {**_flatten(json.loads(base_config().to_json_best_effort())), **_flatten(saved)}
    new_flat = _flatten(new)
    keys = sorted(k for k in saved_flat.keys() | new_flat.keys() if _defines_state(k))
    # JSON turns tuples into lists; compare both sides in their JSON form.
    saved_flat, new_flat = json.loads(json.dumps(saved_flat)), json.loads(json.dumps(new_flat))
    return {k: (saved_flat.get(k), new_flat.get(k)) for k in keys if saved_flat.get(k) != new_flat.get(k)}


def resolved_config_text(config: ml_collections.ConfigDict) -> str:
    """The JSON text of `config` as `config.json` holds it; its hash identifies a config (`sha256sum config.json`)."""
    return config.to_json_best_effort(indent=2, sort_keys=True) + "\n"


def save_resolved_config(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> None:
    (as_path(workdir) / "config.json").write_text(resolved_config_text(config))


def read_saved_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
    """The config a run saved in `workdir`; FileNotFoundError if there is none, ConfigError if it is not JSON."""
    path = as_path(workdir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; is {workdir} the workdir of a training run?")
    try:
        return ml_collections.ConfigDict(json.loads(path.read_text()))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON ({error})") from None


def check_resumable(workdir: str | os.PathLike, config: ml_collections.ConfigDict) -> None:
    """Raise ConfigError if `workdir/config.json` describes another model/data layout than `config`."""
    if not (as_path(workdir) / "config.json").exists():
        return
    try:
        saved = read_saved_config(workdir).to_dict()
    except ConfigError as error:
        raise ConfigError(f"{error}; cannot tell which run its checkpoints are") from None
    differences = identity_differences(saved, json.loads(config.to_json_best_effort()))
    if differences:
        listed = "; ".join(_difference(key, old, new) for key, (old, new) in differences.items())
        raise ConfigError(
            f"workdir {workdir} holds checkpoints of a different run ({listed}); "
            f"use another --workdir, or the saved values to resume"
        )


def _difference(key: str, saved: Any, new: Any) -> str:
    """One state-defining key that differs; a key the config no longer has because it moved says where to."""
    if new is None and key in MOVED_KEYS:
        moved_to = ", ".join(f"config.{replacement}" for replacement in MOVED_KEYS[key])
        return f"config.{key}: saved {saved!r}, since moved to {moved_to}"
    return f"config.{key}: saved {saved!r}, now {new!r}"
