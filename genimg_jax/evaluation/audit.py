"""Memorization audit: how close are generated samples to their nearest training images in feature space?

A sample much closer to a training image than held-out test images typically are is a candidate copy. The
reference scale is the distribution of test-to-nearest-train distances: a test image is by construction not a
copy, so the fraction of samples below its median (and below its 5th percentile, a stricter line) says how
often the model lands closer to the training set than unseen data does. The report has a picture of the most
suspicious samples beside their nearest training images, and a histogram of both distance distributions.

Samples stream through `NeighbourSearch` one batch at a time: of each it keeps only its nearest-train distances and
indices, and the images of the most suspicious samples so far; host memory does not grow with the number of samples
beyond those few numbers per sample.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import numpy as np
from etils import epath
from PIL import Image, ImageDraw

from genimg_jax.evaluation import grids
from genimg_jax.evaluation.provenance import save_png
from genimg_jax.metrics.precision_recall import pairwise_squared_distances

_ROWS = 1024


def nearest_neighbours(queries: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices), each (len(queries), k): the k nearest `keys` of every query, nearest first."""
    all_distances, all_indices = [], []
    for start in range(0, len(queries), _ROWS):
        squared = pairwise_squared_distances(queries[start : start + _ROWS], keys)
        indices = np.argpartition(squared, min(k, len(keys) - 1), axis=1)[:, :k]
        part = np.take_along_axis(squared, indices, axis=1)
        order = np.argsort(part, axis=1)
        all_indices.append(np.take_along_axis(indices, order, axis=1))
        all_distances.append(np.sqrt(np.take_along_axis(part, order, axis=1)))
    return np.concatenate(all_distances), np.concatenate(all_indices)


class NeighbourSearch:
    """Nearest training neighbours of samples added batch by batch (see the module docstring)."""

    def __init__(self, train_features: np.ndarray, neighbours: int = 5, pictured: int = 16):
        self.train_features, self.neighbours, self.pictured = train_features, neighbours, pictured
        self._distances: list[np.ndarray] = []
        self._indices: list[np.ndarray] = []
        self.count = 0
        self.suspicious = np.zeros(0, np.int64)  # sample numbers of the most suspicious samples, nearest first
        self.suspicious_images: np.ndarray | None = None  # their uint8 NHWC images
        self._suspicious_nearest = np.zeros(0)

    def add(self, images: np.ndarray, features: np.ndarray) -> None:
        """Search the neighbours of one batch of uint8 `images` with their `features`."""
        distances, indices = nearest_neighbours(features, self.train_features, self.neighbours)
        self._distances.append(distances)
        self._indices.append(indices)
        numbers = np.concatenate([self.suspicious, self.count + np.arange(len(images))])
        nearest = np.concatenate([self._suspicious_nearest, distances[:, 0]])
        candidates = images if self.suspicious_images is None else np.concatenate([self.suspicious_images, images])
        chosen = np.lexsort((numbers, nearest))[: self.pictured]  # nearest first; ties by sample number
        self.suspicious, self._suspicious_nearest = numbers[chosen], nearest[chosen]
        self.suspicious_images = candidates[chosen]
        self.count += len(images)

    def neighbours_of_all(self) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices), each (samples, neighbours): every sample's nearest training features so far."""
        return np.concatenate(self._distances), np.concatenate(self._indices)


def memorization_summary(sample_distances: np.ndarray, test_distances: np.ndarray) -> dict[str, float]:
    """Fractions of samples whose nearest-train distance is below the median / 5th percentile of test images'."""
    median, low = float(np.median(test_distances)), float(np.percentile(test_distances, 5))
    return {
        "test_to_train_median_distance": median,
        "test_to_train_5th_percentile_distance": low,
        "sample_to_train_median_distance": float(np.median(sample_distances)),
        "fraction_closer_than_typical_test": float(np.mean(sample_distances < median)),
        "fraction_closer_than_5th_percentile_test": float(np.mean(sample_distances < low)),
    }


def neighbour_picture(samples: np.ndarray, train_image: Callable[[int], np.ndarray], indices: np.ndarray) -> np.ndarray:
    """uint8 grid: each row is one sample followed by its nearest training images (`indices[row]`)."""
    tiles = [np.stack([samples[row], *(train_image(int(j)) for j in indices[row])]) for row in range(len(samples))]
    return grids.make_grid(np.concatenate(tiles), columns=1 + indices.shape[1])


def histogram_picture(
    sample_distances: np.ndarray, test_distances: np.ndarray, threshold: float, size=(640, 360), bins: int = 40
) -> Image.Image:
    """Overlaid histograms (densities) of sample->train (red) and test->train (blue) nearest distances, with the
    typical test distance as a vertical line."""
    width, height = size
    margin = 40
    top = max(sample_distances.max(), test_distances.max()) * 1.05
    edges = np.linspace(0.0, top, bins + 1)
    densities = [np.histogram(d, edges)[0] / len(d) for d in (sample_distances, test_distances)]
    scale = (height - 2 * margin) / max(d.max() for d in densities)
    picture = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(picture)
    bar = (width - 2 * margin) / bins
    for density, color, shift in zip(densities, ((220, 60, 60), (60, 90, 220)), (0.0, 0.5), strict=True):
        for index, value in enumerate(density):
            left = margin + (index + shift) * bar
            draw.rectangle([left, height - margin - value * scale, left + bar / 2, height - margin], fill=color)
    line = margin + threshold / top * (width - 2 * margin)
    draw.line([line, margin / 2, line, height - margin], fill="black", width=2)
    draw.line([margin, height - margin, width - margin, height - margin], fill="black")
    draw.text(
        (margin, 5), "nearest-train distance: samples (red), test images (blue); line = test median", fill="black"
    )
    draw.text((margin, height - margin + 8), "0", fill="black")
    draw.text((width - margin - 30, height - margin + 8), f"{top:.3g}", fill="black")
    return picture


def write_report(
    directory: epath.Path,
    search: NeighbourSearch,
    train_image: Callable[[int], np.ndarray],
    test_features: np.ndarray,
    protocol: dict,
    provenance: Mapping[str, str],
) -> dict:
    """Write `report.json`, `neighbours.png` (most suspicious samples first) and `distances.png`, both carrying
    the samples' `provenance`; returns the report. `train_image(i)` is the uint8 HWC training image of
    `search.train_features[i]` (only the pictured neighbours are loaded)."""
    distances, indices = search.neighbours_of_all()
    test_distances = nearest_neighbours(test_features, search.train_features, 1)[0][:, 0]
    summary = memorization_summary(distances[:, 0], test_distances)
    directory.mkdir(parents=True, exist_ok=True)
    samples, suspicious = search.suspicious_images, search.suspicious
    grid = neighbour_picture(samples, train_image, indices[suspicious])
    scale = max(1, 64 // samples.shape[1])
    save_png(grid.repeat(scale, 0).repeat(scale, 1), directory / "neighbours.png", provenance)
    histogram = histogram_picture(distances[:, 0], test_distances, summary["test_to_train_median_distance"])
    save_png(histogram, directory / "distances.png", provenance)
    report = {
        **summary,
        "num_samples": search.count,
        "num_train": len(search.train_features),
        "num_test": len(test_features),
        "pictured": [
            {"sample": int(i), "train_neighbours": indices[i].tolist(), "distances": distances[i].tolist()}
            for i in suspicious
        ],
        "protocol": protocol,
    }
    (directory / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
