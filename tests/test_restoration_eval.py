"""The restoration evaluator (eval.metrics psnr, ssim, lpips) on paired stand-in sources (digits with a 2x
downscaled or a noisy `source`): a method that returns each example's target scores the PSNR cap and SSIM 1;
one that returns its input scores exactly the baseline (PSNR, SSIM and LPIPS); the baseline is scikit-image's
PSNR/SSIM of the input (bicubic-upsampled for super-resolution) over the whole eval split, padding dropped; bad
settings are one line naming the key."""

import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lpips_reference import write_torch_weights
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError, apply_overrides, base_config
from genimg_jax.evaluation.restoration import PSNR_CAP_DB
from genimg_jax.evaluation.samples import SampleEvaluator
from genimg_jax.metrics import features
from genimg_jax.tools import convert_lpips

NOISE_SIGMA = 20.0
NUM_TEST_DIGITS = 297  # not a multiple of the eval batch of 64: the last batch is padded


class PairedDigits:
    """Digits whose `source` is the 2x2 block mean (kind "sr", super-resolution x2) or the image plus Gaussian
    noise seeded by the index, with an all-known `mask` (kind "noise", denoising)."""

    def __init__(self, kind: str, argument: str, split: str, options: data.SourceOptions):
        self.kind, self.fields = kind, paired_fields(kind, options)
        self._digits = data.make_source("digits", split=split, resolution=options.resolution, channels=options.channels)
        self.num_classes, self.class_names = self._digits.num_classes, self._digits.class_names

    def __len__(self) -> int:
        return len(self._digits)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        digit = self._digits[index]
        image = digit["image"]
        if self.kind == "sr":
            height, width, channels = image.shape
            blocks = image.reshape(height // 2, 2, width // 2, 2, channels).astype(np.float64).mean(axis=(1, 3))
            return {**digit, "source": np.rint(blocks).astype(np.uint8)}
        noisy = image + np.random.default_rng(index).normal(0, NOISE_SIGMA, image.shape)
        mask = np.ones((*image.shape[:2], 1), np.uint8)
        return {**digit, "source": np.clip(np.rint(noisy), 0, 255).astype(np.uint8), "mask": mask}


def paired_fields(kind: str, options: data.SourceOptions) -> dict[str, data.Field]:
    size, channels, uint8 = options.resolution, options.channels, np.dtype(np.uint8)
    fields = {"image": data.Field((size, size, channels), uint8), "label": data.Field((), np.dtype(np.int32))}
    if kind == "sr":
        return fields | {"source": data.Field((size // 2, size // 2, channels), uint8)}
    return fields | {"source": fields["image"], "mask": data.Field((size, size, 1), uint8)}


class ReturnsTheTarget:
    """Looks each source up in a table of the eval split's sources (its state) and returns that example's image."""

    def __init__(self, fields: tuple[str, ...]):
        self.fields = fields

    def conditioning_fields(self) -> tuple[str, ...]:
        return self.fields

    def sample(self, table, rng, num, conditioning=None):
        assert sorted(conditioning) == sorted(self.fields)  # source, and mask where the method asks for it
        query = conditioning["source"].reshape(num, -1).astype(jnp.float32)
        distances = jnp.sum(jnp.square(query[:, None] - table["sources"][None]), axis=-1)
        return table["targets"][jnp.argmin(distances, axis=1)]


class ReturnsItsInput(ReturnsTheTarget):
    def sample(self, table, rng, num, conditioning=None):
        return data.to_unit_range(conditioning["source"])


class Unconditional(ReturnsTheTarget):
    def __init__(self):
        super().__init__(())


@pytest.fixture
def paired_sources(monkeypatch):
    for kind in ("sr", "noise"):
        kind_of_source = data.SourceKind(functools.partial(PairedDigits, kind), functools.partial(paired_fields, kind))
        monkeypatch.setitem(data.SOURCE_KINDS, f"paired_{kind}", kind_of_source)


@pytest.fixture(scope="module")
def lpips_npz(tmp_path_factory) -> str:
    directory = tmp_path_factory.mktemp("lpips")
    alexnet_path, linear_path, _, _ = write_torch_weights(directory)
    out = directory / "lpips.npz"
    assert convert_lpips.main([f"--alexnet={alexnet_path}", f"--linear={linear_path}", f"--out={out}"]) == 0
    return str(out)


def paired_config(source: str, *overrides: str):
    config = base_config()
    config.method = "stand_in"
    config.data.update(source=source, resolution=32, channels=1)
    config.eval.update(batch_size=64)
    return apply_overrides(config, list(overrides))


def stand_in_run(config, method):
    mesh = parallel.make_mesh(config.mesh)
    return types.SimpleNamespace(method=method, mesh=mesh, state_sharding=parallel.replicated(mesh))


def eval_split(config) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(the lookup table ReturnsTheTarget samples from, the eval split's images and sources)."""
    arrays = data.load_all(data.source_from_config(config.data, config.data.eval_split), ("image", "source"))
    table = {
        "sources": arrays["source"].reshape(len(arrays["source"]), -1).astype(np.float32),
        "targets": np.asarray(data.to_unit_range(arrays["image"])),
    }
    return table, arrays


@pytest.mark.parametrize(
    ("kind", "channels", "channel", "crop_border", "metrics"),
    [("sr", 1, "rgb", 0, "psnr,ssim"), ("noise", 3, "y", 2, "ssim,psnr")],
)
def test_an_exact_method_scores_the_cap_and_the_baseline_is_the_inputs_score(
    paired_sources, tmp_path, kind, channels, channel, crop_border, metrics
):
    overrides = [f"data.channels={channels}", f"eval.metrics={metrics}", f"eval.restoration_channel={channel}"]
    overrides += [f"eval.crop_border={crop_border}", "eval.best_metric=psnr"]
    config = paired_config(f"paired_{kind}", *overrides)
    table, arrays = eval_split(config)
    method = ReturnsTheTarget(("source",) if kind == "sr" else ("source", "mask"))
    evaluator = SampleEvaluator(config, stand_in_run(config, method), tmp_path)  # RGB digits: no feature net needed
    values = evaluator.evaluate(table)
    names = metrics.split(",")
    assert set(values) == {*names, *(f"{name}_baseline" for name in names)}
    assert values["psnr"] == PSNR_CAP_DB and values["ssim"] == pytest.approx(1.0, abs=1e-6)

    # The baseline, recomputed: the input (bicubic x2 for SR) against the target, every example in order.
    targets, inputs = arrays["image"], arrays["source"]
    assert len(targets) == NUM_TEST_DIGITS
    if kind == "sr":
        inputs = np.clip(np.rint(jax.image.resize(inputs.astype(np.float32), targets.shape, "bicubic")), 0, 255)
    border = slice(crop_border, 32 - crop_border)
    targets, inputs = targets[:, border, border], inputs[:, border, border].astype(np.uint8)
    if channel == "y":
        pairs = [(rgb2ycbcr(t)[..., 0], rgb2ycbcr(i)[..., 0]) for t, i in zip(targets, inputs, strict=True)]
    else:
        pairs = [(t[..., 0], i[..., 0]) for t, i in zip(targets, inputs, strict=True)]
    psnr = np.mean([peak_signal_noise_ratio(t, i, data_range=255) for t, i in pairs])
    ssim = np.mean(
        [
            structural_similarity(t, i, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
            for t, i in pairs
        ]
    )
    np.testing.assert_allclose(values["psnr_baseline"], psnr, rtol=1e-5)
    np.testing.assert_allclose(values["ssim_baseline"], ssim, atol=1e-4)

    protocol = evaluator.protocol()
    assert set(protocol) == {"restoration"}  # no feature-net protocol without a feature metric
    protocol = protocol["restoration"]
    assert protocol["num_images"] == NUM_TEST_DIGITS and protocol["data_range"] == 255
    assert protocol["channel"].startswith(channel) and protocol["crop_border"] == crop_border
    assert ("upsampled x2 by bicubic" in protocol["baseline"]) == (kind == "sr") and "lpips" not in protocol


def test_a_method_that_returns_its_input_scores_exactly_the_baseline(paired_sources, lpips_npz, tmp_path):
    config = paired_config("paired_noise", "eval.metrics=psnr,ssim,lpips", f"eval.lpips_weights={lpips_npz}")
    evaluator = SampleEvaluator(config, stand_in_run(config, ReturnsItsInput(("source", "mask"))), tmp_path)
    values = evaluator.evaluate(None)
    for name in ("psnr", "ssim", "lpips"):
        assert values[name] == values[f"{name}_baseline"]
    assert 20 < values["psnr"] < 30  # Gaussian noise of sigma 20 on the 0..255 scale: about 22 dB
    assert values["lpips"] > 0
    weights = evaluator.protocol()["restoration"]["lpips"]
    assert weights["weights"] == lpips_npz and weights["weights_sha256"] == features.file_hash(lpips_npz)


@pytest.mark.parametrize(
    ("source", "method", "overrides", "message"),
    [
        ("paired_noise", Unconditional(), [], r"asks for \['psnr', 'ssim'\], which need an image-to-im"),
        ("digits", ReturnsTheTarget(("source",)), [], r"config.data.source='digits' has no fields \['source'\]"),
        ("paired_noise", None, ["eval.restoration_channel=y"], r"restoration_channel='y' is invalid: needs RGB data"),
        ("paired_noise", None, ["eval.restoration_channel=lab"], r"'lab' is invalid: choose one of \['rgb', 'y'\]"),
        ("paired_noise", None, ["eval.crop_border=11"], r"crop_border=11 is invalid: .* SSIM's 11x11 window of 32x32"),
        ("paired_noise", None, ["eval.metrics=lpips"], r"lpips_weights='' is invalid: must name the .npz"),
        ("paired_noise", None, ["eval.metrics=lpips", "eval.lpips_weights=absent.npz"], r"'absent.npz': LPIPS weig"),
        ("paired_noise", None, ["eval.metrics=lpips", "eval.lpips_weights=a", "data.resolution=16"], r"at least 31x3"),
    ],
)
def test_bad_restoration_settings_are_one_line_naming_the_key(paired_sources, source, method, overrides, message):
    config = paired_config(source, "eval.metrics=psnr,ssim", *overrides)
    run = stand_in_run(config, method or ReturnsTheTarget(("source",)))
    with pytest.raises(ConfigError, match=message) as error:
        SampleEvaluator(config, run, "unused")
    assert "\n" not in str(error.value)


def test_fid_of_outputs_against_their_targets(paired_sources, tmp_path):
    """`eval.reference_split` = the eval split compares the outputs for the eval split's sources (in order, each
    once) with its targets: outputs that are the targets score FID 0; the noisy inputs themselves clearly more."""
    overrides = ["eval.metrics=psnr,fid", "eval.reference_split=test", f"eval.num_samples={NUM_TEST_DIGITS}"]
    config = paired_config("paired_noise", *overrides)
    table, _ = eval_split(config)
    exact = SampleEvaluator(config, stand_in_run(config, ReturnsTheTarget(("source", "mask"))), tmp_path / "exact")
    values = exact.evaluate(table)
    assert values["psnr"] == PSNR_CAP_DB and abs(values["fid"]) < 1e-3
    inputs = SampleEvaluator(config, stand_in_run(config, ReturnsItsInput(("source", "mask"))), tmp_path / "inputs")
    assert inputs.evaluate(None)["fid"] > 1.0  # measured 12.0 for Gaussian noise of sigma 20
