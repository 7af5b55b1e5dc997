"""U-Net building blocks: what the normalisation keeps of its input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genimg_jax.models import unet


@pytest.mark.parametrize("features", [4, 16, 24, 64, 384])
def test_group_norm_keeps_the_channels_relative_means(features):
    """Shifting channels by different constants must change the output (instance norm would erase it).

    With one channel per group the normalised output is invariant to any per-channel shift, and an eps-network
    cannot pass its input's per-image mean to its output; this is what made narrow DDPM U-Nets sample grey noise.
    """
    norm = unet.group_norm(features)
    h = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, features))
    params = norm.init(jax.random.PRNGKey(1), h)
    shift = jnp.where(jnp.arange(features) % 2 == 0, 1.0, -1.0)  # alternating: within any group of >= 2 channels
    change = norm.apply(params, h + shift) - norm.apply(params, h)
    assert float(jnp.max(jnp.abs(change))) > 0.1
    assert features // norm.num_groups >= min(4, features)


@pytest.mark.parametrize("features", [128, 256, 384, 512])
def test_group_norm_has_ddpm_32_groups_at_paper_widths(features):
    assert unet.group_norm(features).num_groups == 32


def test_group_norm_normalises_each_group_to_zero_mean_unit_variance():
    features, groups = 16, 4
    h = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (3, 5, 5, features))) * 3.0 + 2.0
    norm = unet.group_norm(features)
    out = np.asarray(norm.apply(norm.init(jax.random.PRNGKey(3), h), h))
    grouped = h.reshape(3, 25, groups, features // groups)
    mean = grouped.mean(axis=(1, 3), keepdims=True)
    std = np.sqrt(grouped.var(axis=(1, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(out, ((grouped - mean) / std).reshape(h.shape), atol=1e-4)
