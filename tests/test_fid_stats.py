"""FID statistics files (`tools.fid_stats`): pytorch-fid's format, numpy's moments of the evaluation's features,
and an evaluation reference that gives the same FID as the split itself."""

import types

import numpy as np
import pytest
from tiny_configs import load

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError
from genimg_jax.evaluation.provenance import save_png
from genimg_jax.evaluation.samples import SampleEvaluator
from genimg_jax.metrics import features, reference
from genimg_jax.tools import fid_stats

DIGITS = ["--features=digits", "--resolution=32", "--channels=1", "--batch_size=64"]
DIGITS_FEATURE_DIM = 128
FID_EVAL = ["eval.metrics=fid", "eval.num_samples=64", "eval.batch_size=64", "eval.reference_split=test"]


@pytest.fixture(scope="module")
def test_stats(tmp_path_factory):
    """The statistics of the 297 digits test images, as the tool writes them."""
    path = tmp_path_factory.mktemp("stats") / "digits_test.npz"
    assert fid_stats.main(["--source=digits", "--split=test", f"--out={path}", *DIGITS]) == 0
    return path


def test_the_file_reads_as_pytorch_fid_reads_it_and_holds_numpys_moments(test_stats):
    with np.load(test_stats) as f:  # pytorch-fid: `f['mu'][:], f['sigma'][:]`
        mu, sigma = f["mu"][:], f["sigma"][:]
        recorded = {name: f[name].item() for name in ("feature_net", "feature_net_weights_sha256", "num_images")}
    net = features.load_feature_net("digits")
    source = data.make_source("digits", split="test", resolution=32, channels=1)
    sharding = parallel.batch_sharding(parallel.make_mesh(load("dcgan.py").mesh))
    real = reference.source_features(net, source, 64, sharding)["features"].astype(np.float64)
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (DIGITS_FEATURE_DIM, DIGITS_FEATURE_DIM)
    np.testing.assert_allclose(mu, real.mean(axis=0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(sigma, np.cov(real, rowvar=False), rtol=1e-8, atol=1e-8)
    assert recorded == {"feature_net": "digits", "feature_net_weights_sha256": net.weights_hash, "num_images": 297}


class _Replay:
    """An unconditional "generator" whose samples are the images its state holds."""

    def conditioning_fields(self):
        return ()

    def sample(self, images, rng, num, conditioning=None):
        return images[:num]


def replay_run():
    mesh = parallel.make_mesh(load("dcgan.py").mesh)
    return types.SimpleNamespace(method=_Replay(), mesh=mesh, state_sharding=parallel.replicated(mesh))


def test_fid_against_the_file_equals_fid_against_the_split_in_memory(test_stats, tmp_path):
    source = data.make_source("digits", split="train", resolution=32, channels=1)
    samples = data.to_unit_range(np.stack([source[i]["image"] for i in range(64)]))
    run = replay_run()
    in_memory = SampleEvaluator(load("dcgan.py", *FID_EVAL), run, tmp_path)
    from_file = SampleEvaluator(load("dcgan.py", *FID_EVAL, f"eval.reference_stats={test_stats}"), run, tmp_path)
    expected = in_memory.evaluate(samples)["fid"]
    assert expected > 0 and from_file.evaluate(samples)["fid"] == pytest.approx(expected, rel=1e-10)
    assert from_file.protocol()["reference"] == {"stats_file": str(test_stats), "source": "digits", "num_images": 297}


def test_a_folder_of_images_and_its_npz_give_the_same_statistics(tmp_path):
    source = data.make_source("digits", split="test", resolution=32, channels=1)
    images = np.stack([source[i]["image"] for i in range(40)])
    for index, image in enumerate(images):  # a set as --mode=generate writes it, with its .npz
        save_png(image, tmp_path / "set" / f"{index:06d}.png", {"index": str(index)})
    np.savez(tmp_path / "set.npz", x=images)
    stats = {}
    for name, source_text in [("folder", tmp_path / "set"), ("npz", tmp_path / "set.npz")]:
        assert fid_stats.main([f"--source={source_text}", f"--out={tmp_path / name}.npz", *DIGITS]) == 0
        stats[name] = np.load(tmp_path / f"{name}.npz")
    np.testing.assert_array_equal(stats["folder"]["mu"], stats["npz"]["mu"])
    np.testing.assert_array_equal(stats["folder"]["sigma"], stats["npz"]["sigma"])
    assert int(stats["folder"]["num_images"]) == 40 and f"folder:{tmp_path / 'set'}" in str(stats["folder"]["protocol"])


IDENTITY = {"mu": np.zeros(DIGITS_FEATURE_DIM), "sigma": np.eye(DIGITS_FEATURE_DIM)}


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (None, "no such file"),
        (b"not a zip", "cannot be read as an .npz"),
        ({"mu": np.zeros(DIGITS_FEATURE_DIM)}, "has no sigma"),
        ({**IDENTITY, "feature_net": "inception"}, "was made with feature net 'inception'"),
        (
            {**IDENTITY, "feature_net": "digits", "feature_net_weights_sha256": "0"},
            "was made with feature net 'digits' (weights 0)",
        ),
        ({"mu": np.zeros(2048), "sigma": np.eye(2048)}, "holds 2048-d features, but feature net 'digits' gives 128"),
    ],
    ids=["missing", "not-npz", "no-sigma", "other-net", "other-weights", "other-dimension"],
)
def test_an_unusable_reference_stats_file_is_one_line_naming_it(contents, message, tmp_path):
    path = tmp_path / "stats.npz"
    if isinstance(contents, bytes):
        path.write_bytes(contents)
    elif contents is not None:
        np.savez(path, **contents)
    config = load("dcgan.py", *FID_EVAL, f"eval.reference_stats={path}")
    with pytest.raises(ConfigError, match=rf"^config.eval.reference_stats='{path}': ") as error:
        SampleEvaluator(config, run=None, workdir=tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_pytorch_fid_file_of_the_right_size_is_taken_on_trust(tmp_path):
    path = tmp_path / "published.npz"
    np.savez(path, mu=np.ones(DIGITS_FEATURE_DIM), sigma=2 * np.eye(DIGITS_FEATURE_DIM))
    config = load("dcgan.py", *FID_EVAL, f"eval.reference_stats={path}")
    evaluator = SampleEvaluator(config, replay_run(), tmp_path)
    assert evaluator.reference_stats.feature_net is None
    np.testing.assert_array_equal(evaluator.reference_stats.covariance, 2 * np.eye(DIGITS_FEATURE_DIM))


def test_metrics_that_need_reference_features_refuse_a_stats_file(test_stats):
    config = load("dcgan.py", "eval.metrics=fid,kid", f"eval.reference_stats={test_stats}")
    with pytest.raises(ConfigError, match=r"\['kid'\] need the reference's features"):
        SampleEvaluator(config, run=None, workdir="unused")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--source=digits", "--features=inception"], "--features=inception needs --inception_weights=PATH"),
        (["--source=digits", "--features=digits", "--channels=3"], "--features=digits: feature net 'digits' takes"),
        (["--source=mnist", "--features=digits", "--channels=1"], "--source: unknown data source 'mnist'"),
    ],
)
def test_bad_tool_arguments_are_one_line_and_write_nothing(flags, message, tmp_path, capsys):
    assert fid_stats.main([*flags, f"--out={tmp_path / 'stats.npz'}"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_an_npz_source_without_images_is_one_line_naming_it(tmp_path, capsys):
    np.savez(tmp_path / "labels_only.npz", labels=np.arange(3))
    flags = [f"--source={tmp_path / 'labels_only.npz'}", f"--out={tmp_path / 'stats.npz'}", *DIGITS]
    assert fid_stats.main(flags) == 2
    assert f"cannot read images (key 'x') from '{tmp_path / 'labels_only.npz'}'" in capsys.readouterr().err
    assert not (tmp_path / "stats.npz").exists()
