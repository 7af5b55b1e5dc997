"""The dataset tool: a folder or zip of images -> a tfds array_record dataset that `tfds:NAME` reads back with the
pixels of an independent PIL centre crop and Lanczos resize, and a summary of what was written and skipped."""

import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from tiny_configs import load

from genimg_jax import data
from genimg_jax.data import dataset_writer
from genimg_jax.tools import dataset_tool

RESOLUTION = 8


def expected_pixels(path):
    """PIL alone: RGB, the largest centred square (PIL's crop), each channel Lanczos-resized to RESOLUTION in
    floating point (PIL mode F, as uint8 mode would round between its two passes), rounded."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    square = np.asarray(rgb.crop((left, top, left + side, top + side)), np.float32)
    channels = [
        np.asarray(Image.fromarray(square[..., c]).resize((RESOLUTION, RESOLUTION), Image.Resampling.LANCZOS))
        for c in range(3)
    ]
    return np.clip(np.rint(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)


@pytest.fixture
def image_folder(tmp_path):
    """cats/ (2 images, one gray and wide), dogs/ (1 tall image, 1 corrupt file, 1 too small), a text file."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for folder in ("cats", "dogs"):
        (root / folder).mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(root / "cats" / "a.png")
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / "cats" / "b.png")
    Image.fromarray(rng.integers(0, 256, (25, 12, 3), dtype=np.uint8)).save(root / "dogs" / "c.jpg", quality=95)
    (root / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.fromarray(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)).save(root / "dogs" / "tiny.png")
    (root / "cats" / "notes.txt").write_text("not an image")
    return root


def read_back(out, name):
    source = data.make_source(f"tfds:{name}", split="train", resolution=RESOLUTION, channels=3, data_dir=str(out))
    return source, [source[i] for i in range(len(source))]


def test_folder_becomes_a_tfds_dataset_with_a_summary_of_what_was_skipped(image_folder, tmp_path, capsys):
    out = tmp_path / "tfds"
    flags = [f"--source={image_folder}", f"--out={out}", "--name=pets", f"--resolution={RESOLUTION}"]
    assert dataset_tool.main(flags) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "pets" / "1.0.0" / dataset_writer.SUMMARY_FILE).read_text())
    assert summary["written"] == 3 and summary["per_class"] == {"cats": 2, "dogs": 1}
    assert summary["labels_from"] == "folders"
    skipped = {kind: [entry["file"] for entry in files] for kind, files in summary["skipped"].items()}
    assert skipped == {
        "not an image": ["cats/notes.txt"],
        "cannot be decoded": ["dogs/broken.png"],
        "smaller than the resolution": ["dogs/tiny.png"],
    }
    assert "per class: cats 2, dogs 1" in printed and "skipped 1 cannot be decoded: dogs/broken.png" in printed

    source, examples = read_back(out, "pets")
    assert source.class_names == ("cats", "dogs")
    assert [int(example["label"]) for example in examples] == [0, 0, 1]  # stored in file order
    for example, file in zip(examples, ("cats/a.png", "cats/b.png", "dogs/c.jpg"), strict=True):
        np.testing.assert_array_equal(example["image"], expected_pixels(image_folder / file))

    # The same name again: refused, the dataset kept.
    assert dataset_tool.main(flags) == 2
    assert "dataset 'pets' already exists" in capsys.readouterr().err
    assert len(read_back(out, "pets")[0]) == 3


def test_zip_with_a_labels_file_as_stylegan2_ada_writes_it(image_folder, tmp_path):
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in ("cats/a.png", "dogs/c.jpg", "cats/b.png"):
            zipped.write(image_folder / file, file)
    labels = tmp_path / "dataset.json"
    labels.write_text(json.dumps({"labels": [["cats/a.png", 2], ["dogs/c.jpg", 0]]}))
    summary = dataset_writer.write_dataset(archive, tmp_path / "tfds", "zipped", RESOLUTION, labels_file=labels)
    assert summary["written"] == 2 and summary["per_class"] == {"0": 1, "1": 0, "2": 1}
    assert summary["skipped"] == {"not in the labels file": [{"file": "cats/b.png", "why": "not in the labels file"}]}
    _, examples = read_back(tmp_path / "tfds", "zipped")
    assert [int(example["label"]) for example in examples] == [2, 0]
    # What a config names: data.source and data.data_dir.
    overrides = [
        "data.source=tfds:zipped",
        f"data.data_dir={tmp_path / 'tfds'}",
        "data.channels=3",
        "data.resolution=8",
    ]
    from_config = data.source_from_config(load("dcgan.py", *overrides).data, "train")
    np.testing.assert_array_equal(from_config[1]["image"], examples[1]["image"])
    np.testing.assert_array_equal(examples[0]["image"], expected_pixels(image_folder / "cats/a.png"))


@pytest.mark.parametrize(
    "make_source, message",
    [
        (lambda tmp: tmp / "missing", "does not exist"),
        (lambda tmp: (tmp / "bad.zip").write_bytes(b"PK\x03\x04 damaged") and tmp / "bad.zip", "not a readable zip"),
    ],
)
def test_missing_or_corrupt_source_is_one_line_and_writes_nothing(make_source, message, tmp_path, capsys):
    source = make_source(tmp_path)
    flags = [f"--source={source}", f"--out={tmp_path / 'tfds'}", "--name=x", "--resolution=8"]
    assert dataset_tool.main(flags) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error and str(source) in error
    assert not (tmp_path / "tfds").exists()


def test_folder_with_no_usable_image_leaves_no_dataset(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "broken.png").write_bytes(b"garbage")
    flags = [f"--source={tmp_path / 'src'}", f"--out={tmp_path / 'tfds'}", "--name=empty", "--resolution=8"]
    assert dataset_tool.main(flags) == 2
    assert "has no usable images: 1 cannot be decoded" in capsys.readouterr().err
    with pytest.raises(data.DataError, match="Dataset empty not found"):
        read_back(tmp_path / "tfds", "empty")
