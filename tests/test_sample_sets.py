"""`--mode=generate`: sample sets as PNG files (and an .npz) from fixed seeds, with their provenance; and the
provenance text chunks of every image the project writes."""

import hashlib
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from tiny_configs import CONFIGS, TINY_GAN, TINY_STYLEGAN2, load

from genimg_jax import data, main, parallel
from genimg_jax.evaluation import provenance, sample_sets
from genimg_jax.evaluation.streamed_npz import StreamedNpz
from genimg_jax.training.workdir import resolved_config_text

# The projection cGAN's config (10 classes); its network is never built here (see `fake_run`).
CGAN = [*TINY_GAN, "train.batch_size=40", "eval.batch_size=8"]
CHECKPOINT_SHA256 = "ab" * 32


class KeyImages:
    """A "method" whose sample from key k (for class c) is uniform noise drawn from k (shifted by c / 50): every
    pixel shows which key and class an image was drawn from."""

    def __init__(self, conditional=True):
        self.conditional = conditional

    def conditioning_fields(self):
        return ("label",) if self.conditional else ()

    def sample(self, state, rng, num, conditioning=None):
        noise = jax.random.uniform(rng, (num, 4, 4, 3), minval=-1.0, maxval=0.8)
        return noise + conditioning["label"][:, None, None, None] / 50.0 if self.conditional else noise


def expected_image(seed, index, label):
    """Sample `index` as `KeyImages` draws it alone from key fold_in(PRNGKey(seed), index), as uint8."""
    key = jax.random.fold_in(jax.random.PRNGKey(seed), index)
    return data.from_unit_range(KeyImages().sample(None, key, 1, {"label": jnp.array([label])}))[0]


@pytest.fixture
def fake_run(monkeypatch):
    """`generate` on `KeyImages` over the 8 simulated devices, "restored" from step 5: the sampling, batching,
    labels and files of `generate` without building or restoring a network. Returns the configs it compiled."""
    compiled = []
    mesh = parallel.make_mesh(load("dcgan.py").mesh)

    def compile_run(config):
        compiled.append(config)
        return types.SimpleNamespace(
            method=KeyImages(conditional=config.model.get("num_classes", 0) > 0),
            mesh=mesh,
            state_sharding=parallel.replicated(mesh),
            batch_sharding=parallel.batch_sharding(mesh),
        )

    monkeypatch.setattr(sample_sets, "compile_run", compile_run)
    monkeypatch.setattr(sample_sets, "restore_trained_state", lambda config, run, workdir: (jnp.zeros(()), 5))
    monkeypatch.setattr(sample_sets, "checkpoint_digest", lambda workdir, step: CHECKPOINT_SHA256)
    return compiled


def read_set(folder, num):
    return np.stack([np.asarray(Image.open(folder / f"{i:06d}.png")) for i in range(num)])


def test_sample_i_comes_from_key_i_and_its_class_whatever_the_batch_size(fake_run, tmp_path):
    config = load("cgan_projection.py", *CGAN)
    written = sample_sets.generate(config, tmp_path, tmp_path / "a", 10, seed=3, labels="0,3,7", npz=True)
    assert (written.count, written.step, written.npz) == (10, 5, tmp_path / "a" / "samples.npz")
    names = sorted(p.name for p in written.folder.iterdir())
    assert names == [f"{i:06d}.png" for i in range(10)] + ["samples.npz"]
    images = read_set(written.folder, 10)
    labels = [0, 3, 7, 0, 3, 7, 0, 3, 7, 0]
    np.testing.assert_array_equal(images, [expected_image(3, i, label) for i, label in enumerate(labels)])
    with np.load(written.npz) as arrays:
        np.testing.assert_array_equal(arrays["x"], images)
        assert arrays["labels"].tolist() == labels
    assert [Image.open(written.folder / f"00000{i}.png").text["label"] for i in range(4)] == ["0", "3", "7", "0"]

    # The same command writes the same files, bit for bit (provenance included).
    sample_sets.generate(config, tmp_path, tmp_path / "b", 10, seed=3, labels="0,3,7", npz=True)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()

    # Batches of 16 instead of 8 (one padded batch), 12 samples: the first 10 are the set of 10, exactly.
    rebatched = load("cgan_projection.py", *CGAN, "eval.batch_size=16")
    larger = sample_sets.generate(rebatched, tmp_path, tmp_path / "c", 12, seed=3, labels="0,3,7")
    np.testing.assert_array_equal(read_set(larger.folder, 12)[:10], images)
    # Another seed, balanced labels by default: sample i of class i mod 10.
    balanced = read_set(sample_sets.generate(rebatched, tmp_path, tmp_path / "d", 12, seed=4).folder, 12)
    np.testing.assert_array_equal(balanced, [expected_image(4, i, i % 10) for i in range(12)])


def test_generated_images_carry_their_provenance(fake_run, tmp_path):
    config = load("cgan_projection.py", *CGAN)
    sample_sets.generate(config, tmp_path, tmp_path / "set", 3, seed=7, labels="4")
    assert Image.open(tmp_path / "set" / "000002.png").text == {
        "Description": provenance.DESCRIPTION,
        "Software": provenance.code_version(),
        "method": "gan",
        "config_sha256": hashlib.sha256(resolved_config_text(config).encode()).hexdigest()[:16],
        "step": "5",
        "checkpoint_sha256": CHECKPOINT_SHA256[:16],
        "seed": "7",
        "index": "2",
        "label": "4",
        "watermark": "none: a 4x4 image is too small to carry it",
    }


def test_truncation_reaches_the_sampling_config(fake_run, tmp_path):
    """--truncation=PSI sets `sample.truncation_psi`, StyleGAN2's default psi in `sample` (test_stylegan2 checks
    what psi does), in a copy: the caller's config keeps its value."""
    config = load("stylegan2.py", *TINY_STYLEGAN2, "eval.batch_size=8")
    sample_sets.generate(config, tmp_path, tmp_path / "set", 1, truncation=0.3)
    assert fake_run[0].sample.truncation_psi == 0.3 and config.sample.truncation_psi == 1.0
    assert Image.open(tmp_path / "set" / "000000.png").text["truncation_psi"] == "0.3"


def test_code_version_without_git_is_the_package_version(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    provenance.code_version.cache_clear()
    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    try:
        assert provenance.code_version() == f"genimg_jax {provenance.importlib.metadata.version('genimg_jax')}"
    finally:
        provenance.code_version.cache_clear()


def generate_flags(workdir, spec, *flags):
    return [f"--config={CONFIGS / spec}", f"--workdir={workdir}", "--mode=generate", *flags]


@pytest.mark.parametrize(
    ("spec", "flags", "message"),
    [
        ("dcgan.py", ["--num=4", "--truncation=0.7"], "--truncation: method 'gan' has no truncation"),
        ("dcgan.py", ["--num=4", "--labels=1"], "--labels=1: method 'gan' is not class-conditional"),
        ("cgan_projection.py", ["--num=4", "--labels=2,10"], "--labels=2,10: classes are 0..9"),
        ("cgan_projection.py", ["--num=4", "--labels=two"], "--labels='two' must be 'balanced' or class indices"),
        ("cgan_projection.py", ["--num=0"], "--num=0 must be positive"),
        ("cgan_projection.py", [], "--mode=generate needs --num"),
    ],
)
def test_bad_generate_flags_are_one_line_and_write_nothing(spec, flags, message, tmp_path, capsys):
    out = tmp_path / "set"
    assert main.main(generate_flags(tmp_path, spec, f"--out={out}", *flags)) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1
    assert not out.exists()


def test_generate_refuses_a_folder_that_holds_files(tmp_path, capsys):
    (tmp_path / "keep.png").write_bytes(b"mine")
    assert main.main(generate_flags(tmp_path, "dcgan.py", f"--out={tmp_path}", "--num=2")) == 2
    assert "is not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "keep.png").read_bytes() == b"mine"


def test_generate_flags_belong_to_generate_mode(tmp_path, capsys):
    assert main.main([f"--config={CONFIGS / 'dcgan.py'}", f"--workdir={tmp_path}", "--num=3"]) == 2
    assert "--num is a flag of --mode=generate, not of --mode=train" in capsys.readouterr().err


def test_streamed_npz_reads_back_with_numpy_and_appears_only_when_complete(tmp_path):
    rows = np.random.default_rng(0).integers(0, 256, (7, 4, 4, 3), dtype=np.uint8)
    writer = StreamedNpz(tmp_path / "set.npz", "x", rows.shape, np.uint8)
    for start in range(0, 7, 3):
        writer.append(rows[start : start + 3])
    assert not (tmp_path / "set.npz").exists()
    writer.close(labels=np.arange(7))
    with np.load(tmp_path / "set.npz") as arrays:
        assert sorted(arrays.files) == ["labels", "x"]
        np.testing.assert_array_equal(arrays["x"], rows)
        np.testing.assert_array_equal(arrays["labels"], np.arange(7))
    short = StreamedNpz(tmp_path / "short.npz", "x", rows.shape, np.uint8)
    short.append(rows[:3])
    with pytest.raises(ValueError, match="3 of 7 rows"):
        short.close()
    with pytest.raises(ValueError, match="do not fit"):
        short.append(rows[:5])


def test_save_png_writes_provenance_that_pil_reads_back(tmp_path):
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    config = load("dcgan.py")
    fields = provenance.image_provenance(config, 12, 3, "ab" * 32, index=5)
    provenance.save_png(pixels, tmp_path / "x.png", fields)
    image = Image.open(tmp_path / "x.png")
    np.testing.assert_array_equal(np.asarray(image), pixels)  # 4x4: too small for the watermark
    written = {name: value for name, value in fields.items() if name != provenance.WATERMARK_KEY_FIELD}
    assert image.text == {**written, "watermark": "none: a 4x4 image is too small to carry it"}
    assert fields["checkpoint_sha256"] == "ab" * 8 and fields["step"] == "12" and fields["index"] == "5"
    assert provenance.image_provenance(config, 1, 0)["checkpoint_sha256"] == "none (live training state)"
