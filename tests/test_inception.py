"""The Flax FID Inception against an independent TF reference, and the weight converter on torch-format files."""

import jax
import numpy as np
import pytest
from inception_reference import GOLDEN, random_state_dict
from torch_format import write_state_dict

from genimg_jax import data
from genimg_jax.metrics import features, inception, inception_weights


@pytest.mark.parametrize("legacy", [False, True])
def test_converter_reads_both_torch_formats_with_strides_and_offsets(tmp_path, legacy):
    rng = np.random.default_rng(0)
    arrays = {
        "block.conv.weight": rng.standard_normal((4, 3, 2, 2)),
        "fc.weight": rng.standard_normal((5, 7)),  # stored as a transposed view with a storage offset
        "fc.bias": rng.standard_normal(5),
    }
    path = tmp_path / "weights.pth"
    write_state_dict(path, arrays, legacy=legacy, transpose_last=True)
    loaded = inception_weights.read_state_dict(path)
    assert sorted(loaded) == sorted(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array.astype(np.float32))


def test_converter_maps_layouts_and_names():
    rng = np.random.default_rng(1)
    conv, fc = rng.standard_normal((4, 3, 2, 5), np.float32), rng.standard_normal((6, 4), np.float32)
    state = {
        "Mixed_5b.branch1x1.conv.weight": conv,
        "Mixed_5b.branch1x1.bn.weight": np.ones(4),
        "Mixed_5b.branch1x1.bn.bias": np.zeros(4),
        "Mixed_5b.branch1x1.bn.running_mean": np.full(4, 2.0),
        "Mixed_5b.branch1x1.bn.running_var": np.full(4, 3.0),
        "Mixed_5b.branch1x1.bn.num_batches_tracked": np.array(7),
        "fc.weight": fc,
        "fc.bias": np.arange(6.0),
    }
    variables = inception_weights.convert_state_dict(state)
    block = variables["params"]["Mixed_5b"]["branch1x1"]
    np.testing.assert_array_equal(block["conv"]["kernel"][1, 4, 2, 3], conv[3, 2, 1, 4])  # OIHW -> HWIO
    assert set(block["bn"]) == {"scale", "bias"}
    assert variables["batch_stats"]["Mixed_5b"]["branch1x1"]["bn"]["var"][0] == 3.0
    np.testing.assert_array_equal(variables["params"]["fc"]["kernel"], fc.T)


def test_missing_weights_file_says_which_file_and_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pt_inception-2015-12-05.*config\.eval\.inception_weights"):
        features.load_feature_net("inception", str(tmp_path / "absent.pth"))


def test_grayscale_is_repeated_to_rgb_before_resizing():
    gray = np.random.default_rng(2).uniform(-1, 1, (1, 12, 12, 1)).astype(np.float32)
    np.testing.assert_allclose(
        inception.preprocess(gray), inception.preprocess(np.repeat(gray, 3, axis=-1)), rtol=0, atol=0
    )
    assert inception.preprocess(gray).shape == (1, 299, 299, 3)


def test_flax_port_matches_independent_reference(tmp_path):
    """Random weights, written as a torch file, converted and run in Flax == the TF reference on the same images
    (resize to 299, normalisation, every block's pooling and padding, pool features and 1008 logits)."""
    golden = np.load(GOLDEN)
    shapes = [tuple(int(d) for d in s.split(",")) for s in golden["shapes"]]
    path = tmp_path / "pt_inception_random.pth"
    state = random_state_dict([str(n) for n in golden["names"]], shapes)
    write_state_dict(path, state)
    net = features.inception_feature_net(path)
    outputs = jax.jit(net.apply)(net.variables, data.to_unit_range(golden["images"]))
    # The feature net's logits are the Inception Score's: pool3 @ W without the fc bias.
    for name, expected in (("features", golden["features"]), ("logits", golden["logits"] - state["fc.bias"])):
        np.testing.assert_allclose(outputs[name], expected, rtol=0, atol=2e-4 * np.abs(expected).max())
    assert net.weights_hash == features.file_hash(path) and len(net.weights_hash) == 16


@pytest.mark.parametrize("size", [37, 421])
def test_resize_matches_tensorflow_bilinear_without_antialias_when_up_and_down_sampling(size):
    """torch's F.interpolate(bilinear, align_corners=False) == TF2's half-pixel bilinear resize, no antialias."""
    import tensorflow as tf

    images = np.random.default_rng(size).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    expected = tf.image.resize(images, (299, 299), method="bilinear", antialias=False).numpy()
    np.testing.assert_allclose(inception.preprocess(images), expected, atol=1e-5)
