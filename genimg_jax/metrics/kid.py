"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with the cubic polynomial kernel.

k(x, y) = (x·y / d + 1)³. Unlike FID the estimator is unbiased, so small sample counts do not shift it;
it is averaged over random subsets, and the spread over subsets is reported beside the mean.
"""

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² estimate (diagonal terms of the within-set kernels left out)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def kernel_inception_distance(
    features1: np.ndarray, features2: np.ndarray, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(mean, std) of MMD² over `num_subsets` random subsets of min(subset_size, sizes) from each set."""
    size = min(subset_size, len(features1), len(features2))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(features1)} and {len(features2)}")
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(
            features1[rng.choice(len(features1), size, replace=False)],
            features2[rng.choice(len(features2), size, replace=False)],
        )
        for _ in range(num_subsets)
    ]
    return float(np.mean(values)), float(np.std(values))
