"""Input that keeps up: a folder opens without decoding anything, a bad file is found (and named, or replaced) when
an example reads it, and batches read on many threads are the same bit for bit as on one, also after a resume."""

import numpy as np
import pytest
from PIL import Image

from genimg_jax import data
from genimg_jax.data import folder_source


@pytest.fixture
def noise_folder(tmp_path):
    """24 random 8x8 RGB PNGs in two class folders, and the pixels of each, in sorted-path order."""
    rng = np.random.default_rng(0)
    pixels = []
    for i in range(24):
        (tmp_path / f"c{i % 2}").mkdir(exist_ok=True)
        image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(image).save(tmp_path / f"c{i % 2}" / f"{i:02d}.png")
        pixels.append((f"c{i % 2}/{i:02d}.png", image))
    return tmp_path, [image for _, image in sorted(pixels, key=lambda item: item[0])]


def _folder(root, **policies):
    return data.make_source(f"folder:{root}", split="train", resolution=8, channels=3, **policies)


def test_opening_decodes_no_file_and_each_access_decodes_one(noise_folder, monkeypatch):
    root, pixels = noise_folder
    calls = []
    decode = folder_source.decode_file
    monkeypatch.setattr(folder_source, "decode_file", lambda path, file=None: calls.append(path) or decode(path))
    source = _folder(root)
    assert len(source) == 24 and calls == []
    np.testing.assert_array_equal(source[13]["image"], pixels[13])
    assert calls == [root / source.files[13]]


def test_a_corrupt_file_is_named_on_access_or_replaced_by_the_next_usable_one(noise_folder, capsys):
    root, pixels = noise_folder
    files = _folder(root).files
    whole = (root / files[5]).read_bytes()
    (root / files[5]).write_bytes(whole[: len(whole) // 2])  # truncated
    (root / files[6]).write_text("text with an image suffix")
    source = _folder(root)  # opens: nothing is read
    assert len(source) == 24
    np.testing.assert_array_equal(source[4]["image"], pixels[4])
    with pytest.raises(data.DataError) as error:
        source[5]
    message = str(error.value)
    assert "\n" not in message and f"'{files[5]}' cannot be decoded" in message
    assert "config.data.bad_images=skip" in message

    skipping = _folder(root, bad_images="skip")
    for index in (5, 6, 5):  # both bad files give the next usable image, with its label
        example = skipping[index]
        np.testing.assert_array_equal(example["image"], pixels[7])
        assert int(example["label"]) == int(skipping[7]["label"])
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 2  # one line per bad file, however often it is read
    assert f"'{files[5]}' cannot be decoded" in warnings[0] and f"'{files[6]}' cannot be decoded" in warnings[1]


def test_small_images_are_upscaled_or_replaced_lazily(noise_folder):
    root, pixels = noise_folder
    files = _folder(root).files
    Image.fromarray(pixels[23][:4, :4]).save(root / files[23])  # the last file: its replacement wraps to file 0
    assert _folder(root)[23]["image"].shape == (8, 8, 3)  # upscaled by default
    np.testing.assert_array_equal(_folder(root, small_images="skip")[23]["image"], pixels[0])


def test_a_folder_of_only_bad_files_fails_on_access_under_skip(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "b.png").write_text("no")
    source = _folder(tmp_path, bad_images="skip")
    with pytest.raises(data.DataError, match=r"has no usable images: every file is bad \(source 'folder:"):
        source[1]


def _batches(source, threads, steps, start=None, **options):
    stream = data.make_train_stream(source, global_batch_size=10, seed=4, read_threads=threads, **options)
    if start is not None:
        stream.set_state(start)
    return [next(stream) for _ in range(steps)]


def test_batches_are_the_same_for_any_thread_count_and_after_resume(noise_folder):
    root, pixels = noise_folder
    source = _folder(root)
    one = _batches(source, 1, 6, random_flip=True)
    eight = _batches(source, 8, 6, random_flip=True)
    for a, b in zip(one, eight, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    # The batches are real reads: every example of the first epoch appears once (24 examples, 10 per batch).
    seen = np.concatenate([batch["image"] for batch in one])[:24]
    matches = [[np.array_equal(s, p) or np.array_equal(s, p[:, ::-1]) for p in pixels] for s in seen]
    assert sorted(int(np.argmax(row)) for row in matches) == list(range(24))

    stream = data.make_train_stream(source, global_batch_size=10, seed=4, read_threads=8, random_flip=True)
    for _ in range(3):
        next(stream)
    resumed = _batches(source, 1, 3, start=stream.get_state(), random_flip=True)
    for a, b in zip(one[3:], resumed, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])


def test_evaluation_pass_is_the_same_for_any_thread_count(noise_folder):
    root, pixels = noise_folder
    source = _folder(root)
    one, eight = (list(data.iterate_once(source, batch_size=7, read_threads=n)) for n in (1, 8))
    images = np.concatenate([batch["image"][batch[data.IS_EXAMPLE]] for batch in eight])
    np.testing.assert_array_equal(images, np.stack(pixels))
    for a, b in zip(one, eight, strict=True):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    with pytest.raises(data.DataError, match=r"read_threads=-1 must be >= 0"):
        data.make_train_stream(source, global_batch_size=4, seed=0, read_threads=-1)


def test_a_bad_file_stops_a_threaded_stream_with_its_name(noise_folder):
    root, _ = noise_folder
    files = _folder(root).files
    (root / files[0]).write_bytes(b"\x89PNG not really")
    stream = data.make_train_stream(_folder(root), global_batch_size=24, seed=0, read_threads=4)
    with pytest.raises(data.DataError, match=rf"'{files[0]}' cannot be decoded"):
        next(stream)


@pytest.mark.slow  # writes a tfds dataset: tens of seconds on a loaded machine
def test_tfds_batched_reads_match_single_reads_for_any_thread_count(noise_folder, tmp_path):
    from genimg_jax.data import dataset_writer

    root, pixels = noise_folder
    dataset_writer.write_dataset(root, tmp_path / "tfds", "noise", 8, 3)
    source = data.make_source("tfds:noise", split="train", resolution=8, channels=3, data_dir=str(tmp_path / "tfds"))
    batched = source.__getitems__([9, 2, 2, 23])
    for index, example in zip([9, 2, 2, 23], batched, strict=True):
        np.testing.assert_array_equal(example["image"], pixels[index])  # stored losslessly, in file order
        assert int(example["label"]) == int(source[index]["label"])
    one, five = (_batches(source, threads, 4) for threads in (1, 5))
    for a, b in zip(one, five, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])


@pytest.mark.slow  # starts grain worker processes: seconds each
def test_worker_processes_make_the_same_batches_and_resume_exactly(noise_folder):
    root, _ = noise_folder
    source = _folder(root)
    reference = _batches(source, 1, 6, random_flip=True)
    workers = data.make_train_stream(source, global_batch_size=10, seed=4, num_workers=2, random_flip=True)
    try:
        made = [next(workers) for _ in range(3)]
        workers.set_state(reference_state := {**workers.get_state(), "step": 4})
        made += [next(workers) for _ in range(2)]
    finally:
        workers.close()
    assert reference_state["step"] == 4
    for a, b in zip(reference[:3] + reference[4:], made, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    with pytest.raises(data.DataError, match=r"num_workers=-1 must be >= 0"):
        data.make_train_stream(source, global_batch_size=4, seed=0, num_workers=-1)
