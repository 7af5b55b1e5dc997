"""LPIPS (AlexNet, v0.1): torch-format weight files round-trip through the converter, the Flax net agrees with a
numpy recomputation from torch's layouts, LPIPS(x, x) = 0 and symmetry, and unusable files are one line."""

import re

import jax
import numpy as np
import pytest
from lpips_reference import alexnet_features, distance_from_features, write_torch_weights

from genimg_jax.metrics import lpips, lpips_weights
from genimg_jax.tools import convert_lpips


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(variables loaded from the converter's .npz, torch AlexNet state dict, torch heads state dict)."""
    directory = tmp_path_factory.mktemp("lpips")
    alexnet_path, linear_path, alexnet, linear = write_torch_weights(directory)
    out = directory / "lpips.npz"
    assert convert_lpips.main([f"--alexnet={alexnet_path}", f"--linear={linear_path}", f"--out={out}"]) == 0
    return lpips_weights.load_lpips_variables(out), alexnet, linear


def test_the_converter_maps_torch_layouts_to_the_flax_parameters(converted):
    variables, alexnet, linear = converted
    params = variables["params"]
    for name, index in (("conv1", 0), ("conv2", 3), ("conv3", 6), ("conv4", 8), ("conv5", 10)):
        expected_kernel = alexnet[f"features.{index}.weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
        np.testing.assert_array_equal(params["alexnet"][name]["kernel"], expected_kernel)
        np.testing.assert_array_equal(params["alexnet"][name]["bias"], alexnet[f"features.{index}.bias"])
    for layer in range(5):
        np.testing.assert_array_equal(params[f"lin{layer}"], linear[f"lin{layer}.model.1.weight"].reshape(-1))


def apply_features(variables, images):
    return lpips.LPIPS().apply(variables, images, method=lpips.LPIPS.features)


def test_lpips_agrees_with_numpy_from_torch_layouts(converted):
    """Non-square 36x40 images: relu1 is 8x9, relu3..5 are 1x1."""
    variables, alexnet, linear = converted
    rng = np.random.default_rng(1)
    x0, x1 = (rng.uniform(-1, 1, (3, 36, 40, 3)).astype(np.float32) for _ in range(2))
    features = [jax.jit(apply_features)(variables, x) for x in (x0, x1)]
    for ours, reference in zip(features[0], alexnet_features(alexnet, x0), strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)
    distance = np.asarray(lpips.lpips_distance(variables, x0, x1))
    # The normalise-difference-weight-mean-sum stages in numpy, on the Flax features...
    np.testing.assert_allclose(distance, distance_from_features(linear, *features), rtol=1e-5)
    # ...and the whole of LPIPS in numpy.
    reference = distance_from_features(linear, alexnet_features(alexnet, x0), alexnet_features(alexnet, x1))
    np.testing.assert_allclose(distance, reference, rtol=1e-4)
    assert np.all(distance > 0)


def test_grayscale_enters_as_rgb():
    gray = np.random.default_rng(4).uniform(-1, 1, (2, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(lpips.scaled(gray), lpips.scaled(np.repeat(gray, 3, axis=-1)))


def test_lpips_is_zero_on_identical_images_and_symmetric(converted):
    variables, _, _ = converted
    rng = np.random.default_rng(2)
    x0, x1 = (rng.uniform(-1, 1, (3, 36, 40, 3)).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(lpips.lpips_distance(variables, x0, x0), np.zeros(3), atol=1e-12)  # float rounding
    np.testing.assert_allclose(lpips.lpips_distance(variables, x0, x1), lpips.lpips_distance(variables, x1, x0))


@pytest.mark.parametrize("kind", ["missing", "not-npz", "missing-array", "wrong-shape"])
def test_an_unusable_weights_file_says_what_is_wrong(kind, tmp_path, converted):
    variables, _, _ = converted
    path = tmp_path / "weights.npz"
    kernel, bias = (np.asarray(variables["params"]["alexnet"]["conv1"][name]) for name in ("kernel", "bias"))
    if kind == "not-npz":
        path.write_bytes(b"not a zip archive")
    elif kind == "missing-array":
        np.savez(path, **{"alexnet.conv1.kernel": kernel})
    elif kind == "wrong-shape":
        np.savez(path, **{"alexnet.conv1.kernel": kernel[:1], "alexnet.conv1.bias": bias})
    message = {
        "missing": "not found (nothing is downloaded); convert torch's files with python -m genimg_jax.tools",
        "not-npz": "cannot read it as an .npz",
        "missing-array": "no array 'alexnet.conv1.bias'",
        "wrong-shape": "'alexnet.conv1.kernel' has shape (1, 11, 3, 64), LPIPS's AlexNet needs (11, 11, 3, 64)",
    }[kind]
    with pytest.raises(ValueError, match=re.escape(message)):
        lpips_weights.load_lpips_variables(path)


def test_the_converter_names_the_flag_of_an_unreadable_file(tmp_path, capsys):
    _, linear_path, _, _ = write_torch_weights(tmp_path)
    out = tmp_path / "out.npz"
    missing = tmp_path / "absent.pth"
    assert convert_lpips.main([f"--alexnet={missing}", f"--linear={linear_path}", f"--out={out}"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: --alexnet={missing}: not a readable torch state dict")
    # Heads given as the AlexNet file: the missing entry is named.
    assert convert_lpips.main([f"--alexnet={linear_path}", f"--linear={linear_path}", f"--out={out}"]) == 2
    assert "the AlexNet state dict has no 'features.0.weight'" in capsys.readouterr().err
    assert not out.exists()
