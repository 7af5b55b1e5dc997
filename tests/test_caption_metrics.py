"""The caption_agreement and r_precision sample metrics through the sample evaluator: a stand-in "generator" that
returns the eval split's own image for each caption scores what the metrics give those images directly, and the
config errors are one line naming the key at fault."""

import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import load

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError
from genimg_jax.data.text.vocabulary import Vocabulary
from genimg_jax.evaluation.samples import SampleEvaluator
from genimg_jax.metrics import caption_agreement, dual_encoder_file
from genimg_jax.models.dual_encoder import DualEncoderSpec, init_params

NUM = 200


class _CaptionBank:
    """Text-to-image stand-in: for each caption, the image of the first bank example with exactly those tokens."""

    def conditioning_fields(self):
        return ("tokens", "tokens_mask")

    def sample(self, bank, rng, num, conditioning=None):
        tokens, images = bank
        same = jnp.all(conditioning["tokens"][:, None, :] == tokens[None], axis=-1)
        return images[jnp.argmax(same, axis=1)]


class _Unconditional:
    def conditioning_fields(self):
        return ()


def _run(config, method):
    mesh = parallel.make_mesh(config.mesh)
    return types.SimpleNamespace(method=method, mesh=mesh, state_sharding=parallel.replicated(mesh))


def _random_encoder(path, vocabulary: Vocabulary) -> dual_encoder_file.TrainedDualEncoder:
    """A small dual encoder with random weights (drawn in numpy: no initialisation to compile), saved to `path`."""
    spec = DualEncoderSpec(len(vocabulary), 33, resolution=64, widths=(8, 8, 8), embed_dim=16, word_dim=8)
    leaves, tree = jax.tree.flatten(jax.eval_shape(functools.partial(init_params, spec), jax.random.PRNGKey(0)))
    rng = np.random.default_rng(0)
    params = jax.tree.unflatten(tree, [0.3 * rng.normal(size=leaf.shape).astype(np.float32) for leaf in leaves])
    encoder = dual_encoder_file.TrainedDualEncoder(spec, vocabulary, params, {"source": "digit_scenes:64"})
    dual_encoder_file.save(path, encoder)
    return encoder


def _config(dual_encoder: str, metrics: str = "caption_agreement,r_precision"):
    return load(
        "cgan_projection.py",
        f"data.source=digit_scenes:64:train=10:test={NUM}",
        "data.resolution=64",
        "data.caption_length=33",
        f"eval.metrics={metrics}",
        f"eval.num_samples={NUM}",
        "eval.batch_size=40",
        f"eval.dual_encoder={dual_encoder}",
    )


def test_real_eval_images_as_samples_score_what_the_metrics_give_them(tmp_path):
    config = _config(str(tmp_path / "encoder.msgpack"))
    _random_encoder(tmp_path / "encoder.msgpack", data.vocabulary_for(config.data))
    real = data.load_all(data.source_from_config(config.data, "test"), ("image", "tokens", "tokens_mask"))
    bank = (jnp.asarray(real["tokens"]), data.to_unit_range(real["image"]))
    evaluator = SampleEvaluator(config, _run(config, _CaptionBank()), tmp_path)
    values = evaluator.evaluate(bank)
    assert set(values) == {"digit_agreement", "exact_match", "r_precision", "r_precision_std"}
    # The bank returns each caption's first example's image: the same layout, so the agreement is the real one's.
    first = np.argmax((real["tokens"][:, None] == real["tokens"][None]).all(-1), axis=1)
    images = np.asarray(bank[1])[first]
    expected = caption_agreement.scene_agreement(images, real["tokens"], evaluator.captions.vocabulary)
    assert values["digit_agreement"] == pytest.approx(expected["digit_agreement"]) and expected["digit_agreement"] > 0.8
    ranked = evaluator.captions.r_precision(images, np.arange(NUM), real["tokens"], real["tokens_mask"], seed=0)
    assert values["r_precision"] == pytest.approx(ranked["r_precision"])
    assert evaluator.protocol()["captions"]["r_precision"]["splits"] == 10


def test_caption_metric_config_errors_are_one_line(tmp_path):
    config = _config(str(tmp_path / "absent.msgpack"))
    with pytest.raises(ConfigError, match=r"config\.eval\.dual_encoder: .*absent\.msgpack' are missing"):
        SampleEvaluator(config, _run(config, _CaptionBank()), tmp_path)
    _random_encoder(tmp_path / "other.msgpack", Vocabulary(["word"]))
    config = _config(str(tmp_path / "other.msgpack"), "r_precision")
    with pytest.raises(ConfigError, match="another vocabulary"):
        SampleEvaluator(config, _run(config, _CaptionBank()), tmp_path)
    config = _config("", "caption_agreement")
    with pytest.raises(ConfigError, match="conditions on 'tokens'"):
        SampleEvaluator(config, _run(config, _Unconditional()), tmp_path)
    with pytest.raises(ConfigError, match=r"eval\.dual_encoder"):
        SampleEvaluator(_config("", "r_precision"), _run(config, _CaptionBank()), tmp_path)


def test_net_input_is_bt601_luma_resized_with_antialiasing():
    from genimg_jax.metrics.net_input import fit_to_net

    rgb = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(np.asarray(fit_to_net(rgb, 8, channels=1))[..., 0], luma, atol=1e-6)
    assert np.asarray(fit_to_net(rgb, 8, channels=3)).shape == (2, 8, 8, 3)  # a colour net keeps colour
    grey_to_colour = np.asarray(fit_to_net(rgb[..., :1], 8, channels=3))  # a colour net sees grey in all three
    np.testing.assert_array_equal(grey_to_colour, np.repeat(rgb[..., :1], 3, axis=-1))
    # antialiased bilinear weights sum to 1: a constant stays constant, a mean moves only by edge effects
    constant = np.full((1, 12, 12, 3), 0.25, np.float32)
    np.testing.assert_allclose(np.asarray(fit_to_net(constant, 4, channels=1)), 0.25, atol=1e-6)
    halved = np.asarray(fit_to_net(rgb, 4, channels=1))
    assert halved.shape == (2, 4, 4, 1)
    np.testing.assert_allclose(halved.mean(axis=(1, 2, 3)), luma.mean(axis=(1, 2)), atol=0.05)
