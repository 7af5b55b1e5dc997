"""`--mode=sample --prompt`: user captions are encoded with the run's vocabulary, every sample is drawn for its own
prompt (in padded batches), written under its prompt's index, and shown in a grid with its caption under it."""

import types

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from tiny_configs import load

from genimg_jax import data, main, parallel
from genimg_jax.config import ConfigError
from genimg_jax.evaluation import grids, prompts
from genimg_jax.training import compiled_run


class FirstWordPainter:
    """A stand-in text-to-image method: every pixel of sample i is its caption's first word id, scaled."""

    def conditioning_fields(self):
        return prompts.TEXT_FIELDS

    def sample(self, state, rng, num, conditioning):
        assert conditioning["tokens"].shape[0] == num
        value = conditioning["tokens"][:, 1].astype(jnp.float32) / 127.5 - 1.0
        return jnp.broadcast_to(value[:, None, None, None], (num, 16, 16, 1))


@pytest.fixture
def text_config(monkeypatch):
    config = load("text_diffusion.py:digits16", "eval.batch_size=8")
    run = types.SimpleNamespace(method=FirstWordPainter(), mesh=parallel.make_mesh(config.mesh))
    monkeypatch.setattr(prompts, "restore_latest", lambda config, workdir: (run, {}, 7))
    return config


def test_each_prompt_gets_its_own_samples_and_a_captioned_row(text_config, tmp_path, capsys):
    texts = ["a handwritten 3", "the digit seven", "purple unicorn"]
    paths = prompts.sample_prompts(text_config, tmp_path, texts, per_prompt=3)  # 9 samples: batches of 8 and 1
    assert "'purple unicorn': words the model never saw: purple, unicorn" in capsys.readouterr().out
    vocabulary = data.vocabulary_for(text_config.data)
    assert [p.name for p in paths[:-1]] == [f"{p:03d}_{k:02d}.png" for p in range(3) for k in range(3)]
    for path in paths[:-1]:
        first_word = vocabulary.encode(texts[int(path.name[:3])], 4)[0][1]
        expected = np.asarray(data.from_unit_range(jnp.float32(first_word) / 127.5 - 1.0))
        np.testing.assert_array_equal(np.asarray(Image.open(path)), np.full((16, 16), expected, np.uint8))
    assert vocabulary.encode("purple unicorn", 4)[0][1] == data.text.vocabulary.UNKNOWN

    grid = np.asarray(Image.open(paths[-1]))
    tile = 96 + grids.CAPTION_LINE_HEIGHT + 2  # the 96-pixel image and one caption line (16 characters) under it
    assert grid.shape == (2 + 3 * (tile + 2), 2 + 3 * (96 + 2), 3)
    band = grid[2 + 96 : 2 + tile, 2 : 2 + 96]
    assert 0.02 < (band > 128).mean() < 0.5  # white text on black: neither empty nor a white block


def test_wrap_caption_breaks_at_spaces():
    assert grids.wrap_caption("a small 3 at the top left", 9) == ["a small 3", "at the", "top left"]
    assert grids.wrap_caption("unbreakable", 4) == ["unbreakable"]


def test_prompts_come_from_flags_and_a_file(tmp_path):
    file = tmp_path / "prompts.txt"
    file.write_text("a 3\n\n  the digit two \n")
    assert prompts.read_prompts(["a 9"], str(file)) == ["a 9", "a 3", "the digit two"]
    with pytest.raises(ConfigError, match="is not a file"):
        prompts.read_prompts(None, str(tmp_path / "absent.txt"))


def test_prompt_errors_are_one_line(text_config, tmp_path, monkeypatch):
    run = types.SimpleNamespace(method=types.SimpleNamespace(conditioning_fields=lambda: ("label",)), mesh=None)
    monkeypatch.setattr(prompts, "restore_latest", lambda config, workdir: (run, {}, 7))
    with pytest.raises(ConfigError, match="--prompt needs a text-to-image method"):
        prompts.sample_prompts(text_config, tmp_path, ["a 3"], per_prompt=1)
    with pytest.raises(ConfigError, match="--per_prompt=0 must be at least 1"):
        prompts.sample_prompts(text_config, tmp_path, ["a 3"], per_prompt=0)
    status = main.main(["--config=configs/dcgan.py", f"--workdir={tmp_path}", "--prompt=a 3"])
    assert status == 2  # --prompt is a flag of --mode=sample


def test_training_sample_grids_of_text_models_carry_their_captions(tmp_path):
    """The grid's captions are the eval split's first captions as text, and the saved grid has a caption band."""
    config = load("text_diffusion.py:digits16", "train.num_sample_images=4")
    source = data.source_from_config(config.data, config.data.eval_split)
    tokens = np.stack([source[i]["tokens"] for i in range(4)])
    captions = compiled_run._captions(config, {"tokens": jnp.asarray(tokens)})
    vocabulary = data.vocabulary_for(config.data)
    assert [vocabulary.encode(text, config.data.caption_length)[0].tolist() for text in captions] == tokens.tolist()
    assert compiled_run._captions(config, None) == ()
    images = np.full((4, 16, 16, 1), 128, np.uint8)
    plain = grids.save_sample_grid(images, tmp_path / "plain.png", {})
    captioned = grids.save_sample_grid(images, tmp_path / "captioned.png", {}, captions)
    assert plain.shape[0] < captioned.shape[0]
    size, pad = 96, 2  # each 16x16 tile enlarged 6x, 2 black pixels between tiles
    assert (captioned[pad : pad + size, pad : pad + size] == 128).all()
    assert captioned[pad + size : pad + size + 12, pad : pad + size].max() > 200  # white caption under the first
