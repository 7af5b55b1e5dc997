"""Improved precision and recall (Kynkäänniemi et al. 2019) from k-nearest-neighbour feature manifolds.

Each set's manifold is the union of balls around its points with radius the distance to the point's k-th
nearest neighbour within the set. Precision: the fraction of generated samples inside the real manifold;
recall: the fraction of real samples inside the generated manifold.
"""

import numpy as np

_ROWS = 1024  # distance matrices are built this many rows at a time, so memory stays O(rows x N)


def pairwise_squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    distances = (x * x).sum(1)[:, None] - 2.0 * x @ y.T + (y * y).sum(1)[None, :]
    return np.maximum(distances, 0.0)


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Squared distance of every point to its k-th nearest other point of the same set."""
    if len(features) <= k:
        raise ValueError(f"k-NN radii with k={k} need more than {k} points, got {len(features)}")
    radii = []
    for start in range(0, len(features), _ROWS):
        distances = pairwise_squared_distances(features[start : start + _ROWS], features)
        radii.append(np.partition(distances, k, axis=1)[:, k])  # column 0 of the order is the point itself
    return np.concatenate(radii)


def manifold_coverage(manifold: np.ndarray, radii: np.ndarray, queries: np.ndarray) -> float:
    """Fraction of `queries` within the k-NN ball of at least one point of `manifold`."""
    inside = [
        (pairwise_squared_distances(queries[start : start + _ROWS], manifold) <= radii[None, :]).any(axis=1)
        for start in range(0, len(queries), _ROWS)
    ]
    return float(np.concatenate(inside).mean())


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = 3) -> tuple[float, float]:
    precision = manifold_coverage(real, knn_radii(real, k), generated)
    recall = manifold_coverage(generated, knn_radii(generated, k), real)
    return precision, recall
