"""Fréchet Inception Distance (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to features.

Moments are accumulated in float64 batch by batch, so features of any number of samples stream through
without being held at once, and the matrix square root is taken in float64 (float32 covariances of 2048-d
features lose the small eigenvalues FID depends on) by symmetric eigendecompositions (see `frechet_distance`).
"""

import dataclasses

import numpy as np


@dataclasses.dataclass
class FeatureMoments:
    """Running count, sum and sum of outer products of feature vectors (float64)."""

    dim: int
    count: int = 0
    total: np.ndarray | None = None
    outer: np.ndarray | None = None

    def __post_init__(self):
        if self.total is None:
            self.total = np.zeros(self.dim)
            self.outer = np.zeros((self.dim, self.dim))

    def update(self, features: np.ndarray) -> None:
        features = np.asarray(features, np.float64).reshape(-1, self.dim)
        self.count += len(features)
        self.total += features.sum(axis=0)
        self.outer += features.T @ features

    def mean_and_covariance(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample mean and unbiased covariance (ddof=1, as the standard implementations use)."""
        if self.count < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {self.count}")
        mean = self.total / self.count
        covariance = (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)
        return mean, covariance


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix; rounding's tiny negative eigenvalues -> 0."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)), in float64.

    tr((S1 S2)^1/2) is the sum of square roots of the eigenvalues of S1^1/2 S2 S1^1/2, which has the same
    eigenvalues as S1 S2 but is symmetric PSD: two symmetric eigendecompositions replace the general `sqrtm`,
    with no complex parts and no failure on the singular covariances of fewer samples than dimensions.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_root = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two feature sets held in memory (tests, small sets)."""
    stats = []
    for features in (features1, features2):
        moments = FeatureMoments(features.shape[-1])
        moments.update(features)
        stats.extend(moments.mean_and_covariance())
    return frechet_distance(*stats)
