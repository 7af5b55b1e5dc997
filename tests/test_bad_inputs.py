"""Bad inputs give one clear message naming what and where: image folders with damaged, odd or tiny files,
empty folders, and a workdir that holds another run's checkpoints."""

import json

import numpy as np
import pytest
from PIL import Image
from tiny_configs import TINY_GAN, load

from genimg_jax import data
from genimg_jax.config import ConfigError
from genimg_jax.data.folder_source import FolderSource
from genimg_jax.training import trainer
from genimg_jax.training import workdir as workdirs


@pytest.fixture
def mixed_folder(tmp_path):
    """Every kind of file a scraped image folder holds: good images of several modes, and bad ones."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a_rgb.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "b_gray.png")
    rgba = np.concatenate([rgb, np.zeros((16, 16, 1), np.uint8)], axis=-1)
    rgba[:8, :, 3] = 255  # top half opaque, bottom half fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c_rgba.png")
    deep = np.full((16, 16), 65535, np.uint16)
    deep[:, 8:] = 32896  # 128 * 257
    Image.fromarray(deep).save(tmp_path / "d_16bit.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "e_palette.gif")
    Image.fromarray(rgb[:4, :6]).save(tmp_path / "f_tiny.png")  # 6x4, smaller than 16
    whole = (tmp_path / "a_rgb.png").read_bytes()
    (tmp_path / "g_truncated.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "h_not_really.jpg").write_text("a text file with an image suffix")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path, rgb


def _source(root, **policies):
    return data.make_source(f"folder:{root}", split="train", resolution=16, channels=3, **policies)


def _checked_source(root, **policies):
    """A folder decoded and checked at open (`checked=True`: translate mode, folder_captions)."""
    return FolderSource(str(root), "train", 16, 3, **policies, checked=True)


def test_undecodable_files_stop_with_the_count_an_example_and_the_config_key(mixed_folder):
    root, _ = mixed_folder
    with pytest.raises(data.DataError) as error:
        _checked_source(root)
    message = str(error.value)
    assert "\n" not in message
    assert f"image folder '{root}': 2 cannot be decoded (e.g. 'g_truncated.png'" in message
    assert "config.data.bad_images=skip" in message


def test_skip_leaves_out_bad_files_with_one_counted_warning(mixed_folder, capsys):
    root, _ = mixed_folder
    source = _checked_source(root, bad_images="skip", small_images="skip")
    assert len(source) == 5
    assert {kind: [p.name for p in paths] for kind, paths in source.skipped.items()} == {
        "not an image": ["notes.txt"],
        "cannot be decoded": ["g_truncated.png", "h_not_really.jpg"],
        "smaller than the resolution": ["f_tiny.png"],
    }
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1
    assert warning.startswith(f"warning: image folder '{root}': using 5 of 9 files; skipped 1 not an image")
    assert "1 smaller than the resolution (e.g. 'f_tiny.png': 6x4)" in warning


def test_modes_are_converted_and_small_images_upscaled(mixed_folder):
    root, rgb = mixed_folder
    source = _source(root, bad_images="skip")  # small_images="upscale" by default
    assert len(source) == 8  # opened without decoding: the two bad files are found (and replaced) on access
    images = {name: source[i]["image"] for i, name in enumerate(["rgb", "gray", "rgba", "deep", "palette", "tiny"])}
    np.testing.assert_array_equal(images["rgb"], rgb)
    np.testing.assert_array_equal(images["gray"], np.repeat(rgb[..., :1], 3, axis=-1))
    np.testing.assert_array_equal(images["rgba"][:8], rgb[:8])  # opaque: the colours
    assert not images["rgba"][8:].any()  # transparent: composited over black
    # 16 bits are rescaled to 8, not clipped (PIL's convert("L") would make both halves 255).
    assert (images["deep"][:, :8] == 255).all() and (images["deep"][:, 8:] == 128).all()
    assert np.abs(images["palette"].astype(int) - rgb).mean() < 40  # 256-colour quantisation of noise
    assert images["tiny"].shape == (16, 16, 3)


def test_empty_and_imageless_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match=r"image folder '.*empty' is empty \(source 'folder:"):
        _source(tmp_path / "empty")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "readme.md").write_text("no images here")
    with pytest.raises(data.DataError, match=r"has no usable images: 1 not an image \(e\.g\. 'readme\.md'\)"):
        _source(tmp_path / "texts", bad_images="skip")


def _gan_config(*overrides):
    return load("dcgan.py", *TINY_GAN, *overrides)


def test_identity_differences_ignore_run_length_and_logging():
    saved = json.loads(_gan_config().to_json_best_effort())
    longer = json.loads(_gan_config("train.steps=99999", "train.log_every=7", "eval.every=3").to_json_best_effort())
    assert workdirs.identity_differences(saved, longer) == {}
    other = json.loads(_gan_config("model.g_features=16", "optim.g.learning_rate=0.1").to_json_best_effort())
    assert workdirs.identity_differences(saved, other) == {
        "model.g_features": (8, 16),
        "optim.g.learning_rate": (saved["optim"]["g"]["learning_rate"], 0.1),
    }


def test_a_key_added_after_the_saved_run_reads_as_its_default():
    """A config.json from before `data.degradation` existed resumes a run without one, not one with one."""
    saved = json.loads(_gan_config().to_json_best_effort())
    del saved["data"]["degradation"], saved["data"]["direction"]
    assert workdirs.identity_differences(saved, json.loads(_gan_config().to_json_best_effort())) == {}
    degraded = json.loads(_gan_config("data.degradation=gray", "data.direction=BtoA").to_json_best_effort())
    assert workdirs.identity_differences(saved, degraded) == {
        "data.degradation": ("", "gray"),
        "data.direction": ("AtoB", "BtoA"),
    }


def test_workdir_of_another_model_is_refused_and_left_as_it_was(tmp_path):
    workdirs.save_resolved_config(_gan_config(), tmp_path)
    (tmp_path / "checkpoints" / "4" / "state").mkdir(parents=True)  # a step folder, as Orbax names them
    saved = (tmp_path / "config.json").read_text()
    with pytest.raises(ConfigError) as error:
        trainer.train(_gan_config("model.g_features=16", "train.steps=4"), tmp_path)
    assert str(error.value) == (
        f"workdir {tmp_path} holds checkpoints of a different run (config.model.g_features: saved 8, now 16); "
        f"use another --workdir, or the saved values to resume"
    )
    assert (tmp_path / "config.json").read_text() == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "config.json"]


def test_workdir_saved_before_a_key_moved_says_where_it_went(tmp_path):
    """A config.json written when the GAN's penalty lived in config.model names the key's new place."""
    old = json.loads(_gan_config().to_json_best_effort())
    old["model"]["penalty"] = old["loss"].pop("penalty")
    (tmp_path / "config.json").write_text(json.dumps(old))
    with pytest.raises(
        ConfigError,
        match=r"config\.loss\.penalty: saved None, now 'none'; config\.model\.penalty: "
        r"saved 'none', since moved to config\.loss\.penalty\)",
    ):
        workdirs.check_resumable(tmp_path, _gan_config())
