"""What a Glorot-uniform initialisation (DDPM's variance_scaling(fan_avg, uniform), EDM's xavier_uniform) shows."""

import math

import jax
import numpy as np
import pytest
import scipy.stats


def conv_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """fan_in, fan_out of a (..., in, out) kernel: channels times the receptive field (TF's and torch's rule)."""
    receptive_field = math.prod(shape[:-2])
    return receptive_field * shape[-2], receptive_field * shape[-1]


def glorot_bound(fans: tuple[int, int], scale: float = 1.0) -> float:
    return scale * math.sqrt(6 / sum(fans))


def kernels(params) -> dict[str, np.ndarray]:
    """Every leaf named "kernel", by its module path."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {"/".join(k.key for k in path[:-1]): np.asarray(leaf) for path, leaf in leaves if path[-1].key == "kernel"}


def assert_biases_zero_and_norms_identity(params) -> None:
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = path[-1].key
        if name in ("bias", "scale"):
            np.testing.assert_array_equal(np.asarray(leaf), float(name == "scale"), err_msg=str(path))


def assert_uniform(bounded: dict[str, tuple[np.ndarray, float]]) -> None:
    """Each kernel ~ U(-bound, bound) (bound 0: exactly 0): within the bound; a large one (n >= 2000) reaching
    b (1 - 20/n) (missed with p = e^-20) with variance b^2/3 to 10% (its sd is 2%); and all kernels, divided by
    their bounds and pooled, pass a KS test against U(-1, 1)."""
    pooled = []
    for path, (value, bound) in bounded.items():
        if bound == 0:
            np.testing.assert_array_equal(value, 0.0, err_msg=path)
            continue
        assert np.abs(value).max() <= bound, path
        if value.size >= 2000:
            assert np.abs(value).max() > bound * (1 - 20 / value.size), path
            assert np.var(value) == pytest.approx(bound**2 / 3, rel=0.1), path
        pooled.append(value.ravel() / bound)
    assert scipy.stats.kstest(np.concatenate(pooled), scipy.stats.uniform(-1, 2).cdf).pvalue > 1e-3
