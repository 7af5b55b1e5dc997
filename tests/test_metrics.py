"""FID, KID, IS and precision/recall against closed forms and brute-force references."""

import numpy as np
import pytest
import scipy.linalg

from genimg_jax.metrics import fid, inception_score, kid, precision_recall


def test_fid_of_commuting_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    a, b = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_fid_of_general_gaussians_matches_scipy_sqrtm():
    """The textbook form with a general matrix square root of the (non-symmetric) product, a different route."""
    rng = np.random.default_rng(1)
    m1, m2 = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(5), m2 @ m2.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert fid.frechet_distance(np.ones(5), s1, np.ones(5), s1) == pytest.approx(0.0, abs=1e-8)


def test_streamed_moments_equal_the_batch_mean_and_covariance():
    features = np.random.default_rng(2).standard_normal((103, 7)) * 3.0 + 5.0
    moments = fid.FeatureMoments(7)
    for start in range(0, 103, 10):
        moments.update(features[start : start + 10])
    mean, covariance = moments.mean_and_covariance()
    np.testing.assert_allclose(mean, features.mean(0), rtol=1e-12)
    np.testing.assert_allclose(covariance, np.cov(features, rowvar=False), rtol=1e-10)


def test_fid_with_singular_covariances_is_finite_and_near_zero_for_one_set():
    """Fewer samples than dimensions: singular covariances, where a plain sqrtm can fail."""
    features = np.random.default_rng(3).standard_normal((10, 32))
    value = fid.fid_from_features(features, features)
    assert np.isfinite(value) and abs(value) < 1e-3


def test_fid_estimate_approaches_the_population_value():
    rng = np.random.default_rng(4)
    a, b = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 1.0])
    x = rng.standard_normal((200_000, 3)) * np.sqrt(a)
    y = rng.standard_normal((200_000, 3)) * np.sqrt(b) + 1.0
    expected = 3.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert fid.fid_from_features(x, y) == pytest.approx(expected, rel=0.02)


def test_mmd_matches_a_brute_force_double_sum():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((5, 3)) + 0.5

    def k(u, v):
        return (u @ v / 3 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(6) for j in range(6) if i != j) / 30
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(x[i], y[j]) for i in range(6) for j in range(5)) / 30
    assert kid.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_is_unbiased_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(6)
    # Small sets, where the biased estimator (diagonal included) is clearly positive.
    estimates = [kid.mmd2_unbiased(rng.standard_normal((10, 4)), rng.standard_normal((10, 4))) for _ in range(2000)]
    standard_error = np.std(estimates) / np.sqrt(len(estimates))
    assert abs(np.mean(estimates)) < 4 * standard_error
    x, y = rng.standard_normal((10, 4)), rng.standard_normal((10, 4))
    kxx, kyy = kid.polynomial_kernel(x, x), kid.polynomial_kernel(y, y)
    biased = kxx.mean() + kyy.mean() - 2 * kid.polynomial_kernel(x, y).mean()
    assert biased > kid.mmd2_unbiased(x, y) + 0.1

    same_mean, same_std = kid.kernel_inception_distance(
        rng.standard_normal((500, 4)), rng.standard_normal((500, 4)), num_subsets=20, subset_size=200
    )
    shifted_mean, _ = kid.kernel_inception_distance(
        rng.standard_normal((500, 4)), rng.standard_normal((500, 4)) + 1.0, num_subsets=20, subset_size=200
    )
    assert abs(same_mean) < 3 * same_std + 1e-3 and shifted_mean > 20 * (abs(same_mean) + same_std)


def test_inception_score_of_confident_uniform_predictions_is_the_number_of_classes():
    logits = np.full((100, 10), -50.0)
    logits[np.arange(100), np.arange(100) % 10] = 50.0
    mean, std = inception_score.inception_score(logits, num_splits=10)
    assert mean == pytest.approx(10.0, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    collapsed = np.zeros((100, 10))
    collapsed[:, 3] = 50.0
    assert inception_score.inception_score(collapsed, num_splits=5)[0] == pytest.approx(1.0, rel=1e-9)


def test_knn_radii_match_sorting():
    points = np.random.default_rng(7).standard_normal((40, 3))
    distances = ((points[:, None] - points[None]) ** 2).sum(-1)
    np.testing.assert_allclose(precision_recall.knn_radii(points, 3), np.sort(distances, axis=1)[:, 3], atol=1e-10)


def test_precision_recall_of_identical_and_far_apart_sets():
    points = np.random.default_rng(8).standard_normal((200, 5))
    assert precision_recall.precision_recall(points, points.copy(), k=3) == (1.0, 1.0)
    assert precision_recall.precision_recall(points, points + 100.0, k=3) == (0.0, 0.0)
    # Generated samples inside a tenth of the real support: high precision, low recall.
    precision, recall = precision_recall.precision_recall(points, points[:20] * 0.5, k=3)
    assert precision > 0.9 and recall < 0.5
