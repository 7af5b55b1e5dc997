"""Small PNG charts drawn with Pillow (matplotlib is not a dependency of this project): lines over steps, and
points with a spread over categories."""

from __future__ import annotations

import dataclasses
import math
import pathlib

from PIL import Image, ImageDraw, ImageFont

COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
          (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))  # fmt: skip
WIDTH, HEIGHT = 480, 320
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 28, 44
LEGEND_ROW = 16


@dataclasses.dataclass(frozen=True)
class Series:
    """A named set of points; `spreads` (low, high) per point draws error bars, `dots` extra points per x (seeds)."""

    label: str
    xs: list[float]
    ys: list[float]
    spreads: list[tuple[float, float]] | None = None
    dots: list[list[float]] | None = None
    joined: bool = True


def _font(size: int = 12) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2 or 5 times a power of ten)."""
    if not high > low:
        low, high = low - 1.0, high + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    return [first + i * step for i in range(math.ceil((high - first) / step) + 1)]


def tick_labels(ticks: list[float]) -> list[str]:
    """The shortest labels (4 significant digits or more) that tell every tick apart."""
    for digits in range(4, 12):
        labels = [f"{tick:.{digits}g}" for tick in ticks]
        if len(set(labels)) == len(labels):
            return labels
    return labels


def chart(series: list[Series], title: str, x_label: str, categories: list[str] | None = None) -> Image.Image:
    """One chart; with `categories`, x = 0, 1, ... are labelled by them. Empty series are left out."""
    series = [s for s in series if s.xs]
    legend_height = LEGEND_ROW * len(series) if len(series) > 1 else 0
    image = Image.new("RGB", (WIDTH, HEIGHT + legend_height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN_LEFT, 6), title, fill="black", font=_font(13))
    ys = [y for s in series for y in s.ys] + [v for s in series for pair in s.spreads or [] for v in pair]
    ys += [v for s in series for dots in s.dots or [] for v in dots]
    xs = [x for s in series for x in s.xs]
    if not ys:
        draw.text((MARGIN_LEFT, HEIGHT // 2), "no data", fill="gray", font=_font())
        return image
    y_ticks = nice_ticks(min(ys), max(ys))
    x_low, x_high = (
        (-0.5, len(categories) - 0.5) if categories else (min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1)
    )
    left, right, top, bottom = MARGIN_LEFT, WIDTH - MARGIN_RIGHT, MARGIN_TOP, HEIGHT - MARGIN_BOTTOM

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        px = left + (x - x_low) / (x_high - x_low) * (right - left)
        return px, bottom - (y - y_ticks[0]) / (y_ticks[-1] - y_ticks[0]) * (bottom - top)

    for tick, text in zip(y_ticks, tick_labels(y_ticks), strict=True):
        _, py = to_pixel(x_low, tick)
        draw.line([(left, py), (right, py)], fill=(230, 230, 230))
        draw.text((left - 6, py), text, fill="black", font=_font(11), anchor="rm")
    x_ticks = list(range(len(categories))) if categories else nice_ticks(x_low, x_high)
    for tick, text in zip(x_ticks, categories or tick_labels(x_ticks), strict=True):
        if x_low <= tick <= x_high:
            px, _ = to_pixel(tick, y_ticks[0])
            draw.line([(px, bottom), (px, bottom + 4)], fill="black")
            draw.text((px, bottom + 6), text, fill="black", font=_font(11), anchor="ma")
    draw.rectangle([left, top, right, bottom], outline="black")
    draw.text(((left + right) / 2, HEIGHT - 14), x_label, fill="black", font=_font(12), anchor="mm")

    for index, one in enumerate(series):
        color = COLORS[index % len(COLORS)]
        points = [to_pixel(x, y) for x, y in zip(one.xs, one.ys, strict=True)]
        if one.joined and len(points) > 1:
            draw.line(points, fill=color, width=2)
        for point_index, (px, py) in enumerate(points):
            if one.spreads:
                low, high = one.spreads[point_index]
                (_, p_low), (_, p_high) = to_pixel(0, low), to_pixel(0, high)
                draw.line([(px, p_low), (px, p_high)], fill=color, width=1)
                draw.line([(px - 4, p_low), (px + 4, p_low)], fill=color)
                draw.line([(px - 4, p_high), (px + 4, p_high)], fill=color)
            for dot in (one.dots or [[]] * len(points))[point_index]:
                _, p_dot = to_pixel(0, dot)
                draw.ellipse([px + 5, p_dot - 2, px + 9, p_dot + 2], outline=color)
            radius = 3 if one.spreads or not one.joined else 0
            if radius:
                draw.ellipse([px - radius, py - radius, px + radius, py + radius], fill=color)
        if legend_height:
            y = HEIGHT + index * LEGEND_ROW
            draw.rectangle([left, y + 4, left + 10, y + 12], fill=color)
            draw.text((left + 16, y + 8), one.label, fill="black", font=_font(11), anchor="lm")
    return image


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
