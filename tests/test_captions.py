"""Captioned data: the word vocabulary, the digit and scene grammars (invertible), the compositional hold-out of
`digit_scenes`, the folder and tfds caption loaders on data made here, the fields they declare, a pipeline batch,
and the caption-agreement metric against real and shuffled captions."""

import collections
import itertools

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from PIL import Image

from genimg_jax import data
from genimg_jax.config import base_config
from genimg_jax.data.text import grammar, scenes
from genimg_jax.data.text.vocabulary import BOS, EOS, PAD, UNKNOWN, Vocabulary, tokenize
from genimg_jax.metrics import caption_agreement

SCENE_LENGTH = scenes.MAX_CAPTION_TOKENS


def data_config(source: str, **options) -> ml_collections.ConfigDict:
    config = base_config().data
    config.source = source
    config.update(options)
    return config


# --- vocabulary -------------------------------------------------------------------------------------------


def test_words_are_ranked_by_frequency_then_alphabetically_after_the_special_ids():
    vocabulary = Vocabulary.build(["the cat, the dog", "A dog and THE bird"], max_size=8)
    # the: 3, dog: 2; then the words seen once, alphabetically: ',' < 'a' < 'and' < 'bird' < 'cat'; 4 kept.
    assert vocabulary.words == ("the", "dog", ",", "a")
    assert len(vocabulary) == 8
    assert Vocabulary.build(["A dog and THE bird", "the cat, the dog"], max_size=8) == vocabulary  # order-free
    with pytest.raises(data.DataError, match="at least 4"):
        Vocabulary.build(["a"], max_size=3)


def test_encode_decode_round_trip_with_unknown_words():
    vocabulary = Vocabulary(["a", "small", "3", ",", "top", "-", "left"])
    text = "A small 3, Top-left zebra!"
    assert tokenize(text) == ["a", "small", "3", ",", "top", "-", "left", "zebra", "!"]
    tokens, mask = vocabulary.encode(text, 16)
    ids = [BOS, 4, 5, 6, 7, 8, 9, 10, UNKNOWN, UNKNOWN, EOS]
    np.testing.assert_array_equal(tokens, ids + [PAD] * 5)
    np.testing.assert_array_equal(mask, [1] * 11 + [0] * 5)
    assert tokens.dtype == mask.dtype == np.int32
    assert vocabulary.decode(tokens) == "a small 3 , top - left <unk> <unk>"
    known = "a small 3 , top - left"
    assert vocabulary.decode(vocabulary.encode(known.upper(), 16)[0]) == known


def test_padding_and_truncation_keep_the_begin_token():
    vocabulary = Vocabulary(["one", "two"])
    tokens, mask = vocabulary.encode("", 4)
    np.testing.assert_array_equal(tokens, [BOS, EOS, PAD, PAD])
    np.testing.assert_array_equal(mask, [1, 1, 0, 0])
    tokens, mask = vocabulary.encode("one two one two", 3)  # cut: BOS and the first two words, no EOS
    np.testing.assert_array_equal(tokens, [BOS, 4, 5])
    np.testing.assert_array_equal(mask, [1, 1, 1])
    np.testing.assert_array_equal(vocabulary.encode("two", 1)[0], [BOS])


def test_vocabulary_json_round_trip(tmp_path):
    vocabulary = Vocabulary.build(["b a c a", "c"], max_size=10)
    vocabulary.save(tmp_path / "vocabulary.json")
    loaded = Vocabulary.load(tmp_path / "vocabulary.json")
    assert loaded == vocabulary and loaded.words == ("a", "c", "b")
    np.testing.assert_array_equal(loaded.encode("c b z", 6)[0], vocabulary.encode("c b z", 6)[0])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(data.DataError, match=r"bad\.json"):
        Vocabulary.load(tmp_path / "bad.json")


def test_grammar_vocabularies_are_fixed_and_cover_every_caption():
    scene_source = data.make_source("digit_scenes:48", split="test", resolution=32, channels=1, caption_length=33)
    captions = [scene_source.caption(i) for i in range(300)]
    vocabulary = data.vocabulary_for(data_config("digit_scenes:48"))
    assert vocabulary == grammar.grammar_vocabulary("scenes") == scene_source.vocabulary
    assert vocabulary.words == tuple(sorted(vocabulary.words))
    assert all(UNKNOWN not in vocabulary.encode(c, SCENE_LENGTH)[0] for c in captions)
    digits = data.make_source("digits_captions", split="train", resolution=8, channels=1)
    digit_vocabulary = data.vocabulary_for(data_config("digits_captions"))
    assert digit_vocabulary == grammar.grammar_vocabulary("digits") == digits.vocabulary
    assert all(UNKNOWN not in digit_vocabulary.encode(c, 16)[0] for c in digits.captions)
    no_captions = r"config\.data\.source: 'digits' has no captions; captioned kinds: digits_captions, digit_scenes:,"
    with pytest.raises(data.DataError, match=no_captions):
        data.vocabulary_for(data_config("digits"))


# --- grammars ---------------------------------------------------------------------------------------------


def test_digit_captions_parse_back_to_their_digit():
    rng = np.random.default_rng(0)
    for digit, _ in itertools.product(range(10), range(30)):
        caption = grammar.digit_caption(digit, rng)
        assert grammar.parse_digit_caption(caption) == digit, caption
    with pytest.raises(data.DataError, match="names 2 digits"):
        grammar.parse_digit_caption("a 3 and a four")


def test_scene_captions_parse_back_to_the_layout_that_made_them():
    source = data.make_source("digit_scenes:64", split="train", resolution=64, channels=1, caption_length=40)
    lengths = collections.Counter()
    for index in range(400):
        layout, caption = source.layout(index), source.caption(index)
        assert grammar.parse_scene_caption(caption) == layout, caption
        assert grammar.parse_scene_caption(source.vocabulary.decode(source[index]["tokens"])) == layout
        assert scenes.MIN_DIGITS <= len(layout) <= scenes.MAX_DIGITS
        assert len({p.cell for p in layout}) == len(layout)  # one digit per cell
        lengths[int(source[index]["tokens_mask"].sum())] += 1
    # 2, 3 and 4 digits: BOS + 7 tokens per phrase + separators + EOS; the longest fills MAX_CAPTION_TOKENS.
    assert set(lengths) == {17, 25, SCENE_LENGTH} and SCENE_LENGTH == 33
    with pytest.raises(data.DataError, match="is not 'a <size> <digit> at the <row> <column>'"):
        grammar.parse_scene_caption("a small 3 at the top middle")


# --- digit scenes -----------------------------------------------------------------------------------------


def test_held_out_pairs_never_occur_in_train_and_do_in_test():
    pairs = {"train": collections.Counter(), "test": collections.Counter()}
    for split, count in scenes.DEFAULT_COUNTS.items():
        for index in range(count):
            pairs[split].update((p.digit, p.cell) for p in scenes.scene_layout(split, index))
    all_pairs = set(itertools.product(range(10), range(scenes.NUM_CELLS)))
    assert set(pairs["train"]) == all_pairs - scenes.HELD_OUT  # the others all occur
    assert set(pairs["test"]) >= scenes.HELD_OUT
    test = data.make_source("digit_scenes:48", split="test", resolution=32, channels=1, caption_length=SCENE_LENGTH)
    held_out = test.held_out_examples()
    expected = [i for i in range(1000) if {(p.digit, p.cell) for p in test.layout(i)} & scenes.HELD_OUT]
    np.testing.assert_array_equal(held_out, expected)
    assert 150 < len(held_out) < 500  # about 1 - (35/40)**3 of the scenes
    only_held_out = data.make_source(
        "digit_scenes:48:held_out", split="test", resolution=32, channels=1, caption_length=SCENE_LENGTH
    )
    assert len(only_held_out) == len(held_out)
    assert [only_held_out.caption(k) for k in range(len(held_out))] == [test.caption(int(i)) for i in held_out]
    np.testing.assert_array_equal(only_held_out.held_out_examples(), np.arange(len(held_out)))
    train = data.make_source("digit_scenes:48:train=500", split="train", resolution=32, channels=1, caption_length=40)
    assert len(train.held_out_examples()) == 0


def test_scene_examples_are_a_function_of_split_and_index():
    def make(spec, split):
        return data.make_source(spec, split=split, resolution=64, channels=1, caption_length=SCENE_LENGTH)

    first, again = make("digit_scenes:64", "train"), make("digit_scenes:64:train=50", "train")
    assert len(again) == 50 and len(first) == 10_000
    for index in (0, 7, 49):
        for name in first.fields:
            np.testing.assert_array_equal(first[index][name], again[index][name])
    assert first.caption(3) != first.caption(4)
    assert make("digit_scenes:64", "test").caption(3) != first.caption(3)


def test_scene_digits_fill_the_square_of_their_cell_and_size():
    assert scenes.scene_box(3, 1, 64) == (32, 32, 32) and scenes.scene_box(1, 0, 64) == (6, 38, 20)
    assert scenes.scene_box(2, 0, 48) == (28, 4, 15)
    source = data.make_source("digit_scenes:64", split="train", resolution=64, channels=1, caption_length=SCENE_LENGTH)
    heights = {0: [], 1: []}
    for index in range(30):
        layout, image = source.layout(index), source[index]["image"][..., 0]
        outside = np.ones_like(image, bool)
        for placement in layout:
            top, left, side = scenes.scene_box(placement.cell, placement.size, 64)
            ink_rows = np.flatnonzero(image[top : top + side, left : left + side].max(axis=1) > 64)
            heights[placement.size].append(ink_rows[-1] - ink_rows[0] + 1)
            outside[top : top + side, left : left + side] = False
        assert image[outside].max() == 0  # nothing outside the named squares (empty cells stay black)
    assert max(heights[0]) <= 20 < min(heights[1])  # small digits are 20 pixels tall at most, large ones more


def test_digit_captions_are_deterministic_and_keep_the_digits_split():
    first = data.make_source("digits_captions", split="test", resolution=16, channels=1)
    again = data.make_source("digits_captions", split="test", resolution=16, channels=1)
    digits = data.make_source("digits", split="test", resolution=16, channels=1)
    assert first.captions == again.captions and len(first) == len(digits) == 297
    assert len(set(first.captions)) > 50
    for index in (0, 100, 296):
        np.testing.assert_array_equal(first[index]["image"], digits[index]["image"])
        assert grammar.parse_digit_caption(first.captions[index]) == digits[index]["label"]


def test_bad_scene_specs_fail_in_one_line():
    for spec, message in (
        ("digit_scenes:32", r"SIZE must be one of \(48, 64\)"),
        ("digit_scenes:48:train=0", "unknown option 'train=0'"),
        ("digit_scenes:48:hold", "unknown option 'hold'"),
    ):
        with pytest.raises(data.DataError, match=message):
            data.make_source(spec, split="train", resolution=32, channels=1, caption_length=SCENE_LENGTH)
    with pytest.raises(data.DataError, match="held_out selects test scenes, not train"):
        data.make_source("digit_scenes:48:held_out", split="train", resolution=32, channels=1, caption_length=40)
    with pytest.raises(data.DataError, match=r"config\.data\.source: .*caption_length >= 33, not 16"):
        data.fields_from_config(data_config("digit_scenes:64"))


# --- fields and the pipeline ------------------------------------------------------------------------------


def test_declared_fields_match_the_examples():
    for spec, options in (
        ("digits_captions", {"resolution": 16, "caption_length": 8}),
        ("digit_scenes:48", {"resolution": 32, "caption_length": SCENE_LENGTH}),
        ("digit_scenes:64:test=5", {"resolution": 64, "channels": 3, "caption_length": 40}),
    ):
        config = data_config(spec, **options)
        fields = data.fields_from_config(config)
        source = data.source_from_config(config, "test")
        assert fields == source.fields
        length = options["caption_length"]
        assert fields["tokens"] == fields["tokens_mask"] == data.Field((length,), np.dtype(np.int32))
        example = source[len(source) - 1]
        assert {name: (value.shape, value.dtype) for name, value in example.items()} == {
            name: (field.shape, field.dtype) for name, field in fields.items()
        }


def test_a_pipeline_batch_of_scenes_carries_tokens_sharded_like_the_images():
    source = data.make_source("digit_scenes:64:train=40", split="train", resolution=64, channels=1, caption_length=36)
    batch = next(data.make_train_stream(source, global_batch_size=16, seed=0, random_flip=True))
    assert batch["tokens"].shape == batch["tokens_mask"].shape == (16, 36)
    assert batch["tokens"].dtype == batch["tokens_mask"].dtype == np.int32
    np.testing.assert_array_equal(batch["tokens_mask"], batch["tokens"] != PAD)
    assert (batch["tokens"][:, 0] == BOS).all()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    global_batch = data.make_global_batch(batch, NamedSharding(mesh, PartitionSpec("data", None, None, None)))
    for name in ("tokens", "tokens_mask", "image"):
        assert global_batch[name].dtype == batch[name].dtype
        np.testing.assert_array_equal(np.asarray(global_batch[name]), batch[name])
        assert [shard.data.shape[0] for shard in global_batch[name].addressable_shards] == [2] * 8


# --- folder and tfds captions -----------------------------------------------------------------------------


def write_captioned_folder(root, captions_by_split):
    rng = np.random.default_rng(0)
    pixels = {}
    for split, captions in captions_by_split.items():
        (root / split).mkdir(parents=True)
        for index, caption in enumerate(captions):
            image = rng.integers(0, 256, (12, 12), dtype=np.uint8)
            Image.fromarray(image).save(root / split / f"{index:02d}.png")
            (root / split / f"{index:02d}.txt").write_text(caption)
            pixels[split, index] = image
    return pixels


def test_folder_captions_pair_each_image_with_its_text_file(tmp_path, capsys):
    captions = {"train": ["a red bird", "a red cat", "two birds"], "test": ["a blue fish"]}
    pixels = write_captioned_folder(tmp_path, captions)
    config = data_config(f"folder_captions:{tmp_path}", resolution=12, vocabulary_size=9)
    source = data.source_from_config(config, "train")
    assert capsys.readouterr().err == ""  # the caption files are expected, not skipped files
    assert source.fields == data.fields_from_config(config)
    vocabulary = data.vocabulary_for(config)
    assert vocabulary == Vocabulary.build([c for split in captions.values() for c in split], 9)
    assert vocabulary.words == ("a", "red", "bird", "birds", "blue")  # 'a' 3 times, 'red' twice, then a-z, 9 ids
    for index, caption in enumerate(captions["train"]):
        example = source[index]
        np.testing.assert_array_equal(example["image"][..., 0], pixels["train", index])
        np.testing.assert_array_equal(example["tokens"], vocabulary.encode(caption, 16)[0])
    assert vocabulary.decode(data.source_from_config(config, "test")[0]["tokens"]) == "a blue <unk>"
    (tmp_path / "train" / "01.txt").unlink()
    with pytest.raises(data.DataError, match=r"image '.*train/01\.\*' has no caption file '.*01\.txt'"):
        data.source_from_config(config, "train")


def test_tfds_captions_read_the_text_feature(tmp_path):
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(3)
    examples = {
        "train": [(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), f"a photo of {n} dogs") for n in range(5)],
        "test": [(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "a sketch of a cat")],
    }

    class GenimgTinyCaptions(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {"picture": tfds.features.Image(shape=(8, 8, 3)), "text": tfds.features.Text()}
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in examples}

        def _generate_examples(self, split):
            for index, (image, text) in enumerate(examples[split]):
                yield index, {"picture": image, "text": text}

    GenimgTinyCaptions(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
    config = data_config(
        "tfds_captions:genimg_tiny_captions:picture:text", resolution=8, channels=3, data_dir=str(tmp_path)
    )
    vocabulary = data.vocabulary_for(config)
    assert vocabulary == Vocabulary.build([text for split in examples.values() for _, text in split], 5000)
    source = data.source_from_config(config, "train")
    assert source.fields == data.fields_from_config(config) and len(source) == 5
    read = {(source[i]["image"].tobytes(), vocabulary.decode(source[i]["tokens"])) for i in range(5)}  # hashed order
    assert read == {(image.tobytes(), text) for image, text in examples["train"]}
    config.source += ":test"
    test = data.source_from_config(config, "train")  # SPLIT in the spec wins
    assert vocabulary.decode(test[0]["tokens"]) == "a sketch of a cat"
    with pytest.raises(data.DataError, match="no Text feature 'picture'"):
        data.vocabulary_for(data_config("tfds_captions:genimg_tiny_captions:text:picture", data_dir=str(tmp_path)))
    with pytest.raises(data.DataError, match="does not have the form tfds_captions:NAME:IMAGE_FEATURE:TEXT_FEATURE"):
        data.vocabulary_for(data_config("tfds_captions:genimg_tiny_captions:picture"))


# --- caption agreement ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_params():
    from genimg_jax.metrics import digits_net

    return digits_net.load_params()


def test_caption_agreement_is_high_on_real_scenes_and_near_chance_when_shuffled(digits_params):
    source = data.make_source("digit_scenes:64", split="test", resolution=64, channels=1, caption_length=SCENE_LENGTH)
    count = 200
    examples = [source[i] for i in range(count)]
    images = np.asarray(data.to_unit_range(np.stack([e["image"] for e in examples])))
    captions = [source.caption(i) for i in range(count)]
    real = caption_agreement.scene_agreement(images, captions, params=digits_params)
    assert real["exact_match"] > 0.9 and real["digit_agreement"] > 0.95, real  # measured 0.97 / 0.99 on 300
    tokens = np.stack([e["tokens"] for e in examples])
    assert caption_agreement.scene_agreement(images, tokens, source.vocabulary, digits_params) == real
    shuffled = [captions[i] for i in np.random.default_rng(0).permutation(count)]
    chance = caption_agreement.scene_agreement(images, shuffled, params=digits_params)
    assert chance["digit_agreement"] < 0.2 and chance["exact_match"] < 0.05, chance  # chance is about 0.1


def test_caption_agreement_of_digit_captions(digits_params):
    source = data.make_source("digits_captions", split="test", resolution=32, channels=1)
    images = np.asarray(data.to_unit_range(np.stack([source[i]["image"] for i in range(len(source))])))
    real = caption_agreement.digit_agreement(images, list(source.captions), params=digits_params)
    shuffled = [source.captions[i] for i in np.random.default_rng(1).permutation(len(source))]
    chance = caption_agreement.digit_agreement(images, shuffled, params=digits_params)
    assert real["digit_agreement"] > 0.95 and chance["digit_agreement"] < 0.2, (real, chance)
