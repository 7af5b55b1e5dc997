"""PixelCNN++'s likelihood (Salimans et al. 2017): a mixture of discretised logistics per pixel, channels linked
by linear autoregressive coefficients, for images in [-1, 1] on the uint8 grid.

A pixel's distribution is a mixture of `M` components; component m has, for each channel c, a logistic of mean
mu_c + sum_{j<c} a_{cj} x_j (R, then G given R, then B given R and G; a = tanh of the network's output) and scale
exp(log_s_c), integrated over the bin of width 2/255 around each of the 256 grey levels. The two edge bins extend
to -inf and +inf, so the 256 probabilities of a channel sum to one. The network emits, per pixel, the `M` mixture
logits, then `M` means, `M` log-scales per channel and `M` coefficients per channel pair, in that order
(`num_parameters`).
"""

import math

import jax
import jax.numpy as jnp

_HALF_BIN = 1.0 / 255.0  # 256 levels on [-1, 1]: bins of width 2/255
_MIN_LOG_SCALE = -7.0  # the reference's floor on log-scales
_EDGE = 0.999  # |x| above this is an edge bin (the grid's nearest inner values are +-253/255)
_MIN_BIN_MASS = 1e-5  # below it, the bin mass is taken as density at the centre times the bin width


def num_coefficients(channels: int) -> int:
    """Channel pairs (c, j < c) with a linear coefficient: 0 for grey, 3 for RGB."""
    return channels * (channels - 1) // 2


def num_parameters(channels: int, mixtures: int) -> int:
    """Network outputs per pixel: logits, means, log-scales and coefficients of `mixtures` components."""
    return mixtures * (1 + 2 * channels + num_coefficients(channels))


def _unpack(params: jax.Array, channels: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """(logits (..., M), means (..., C, M), log-scales (..., C, M), coefficients (..., K, M)) of outputs (..., P)."""
    mixtures = params.shape[-1] // (1 + 2 * channels + num_coefficients(channels))
    batch_shape = params.shape[:-1]
    logits, rest = params[..., :mixtures], params[..., mixtures:]
    rest = rest.reshape(*batch_shape, -1, mixtures)
    means = rest[..., :channels, :]
    log_scales = jnp.maximum(rest[..., channels : 2 * channels, :], _MIN_LOG_SCALE)
    coefficients = jnp.tanh(rest[..., 2 * channels :, :])
    return logits, means, log_scales, coefficients


def _conditional_means(means: jax.Array, coefficients: jax.Array, x: jax.Array) -> jax.Array:
    """Each channel's component means shifted by a_{cj} x_j for the channels j before it (x: (..., C))."""
    shifted = [means[..., 0, :]]
    pair = 0
    for c in range(1, means.shape[-2]):
        mean = means[..., c, :]
        for j in range(c):
            mean = mean + coefficients[..., pair, :] * x[..., j, None]
            pair += 1
        shifted.append(mean)
    return jnp.stack(shifted, axis=-2)


def log_prob_per_pixel(x: jax.Array, params: jax.Array) -> jax.Array:
    """log P(x) of each pixel (all its channels jointly), shape x.shape[:-1]; x (..., C) on the uint8 grid in [-1, 1].

    The branches are the reference's, chosen so that both sides of every `where` stay finite (no NaN gradients):
    the edge bins use the logistic's log-CDF, the inner bins the CDF difference unless it is below 1e-5, where the
    log-density at the bin centre plus log(bin width) replaces it.
    """
    channels = x.shape[-1]
    logits, means, log_scales, coefficients = _unpack(params, channels)
    x = x[..., None]  # (..., C, 1) against components (..., C, M)
    centered = x - _conditional_means(means, coefficients, x[..., 0])
    inverse_scale = jnp.exp(-log_scales)
    plus_in = inverse_scale * (centered + _HALF_BIN)
    min_in = inverse_scale * (centered - _HALF_BIN)
    log_cdf_plus = plus_in - jax.nn.softplus(plus_in)  # log sigmoid(plus_in): the bin of -1, reaching -inf
    log_one_minus_cdf_min = -jax.nn.softplus(min_in)  # log(1 - sigmoid(min_in)): the bin of +1, reaching +inf
    cdf_delta = jax.nn.sigmoid(plus_in) - jax.nn.sigmoid(min_in)
    mid_in = inverse_scale * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * jax.nn.softplus(mid_in)
    inner = jnp.where(
        cdf_delta > _MIN_BIN_MASS,
        jnp.log(jnp.maximum(cdf_delta, 1e-12)),
        log_pdf_mid + math.log(2 * _HALF_BIN),
    )
    log_probs = jnp.where(x < -_EDGE, log_cdf_plus, jnp.where(x > _EDGE, log_one_minus_cdf_min, inner))
    per_component = jnp.sum(log_probs, axis=-2) + jax.nn.log_softmax(logits, axis=-1)
    return jax.nn.logsumexp(per_component, axis=-1)


def log_likelihood(images: jax.Array, params: jax.Array) -> jax.Array:
    """log p(image) per example (N,), in nats, of images (N, H, W, C) under per-pixel outputs (N, H, W, P)."""
    return jnp.sum(log_prob_per_pixel(images, params), axis=(1, 2))


def quantize(x: jax.Array) -> jax.Array:
    """The nearest of the 256 grid values in [-1, 1] (centred before dividing, as `data.to_unit_range`, so that the
    ends are exactly -1 and 1)."""
    return (jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) * 127.5) - 127.5) / 127.5


def sample(rng: jax.Array, params: jax.Array, channels: int) -> jax.Array:
    """One draw per pixel (..., C) on the uint8 grid in [-1, 1] from outputs (..., P).

    A component by its softmax, then for each channel a logistic with that channel's conditional mean, clipped
    and rounded to the grid: the bin masses of the likelihood exactly (the edge bins collect the clipped tails).
    Later channels condition on the rounded earlier ones, as the likelihood does on the data. The reference
    instead keeps the continuous, unrounded values.
    """
    component_rng, noise_rng = jax.random.split(rng)
    logits, means, log_scales, coefficients = _unpack(params, channels)
    component = jax.random.categorical(component_rng, logits, axis=-1)
    pick = jax.nn.one_hot(component, logits.shape[-1])[..., None, :]  # (..., 1, M)
    means, log_scales, coefficients = (jnp.sum(v * pick, axis=-1) for v in (means, log_scales, coefficients))
    u = jax.random.uniform(noise_rng, means.shape, minval=1e-5, maxval=1.0 - 1e-5)
    noise = jnp.exp(log_scales) * (jnp.log(u) - jnp.log1p(-u))
    values = []
    pair = 0
    for c in range(channels):
        value = means[..., c] + noise[..., c]
        for j in range(c):
            value = value + coefficients[..., pair] * values[j]
            pair += 1
        values.append(quantize(value))
    return jnp.stack(values, axis=-1)
