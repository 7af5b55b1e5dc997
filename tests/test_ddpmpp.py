"""DDPM++ (models.ddpmpp) against EDM's SongUNet: parameter count and block layout at the CIFAR-10 size, one block
and the mapping network against numpy transcriptions of EDM's forward code, and the initialisation statistics."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from init_statistics import assert_biases_zero_and_norms_identity, assert_uniform, conv_fans, glorot_bound, kernels
from tiny_configs import load

from genimg_jax.methods.diffusion import Diffusion
from genimg_jax.models import ddpmpp

REFERENCE_PARAMETERS = 55_732_739
REFERENCE_AUGMENT_PARAMETERS = 9 * 128  # map_augment: Linear(9, 128, bias=False)
REFERENCE_LABEL_PARAMETERS = 10 * 128 + 128  # map_label: Linear(10, 128)

# Every UNetBlock of that SongUNet, printed from the same instance: (in_channels, out_channels, attention, has a 1x1
# skip conv). The down/up blocks are resampling residual blocks, so they have the skip although widths match.
REFERENCE_BLOCKS = {
    "enc_32x32_block0": (128, 256, False, True),
    **{f"enc_32x32_block{i}": (256, 256, False, False) for i in (1, 2, 3)},
    "enc_16x16_down": (256, 256, False, True),
    **{f"enc_16x16_block{i}": (256, 256, True, False) for i in range(4)},
    "enc_8x8_down": (256, 256, False, True),
    **{f"enc_8x8_block{i}": (256, 256, False, False) for i in range(4)},
    "dec_8x8_in0": (256, 256, True, False),
    "dec_8x8_in1": (256, 256, False, False),
    **{f"dec_8x8_block{i}": (512, 256, False, True) for i in range(5)},
    "dec_16x16_up": (256, 256, False, True),
    **{f"dec_16x16_block{i}": (512, 256, i == 4, True) for i in range(5)},
    "dec_32x32_up": (256, 256, False, True),
    **{f"dec_32x32_block{i}": (512, 256, False, True) for i in range(4)},
    "dec_32x32_block4": (384, 256, False, True),
}


def abstract_params(network, num_classes: int = 0):
    x, t = jnp.zeros((2, 32, 32, 3)), jnp.zeros((2,))
    labels = jnp.zeros((2,), jnp.int32) if num_classes else None
    return jax.eval_shape(network.init, jax.random.PRNGKey(0), x, t, labels)["params"]


def count(tree) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def cifar10():
    """edm.py:cifar10's network and its parameter shapes, as the method initialises them (traced, not run)."""
    diffusion = Diffusion(load("edm.py:cifar10"))
    assert isinstance(diffusion.network, ddpmpp.DDPMPlusPlus)
    batch = {"image": jnp.zeros((2, 32, 32, 3), jnp.uint8), "label": jnp.zeros((2,), jnp.int32)}
    return diffusion.network, jax.eval_shape(diffusion.init_state, jax.random.PRNGKey(0), batch).params


def test_cifar10_network_has_the_reference_parameter_count(cifar10):
    """EDM's count: SongUNet.__init__ of NVlabs/edm training/networks.py run with train.py's `--arch=ddpmpp`
    CIFAR-10 arguments (img_resolution 32, 3 channels, model_channels 128, channel_mult [2,2,2], resample_filter
    [1,1], ...) under a stand-in `torch` module whose Parameter records its shape; the sizes summed. The same run
    with augment_dim=9 and with label_dim=10 gave the two differences."""
    network, params = cifar10
    assert network.augment_dim in (0, 9)  # without augmentation, or with EDM's 9 augment labels
    assert count(params) == REFERENCE_PARAMETERS + (REFERENCE_AUGMENT_PARAMETERS if network.augment_dim else 0)
    assert count(abstract_params(network.clone(augment_dim=0))) == REFERENCE_PARAMETERS
    augmented = abstract_params(network.clone(augment_dim=9))
    assert count(augmented) - REFERENCE_PARAMETERS == REFERENCE_AUGMENT_PARAMETERS
    assert "bias" not in augmented["map"]["map_augment"]
    conditional = abstract_params(network.clone(augment_dim=0, num_classes=10), num_classes=10)
    assert count(conditional) - REFERENCE_PARAMETERS == REFERENCE_LABEL_PARAMETERS


def test_cifar10_network_has_the_reference_blocks(cifar10):
    network, params = cifar10
    blocks = {name: tree for name, tree in params.items() if "conv0" in tree}
    assert blocks.keys() == REFERENCE_BLOCKS.keys()
    for name, (cin, cout, attention, skip) in REFERENCE_BLOCKS.items():
        tree = blocks[name]
        assert tree["norm0"]["scale"].shape == (cin,), name
        assert tree["conv0"]["kernel"].shape == (3, 3, cin, cout), name
        assert tree["affine"]["kernel"].shape == (512, cout), name
        assert ("qkv" in tree) == attention, name
        assert ("skip" in tree) == skip, name
        if skip:
            assert tree["skip"]["kernel"].shape == (1, 1, cin, cout), name
    others = {name: jax.tree.map(lambda a: a.shape, tree) for name, tree in params.items() if name not in blocks}
    mapping = {
        "map_layer0": {"kernel": (128, 512), "bias": (512,)},
        "map_layer1": {"kernel": (512, 512), "bias": (512,)},
    }
    if network.augment_dim:
        mapping["map_augment"] = {"kernel": (network.augment_dim, 128)}
    assert others == {
        "map": mapping,
        "enc_32x32_conv": {"kernel": (3, 3, 3, 128), "bias": (128,)},
        "dec_32x32_aux_norm": {"scale": (256,), "bias": (256,)},
        "dec_32x32_aux_conv": {"kernel": (3, 3, 256, 3), "bias": (3,)},
    }


# numpy transcriptions of EDM's forward code (NHWC instead of NCHW).


def silu(x):
    return x / (1.0 + np.exp(-x))


def group_norm(x, params):
    n, h, w, c = x.shape
    groups = min(32, c // 4)
    grouped = x.reshape(n, h * w, groups, c // groups)
    mean, var = grouped.mean(axis=(1, 3), keepdims=True), grouped.var(axis=(1, 3), keepdims=True)
    return ((grouped - mean) / np.sqrt(var + 1e-6)).reshape(x.shape) * params["scale"] + params["bias"]


def conv(x, params):
    """Zero-padded 'same' cross-correlation, as torch's conv2d with padding kernel // 2."""
    kernel = params["kernel"]
    size, (h, w) = kernel.shape[0], x.shape[1:3]
    padded = np.pad(x, ((0, 0), (size // 2,) * 2, (size // 2,) * 2, (0, 0)))
    out = sum(
        np.einsum("nhwc,cd->nhwd", padded[:, a : a + h, b : b + w], kernel[a, b])
        for a in range(size)
        for b in range(size)
    )
    return out + params["bias"]


def resample_filter(taps):
    taps = np.asarray(taps, np.float64)
    return np.outer(taps, taps) / taps.sum() ** 2


def filter_down(x, taps=(1, 1)):
    """EDM's Conv2d(down=True): a depthwise conv with the normalised filter, stride 2, padding (len - 1) // 2."""
    f, pad = resample_filter(taps), (len(taps) - 1) // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    size, (n, h, w, c) = len(taps), padded.shape
    out = np.zeros((n, (h - size) // 2 + 1, (w - size) // 2 + 1, c))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            out[:, i, j] = np.einsum("ab,nabc->nc", f, padded[:, 2 * i : 2 * i + size, 2 * j : 2 * j + size])
    return out


def filter_up(x, taps=(1, 1)):
    """EDM's Conv2d(up=True): a depthwise transposed conv with 4 x the filter, stride 2, padding (len - 1) // 2."""
    f, pad, size = 4 * resample_filter(taps), (len(taps) - 1) // 2, len(taps)
    n, h, w, c = x.shape
    full = np.zeros((n, 2 * (h - 1) + size, 2 * (w - 1) + size, c))
    for i in range(h):
        for j in range(w):
            full[:, 2 * i : 2 * i + size, 2 * j : 2 * j + size] += f[None, :, :, None] * x[:, i, j][:, None, None]
    return full[:, pad : full.shape[1] - pad, pad : full.shape[2] - pad]


def unet_block(x, embedding, params, resample):
    """EDM's UNetBlock.forward with DDPM++'s settings (adaptive_scale False, one head, skip_scale sqrt(1/2))."""
    h = conv(resample(silu(group_norm(x, params["norm0"]))), params["conv0"])
    h = h + (embedding @ params["affine"]["kernel"] + params["affine"]["bias"])[:, None, None]
    h = conv(silu(group_norm(h, params["norm1"])), params["conv1"])
    x = (h + (conv(resample(x), params["skip"]) if "skip" in params else x)) * np.sqrt(0.5)
    if "qkv" in params:
        n, c = x.shape[0], x.shape[-1]
        qkv = group_norm(x, params["norm2"]).reshape(n, -1, c) @ params["qkv"]["kernel"] + params["qkv"]["bias"]
        q, k, v = np.split(qkv, 3, axis=-1)
        logits = q @ k.transpose(0, 2, 1) / np.sqrt(c)
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        projected = (weights @ v) @ params["proj"]["kernel"] + params["proj"]["bias"]
        x = (x + projected.reshape(x.shape)) * np.sqrt(0.5)
    return x


def random_params(module, seed: int, *args, **kwargs):
    """Parameters of `module`'s shapes (traced, not initialised) with O(1) random values, so near-zero layers count."""
    shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *args, **kwargs))["params"]
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda leaf: jnp.asarray(0.3 * rng.standard_normal(leaf.shape), jnp.float32), shapes)


def as_numpy(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


@pytest.mark.parametrize(
    "resample, features, attention, numpy_resample",
    [("down", 8, True, filter_down), ("up", 8, False, filter_up), ("", 16, True, lambda v: v)],
)
def test_block_matches_edms_unet_block(resample, features, attention, numpy_resample):
    block = ddpmpp.Block(features, dropout=0.0, resample=resample, attention=attention)
    rng = np.random.default_rng(0)
    x, embedding = rng.standard_normal((2, 8, 8, 8)), rng.standard_normal((2, 12))
    params = random_params(block, 1, x, embedding, train=False)
    out = np.asarray(jax.jit(lambda p: block.apply({"params": p}, x, embedding, train=False))(params))
    expected = unet_block(x, embedding, as_numpy(params), numpy_resample)
    size = {"down": 4, "up": 16, "": 8}[resample]
    assert out.shape == expected.shape == (2, size, size, features)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_block_resampling_is_the_one_one_filter():
    """[1, 1] at stride 2 is 2x2 mean pooling down and pixel doubling up; up then down is the identity."""
    x = np.random.default_rng(2).standard_normal((2, 6, 6, 3))
    np.testing.assert_allclose(ddpmpp.downsample(jnp.asarray(x)), filter_down(x), atol=1e-6)
    np.testing.assert_allclose(ddpmpp.upsample(jnp.asarray(x)), filter_up(x), atol=1e-6)
    np.testing.assert_allclose(filter_down(filter_up(x)), x, atol=1e-12)


def mapping_reference(noise, one_hot, augment, params, features):
    """SongUNet.forward's mapping: sinusoids (endpoint=True, sin first after the flip), + label, + augment, MLP."""
    half = features // 2
    angles = noise[:, None] * (1 / 10_000) ** (np.arange(half) / (half - 1))
    embedding = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    label = params["map_label"]
    embedding = embedding + (one_hot * np.sqrt(one_hot.shape[1])) @ label["kernel"] + label["bias"]
    embedding = embedding + augment @ params["map_augment"]["kernel"]
    for layer in ("map_layer0", "map_layer1"):
        embedding = silu(embedding @ params[layer]["kernel"] + params[layer]["bias"])
    return embedding


def test_mapping_matches_songunet_and_the_null_class_is_edms_dropped_label():
    features, num_classes, augment_dim = 16, 10, 9
    mapping = ddpmpp.Mapping(features, num_classes=num_classes, augment_dim=augment_dim)
    noise = jnp.asarray([-1.5, 0.0, 0.3, 2.0])
    labels = jnp.asarray([0, 3, 9, num_classes])  # the last one is the null class
    augment = np.random.default_rng(3).standard_normal((4, augment_dim))
    params = random_params(mapping, 4, noise, labels, augment)
    out = np.asarray(jax.jit(mapping.apply)({"params": params}, noise, labels, augment))
    one_hot = np.zeros((4, num_classes))
    one_hot[np.arange(3), [0, 3, 9]] = 1.0  # EDM's label dropout zeroes the one-hot vector
    expected = mapping_reference(np.asarray(noise), one_hot, np.asarray(augment), as_numpy(params), features)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_absent_augment_labels_are_zeros_and_present_ones_change_the_output():
    """EDM skips map_augment without augment labels; a bias-free projection of zeros is the same (to rounding:
    the two compiled programs may order a sum differently)."""
    network = ddpmpp.DDPMPlusPlus(features=8, channel_multipliers=(1,), num_res_blocks=1, augment_dim=9)
    x = np.random.default_rng(5).standard_normal((3, 4, 4, 3))
    noise = jnp.asarray([-1.0, 0.0, 1.0])
    params = random_params(network, 6, x, noise)

    @jax.jit
    def apply(augment_labels):
        return network.apply({"params": params}, x, noise, augment_labels=augment_labels)

    np.testing.assert_allclose(apply(None), apply(jnp.zeros((3, 9))), rtol=1e-6, atol=1e-6)
    assert float(jnp.max(jnp.abs(apply(jnp.ones((3, 9))) - apply(None)))) > 1e-2


def init_scale(path: str) -> float:
    """EDM's init_weight: 1e-5 for conv1, proj and the output conv (init_zero), sqrt(0.2) for qkv (init_attn)."""
    if path.endswith(("conv1", "proj", "aux_conv")):
        return 1e-5
    return math.sqrt(0.2) if path.endswith("qkv") else 1.0


def test_initialisation_is_edms_scaled_xavier_uniform_with_zero_biases():
    """Each kernel ~ U(-b, b), b = init_weight * sqrt(6 / (fan_in + fan_out)) with torch's fans; biases 0."""
    network = ddpmpp.DDPMPlusPlus(
        features=16,
        channel_multipliers=(1,),
        num_res_blocks=1,
        attention_resolutions=(4,),
        num_classes=10,
        augment_dim=9,
    )
    x, noise, labels = jnp.zeros((1, 4, 4, 3)), jnp.zeros((1,)), jnp.zeros((1,), jnp.int32)
    params = jax.jit(network.init)(jax.random.PRNGKey(11), x, noise, labels)["params"]
    assert_biases_zero_and_norms_identity(params)
    bounded = {path: (w, glorot_bound(conv_fans(w.shape), init_scale(path))) for path, w in kernels(params).items()}
    assert {init_scale(path) for path in bounded} == {1.0, 1e-5, math.sqrt(0.2)}
    assert_uniform(bounded)
