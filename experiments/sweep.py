"""Sweeps: one config, a grid of overrides, one run per grid point, and a results table over all runs.

    python -m experiments.sweep --config=configs/vae.py --workdir=runs/beta_sweep \
        --grid model.beta=0.5,1,4 --grid seed=0,1 [--dry_run] [--config.train.steps=500]

Runs go one after another on this machine (each in `WORKDIR/<name>/`, resumable like any run); `--dry_run`
prints their command lines instead, for a cluster's job array. Afterwards `WORKDIR/results.md` and
`results.csv` hold one row per run: its overrides and the last logged value of every metric, train and eval.
"""

import argparse
import csv
import itertools
import json
import pathlib
import subprocess
import sys
from collections.abc import Sequence

from genimg_jax.cli import split_override_args
from genimg_jax.config import ConfigError, apply_overrides, load_config


def grid_points(grid: Sequence[str]) -> list[list[str]]:
    """`["a=1,2", "b=x"]` -> `[["a=1", "b=x"], ["a=2", "b=x"]]`: the cartesian product of the axes."""
    axes = []
    for axis in grid:
        key, sep, values = axis.partition("=")
        if not sep or not values:
            raise ConfigError(f"grid axis {axis!r} must look like KEY=V1,V2,...")
        axes.append([f"{key}={value}" for value in values.split(",")])
    return [list(point) for point in itertools.product(*axes)]


def run_name(point: Sequence[str]) -> str:
    """A directory name that says which grid point a run is, e.g. `model.beta=4,seed=1`."""
    return ",".join(point).replace("/", "_") or "base"


def command(config: str, workdir: pathlib.Path, overrides: Sequence[str]) -> list[str]:
    return [
        sys.executable, "-m", "genimg_jax.main", f"--config={config}", f"--workdir={workdir}",
        *(f"--config.{override}" for override in overrides),
    ]  # fmt: skip


def last_values(metrics_path: pathlib.Path) -> dict[str, float]:
    """The last logged value of every metric in a run's metrics.jsonl, as `split/name`."""
    values: dict[str, float] = {}
    if not metrics_path.exists():
        return values
    for line in metrics_path.read_text().splitlines():
        record = json.loads(line)
        split = record.pop("split")
        values["step"] = max(values.get("step", 0), record.pop("step"))
        values.update({f"{split}/{name}": value for name, value in record.items()})
    return values


def write_tables(rows: list[dict[str, object]], workdir: pathlib.Path) -> None:
    """results.csv and results.md with one row per run and a column per metric seen in any run."""
    columns = list(dict.fromkeys(column for row in rows for column in row))
    with open(workdir / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

    def cell(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(column, "")) for column in columns) + " |" for row in rows]
    (workdir / "results.md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    overrides, rest = split_override_args(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m experiments.sweep", description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--workdir", required=True, type=pathlib.Path)
    parser.add_argument("--grid", action="append", default=[], help="KEY=V1,V2,... (repeatable)")
    parser.add_argument("--dry_run", action="store_true", help="print the runs' command lines only")
    args = parser.parse_args(rest)
    try:
        points = grid_points(args.grid)
        for point in points:  # every grid point must be a valid config before anything runs
            apply_overrides(load_config(args.config), [*overrides, *point])
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    rows = []
    for point in points:
        run_dir = args.workdir / run_name(point)
        line = command(args.config, run_dir, [*overrides, *point])
        if args.dry_run:
            print(" ".join(line))
            continue
        print(f"== run {run_name(point)}", flush=True)
        status = subprocess.run(line, check=False).returncode
        rows.append({"run": run_name(point), "status": status, **last_values(run_dir / "metrics.jsonl")})
    if rows:
        args.workdir.mkdir(parents=True, exist_ok=True)
        write_tables(rows, args.workdir)
        print(f"results: {args.workdir / 'results.md'}")
    return 0 if all(row["status"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
