"""A study's pictures and its report: each metric against each swept field (mean, min-max bar and every seed),
training curves and a sample grid per cell, and one HTML page that shows the table with all of them.

Everything goes into one folder (`<root>/report/`), and the page refers to its pictures by paths relative to
itself, so the folder can be copied or opened anywhere; only pictures that exist are named.
"""

from __future__ import annotations

import html
import json
import pathlib
import re
import shutil

from genimg_jax.evaluation.samples import sample_metrics_split
from genimg_jax.experiments import charts
from genimg_jax.experiments.results import CellRow, protocol_notes, published_sources, table
from genimg_jax.experiments.study import Study

CURVE_SPLIT = "train"


def slug(index: int, name: str) -> str:
    return f"{index:02d}_{re.sub(r'[^A-Za-z0-9_.=-]+', '_', name).strip('_') or 'base'}"


def _series_label(row: CellRow, fields: list[str], except_field: str) -> str:
    parts = [f"{f.rsplit('.', 1)[-1]}={row.cell.fields[f]}" for f in fields if f != except_field]
    return ", ".join(parts) or "all"


def metric_chart(study: Study, rows: list[CellRow], metric: str, field: str | None) -> charts.Image.Image:
    """`metric` against the values of grid `field` (a series per setting of the other fields), or against the
    cells when `field` is None."""
    fields = list(study.grid)
    if field is None:
        categories, groups = [row.cell.name for row in rows], {"": [(index, row) for index, row in enumerate(rows)]}
    else:
        categories = [str(value) for value in study.grid[field]]
        groups: dict[str, list[tuple[int, CellRow]]] = {}
        for row in rows:
            position = categories.index(str(row.cell.fields[field]))
            prefix = f"{row.cell.name.split(',')[0]}: " if study.cells else ""
            groups.setdefault(prefix + _series_label(row, fields, field), []).append((position, row))
    series = []
    for number, (label, members) in enumerate(groups.items()):
        offset = (number - (len(groups) - 1) / 2) * 0.12
        members = [(position, row) for position, row in members if row.stats[metric] is not None]
        series.append(
            charts.Series(
                label=label,
                xs=[position + offset for position, _ in members],
                ys=[row.stats[metric].mean for _, row in members],
                spreads=[(row.stats[metric].min, row.stats[metric].max) for _, row in members],
                dots=[[r.values[metric] for r in row.runs if metric in r.values] for _, row in members],
                joined=field is not None,
            )
        )
    title = f"{metric}: mean, min-max and seeds"
    return charts.chart(series, title, field or "cell", categories)


def _logged(workdir: pathlib.Path) -> list[dict]:
    path = workdir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def curves_chart(study: Study, row: CellRow) -> charts.Image.Image | None:
    """Per cell: each training loss and each study metric over steps, a line per seed."""
    logs = {result.run.seed: _logged(result.run.workdir) for result in row.runs}
    config = row.runs[0].run.config
    shown_splits = (CURVE_SPLIT, config.data.eval_split, sample_metrics_split(config))
    panels: dict[tuple[str, str], None] = {}
    for records in logs.values():
        for record in records:
            names = [n for n in record if ("loss" in n and record["split"] == CURVE_SPLIT) or n in study.metrics]
            panels.update({(record["split"], name): None for name in names if record["split"] in shown_splits})
    images = []
    for split, name in panels:
        series = []
        for seed, records in logs.items():
            points = [(r["step"], r[name]) for r in records if r["split"] == split and name in r]
            series.append(charts.Series(f"seed {seed}", [p[0] for p in points], [p[1] for p in points]))
        images.append(charts.chart(series, f"{row.cell.name}: {split}/{name}", "step"))
    return charts.side_by_side(images) if images else None


def latest_sample_grid(row: CellRow) -> pathlib.Path | None:
    for result in row.runs:
        grids = sorted((result.run.workdir / "samples").glob("step_*.png"))
        if grids:
            return grids[-1]
    return None


def write_pictures(study: Study, rows: list[CellRow], directory: pathlib.Path) -> dict[str, list[pathlib.Path]]:
    """{"metrics": [...], "curves:<cell>": [...], "grid:<cell>": [...]} of the PNGs written under `directory`."""
    written: dict[str, list[pathlib.Path]] = {"metrics": []}
    fields = list(study.grid) or [None]
    for metric in study.metrics:
        for field in fields:
            name = f"{metric}_vs_{field}" if field else f"{metric}_by_cell"
            path = directory / "plots" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
            written["metrics"].append(charts.save(metric_chart(study, rows, metric, field), path))
    for index, row in enumerate(rows):
        curves = curves_chart(study, row)
        name = slug(index, row.cell.name)
        written[f"curves:{row.cell.name}"] = (
            [charts.save(curves, directory / "curves" / f"{name}.png")] if curves else []
        )
        grid = latest_sample_grid(row)
        if grid:
            target = directory / "grids" / f"{name}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(grid, target)
        written[f"grid:{row.cell.name}"] = [target] if grid else []
    return written


def _image(path: pathlib.Path, directory: pathlib.Path, alt: str) -> str:
    return f'<img src="{html.escape(path.relative_to(directory).as_posix())}" alt="{html.escape(alt)}">'


def write_html(study: Study, rows: list[CellRow], directory: pathlib.Path, pictures: dict) -> pathlib.Path:
    header, body = table(study, rows)
    escape = html.escape
    parts = [
        "<!doctype html>",
        f"<html><head><meta charset='utf-8'><title>{escape(study.name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}img{margin:4px;image-rendering:pixelated}"
        "</style></head><body>",
        f"<h1>{escape(study.name)}</h1>",
        f"<p>{escape(study.description.strip())}</p>" if study.description.strip() else "",
        "<p>Per cell over seeds: mean ± sample std [min, max]; seeds: finished/all.</p>",
        "<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>",
        *("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in line) + "</tr>" for line in body),
        "</table><ul>",
        *(f"<li>{escape(note)}: {escape(protocol)}</li>" for protocol, note in protocol_notes(rows).items()),
        *(f"<li>{escape(source)}</li>" for source in published_sources(rows)),
        "</ul><h2>Metrics</h2>",
        *(_image(path, directory, path.stem) for path in pictures["metrics"] if path.exists()),
    ]
    for row in rows:
        shown = [p for p in pictures[f"curves:{row.cell.name}"] + pictures[f"grid:{row.cell.name}"] if p.exists()]
        parts += [f"<h2>{escape(row.cell.name)}</h2>", *(_image(path, directory, path.parent.name) for path in shown)]
    parts.append("</body></html>")
    path = directory / "report.html"
    path.write_text("\n".join(part for part in parts if part) + "\n")
    return path
