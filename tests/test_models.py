"""Tests for genimg_jax.models: the adjoint up-conv against independent references, and the networks."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from genimg_jax.models.dcgan import Discriminator, Generator
from genimg_jax.models.layers import UpConv, up_conv
from genimg_jax.models.vae import Decoder, Encoder

_NHWC = ("NHWC", "HWIO", "NHWC")
TOL = {"rtol": 1e-5, "atol": 1e-5}

# (kernel_size, strides, padding, input height, input width): non-square inputs catch H/W mix-ups.
UPCONV_CASES = [(4, 2, 1, 3, 5), (4, 1, 0, 1, 1), (3, 2, 1, 4, 3), (4, 2, 0, 2, 3), (5, 3, 2, 3, 2)]


def _strided_conv(x, kernel, s, p):
    return lax.conv_general_dilated(x, kernel, (s, s), ((p, p), (p, p)), dimension_numbers=_NHWC)


def _big_shape(z, kernel, s, p):
    k = kernel.shape[0]
    return (z.shape[0], (z.shape[1] - 1) * s - 2 * p + k, (z.shape[2] - 1) * s - 2 * p + k, kernel.shape[2])


def _transpose_reference(z, kernel, s, p):
    """Plain autodiff-able transpose of the strided conv (no custom vjp)."""
    big = jax.ShapeDtypeStruct(_big_shape(z, kernel, s, p), z.dtype)
    return jax.linear_transpose(lambda x: _strided_conv(x, kernel, s, p), big)(z)[0]


def _lax_reference(z, kernel, s, p):
    k = kernel.shape[0]
    pad = ((k - 1 - p, k - 1 - p),) * 2
    return lax.conv_transpose(z, kernel, (s, s), pad, dimension_numbers=_NHWC, transpose_kernel=True)


def _numpy_conv_transpose(x, torch_weight, bias, s, p):
    """PyTorch ConvTranspose2d by definition: each input pixel scatters a weighted k x k patch; crop p."""
    n, h, w, _ = x.shape
    _, c_out, k, _ = torch_weight.shape
    full = np.zeros((n, (h - 1) * s + k, (w - 1) * s + k, c_out), np.float64)
    for i in range(h):
        for j in range(w):
            full[:, i * s : i * s + k, j * s : j * s + k, :] += np.einsum("nc,cokl->nklo", x[:, i, j], torch_weight)
    return full[:, p : full.shape[1] - p, p : full.shape[2] - p, :] + bias


def _random(key, *shapes):
    return [jax.random.normal(k, shape) for k, shape in zip(jax.random.split(key, len(shapes)), shapes, strict=True)]


@pytest.mark.parametrize(("k", "s", "p", "h", "w"), UPCONV_CASES)
def test_upconv_forward_matches_independent_references(k, s, p, h, w):
    z = jax.random.normal(jax.random.key(0), (2, h, w, 3))
    layer = UpConv(4, k, s, p, bias_init=nn.initializers.normal(1.0))
    variables = layer.init(jax.random.key(1), z)
    kernel, bias = variables["params"]["kernel"], variables["params"]["bias"]
    assert kernel.shape == (k, k, 4, 3)
    out = layer.apply(variables, z)

    expected = _numpy_conv_transpose(np.asarray(z, np.float64), np.asarray(kernel).transpose(3, 2, 0, 1), bias, s, p)
    assert out.shape == ((2, (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k, 4))
    np.testing.assert_allclose(out, expected, **TOL)
    np.testing.assert_allclose(out, _transpose_reference(z, kernel, s, p) + bias, **TOL)
    flax_layer = nn.ConvTranspose(4, (k, k), (s, s), padding=k - 1 - p, transpose_kernel=True)
    np.testing.assert_allclose(out, flax_layer.apply(variables, z), **TOL)


def test_upconv_output_sizes():
    layer = UpConv(2, 4, 1, 0)
    x = jnp.ones((1, 1, 1, 3))
    assert layer.apply(layer.init(jax.random.key(0), x), x).shape == (1, 4, 4, 2)
    layer = UpConv(2)  # defaults k4 s2 p1
    x = jnp.ones((1, 8, 16, 3))
    assert layer.apply(layer.init(jax.random.key(0), x), x).shape == (1, 16, 32, 2)


@pytest.mark.parametrize(("k", "s", "p", "h", "w"), UPCONV_CASES)
@pytest.mark.parametrize("reference", [_transpose_reference, _lax_reference])
def test_upconv_gradients_match_autodiff_of_reference(k, s, p, h, w, reference):
    z, kernel = _random(jax.random.key(2), (2, h, w, 3), (k, k, 4, 3))
    g = jax.random.normal(jax.random.key(3), _big_shape(z, kernel, s, p))

    def loss(fn):
        return lambda z, kernel: jnp.sum(fn(z, kernel, s, p) * g)

    dz, dkernel = jax.jit(jax.grad(loss(up_conv), argnums=(0, 1)))(z, kernel)
    ref_dz, ref_dkernel = jax.grad(loss(reference), argnums=(0, 1))(z, kernel)
    assert np.abs(dkernel).max() > 0.1  # a zero gradient would pass a tolerance test trivially
    np.testing.assert_allclose(dz, ref_dz, **TOL)
    np.testing.assert_allclose(dkernel, ref_dkernel, **TOL)


def test_upconv_second_order_reverse_mode_matches_reference():
    # Gradient penalties differentiate a gradient: the custom bwd must itself be differentiable.
    z, kernel = _random(jax.random.key(4), (2, 4, 4, 3), (4, 4, 2, 3))

    def penalty(fn):
        def input_grad_norm(kernel):
            dz = jax.grad(lambda z: jnp.sum(jnp.tanh(fn(z, kernel, 2, 1))))(z)
            return jnp.sum(dz**2)

        return jax.grad(input_grad_norm)(kernel)

    np.testing.assert_allclose(penalty(up_conv), penalty(_transpose_reference), **TOL)


def test_upconv_is_adjoint_of_strided_conv():
    x, z, kernel = _random(jax.random.key(5), (2, 10, 6, 3), (2, 5, 3, 4), (4, 4, 3, 4))
    lhs = jnp.vdot(_strided_conv(x, kernel, 2, 1), z)
    rhs = jnp.vdot(x, up_conv(z, kernel, 2, 1))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


def _dcgan_variables(resolution, channels, base, latent=100, batch=2):
    z = jnp.zeros((batch, latent))
    x = jnp.zeros((batch, resolution, resolution, channels))
    g = Generator(resolution, channels, base).init(jax.random.key(0), z, train=False)
    d = Discriminator(base).init(jax.random.key(1), x, train=False)
    return g, d


@pytest.mark.parametrize("resolution", [8, 16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_network_shapes(resolution, channels):
    # Traced, not run (eval_shape): eager runs of every size cost tens of seconds of per-op compiles.
    z = jax.ShapeDtypeStruct((3, 5), jnp.float32)
    x = jax.ShapeDtypeStruct((3, resolution, resolution, channels), jnp.float32)
    image_shape = (3, resolution, resolution, channels)

    def output_shapes(module, inputs, **kwargs):
        def init_apply(inputs):
            return module.apply(module.init(jax.random.key(0), inputs, **kwargs), inputs, **kwargs)

        return jax.tree.map(lambda a: a.shape, jax.eval_shape(init_apply, inputs))

    assert output_shapes(Generator(resolution, channels, 4), z, train=False) == image_shape
    assert output_shapes(Discriminator(4), x, train=False) == (3,)
    assert output_shapes(Encoder(latent_dim=5, base_features=4), x) == ((3, 5), (3, 5))
    assert output_shapes(Decoder(resolution, channels, 4), z) == image_shape


def test_networks_run_and_generator_output_lies_in_unit_interval():
    key_z, key_x = jax.random.split(jax.random.key(6))
    z = jax.random.normal(key_z, (3, 5))
    x = jax.random.uniform(key_x, (3, 8, 8, 3), minval=-1, maxval=1)

    generator = Generator(8, 3, base_features=4)
    g_vars = generator.init(jax.random.key(0), z, train=False)
    # Weights blown up 10x saturate the output: it must still lie in [-1, 1] and reach its ends.
    loud = {**g_vars, "params": jax.tree.map(lambda a: 10.0 * a, g_vars["params"])}
    fake = generator.apply(loud, z, train=False)
    assert float(jnp.abs(fake).max()) <= 1.0
    assert float(fake.max()) > 0.99 and float(fake.min()) < -0.99

    encoder, decoder = Encoder(latent_dim=5, base_features=4), Decoder(8, 3, base_features=4)
    mean, log_variance = encoder.apply(encoder.init(jax.random.key(2), x), x)
    params = decoder.apply(decoder.init(jax.random.key(3), mean), mean)
    assert params.shape == x.shape
    assert all(bool(jnp.all(jnp.isfinite(a))) and float(jnp.std(a)) > 0 for a in (mean, log_variance, params))


@pytest.mark.parametrize("resolution", [4, 12])
def test_networks_reject_unsupported_resolutions(resolution):
    key, z, x = jax.random.key(0), jnp.zeros((1, 5)), jnp.zeros((1, resolution, resolution, 1))
    inits = [
        lambda: Generator(resolution, 1).init(key, z, train=False),
        lambda: Discriminator().init(key, x, train=False),
        lambda: Encoder(5).init(key, x),
        lambda: Decoder(resolution, 1).init(key, z),
    ]
    for init in inits:
        with pytest.raises(ValueError, match="power of 2"):
            init()


def test_dcgan_param_counts_match_hand_count():
    g, d = jax.eval_shape(lambda: _dcgan_variables(32, 1, 64))
    # Generator: 100 -(k4 s1)-> 256 @4x4 -> 128 @8 -> 64 @16 -> 1 @32; no conv biases; BN scale+bias.
    g_kernels = [(4, 4, 256, 100), (4, 4, 128, 256), (4, 4, 64, 128), (4, 4, 1, 64)]
    assert [v["kernel"].shape for k, v in sorted(g["params"].items()) if k.startswith("UpConv")] == g_kernels
    g_hand = 16 * (100 * 256 + 256 * 128 + 128 * 64 + 64 * 1) + 2 * (256 + 128 + 64)
    assert g_hand == 1_066_880
    # Discriminator: 1 -> 64 @16 (no BN) -> 128 @8 -> 256 @4 -(k4 valid)-> 1 logit.
    d_hand = 16 * (1 * 64 + 64 * 128 + 128 * 256 + 256 * 1) + 2 * (128 + 256)
    assert d_hand == 661_248

    def count(tree):
        return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))

    assert count(g["params"]) == g_hand
    assert count(d["params"]) == d_hand
    assert count(g["batch_stats"]) == 2 * (256 + 128 + 64)
    assert count(d["batch_stats"]) == 2 * (128 + 256)


def test_batchnorm_updates_in_train_mode_and_is_frozen_in_eval_mode():
    generator = Generator(resolution=8, channels=1, base_features=4)
    z = jax.random.normal(jax.random.key(7), (6, 5))
    variables = generator.init(jax.random.key(0), z, train=False)

    out, state = generator.apply(
        variables, z, train=True, mutable=["batch_stats", "intermediates"], capture_intermediates=True
    )
    pre_bn = state["intermediates"]["UpConv_0"]["__call__"][0]
    first_bn = state["batch_stats"]["BatchNorm_0"]
    np.testing.assert_allclose(first_bn["mean"], 0.1 * pre_bn.mean(axis=(0, 1, 2)), **TOL)
    np.testing.assert_allclose(first_bn["var"], 0.9 + 0.1 * pre_bn.var(axis=(0, 1, 2)), **TOL)

    other = jnp.concatenate([z[:1], 3.0 * z[1:]])
    # Eval mode uses the running averages: an example's output ignores the rest of its batch.
    eval_out = generator.apply(variables, z, train=False)  # no mutable collections: writing stats would fail
    np.testing.assert_allclose(eval_out[0], generator.apply(variables, other, train=False)[0], **TOL)
    # Train mode normalises by batch statistics, so the same check must fail there.
    train_other, _ = generator.apply(variables, other, train=True, mutable=["batch_stats"])
    assert not np.allclose(out[0], train_other[0], atol=1e-3)

    discriminator = Discriminator(base_features=4)
    x = jax.random.normal(jax.random.key(8), (4, 16, 16, 1))  # 16x16: two blocks, one with BN
    d_vars = discriminator.init(jax.random.key(1), x, train=False)
    _, d_state = discriminator.apply(d_vars, x, train=True, mutable=["batch_stats"])
    assert not np.allclose(d_state["batch_stats"]["BatchNorm_0"]["mean"], 0.0)
    x_other = x.at[1:].multiply(2.0)
    np.testing.assert_allclose(
        discriminator.apply(d_vars, x, train=False)[0],
        discriminator.apply(d_vars, x_other, train=False)[0],
        **TOL,
    )
