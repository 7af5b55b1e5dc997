"""A pretrained CLIP through transformers, on a tiny randomly initialised model saved in a temporary directory
(nothing is downloaded): the project's text tower is transformers' own, captions are tokenized by its tokenizer,
padding changes nothing, the tower stays frozen while the U-Net trains, and the CLIP score is its closed form."""

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import TINY_UNET, load

from genimg_jax import data
from genimg_jax.config import ConfigError
from genimg_jax.data import DataError
from genimg_jax.data.text import clip_files
from genimg_jax.data.text.grammar import grammar_vocabulary
from genimg_jax.methods import build_method
from genimg_jax.metrics import clip_score
from genimg_jax.training.pretrained import load_pretrained

transformers = pytest.importorskip("transformers")
LENGTH = 12
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _bpe_files(words: list[str]) -> tuple[dict[str, int], list[str]]:
    """A CLIP BPE vocabulary and merges that spell each of `words` as one token (CLIP marks a word's last symbol
    with '</w>'), plus every character, so other words still encode; the special tokens last, EOS the highest id."""
    vocab, merges = {}, []
    for char in sorted({c for word in words for c in word}):
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    for word in words:
        symbols = [*word[:-1], word[-1] + "</w>"]
        merged = symbols[0]
        for symbol in symbols[1:]:
            if f"{merged} {symbol}" not in merges:
                merges.append(f"{merged} {symbol}")
            merged += symbol
            vocab.setdefault(merged, len(vocab))
    for special in (BOS, EOS):
        vocab[special] = len(vocab)
    return vocab, merges


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A full CLIP model (2 layers, width 32, 16x16 images) and its tokenizer over the digit captions' words."""
    directory = tmp_path_factory.mktemp("tiny_clip")
    vocab, merges = _bpe_files(list(grammar_vocabulary("digits").words))
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = transformers.CLIPTokenizer(directory / "vocab.json", directory / "merges.txt", model_max_length=16)
    tokenizer.save_pretrained(directory)
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    text = {**tower, "vocab_size": len(vocab), "max_position_embeddings": 16}
    text |= {"bos_token_id": vocab[BOS], "eos_token_id": vocab[EOS], "pad_token_id": vocab[EOS]}
    config = transformers.CLIPConfig(
        text_config=text, vision_config={**tower, "image_size": 16, "patch_size": 8}, projection_dim=16
    )
    model = transformers.FlaxCLIPModel(config, _do_init=False)  # transformers' initialisation, compiled once
    model.save_pretrained(
        directory, params=jax.jit(model.init_weights, static_argnums=1)(jax.random.PRNGKey(0), model.input_shape)
    )
    processor = transformers.CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor.save_pretrained(directory)
    return str(directory)


def _config(clip_dir: str, *overrides: str):
    return load(
        "text_diffusion.py",
        *TINY_UNET,
        "train.batch_size=4",
        f"data.caption_length={LENGTH}",
        f"model.text.pretrained={clip_dir}",
        f"data.tokenizer={clip_dir}",
        "sample.guidance_scale=2.0",
        *overrides,
    )


@pytest.fixture(scope="module")
def method(clip_dir):
    config = _config(clip_dir)
    return build_method(config, load_pretrained(config))


def _captions(config, texts: list[str], length: int = LENGTH) -> dict[str, np.ndarray]:
    encoded = [data.vocabulary_for(config.data).encode(text, length) for text in texts]
    return {"tokens": np.stack([t for t, _ in encoded]), "tokens_mask": np.stack([m for _, m in encoded])}


TEXTS = ["a handwritten 3", "the digit seven", "a picture of the number 8", "nine"]


def _features(method, captions: dict[str, np.ndarray]) -> tuple[jax.Array, jax.Array]:
    params = method.first_stage_params()["text_tower"]
    return method.network.encoder.apply({"params": params}, captions["tokens"], captions["tokens_mask"])


def test_captions_use_the_clip_tokenizer_and_the_null_caption_is_the_empty_string(method, clip_dir):
    tokenizer = transformers.AutoTokenizer.from_pretrained(clip_dir)
    captions = _captions(method.config, TEXTS)
    expected = tokenizer(TEXTS, padding="max_length", max_length=LENGTH, return_tensors="np")
    np.testing.assert_array_equal(captions["tokens"], expected["input_ids"])
    np.testing.assert_array_equal(captions["tokens_mask"], expected["attention_mask"])
    assert captions["tokens"][0, 0] == tokenizer.bos_token_id and captions["tokens_mask"][0].sum() == 5
    source = data.source_from_config(method.config.data, "train")  # the data pipeline encodes the same way
    np.testing.assert_array_equal(source[0]["tokens"], _captions(method.config, [source.captions[0]])["tokens"][0])
    assert data.vocabulary_for(method.config.data).decode(captions["tokens"][2]) == TEXTS[2]
    null = method.null_labels(captions)
    empty = tokenizer("", padding="max_length", max_length=LENGTH, return_tensors="np")
    np.testing.assert_array_equal(null["tokens"], np.repeat(empty["input_ids"], len(TEXTS), 0))
    np.testing.assert_array_equal(null["tokens_mask"], np.repeat(empty["attention_mask"], len(TEXTS), 0))


def test_prompts_are_encoded_by_the_clip_tokenizer(method):
    from genimg_jax.evaluation.prompts import encode_prompts

    long = " ".join(["seven"] * LENGTH)
    tokens, masks, warnings = encode_prompts(method.config, ["a zebra 7", long])
    np.testing.assert_array_equal(tokens, _captions(method.config, ["a zebra 7", long])["tokens"])
    assert masks[1].all() and tokens[1, -1] == tokens[0][masks[0] == 1][-1]  # cut, its EOS kept
    assert warnings == [f"prompt {long!r}: cut to data.caption_length={LENGTH} tokens"]  # BPE knows every word


def test_text_features_are_those_of_transformers(method, clip_dir):
    captions = _captions(method.config, TEXTS)
    hidden, pooled = _features(method, captions)
    model, params = transformers.FlaxCLIPTextModel.from_pretrained(clip_dir, _do_init=False)
    reference = model(captions["tokens"], attention_mask=captions["tokens_mask"], params=params)
    real = captions["tokens_mask"][..., None] == 1
    np.testing.assert_allclose(hidden, np.where(real, reference.last_hidden_state, 0.0), atol=1e-5)
    np.testing.assert_allclose(pooled, reference.pooler_output, atol=1e-5)


def test_padding_changes_no_feature_of_the_real_tokens(method):
    short, long = _captions(method.config, TEXTS, 8), _captions(method.config, TEXTS, 16)
    noise = np.random.default_rng(0).integers(0, 20, long["tokens"].shape).astype(np.int32)
    noisy = {**long, "tokens": np.where(long["tokens_mask"] == 1, long["tokens"], noise)}
    (hidden_short, pooled_short), (hidden_noisy, pooled_noisy) = _features(method, short), _features(method, noisy)
    np.testing.assert_allclose(hidden_noisy[:, :8], hidden_short, atol=1e-5)
    np.testing.assert_array_equal(hidden_noisy[:, 8:], 0.0)
    np.testing.assert_allclose(pooled_noisy, pooled_short, atol=1e-5)


def test_the_tower_is_kept_out_of_what_is_trained(method):
    """The state's layout (traced, nothing compiled): the tower only in first_stage, the loaded weights; the trained
    params, the EMA and the optimizer hold the U-Net alone (the slow test checks a training leaves it bitwise)."""
    images = np.zeros((4, 8, 8, 1), np.uint8)
    state = jax.eval_shape(
        method.init_state, jax.random.PRNGKey(0), {"image": images, **_captions(method.config, TEXTS)}
    )
    assert set(state.params) == set(state.ema_params) == {"unet"}
    optimized = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(state.opt_state)[0]]
    assert optimized and not [path for path in optimized if "text_model" in path or "encoder" in path]
    shapes = jax.tree.map(lambda leaf: leaf.shape, state.first_stage["text_tower"])
    assert shapes == jax.tree.map(np.shape, method.first_stage_params()["text_tower"])


def test_clip_score_is_the_closed_form_of_the_models_embeddings(clip_dir):
    model, params, processor = clip_files.load_clip(clip_dir, "eval.clip_model")
    score = clip_score.ClipScore(model, params, processor, clip_files.load_tokenizer(clip_dir, "eval.clip_model"))
    images = np.random.default_rng(3).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
    pixels = np.asarray(clip_score.preprocessed(jnp.asarray(images), 16, processor.image_mean, processor.image_std))
    tokens = transformers.AutoTokenizer.from_pretrained(clip_dir)(
        TEXTS, padding="max_length", max_length=16, return_tensors="np"
    )
    image_embeddings = np.asarray(model.get_image_features(pixels, params=params))
    text_embeddings = np.asarray(model.get_text_features(tokens["input_ids"], tokens["attention_mask"], params=params))
    cosine = np.sum(image_embeddings * text_embeddings, -1) / (
        np.linalg.norm(image_embeddings, axis=-1) * np.linalg.norm(text_embeddings, axis=-1)
    )
    expected = np.mean(100 * np.maximum(cosine, 0))
    assert score(images, TEXTS)["clip_score"] == pytest.approx(expected, rel=1e-4)
    # grey is repeated to three channels, and the scale and the clamp at 0 are the closed form's
    std, mean = (np.asarray(v, np.float32)[None, :, None, None] for v in (processor.image_std, processor.image_mean))
    unit = pixels * std + mean  # back to [0, 1]: the one grey channel in all three
    np.testing.assert_allclose(unit[:, 0], unit[:, 2], atol=1e-6)
    assert clip_score.clip_score_of_features(text_embeddings, text_embeddings) == pytest.approx(100.0)
    assert clip_score.clip_score_of_features(text_embeddings, -text_embeddings) == 0.0


def test_clip_score_is_higher_for_matched_than_for_shuffled_pairs():
    rng = np.random.default_rng(4)
    texts = rng.normal(size=(64, 16))
    images = texts + 0.5 * rng.normal(size=texts.shape)  # image embeddings built to match their captions
    matched = clip_score.clip_score_of_features(images, texts)
    shuffled = clip_score.clip_score_of_features(images, texts[rng.permutation(64)])
    assert matched > 80 and shuffled < 30


class _EvalImages:
    """Text-to-image stand-in for the sample evaluator: the eval split's own image for each caption (its index is
    the caption's position in the split, recovered from the tokens)."""

    def __init__(self, tokens: np.ndarray, images: np.ndarray):
        self.bank = (jnp.asarray(tokens), jnp.asarray(images))

    def conditioning_fields(self):
        return ("tokens", "tokens_mask")

    def sample(self, state, rng, num, conditioning=None):
        tokens, images = self.bank
        same = jnp.all(conditioning["tokens"][:, None, :] == tokens[None], axis=-1)
        return images[jnp.argmax(same, axis=1)]


def test_sample_evaluator_reports_the_clip_score_of_its_samples_and_captions(clip_dir, tmp_path):
    from genimg_jax import parallel
    from genimg_jax.evaluation.samples import SampleEvaluator

    overrides = ("eval.metrics=clip_score", "eval.num_samples=24", "eval.batch_size=8", f"eval.clip_model={clip_dir}")
    config = load("text_diffusion.py:digits16", "data.resolution=8", *overrides)
    real = data.load_all(data.source_from_config(config.data, config.data.eval_split), ("image", "tokens"))
    stand_in = _EvalImages(real["tokens"], data.to_unit_range(real["image"]))
    mesh = parallel.make_mesh(config.mesh)
    run = types.SimpleNamespace(method=stand_in, mesh=mesh, state_sharding=parallel.replicated(mesh))
    evaluator = SampleEvaluator(config, run, tmp_path)
    values = evaluator.evaluate(None)
    # sample i is drawn for eval example i; its caption is re-tokenized by CLIP's tokenizer from the words
    vocabulary = data.vocabulary_for(config.data)
    captions = [vocabulary.decode(tokens) for tokens in real["tokens"][:24]]
    score = clip_score.ClipScore(
        *clip_files.load_clip(clip_dir, "eval.clip_model"), clip_files.load_tokenizer(clip_dir, "eval.clip_model")
    )
    expected = score(np.asarray(stand_in.bank[1][:24]), captions)
    assert values["clip_score"] == pytest.approx(expected["clip_score"], rel=1e-4)  # float32 sums
    assert "100 * max(cos" in evaluator.protocol()["captions"]["clip_score"]["score"]
    config.eval.clip_model = ""
    with pytest.raises(ConfigError, match=r"config\.eval\.clip_model.*clip_score needs it") as error:
        SampleEvaluator(config, run, tmp_path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("model.text.pretrained={missing}", r"config\.model\.text\.pretrained=.* is not a directory"),
        ("model.text.pretrained={empty}", r"config\.model\.text\.pretrained=.* has no config\.json"),
        ("data.tokenizer=", r"config\.data\.tokenizer='' is invalid: must be model\.text\.pretrained"),
    ],
)
def test_missing_or_malformed_path_is_one_clear_error(clip_dir, tmp_path, override, pattern):
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty"}
    config = _config(clip_dir, override.format(**paths))
    if override.startswith("model.text.pretrained"):
        config.data.tokenizer = config.model.text.pretrained
    with pytest.raises((ConfigError, DataError), match=pattern) as error:
        build_method(config, load_pretrained(config))
    assert "\n" not in str(error.value)


def test_corrupt_or_partial_weights_are_one_clear_error(clip_dir, tmp_path):
    import shutil

    from flax import serialization

    for name in ("partial", "corrupt"):
        shutil.copytree(clip_dir, tmp_path / name)
    weights = serialization.msgpack_restore((tmp_path / "partial" / clip_files.FLAX_WEIGHTS).read_bytes())
    del weights["vision_model"]  # e.g. a text model's weights under a full CLIP's config
    (tmp_path / "partial" / clip_files.FLAX_WEIGHTS).write_bytes(serialization.msgpack_serialize(weights))
    (tmp_path / "corrupt" / clip_files.FLAX_WEIGHTS).write_bytes(b"not msgpack")
    for name, pattern in [
        ("partial", r"\d+ of its \d+ weights missing or misshapen, e.g. vision_model/"),
        ("corrupt", ""),
    ]:
        with pytest.raises(
            DataError, match=rf"config\.eval\.clip_model='.*{name}': cannot load its CLIP model: {pattern}"
        ) as error:
            clip_files.load_clip(str(tmp_path / name), "eval.clip_model")
        assert "\n" not in str(error.value)


def test_missing_transformers_names_the_extra(monkeypatch):
    def no_transformers(name):
        raise ImportError(name)

    monkeypatch.setattr(clip_files.importlib, "import_module", no_transformers)
    with pytest.raises(DataError, match=r"pip install -e '\.\[text\]'"):
        clip_files.transformers_module()


@pytest.mark.slow
def test_short_training_with_the_tower_lowers_the_loss(clip_dir):
    """Four fixed caption -> image pairs: the step's loss falls by a fifth within 40 steps, every U-Net parameter
    moves while the tower stays bitwise the loaded one, and guided sampling runs."""
    config = _config(clip_dir, "optim.denoiser.learning_rate=2e-3")
    method = build_method(config, load_pretrained(config))
    images = np.random.default_rng(18).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    batch = {"image": images, **_captions(config, TEXTS)}
    state = jax.jit(method.init_state)(jax.random.PRNGKey(0), batch)
    initial_unet = state.params["unet"]
    step, losses = jax.jit(method.train_step), []
    for _ in range(40):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    jax.tree.map(np.testing.assert_array_equal, state.first_stage["text_tower"], method.text_tower.params)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.params["unet"], initial_unet)
    assert all(jax.tree.leaves(changed))  # while every U-Net parameter moved
    samples = method.sample(state, jax.random.PRNGKey(2), 4, batch)  # guided: the null caption through the tower
    assert samples.shape == (4, 8, 8, 1) and bool(jnp.all(jnp.isfinite(samples)))
