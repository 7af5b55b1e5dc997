"""A study's numbers: each run's final (or best) evaluation, aggregated over seeds per cell, beside the published
values, with the protocol the evaluation files record; written as Markdown and CSV.

Seeds aggregate as mean ± sample standard deviation (n - 1 in the denominator) with min and max, as "Are GANs
Created Equal?" asks: a distribution over seeds, not the best run.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib
from typing import Any

import numpy as np

from genimg_jax.experiments.study import CellSpec, Published, Run, Study, is_finished


@dataclasses.dataclass(frozen=True)
class RunResult:
    run: Run
    finished: bool
    step: int | None  # the evaluation the values come from
    values: dict[str, float]
    protocol: str


@dataclasses.dataclass(frozen=True)
class Stats:
    n: int
    mean: float
    std: float | None  # None for a single seed
    min: float
    max: float


@dataclasses.dataclass(frozen=True)
class CellRow:
    cell: CellSpec
    runs: list[RunResult]
    stats: dict[str, Stats | None]  # per metric; None when no finished run reported it
    published: dict[str, Published]
    protocols: list[str]  # the distinct protocols of its finished runs


def eval_records(workdir: pathlib.Path) -> list[dict[str, Any]]:
    """Every `eval_<step>.json` of a run ({"step", "values", "protocol"}), by step."""
    records = [json.loads(path.read_text()) for path in workdir.glob("eval_*.json")]
    return sorted(records, key=lambda record: record["step"])


def describe_protocol(protocol: dict[str, Any], eval_split: str) -> str:
    """One line from an evaluation file's protocol: feature net and its weights, samples, reference, resolution."""
    held_out = f"held-out metrics on the {eval_split!r} split"
    if not protocol:
        return held_out
    reference = protocol["reference"]
    return (
        f"{protocol['feature_net']} net (weights {protocol['feature_net_weights_sha256']}), "
        f"{protocol['num_samples']} samples (drawn from the run's seed) vs {reference['num_images']} images "
        f"of {reference['dataset']}/{reference['split']}, {protocol['resolution']}px; {held_out}"
    )


def collect(run: Run, best_by: tuple[str, str] | None) -> RunResult:
    """The values of the run's final evaluation, or of the one where `best_by` (metric, min|max) was best."""
    finished = is_finished(run)
    records = eval_records(run.workdir) if finished else []
    if best_by is not None:
        metric, direction = best_by
        records = [record for record in records if metric in record["values"]]
        chosen = (min if direction == "min" else max)(records, key=lambda r: r["values"][metric], default=None)
    else:
        chosen = records[-1] if records else None
    if chosen is None:
        return RunResult(run, finished, None, {}, "")
    protocol = describe_protocol(chosen["protocol"], run.config.data.eval_split)
    return RunResult(run, finished, chosen["step"], chosen["values"], protocol)


def seed_stats(values: list[float]) -> Stats | None:
    if not values:
        return None
    array = np.asarray(values, np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else None
    return Stats(len(array), float(array.mean()), std, float(array.min()), float(array.max()))


def cell_rows(study: Study, runs: list[Run]) -> list[CellRow]:
    results = [collect(run, study.best_by) for run in runs]
    rows = []
    cells = {run.cell.name: run.cell for run in runs}  # in study order
    for cell in cells.values():
        mine = [result for result in results if result.run.cell.name == cell.name]
        reported = [result for result in mine if result.step is not None]
        stats = {
            metric: seed_stats([r.values[metric] for r in reported if metric in r.values]) for metric in study.metrics
        }
        protocols = list(dict.fromkeys(result.protocol for result in reported))
        rows.append(CellRow(cell, mine, stats, dict(study.published.get(cell.name, {})), protocols))
    return rows


def _number(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.4g}"


def format_stats(stats: Stats | None) -> str:
    if stats is None:
        return "—"
    if stats.std is None:
        return _number(stats.mean)
    return f"{_number(stats.mean)} ± {_number(stats.std)} [{_number(stats.min)}, {_number(stats.max)}]"


def _published_metrics(study: Study, rows: list[CellRow]) -> list[str]:
    return [metric for metric in study.metrics if any(metric in row.published for row in rows)]


def protocol_notes(rows: list[CellRow]) -> dict[str, str]:
    """{protocol: "P1", ...} in order of appearance."""
    found = dict.fromkeys(protocol for row in rows for protocol in row.protocols)
    return {protocol: f"P{index}" for index, protocol in enumerate(found, 1)}


def table(study: Study, rows: list[CellRow]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the results table: cell and swept fields, seeds, each metric with published value and
    difference (ours - published) where there is one, and the protocol note."""
    fields = list(study.grid)
    with_cell = bool(study.cells) or not fields
    published = _published_metrics(study, rows)
    notes = protocol_notes(rows)
    header = [*(["cell"] if with_cell else []), *fields, "seeds"]
    for metric in study.metrics:
        header += [metric, *([f"{metric} published", f"Δ {metric}"] if metric in published else [])]
    header.append("protocol")
    body = []
    for row in rows:
        finished = sum(result.step is not None for result in row.runs)
        line = [*([row.cell.name] if with_cell else []), *(str(row.cell.fields[f]) for f in fields)]
        line.append(f"{finished}/{len(row.runs)}")
        for metric in study.metrics:
            stats, paper = row.stats[metric], row.published.get(metric)
            line.append(format_stats(stats))
            if metric in published:
                difference = stats.mean - paper.value if stats and paper else None
                line += [f"{paper.value:g}" if paper else "", f"{difference:+.3g}" if difference is not None else ""]
        line.append(", ".join(notes[protocol] for protocol in row.protocols))
        body.append(line)
    return header, body


def published_sources(rows: list[CellRow]) -> list[str]:
    return [
        f"{row.cell.name}, {metric} {paper.value:g}: {paper.paper}, {paper.table}; protocol: {paper.protocol}"
        for row in rows
        for metric, paper in row.published.items()
    ]


def markdown(study: Study, rows: list[CellRow]) -> str:
    header, body = table(study, rows)
    picked = f"best evaluation by {study.best_by[0]} ({study.best_by[1]})" if study.best_by else "final evaluation"
    lines = [f"# {study.name}", ""]
    lines += [study.description.strip(), ""] if study.description.strip() else []
    lines += [
        f"Per cell over seeds: mean ± sample std [min, max] of each run's {picked}; seeds: finished/all.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(line) + " |" for line in body),
        "",
    ]
    lines += [f"- {note}: {protocol}" for protocol, note in protocol_notes(rows).items()]
    if sources := published_sources(rows):
        lines += ["", "Published values:", *(f"- {source}" for source in sources)]
    return "\n".join(lines) + "\n"


def write_csvs(study: Study, rows: list[CellRow], directory: pathlib.Path) -> list[pathlib.Path]:
    """`results.csv` (one row per cell and metric) and `runs.csv` (one row per run, every value it reported)."""
    fields = list(study.grid)
    results_path, runs_path = directory / "results.csv", directory / "runs.csv"
    with open(results_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["cell", *fields, "metric", "n", "mean", "std", "min", "max", "published", "difference",
                         "published_source", "published_protocol", "protocol"])  # fmt: skip
        for row in rows:
            for metric in study.metrics:
                stats, paper = row.stats[metric], row.published.get(metric)
                numbers = [stats.n, stats.mean, stats.std, stats.min, stats.max] if stats else [0, "", "", "", ""]
                source = [paper.value, stats.mean - paper.value if stats else "", f"{paper.paper}, {paper.table}",
                          paper.protocol] if paper else ["", "", "", ""]  # fmt: skip
                numbers = ["" if value is None else value for value in numbers]
                writer.writerow([row.cell.name, *(row.cell.fields[f] for f in fields), metric, *numbers, *source,
                                 " | ".join(row.protocols)])  # fmt: skip
    with open(runs_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["cell", *fields, "seed", "run_id", "finished", "step", *study.metrics, "protocol"])
        for row in rows:
            for result in row.runs:
                writer.writerow([row.cell.name, *(row.cell.fields[f] for f in fields), result.run.seed,
                                 result.run.run_id, result.finished, result.step if result.step is not None else "",
                                 *(result.values.get(m, "") for m in study.metrics), result.protocol])  # fmt: skip
    return [results_path, runs_path]
