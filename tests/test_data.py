"""Tests of genimg_jax.data: real embedded data, a real tfds array_record dataset, image folders, the grain
training stream (epochs, seeds, resume, process shards, flips), evaluation passes and global sharding."""

import collections
import json
import time

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from PIL import Image

from genimg_jax import data
from genimg_jax.config import base_config


class IndexSource:
    """Synthetic source whose label is the example index and whose image is a left-right asymmetric ramp
    offset by the index, so tests can identify every example and tell a flip from a copy."""

    num_classes = 0
    class_names = ()

    def __init__(self, size: int):
        self._size = size
        self.fields = {"image": data.Field((4, 6, 1), np.dtype(np.uint8)), "label": data.Field((), np.dtype(np.int32))}

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        ramp = np.arange(6, dtype=np.uint8)[None, :, None] * 20 + index % 7
        return {"image": np.repeat(ramp, 4, axis=0), "label": np.int32(index)}


class PairedIndexSource(IndexSource):
    """IndexSource plus two fields: `source` = 255 - image (an image field, flipped with it) and `tokens` =
    (index, index + 1, index + 2) (not an image)."""

    def __init__(self, size: int):
        super().__init__(size)
        self.fields |= {"source": self.fields["image"], "tokens": data.Field((3,), np.dtype(np.int32))}

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        element = super().__getitem__(index)
        return {**element, "source": 255 - element["image"], "tokens": np.arange(index, index + 3, dtype=np.int32)}


def assert_pairs_intact(batch):
    """Every row still holds one example's fields: its source inverts its image, its tokens start at its label."""
    np.testing.assert_array_equal(batch["source"], 255 - batch["image"])
    np.testing.assert_array_equal(batch["tokens"], batch["label"][:, None] + np.arange(3))


def take(stream, count):
    return [next(stream) for _ in range(count)]


def assert_batches_equal(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])


# --- digits -----------------------------------------------------------------------------------------------


def test_digits_shapes_range_and_classes():
    train = data.make_source("digits", split="train", resolution=32, channels=1)
    assert len(train) == 1500 and train.num_classes == 10
    images = np.stack([train[i]["image"] for i in range(len(train))])
    labels = np.array([train[i]["label"] for i in range(len(train))])
    assert images.shape == (1500, 32, 32, 1) and images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    assert labels.dtype == np.int32 and set(labels.tolist()) == set(range(10))
    rgb = data.make_source("digits", split="test", resolution=8, channels=3)[5]["image"]
    assert rgb.shape == (8, 8, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_digits_split_is_a_fixed_partition_of_the_real_pixels():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    expected = collections.Counter(
        (np.rint(img * 255 / 16).astype(np.uint8).tobytes(), int(y))
        for img, y in zip(bunch.images, bunch.target, strict=True)
    )
    train = data.make_source("digits", split="train", resolution=8, channels=1)
    test = data.make_source("digits", split="test", resolution=8, channels=1)
    assert (len(train), len(test)) == (1500, 297)
    got = collections.Counter(
        (s[i]["image"][..., 0].tobytes(), int(s[i]["label"])) for s in (train, test) for i in range(len(s))
    )
    assert got == expected  # together exactly the 1797 originals at native size: disjoint and exhaustive
    again = data.make_source("digits", split="test", resolution=8, channels=1)
    for i in (0, 100, 296):
        np.testing.assert_array_equal(again[i]["image"], test[i]["image"])


def test_bad_specs_and_splits():
    with pytest.raises(data.DataError, match=r"digits.*tfds:NAME.*folder:PATH"):
        data.make_source("mnist", split="train", resolution=8, channels=1)
    with pytest.raises(data.DataError, match="'train' and 'test'"):
        data.make_source("digits", split="validation", resolution=8, channels=1)
    with pytest.raises(data.DataError, match="channels"):
        data.make_source("digits", split="train", resolution=8, channels=2)


def test_sources_declare_the_fields_they_return_and_the_config_knows_them_unopened():
    config = base_config()
    for spec, channels in (("digits", 1), ("faces", 3)):
        config.data.update(source=spec, resolution=8, channels=channels)
        source = data.source_from_config(config.data, "test")
        assert source.fields == data.fields_from_config(config.data)
        assert {name: (value.shape, value.dtype) for name, value in source[0].items()} == source.fields
    config.data.source = "folder:/nonexistent"  # not opened: the fields of a form are known without its data
    assert data.fields_from_config(config.data)["image"] == ((8, 8, 3), np.uint8)
    config.data.source = "mnist"
    with pytest.raises(data.DataError, match=r"^config.data.source: unknown data source 'mnist'"):
        data.fields_from_config(config.data)


# --- faces ------------------------------------------------------------------------------------------------


def test_faces_split_shapes_labels_and_determinism():
    train = data.make_source("faces", split="train", resolution=32, channels=3)
    test = data.make_source("faces", split="test", resolution=32, channels=3)
    assert (len(train), len(test)) == (160, 40)
    assert train.num_classes == 2 and train.class_names == ("face", "non_face")
    sample = test[3]
    assert sample["image"].shape == (32, 32, 3) and sample["image"].dtype == np.uint8
    assert {int(test[i]["label"]) for i in range(40)} == {0, 1}
    again = data.make_source("faces", split="test", resolution=32, channels=3)
    np.testing.assert_array_equal(again[3]["image"], sample["image"])


# --- tfds -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """Builds a small real tfds dataset (PNG-encoded Image + ClassLabel) in array_record format."""
    import tensorflow_datasets as tfds

    class GenimgTinyImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(20, 24, 3)),
                        "label": tfds.features.ClassLabel(names=["red", "green", "blue"]),
                    }
                ),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(24, 0), "test": self._generate_examples(8, 1)}

        def _generate_examples(self, count, seed):
            for i, (image, label) in enumerate(tiny_examples(count, seed)):
                yield i, {"image": image, "label": label}

    root = tmp_path_factory.mktemp("tfds")
    GenimgTinyImages(data_dir=str(root), file_format="array_record").download_and_prepare()
    return root


def tiny_examples(count, seed):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8), i % 3) for i in range(count)]


def test_tfds_round_trips_pixels_and_labels(tfds_dir):
    source = data.make_source(
        "tfds:genimg_tiny_images", split="train", resolution=20, channels=3, data_dir=str(tfds_dir)
    )
    assert len(source) == 24 and source.num_classes == 3 and source.class_names == ("red", "green", "blue")
    # tfds stores examples in a hashed order, so compare as multisets of (pixels, label). PNG is lossless and
    # the centre crop 24 -> 20 columns needs no resize, so the pixels must match exactly.
    stored = collections.Counter((source[i]["image"].tobytes(), int(source[i]["label"])) for i in range(len(source)))
    expected = collections.Counter((image[:, 2:22].tobytes(), label) for image, label in tiny_examples(24, 0))
    assert stored == expected

    test = data.make_source(
        "tfds:genimg_tiny_images:test", split="train", resolution=10, channels=1, data_dir=str(tfds_dir)
    )
    assert len(test) == 8
    assert test[0]["image"].shape == (10, 10, 1) and test[0]["label"].dtype == np.int32


def test_tfds_gray_conversion_uses_luminance(tfds_dir):
    def load(channels):
        return data.make_source(
            "tfds:genimg_tiny_images", split="train", resolution=20, channels=channels, data_dir=str(tfds_dir)
        )[0]["image"]

    luma = load(3).astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    gray = load(1)
    assert gray.shape == (20, 20, 1)
    assert np.abs(gray[..., 0] - luma).max() <= 0.5 + 1e-6


def test_tfds_not_prepared_fails_fast_with_instructions(tmp_path):
    start = time.monotonic()
    with pytest.raises(data.DataError, match=r"tfds:mnist: not prepared.*tfds build mnist.*array_record"):
        data.make_source("tfds:mnist", split="train", resolution=28, channels=1, data_dir=str(tmp_path))
    assert time.monotonic() - start < 10  # a download attempt would retry for minutes
    with pytest.raises(data.DataError, match="no_such_dataset_xyz"):
        data.make_source("tfds:no_such_dataset_xyz", split="train", resolution=8, channels=1, data_dir=str(tmp_path))


def test_tfds_unknown_split(tfds_dir):
    with pytest.raises(data.DataError, match="validation"):
        data.make_source(
            "tfds:genimg_tiny_images:validation",
            split="train",
            resolution=8,
            channels=1,
            data_dir=str(tfds_dir),
        )


# --- folder -----------------------------------------------------------------------------------------------


@pytest.fixture
def class_folder(tmp_path):
    rows, cols = np.mgrid[0:20, 0:30]  # smooth, so JPEG stays close; landscape: the crop keeps columns 5..24
    rgb = np.stack([rows * 12, cols * 8, (rows + cols) * 5], axis=-1).astype(np.uint8)
    gray = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs" / "puppies").mkdir(parents=True)
    (tmp_path / ".cache").mkdir()
    Image.fromarray(rgb).save(tmp_path / "cats" / "a.png")
    Image.fromarray(rgb).save(tmp_path / "cats" / "b.JPG", quality=95)
    Image.fromarray(gray).save(tmp_path / "dogs" / "c.png")
    Image.fromarray(gray).save(tmp_path / "dogs" / "puppies" / "d.jpeg")
    Image.fromarray(gray).save(tmp_path / ".cache" / "hidden.png")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    return tmp_path, rgb, gray


def test_folder_labels_channels_crop_and_resize(class_folder):
    root, rgb, gray = class_folder
    source = data.make_source(f"folder:{root}", split="train", resolution=20, channels=3)
    assert len(source) == 4 and source.class_names == ("cats", "dogs") and source.num_classes == 2
    assert [int(source[i]["label"]) for i in range(4)] == [0, 0, 1, 1]
    np.testing.assert_array_equal(source[0]["image"], rgb[:, 5:25])  # PNG: exact crop, no resize
    assert np.abs(source[1]["image"].astype(int) - rgb[:, 5:25]).mean() < 4  # JPEG: lossy, same picture
    upscaled = source[2]["image"]
    assert upscaled.shape == (20, 20, 3)
    np.testing.assert_array_equal(upscaled[..., 0], upscaled[..., 1])  # gray -> RGB repeats the channel

    gray_source = data.make_source(f"folder:{root}", split="train", resolution=16, channels=1)
    np.testing.assert_array_equal(gray_source[2]["image"][..., 0], gray)
    small = gray_source[0]["image"]
    assert small.shape == (16, 16, 1)
    assert abs(float(small.mean()) - float((rgb[:, 5:25] @ [0.299, 0.587, 0.114]).mean())) < 2


def test_folder_flat_is_unlabeled_and_split_subfolders(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        (tmp_path / split).mkdir()
        for i in range(count):
            Image.fromarray(np.full((8, 8), i * 50, np.uint8)).save(tmp_path / split / f"{i}.png")
    test = data.make_source(f"folder:{tmp_path}", split="test", resolution=8, channels=1)
    assert len(test) == 2 and test.num_classes == 0 and int(test[1]["label"]) == 0
    assert int(test[1]["image"].max()) == 50
    with pytest.raises(data.DataError, match=r"has split folders \['test', 'train'\] but none named 'validation'"):
        data.make_source(f"folder:{tmp_path}", split="validation", resolution=8, channels=1)


def test_folder_errors_name_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(data.DataError, match=str(missing)):
        data.make_source(f"folder:{missing}", split="train", resolution=8, channels=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match="is empty"):
        data.make_source(f"folder:{tmp_path / 'empty'}", split="train", resolution=8, channels=1)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"\x89PNG not really")
    broken = data.make_source(f"folder:{tmp_path / 'bad'}", split="train", resolution=8, channels=1)
    with pytest.raises(data.DataError, match=r"bad': 'broken\.png' cannot be decoded \(.*source 'folder:"):  # on access
        broken[0]


# --- training stream --------------------------------------------------------------------------------------


def test_stream_shapes_and_epochs_are_fresh_permutations():
    stream = data.make_train_stream(IndexSource(60), global_batch_size=12, seed=3)
    batches = take(stream, 10)
    assert batches[0]["image"].shape == (12, 4, 6, 1) and batches[0]["image"].dtype == np.uint8
    assert batches[0]["label"].shape == (12,) and batches[0]["label"].dtype == np.int32
    epochs = [np.concatenate([b["label"] for b in batches[e * 5 : (e + 1) * 5]]) for e in range(2)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(60))
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[0], np.arange(60))


def test_stream_seeds():
    source = IndexSource(60)
    first = take(data.make_train_stream(source, global_batch_size=12, seed=0), 6)
    assert_batches_equal(first, take(data.make_train_stream(source, global_batch_size=12, seed=0), 6))
    other = take(data.make_train_stream(source, global_batch_size=12, seed=1), 6)
    assert not np.array_equal(first[0]["label"], other[0]["label"])
    # grain reseeds epoch e with base + e: make sure seed 1 is not seed 0 shifted by one epoch.
    assert not np.array_equal(first[5]["label"], other[0]["label"])


def test_stream_exact_resume_through_json():
    source = IndexSource(50)  # 50 is not a multiple of 8: batches straddle epoch boundaries
    stream = data.make_train_stream(source, global_batch_size=8, seed=7, random_flip=True)
    take(stream, 5)
    state = json.loads(json.dumps(stream.get_state()))
    assert state["step"] == 5
    expected = take(stream, 9)
    resumed = data.make_train_stream(source, global_batch_size=8, seed=7, random_flip=True)
    take(resumed, 2)
    resumed.set_state(state)
    assert_batches_equal(take(resumed, 9), expected)
    with pytest.raises(data.DataError, match="seed: saved 7, now 8"):
        data.make_train_stream(source, global_batch_size=8, seed=8).set_state(state)


# Two hosts whose devices hold interleaved blocks of rows, as a TPU mesh ordered by topology can give them.
HOST_ROWS = ([0, 1, 2, 6, 7, 8], [3, 4, 5, 9, 10, 11])


def test_stream_host_rows_are_exactly_those_rows_of_the_global_batch():
    source = IndexSource(40)
    single = take(data.make_train_stream(source, global_batch_size=12, seed=5, random_flip=True), 7)
    shards = [
        take(data.make_train_stream(source, global_batch_size=12, seed=5, random_flip=True, rows=rows), 7)
        for rows in HOST_ROWS
    ]
    for k in range(7):
        a, b = shards[0][k], shards[1][k]
        assert a["image"].shape == (6, 4, 6, 1)
        if k < 3:  # within the first epoch (40 examples, 36 positions) no example repeats
            assert not set(a["label"].tolist()) & set(b["label"].tolist())
        for host, rows in zip((a, b), HOST_ROWS, strict=True):
            for name in ("label", "image"):
                np.testing.assert_array_equal(host[name], single[k][name][rows])
    for rows in ([], [1, 0], [0, 12], [[0, 1]]):
        with pytest.raises(data.DataError, match=r"host rows .* must be ascending indices in 0\.\.11"):
            data.make_train_stream(source, global_batch_size=12, seed=0, rows=rows)


def test_stream_random_flip_is_a_mirror_of_about_half():
    source = IndexSource(64)
    batches = take(data.make_train_stream(source, global_batch_size=16, seed=2, random_flip=True), 20)
    flipped = 0
    for batch in batches:
        for image, label in zip(batch["image"], batch["label"], strict=True):
            original = source[int(label)]["image"]
            if np.array_equal(image, original[:, ::-1]):
                flipped += 1
            else:
                np.testing.assert_array_equal(image, original)
    assert 0.35 < flipped / 320 < 0.65
    assert_batches_equal(
        batches, take(data.make_train_stream(source, global_batch_size=16, seed=2, random_flip=True), 20)
    )


# --- evaluation pass --------------------------------------------------------------------------------------


def test_iterate_once_covers_everything_once_with_constant_shapes():
    source = IndexSource(50)
    per_process = [list(data.iterate_once(source, batch_size=12, rows=rows)) for rows in HOST_ROWS]
    assert len(per_process[0]) == len(per_process[1]) == 5
    seen = []
    for a, b in zip(*per_process, strict=True):
        global_batch = {}
        for batch, rows in zip((a, b), HOST_ROWS, strict=True):
            assert batch["image"].shape == (6, 4, 6, 1) and batch[data.IS_EXAMPLE].dtype == bool
            for name, value in batch.items():
                global_batch.setdefault(name, np.zeros((12, *value.shape[1:]), value.dtype))[rows] = value
        seen += global_batch["label"][global_batch[data.IS_EXAMPLE]].tolist()
    assert seen == list(range(50))  # in order, each once
    last = per_process[1][-1]
    assert last[data.IS_EXAMPLE].sum() == 0 and last["image"].max() == 0  # 50 = 4*12 + 2: host 1 is all padding
    assert per_process[0][-1][data.IS_EXAMPLE].tolist() == [True, True, False, False, False, False]


def test_every_declared_field_is_carried_by_training_evaluation_and_conditioning_batches():
    source = PairedIndexSource(20)
    batches = take(data.make_train_stream(source, global_batch_size=8, seed=1, random_flip=True), 10)
    for batch in batches:
        assert_pairs_intact(batch)  # a flip mirrors image and source together and leaves tokens alone
    originals = [np.stack([source[int(i)]["image"] for i in batch["label"]]) for batch in batches]
    assert any(not np.array_equal(b["image"], original) for b, original in zip(batches, originals, strict=True))
    passes = list(data.iterate_once(source, batch_size=16))
    assert set(passes[-1]) == {"image", "label", "source", "tokens", data.IS_EXAMPLE}
    assert_pairs_intact({name: value[passes[-1][data.IS_EXAMPLE]] for name, value in passes[-1].items()})
    assert passes[-1]["source"][4:].max() == 0 and passes[-1]["tokens"][4:].max() == 0  # padding is zeros
    cycled = list(data.cycled_batches(source, ("tokens",), batch_size=8, num_batches=4))
    assert [set(batch) for batch in cycled] == [{"tokens"}] * 4
    np.testing.assert_array_equal(np.concatenate([b["tokens"][:, 0] for b in cycled]), np.arange(32) % 20)
    with pytest.raises(data.DataError, match=r"no fields \['mask'\]"):
        data.cycled_batches(source, ("mask",), batch_size=8, num_batches=1)


def test_an_example_that_contradicts_its_declared_fields_is_refused():
    source = PairedIndexSource(4)
    source.fields["tokens"] = data.Field((4,), np.dtype(np.int32))
    with pytest.raises(data.DataError, match=r"field 'tokens' is declared int32\[4\] but an example holds int32\[3\]"):
        next(data.iterate_once(source, batch_size=4))


# --- sharding and pixel ranges ----------------------------------------------------------------------------


def test_make_global_batch_on_eight_devices():
    assert jax.device_count() == 8
    mesh = Mesh(np.array(jax.devices()), ("data",))
    batch = next(data.make_train_stream(IndexSource(40), global_batch_size=16, seed=0))
    for spec in (PartitionSpec("data"), PartitionSpec("data", None, None, None)):
        global_batch = data.make_global_batch(batch, NamedSharding(mesh, spec))
        assert global_batch["image"].shape == (16, 4, 6, 1) and global_batch["image"].dtype == np.uint8
        np.testing.assert_array_equal(np.asarray(global_batch["image"]), batch["image"])
        np.testing.assert_array_equal(np.asarray(global_batch["label"]), batch["label"])
        for value in global_batch.values():
            assert len(value.addressable_shards) == 8
            assert all(shard.data.shape[0] == 2 for shard in value.addressable_shards)
    with pytest.raises(data.DataError, match="'label'"):
        data.make_global_batch({"label": np.zeros(12, np.int32)}, NamedSharding(mesh, PartitionSpec("data")))


def test_one_process_loads_every_row_and_an_indivisible_batch_is_one_clear_error():
    sharding = NamedSharding(Mesh(np.array(jax.devices())[::-1], ("data",)), PartitionSpec("data", None))
    np.testing.assert_array_equal(data.host_rows(sharding, 16), np.arange(16))
    with pytest.raises(data.DataError, match=r"global batch size 12 does not split over .* of mesh \{'data': 8\}"):
        data.host_rows(sharding, 12)


def test_a_batch_every_process_holds_whole_is_sharded_like_a_local_one():
    mesh = Mesh(np.array(jax.devices()), ("data",))
    batch = next(data.cycled_batches(PairedIndexSource(10), ("source", "tokens"), batch_size=16, num_batches=1))
    global_batch = data.shard_whole_batch(batch, NamedSharding(mesh, PartitionSpec("data")))
    for name, value in global_batch.items():
        np.testing.assert_array_equal(np.asarray(value), batch[name])
        for shard in value.addressable_shards:  # each device holds its own two rows
            assert shard.data.shape[0] == 2
            np.testing.assert_array_equal(shard.data, batch[name][shard.index])


def test_unit_range_round_trip():
    pixels = np.arange(256, dtype=np.uint8)
    unit = jax.jit(data.to_unit_range)(pixels)
    assert unit.dtype == np.float32 and float(unit[0]) == -1.0 and float(unit[-1]) == 1.0
    np.testing.assert_array_equal(data.from_unit_range(unit), pixels)
    np.testing.assert_array_equal(data.from_unit_range(np.array([-3.0, 3.0])), [0, 255])
