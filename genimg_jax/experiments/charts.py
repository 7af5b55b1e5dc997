"""Small PNG charts of a study, drawn with matplotlib (off-screen): lines over steps, and points with a spread over
categories. Each chart comes back as a PIL image, so a report can tile and save them like sample grids."""

from __future__ import annotations

import dataclasses
import math
import pathlib

import matplotlib

matplotlib.use("Agg")  # no display: charts are written to files
import matplotlib.pyplot as plt  # after the backend is chosen
from PIL import Image

FIGURE_INCHES, DPI = (4.8, 3.2), 100


@dataclasses.dataclass(frozen=True)
class Series:
    """A named set of points; `spreads` (low, high) per point draws error bars, `dots` extra points per x (seeds),
    `point_labels` a text beside each point (the parameter a trade-off curve is traced by)."""

    label: str
    xs: list[float]
    ys: list[float]
    spreads: list[tuple[float, float]] | None = None
    dots: list[list[float]] | None = None
    joined: bool = True
    point_labels: list[str] | None = None


def chart(
    series: list[Series], title: str, x_label: str, categories: list[str] | None = None, y_label: str = ""
) -> Image.Image:
    """One chart; with `categories`, x = 0, 1, ... are labelled by them. Empty series are left out."""
    series = [one for one in series if one.xs]
    figure, axes = plt.subplots(figsize=FIGURE_INCHES, dpi=DPI)
    try:
        axes.set_title(title, fontsize=10, loc="left")
        axes.set_xlabel(x_label, fontsize=9)
        axes.set_ylabel(y_label, fontsize=9)
        axes.grid(True, color="0.9")
        axes.tick_params(labelsize=8)
        if not series:
            axes.text(0.5, 0.5, "no data", color="gray", ha="center", va="center", transform=axes.transAxes)
        for index, one in enumerate(series):
            color = f"C{index % 10}"
            if one.spreads:
                low = [y - spread[0] for y, spread in zip(one.ys, one.spreads, strict=True)]
                high = [spread[1] - y for y, spread in zip(one.ys, one.spreads, strict=True)]
                axes.errorbar(one.xs, one.ys, yerr=[low, high], fmt="none", ecolor=color, capsize=3, lw=1)
            marker = "o" if one.spreads or not one.joined else ""
            style = "-" if one.joined else "none"
            axes.plot(one.xs, one.ys, linestyle=style, marker=marker, markersize=4, color=color, label=one.label)
            for x, dots in zip(one.xs, one.dots or [], strict=False):
                axes.plot([x + 0.08] * len(dots), dots, "o", mfc="none", markersize=3, color=color)
            for x, y, text in zip(one.xs, one.ys, one.point_labels or [], strict=False):
                axes.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)
        if categories:
            axes.set_xticks(range(len(categories)), categories)
            axes.set_xlim(-0.5, len(categories) - 0.5)
        if len(series) > 1:
            axes.legend(fontsize=7, loc="best")
        figure.tight_layout()
        figure.canvas.draw()
        return Image.frombuffer("RGBA", figure.canvas.get_width_height(), figure.canvas.buffer_rgba()).convert("RGB")
    finally:
        plt.close(figure)


def side_by_side(images: list[Image.Image], columns: int = 2) -> Image.Image:
    """Charts tiled in rows of `columns`."""
    rows = math.ceil(len(images) / columns)
    width = max(image.width for image in images)
    height = max(image.height for image in images)
    sheet = Image.new("RGB", (width * min(columns, len(images)), height * rows), "white")
    for index, image in enumerate(images):
        sheet.paste(image, ((index % columns) * width, (index // columns) * height))
    return sheet


def save(image: Image.Image, path: pathlib.Path) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    return path
