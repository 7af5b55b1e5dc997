"""DRAW (Gregor et al. 2015, "DRAW: A Recurrent Neural Network For Image Generation").

An encoder LSTM reads the image and the error of the current canvas through a Gaussian-filterbank glimpse,
proposes q(z_t | x, z_<t); a decoder LSTM turns z_t into an additive write on the canvas, also through a
filterbank. After T steps the canvas holds the logits of a Bernoulli image. The T steps run under `nn.scan`, so
compile time does not grow with T.

The write's intensity gamma (the write is scaled by 1/gamma, eq. 29) starts at patch area / image area, so a unit
patch moves the canvas by about a logit from the first step. Started at gamma = 1, the decoder has to learn a
gain of a few hundred through its LSTM state, and samples whose prior z never lead it there stay the blank grey
canvas sigmoid(0) (4% of prior samples after the digits config's 1500 steps). The paper does not give an init.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

Carry = tuple[jax.Array, tuple[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]  # canvas, encoder, decoder


def filterbank(center: jax.Array, stride: jax.Array, log_variance: jax.Array, size: int, num: int) -> jax.Array:
    """Gaussian filters F[b, i, a] ∝ exp(-(a - μ_i)² / 2 sigma²) along one image axis of `size` pixels (eq. 25-26).

    `num` filters centred at μ_i = center + (i - (num - 1) / 2) * stride, in pixel coordinates 0..size-1; each row
    sums to one over the pixels (the paper's Z normalisation). Shape (batch, num, size).
    """
    offsets = jnp.arange(num, dtype=jnp.float32) - (num - 1) / 2.0
    means = center[:, None] + offsets[None, :] * stride[:, None]
    pixels = jnp.arange(size, dtype=jnp.float32)
    squared = (pixels[None, None, :] - means[:, :, None]) ** 2
    return jax.nn.softmax(-squared / (2.0 * jnp.exp(log_variance)[:, None, None]), axis=-1)


def glimpse(images: jax.Array, filters_y: jax.Array, filters_x: jax.Array) -> jax.Array:
    """F_Y x F_Xᵀ per channel: (B, H, W, C) -> (B, N, N, C), the read of eq. 27 without its intensity gamma."""
    return jnp.einsum("bih,bhwc,bjw->bijc", filters_y, images, filters_x)


def paste(patches: jax.Array, filters_y: jax.Array, filters_x: jax.Array) -> jax.Array:
    """F_Yᵀ w F_X per channel: (B, N, N, C) -> (B, H, W, C), the write of eq. 29 and the transpose of `glimpse`."""
    return jnp.einsum("bih,bijc,bjw->bhwc", filters_y, patches, filters_x)


class Attention(nn.Module):
    """A linear map of a decoder state to an N x N Gaussian grid over the image: (F_Y, F_X, intensity gamma)."""

    size: int  # image side in pixels
    num: int  # N: grid side
    initial_log_intensity: float = 0.0  # bias of log gamma at initialisation

    @nn.compact
    def __call__(self, hidden: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        def bias_init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
            return jnp.zeros(shape, dtype).at[4].set(self.initial_log_intensity)

        parameters = nn.Dense(5, bias_init=bias_init)(hidden)
        center_x, center_y, log_variance, log_stride, log_intensity = jnp.split(parameters, 5, axis=-1)
        # Eq. 22-24, shifted from the paper's 1-based pixel coordinates to 0-based ones.
        center_x = (self.size + 1) / 2.0 * (center_x[:, 0] + 1.0) - 1.0
        center_y = (self.size + 1) / 2.0 * (center_y[:, 0] + 1.0) - 1.0
        stride = (self.size - 1) / max(self.num - 1, 1) * jnp.exp(log_stride[:, 0])
        filters_y = filterbank(center_y, stride, log_variance[:, 0], self.size, self.num)
        filters_x = filterbank(center_x, stride, log_variance[:, 0], self.size, self.num)
        return filters_y, filters_x, jnp.exp(log_intensity)


class DrawStep(nn.Module):
    """One DRAW step (eq. 3-8). With `images` None it is the generative step: z_t comes from the prior."""

    size: int
    channels: int
    hidden: int
    latent_dim: int
    read_size: int
    write_size: int

    @nn.compact
    def __call__(self, carry: Carry, noise: jax.Array, images: jax.Array | None) -> tuple[Carry, tuple]:
        canvas, encoder_carry, decoder_carry = carry
        decoder_hidden = decoder_carry[1]
        if images is None:
            z, mean, log_variance = noise, jnp.zeros_like(noise), jnp.zeros_like(noise)
        else:
            error = images - jax.nn.sigmoid(canvas)
            filters_y, filters_x, intensity = Attention(self.size, self.read_size, name="read")(decoder_hidden)
            read = jnp.concatenate([glimpse(images, filters_y, filters_x), glimpse(error, filters_y, filters_x)], -1)
            read = intensity * read.reshape(read.shape[0], -1)
            encoder_input = jnp.concatenate([read, decoder_hidden], axis=-1)
            encoder_carry, encoder_hidden = nn.OptimizedLSTMCell(self.hidden, name="encoder")(
                encoder_carry, encoder_input
            )
            mean, log_variance = jnp.split(nn.Dense(2 * self.latent_dim, name="posterior")(encoder_hidden), 2, -1)
            z = mean + jnp.exp(0.5 * log_variance) * noise
        decoder_carry, decoder_hidden = nn.OptimizedLSTMCell(self.hidden, name="decoder")(decoder_carry, z)
        write_gain = math.log(self.write_size**2 / self.size**2)  # log gamma at init (module docstring)
        filters_y, filters_x, intensity = Attention(self.size, self.write_size, write_gain, name="write")(
            decoder_hidden
        )
        patch = nn.Dense(self.write_size**2 * self.channels, name="patch")(decoder_hidden)
        patch = patch.reshape(-1, self.write_size, self.write_size, self.channels)
        canvas = canvas + paste(patch, filters_y, filters_x) / intensity[:, :, None, None]
        return (canvas, encoder_carry, decoder_carry), (canvas, mean, log_variance)


class DrawNetwork(nn.Module):
    """T DRAW steps from a blank canvas. `noise` (T, B, latent_dim) is the standard-normal noise of every z_t."""

    resolution: int
    channels: int
    steps: int
    hidden: int
    latent_dim: int
    read_size: int
    write_size: int

    def setup(self):
        scanned = nn.scan(
            DrawStep,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=(0, nn.broadcast),
            length=self.steps,
        )
        self.step = scanned(
            self.resolution, self.channels, self.hidden, self.latent_dim, self.read_size, self.write_size
        )

    def _blank(self, batch: int) -> Carry:
        lstm = (jnp.zeros((batch, self.hidden)), jnp.zeros((batch, self.hidden)))
        return jnp.zeros((batch, self.resolution, self.resolution, self.channels)), lstm, lstm

    def __call__(self, images: jax.Array, noise: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Images in [0, 1] -> (canvas logits after each step (T, B, H, W, C), posterior means, log-variances)."""
        _, outputs = self.step(self._blank(images.shape[0]), noise, images)
        return outputs

    def generate(self, noise: jax.Array) -> jax.Array:
        """Canvas logits after each step (T, B, H, W, C), with every z_t drawn from the prior by `noise`."""
        _, (canvases, _, _) = self.step(self._blank(noise.shape[1]), noise, None)
        return canvases
