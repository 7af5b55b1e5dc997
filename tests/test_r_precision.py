"""R-precision's ranking logic with stand-in features (closed forms), its mismatched draws, the dual encoder's
file, and (slow) a short DAMSM pretraining whose encoder retrieves real eval images' captions well above chance."""

import functools

import flax
import jax
import numpy as np
import optax
import pytest

from genimg_jax import data
from genimg_jax.data.text.vocabulary import Vocabulary
from genimg_jax.metrics import dual_encoder_file, r_precision
from genimg_jax.models.dual_encoder import DualEncoderSpec, init_params


def _captions(num: int, kinds: int, seed: int = 0) -> np.ndarray:
    """(num, 4) token rows of `kinds` distinct captions, repeated."""
    ids = np.random.default_rng(seed).integers(kinds, size=num)
    return np.stack([np.full(num, 2), 4 + ids % 7, 4 + ids // 7, np.full(num, 3)], axis=1).astype(np.int32)


def test_mismatched_captions_differ_from_the_true_one_and_are_seeded():
    tokens = _captions(300, 12)
    true = np.arange(300) % 300
    drawn = r_precision.mismatched_captions(tokens, true, seed=3)
    assert drawn.shape == (300, 99) and drawn.min() >= 0 and drawn.max() < 300
    assert not (tokens[drawn] == tokens[true][:, None]).all(-1).any()  # no candidate repeats the true caption
    np.testing.assert_array_equal(drawn, r_precision.mismatched_captions(tokens, true, seed=3))
    assert (drawn != r_precision.mismatched_captions(tokens, true, seed=4)).mean() > 0.9
    with pytest.raises(ValueError, match="two different captions"):
        r_precision.mismatched_captions(np.ones((5, 4), np.int32), np.arange(5), seed=0)


def test_one_hot_stand_in_features_rank_the_true_caption_first():
    """Features = one-hot of the caption's kind: the true caption has cosine 1, every mismatched one 0 -> R = 1.
    Images with the features of their neighbour's caption hit exactly when that caption is of their own kind: else
    the true cosine is 0, and no mismatched one is below 0 (a tie is no hit)."""
    tokens = _captions(400, 30)
    kinds = np.unique(tokens, axis=0, return_inverse=True)[1].reshape(-1)
    features = np.eye(30)[kinds]
    true = np.arange(400)
    mismatched = r_precision.mismatched_captions(tokens, true, seed=0)
    assert r_precision.top1_hits(features, features, true, mismatched).all()
    wrong = features[(true + 1) % 400]
    hits = r_precision.top1_hits(wrong, features, true, mismatched)
    same = kinds[(true + 1) % 400] == kinds  # neighbours of the same kind keep cosine 1 with their true caption
    np.testing.assert_array_equal(hits, same)


def test_random_features_rank_first_at_chance_and_match_brute_force():
    """Independent Gaussian features: the true caption's rank is uniform over 100 candidates, P(first) = 1/100
    (20000 images: standard error 0.0007); the hits equal a brute-force argsort rank of the 100 cosines."""
    rng = np.random.default_rng(1)
    num, dim = 20_000, 8
    sentences, images = rng.normal(size=(num, dim)), rng.normal(size=(num, dim))
    tokens = np.stack([np.arange(num) // 1000, np.arange(num) % 1000], axis=1)  # all distinct
    true = rng.permutation(num)
    mismatched = r_precision.mismatched_captions(tokens, true, seed=2)
    hits = r_precision.top1_hits(images, sentences, true, mismatched)
    assert abs(hits.mean() - 0.01) < 0.004
    candidates = np.concatenate([true[:, None], mismatched], axis=1)[:500]
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    cosines = np.einsum("nd,nkd->nk", unit(images[:500]), unit(sentences[candidates]))
    np.testing.assert_array_equal(hits[:500], np.argsort(-cosines, axis=1)[:, 0] == 0)


def test_split_mean_std_over_ten_splits():
    hits = np.zeros(100, bool)
    hits[:10] = True  # the first split all hits, the others none
    mean, std = r_precision.split_mean_std(hits)
    assert mean == pytest.approx(0.1) and std == pytest.approx(np.std([1.0] + [0.0] * 9))
    with pytest.raises(ValueError, match="at least 10 images"):
        r_precision.split_mean_std(np.ones(9, bool))


def test_dual_encoder_file_round_trip_and_missing_file(tmp_path):
    spec = DualEncoderSpec(vocabulary_size=12, caption_length=6, resolution=16, widths=(8, 8), embed_dim=8, word_dim=4)
    shapes = jax.eval_shape(functools.partial(init_params, spec), jax.random.PRNGKey(0))
    leaves, tree = jax.tree.flatten(shapes)
    rng = np.random.default_rng(0)
    params = jax.tree.unflatten(tree, [rng.normal(size=leaf.shape).astype(np.float32) for leaf in leaves])
    vocabulary = Vocabulary(["a", "b", "c"])
    path = tmp_path / "encoder.msgpack"
    dual_encoder_file.save(path, dual_encoder_file.TrainedDualEncoder(spec, vocabulary, params, {"source": "x"}))
    loaded = dual_encoder_file.load(path)
    assert loaded.spec == spec and loaded.vocabulary == vocabulary and loaded.data == {"source": "x"}
    for got, want in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(FileNotFoundError, match=r"eval\.dual_encoder: .*missing; train them with"):
        dual_encoder_file.load(tmp_path / "absent.msgpack", "eval.dual_encoder")
    (tmp_path / "bad.msgpack").write_bytes(flax.serialization.msgpack_serialize({"header": "{}"}))
    with pytest.raises(ValueError, match="is not a dual-encoder file"):
        dual_encoder_file.load(tmp_path / "bad.msgpack")


def test_the_tool_refuses_a_source_without_captions_in_one_line(tmp_path, capsys):
    from genimg_jax.tools import train_dual_encoder as tool

    assert tool.main(["--data=digits", f"--out={tmp_path / 'x.msgpack'}"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "'digits' has no captions" in error
    assert not (tmp_path / "x.msgpack").exists()


@pytest.mark.slow
def test_a_short_damsm_pretraining_retrieves_real_captions_well_above_chance():
    """120 steps of the tool's recipe (a smaller encoder) lower the eval loss; R-precision of the eval split's own
    images is several times the 1/100 of chance, and near chance once the images are shuffled against the captions."""
    from genimg_jax.tools import train_dual_encoder as tool

    section = tool.data_config("digit_scenes:64:train=2000:test=300", 64, 1, 33)
    train, test = tool.load_split(section, "train"), tool.load_split(section, "test")
    vocabulary = data.vocabulary_for(section)
    spec = DualEncoderSpec(len(vocabulary), 33, widths=(16, 32, 64), embed_dim=64, word_dim=32)
    params = tool.train(train, spec, steps=120, batch_size=32, seed=0, log_every=1000)
    _, losses = tool.make_step(spec, optax.identity())
    batch = {name: value[:32] for name, value in test.items()}
    initial = init_params(spec, jax.random.PRNGKey(0))
    assert float(losses(params, batch)["loss"]) < float(losses(initial, batch)["loss"]) - 2.0
    metric = r_precision.RPrecision(dual_encoder_file.TrainedDualEncoder(spec, vocabulary, params, {}))
    true = np.arange(len(test["tokens"]))
    real = metric(test["image"], true, test["tokens"], test["tokens_mask"])["r_precision"]
    shuffled_images = np.random.default_rng(0).permutation(test["image"])
    shuffled = metric(shuffled_images, true, test["tokens"], test["tokens_mask"])["r_precision"]
    # 300 images: the standard error at chance is 0.006 (measured here: 0.18 real, 0.027 shuffled; the tool's
    # default run reaches 0.96, see the README).
    assert real > 0.1 and shuffled < 0.04


@pytest.mark.parametrize("length", [1, 5, 8, 11, 20])
def test_apply_in_chunks_equals_one_call_and_compiles_power_of_two_shapes(length):
    from genimg_jax.metrics.chunked import apply_in_chunks

    shapes = []

    def row_sums(values, weights):
        shapes.append(len(values))
        return values.sum(axis=1) * weights

    values, weights = np.arange(length * 3.0).reshape(length, 3), np.arange(1.0, length + 1)
    np.testing.assert_array_equal(apply_in_chunks(row_sums, values, weights, chunk=8), values.sum(axis=1) * weights)
    assert all(size in (1, 2, 4, 8) for size in shapes) and len(shapes) == -(-length // 8)
