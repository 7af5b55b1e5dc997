"""U-Net building blocks: what the normalisation keeps of its input, DDPM's timestep embedding and initialisation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from init_statistics import assert_biases_zero_and_norms_identity, assert_uniform, conv_fans, glorot_bound, kernels

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


def ddpm_timestep_embedding(timesteps: np.ndarray, dim: int) -> np.ndarray:
    """hojonathanho/diffusion nn.py get_timestep_embedding, in numpy (even dims)."""
    half = dim // 2
    frequencies = np.exp(np.arange(half) * -(math.log(10_000) / (half - 1)))
    angles = timesteps.astype(np.float64)[:, None] * frequencies[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


@pytest.mark.parametrize("dim", [4, 32, 128])
def test_positional_embedding_is_ddpms_timestep_embedding(dim):
    timesteps = np.asarray([0, 1, 17, 500, 999])
    out = np.asarray(unet.positional_embedding(jnp.asarray(timesteps), dim))
    np.testing.assert_allclose(out, ddpm_timestep_embedding(timesteps, dim), atol=2e-4)  # sin(999) in float32
    np.testing.assert_allclose(out[1, dim // 2 - 1], math.sin(1e-4), rtol=1e-4)  # the last frequency is 1/10000


def ddpm_fans(path: str, shape: tuple[int, ...]) -> tuple[int, int]:
    """Attention q/k/v kernels are (in, heads, head_dim): Flax initialises them as the (in, out) matrix of a nin."""
    if path.endswith(("query", "key", "value")):
        return shape[0], math.prod(shape[1:])
    return conv_fans(shape)


def test_unet_initialisation_is_ddpms():
    """variance_scaling(1, fan_avg, uniform) everywhere (nn.py default_init), biases 0, and 0 (the reference's
    scale 1e-10) for each block's second conv, the attention output and the output conv."""
    network = unet.UNet(features=16, channel_multipliers=(1,), num_res_blocks=1, attention_resolutions=(4,))
    params = jax.jit(network.init)(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 3)), jnp.zeros((1,)))["params"]
    assert_biases_zero_and_norms_identity(params)
    output_conv = max(name for name in params if name.startswith("Conv_"))

    def starts_at_zero(path: str) -> bool:
        second_conv = path.startswith("ResBlock") and path.endswith("/Conv_1")
        return second_conv or path.endswith("/out") or path == output_conv

    bounded = {
        path: (w, 0.0 if starts_at_zero(path) else glorot_bound(ddpm_fans(path, w.shape)))
        for path, w in kernels(params).items()
    }
    assert sum(bound == 0 for _, bound in bounded.values()) == 5 + 4 + 1  # 5 ResBlocks, 4 attentions, the output
    assert_uniform(bounded)
