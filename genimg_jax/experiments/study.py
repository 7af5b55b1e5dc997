"""A study: a base config, cells of overrides (a grid and/or named sets), seeds and the metrics to report, expanded
into runs whose workdirs are named by a hash of their resolved config.

Naming a workdir by what it computes (not by the cell's place in the study) is what makes a study editable: a cell
whose resolved config did not change keeps its directory, so only new or changed cells train again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from genimg_jax.config import ConfigError, apply_overrides, load_config, load_python_file

# Keys that say where things are on one machine, not what a run computes: they stay out of the workdir hash, so a
# run launched on a cluster (other data and weights paths) lands in the same directory as one launched here.
MACHINE_KEYS = ("data.data_dir", "eval.inception_weights", "eval.cache_dir", "distributed.")
BEST_BY_DIRECTIONS = ("min", "max")


@dataclasses.dataclass(frozen=True)
class Published:
    """A number from a paper, with where it was printed and how it was measured."""

    value: float
    paper: str
    table: str
    protocol: str


@dataclasses.dataclass(frozen=True)
class Cell:
    """Overrides ({"key": value}) on the study's config, or on another config file (`config`, "file.py:variant")."""

    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    config: str | None = None


@dataclasses.dataclass(frozen=True)
class Study:
    """What a study file defines as `STUDY`.

    Cells are the named `cells` combined with every point of `grid` (their product), or either alone. Each cell runs
    once per seed. `best_by=("fid", "min")` reports every metric at the evaluation where that metric was best;
    by default the final evaluation counts. `published[cell][metric]` puts a paper's number beside ours.
    """

    name: str
    config: str
    metrics: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    grid: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
    cells: Mapping[str, Cell | Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    best_by: tuple[str, str] | None = None
    published: Mapping[str, Mapping[str, Published]] = dataclasses.field(default_factory=dict)
    description: str = ""


@dataclasses.dataclass(frozen=True)
class CellSpec:
    name: str
    config: str
    overrides: tuple[str, ...]  # "key=value", the study's then the cell's
    fields: dict[str, Any]  # the swept grid fields and their values in this cell


@dataclasses.dataclass(frozen=True)
class Run:
    cell: CellSpec
    seed: int
    overrides: tuple[str, ...]  # the cell's plus seed=N
    config: ml_collections.ConfigDict
    run_id: str
    workdir: pathlib.Path


def override_text(key: str, value: Any) -> str:
    """`key=value` as the config parser reads it back (booleans as true/false, strings bare, the rest as literals)."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, str):
        text = value
    else:
        text = repr(value)
    return f"{key}={text}"


def load_study(path: str | pathlib.Path) -> Study:
    """The `STUDY` defined by the python file at `path`."""
    path = pathlib.Path(path)
    module = load_python_file(str(path), "study")
    study = getattr(module, "STUDY", None)
    if not isinstance(study, Study):
        raise ConfigError(f"study file {str(path)!r} must define STUDY = Study(...)")
    return study


def cell_specs(study: Study) -> list[CellSpec]:
    """Every cell of `study`: each named cell with each grid point, in file order."""
    keys = list(study.grid)
    for key in keys:
        if not study.grid[key]:
            raise ConfigError(f"study {study.name}: grid field {key!r} has no values")
    points = [dict(zip(keys, values, strict=True)) for values in itertools.product(*study.grid.values())]
    named = {name: cell if isinstance(cell, Cell) else Cell(dict(cell)) for name, cell in study.cells.items()}
    base = [override_text(key, value) for key, value in study.overrides.items()]
    specs = []
    for (name, cell), point in itertools.product(named.items() or [("", Cell())], points):
        point_name = ", ".join(override_text(key.rsplit(".", 1)[-1], value) for key, value in point.items())
        overrides = [*base, *(override_text(k, v) for k, v in cell.overrides.items())]
        overrides += [override_text(key, value) for key, value in point.items()]
        label = ", ".join(part for part in (name, point_name) if part) or "base"
        specs.append(CellSpec(label, cell.config or study.config, tuple(overrides), point))
    return specs


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for name, value in tree.items():
        flat.update(_flatten(value, f"{prefix}{name}.") if isinstance(value, dict) else {f"{prefix}{name}": value})
    return flat


def _is_machine_key(key: str) -> bool:
    return any(key.startswith(k) if k.endswith(".") else key == k for k in MACHINE_KEYS)


def config_hash(config: ml_collections.ConfigDict) -> str:
    """12 hex digits of the resolved config, without `MACHINE_KEYS`."""
    flat = _flatten(json.loads(config.to_json_best_effort()))
    kept = {key: value for key, value in flat.items() if not _is_machine_key(key)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:12]


def expand(study: Study, root: pathlib.Path, extra_overrides: Sequence[str] = ()) -> list[Run]:
    """Every (cell, seed) of `study` as a run in `root/runs/<hash>`, each config resolved (a bad key fails here,
    before anything runs). `extra_overrides` ("key=value", e.g. machine paths) apply to every run."""
    if study.best_by is not None and study.best_by[1] not in BEST_BY_DIRECTIONS:
        raise ConfigError(
            f"study {study.name}: best_by={study.best_by!r} must be (metric, one of {BEST_BY_DIRECTIONS})"
        )
    if not study.seeds:
        raise ConfigError(f"study {study.name}: seeds must name at least one seed")
    runs, owners = [], {}
    for cell in cell_specs(study):
        for seed in study.seeds:
            overrides = (*cell.overrides, *extra_overrides, f"seed={seed}")
            try:
                config = apply_overrides(load_config(cell.config), overrides)
            except ConfigError as error:
                raise ConfigError(f"study {study.name}, cell {cell.name!r}: {error}") from None
            if config.eval.every <= 0:
                raise ConfigError(
                    f"study {study.name}, cell {cell.name!r}: config.eval.every={config.eval.every} must be > 0 "
                    "so that the run writes the eval_<step>.json files the table reads"
                )
            run_id = config_hash(config)
            if run_id in owners:
                raise ConfigError(
                    f"study {study.name}: cells {owners[run_id]!r} and {cell.name!r} resolve to one config"
                )
            owners[run_id] = cell.name
            runs.append(Run(cell, seed, overrides, config, run_id, root / "runs" / run_id))
    return runs


def is_finished(run: Run) -> bool:
    """Whether the run's final checkpoint is committed: the trainer saves it last, after the final evaluation."""
    return (run.workdir / "checkpoints" / str(run.config.train.steps)).is_dir()
