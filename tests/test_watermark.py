"""The invisible watermark: found in what it marked, within its distortion budget, through JPEG q75 and resizing at
grid size, never in real images, and reported per file by tools/detect."""

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data
from sklearn.datasets import load_digits
from tiny_configs import load

from genimg_jax.data.images import fit_image
from genimg_jax.evaluation import provenance, watermark
from genimg_jax.evaluation.grids import make_grid
from genimg_jax.tools import detect


def _photo_crops(count: int, size: int, seed: int) -> list[np.ndarray]:
    """Random square crops of three photos, resized to `size`: CIFAR-like real images."""
    rng = np.random.default_rng(seed)
    photos = [skimage_data.astronaut(), skimage_data.coffee(), skimage_data.chelsea()]
    crops = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        side = int(rng.integers(32, 150))
        top, left = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
        crops.append(fit_image(photo[top : top + side, left : left + side], size, 3))
    return crops


def _digits(count: int) -> list[np.ndarray]:
    return [fit_image(image * (255.0 / 16.0), 32, 1) for image in load_digits().images[:count]]


@pytest.fixture(scope="module")
def grid() -> np.ndarray:
    """A sample grid as the trainer writes it: 8x8 tiles of 32x32 with 2 px padding, 274x274 RGB."""
    return make_grid(np.stack(_photo_crops(64, 32, seed=3)))


def _jpeg(image: np.ndarray, quality: int = 75) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def _resized_and_back(image: np.ndarray, factor: float) -> np.ndarray:
    size = image.shape[1], image.shape[0]
    small = Image.fromarray(image).resize((round(size[0] * factor), round(size[1] * factor)), Image.Resampling.BICUBIC)
    return np.asarray(small.resize(size, Image.Resampling.BICUBIC))


def test_marked_images_are_detected_within_the_psnr_budget(grid):
    rgba = np.concatenate([grid, np.full((*grid.shape[:2], 1), 200, np.uint8)], axis=-1)
    gray = skimage_data.camera()[100:164, 200:264]
    small = [*_photo_crops(8, 32, seed=0), *_digits(4)]
    reached, detected = [], []
    for image in [*small, gray, grid, rgba]:
        marked = watermark.embed(image)
        assert marked.shape == image.shape and marked.dtype == np.uint8
        distortion = watermark.psnr(image, marked)
        assert distortion >= watermark.MIN_PSNR
        detection = watermark.detect(marked)
        reached.append(detection.score >= watermark.TARGET_Z)
        detected.append(detection.detected)
        # Short of the target only when the whole budget went into the mark.
        assert reached[-1] or distortion < watermark.MIN_PSNR + 0.5
        assert not watermark.detect(marked, key="another key").detected
    assert all(reached[len(small) :]) and sum(detected[: len(small)]) == 10  # 32x32: about 9 in 10 are detected
    np.testing.assert_array_equal(watermark.embed(rgba)[..., 3], 200)  # alpha is not touched
    # A grid has room to spare: the mark costs far less than the budget.
    assert watermark.psnr(grid, watermark.embed(grid)) > 48.0


def test_the_mark_changes_luma_only():
    image = _photo_crops(1, 32, seed=5)[0]
    change = watermark.embed(image).astype(int) - image.astype(int)
    unclipped = (image > 8).all(-1) & (image < 247).all(-1)  # rounding aside, every channel moves alike
    assert np.abs(change[unclipped] - change[unclipped][:, :1]).max() <= 1 and np.abs(change).max() > 0


def test_a_grid_keeps_its_mark_through_jpeg_q75_and_resizing(grid):
    marked = watermark.embed(grid)
    for attacked in (_jpeg(marked), _resized_and_back(marked, 0.5), _resized_and_back(marked, 2.0)):
        assert watermark.detect(attacked).score >= 5.0  # threshold 4


def test_unmarked_real_images_are_not_detected_and_score_like_a_standard_normal(grid):
    real = [*_photo_crops(600, 32, seed=1), *_digits(200), grid, skimage_data.astronaut(), skimage_data.camera()]
    scores = np.array([watermark.detect(image).score for image in real])
    assert scores.max() < watermark.THRESHOLD
    assert abs(scores.mean()) < 0.2 and 0.85 < scores.std() < 1.15  # the null distribution the threshold assumes


def test_key_signs_are_balanced_and_the_same_at_every_image_size():
    small, large = watermark.key_signs("k", 10, 12), watermark.key_signs("k", 300, 200)
    np.testing.assert_array_equal(small, large[:10, :12])
    assert set(np.unique(large)) == {-1.0, 1.0} and abs(large.mean()) < 0.01
    assert (watermark.key_signs("other", 300, 200) == large).mean() == pytest.approx(0.5, abs=0.01)


def test_bad_images_are_refused_in_one_line():
    with pytest.raises(ValueError, match="a 16x16 image is too small for the watermark"):
        watermark.embed(np.zeros((16, 16), np.uint8))
    with pytest.raises(ValueError, match="expected a uint8 HW, HW1, HW3 or HW4 image, got float32"):
        watermark.detect(np.zeros((32, 32, 3), np.float32))


def test_detect_command_reports_each_file(tmp_path, grid, capsys):
    Image.fromarray(watermark.embed(grid)).save(tmp_path / "marked.png")
    Image.fromarray(grid).save(tmp_path / "plain.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(watermark.embed(_digits(1)[0][..., 0])).save(tmp_path / "sub" / "digit.png")
    assert detect.main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (z = ")[0] for line in lines] == [
        f"{tmp_path / 'marked.png'}: watermark yes",
        f"{tmp_path / 'plain.png'}: watermark no",
        f"{tmp_path / 'sub' / 'digit.png'}: watermark yes",
    ]
    assert detect.main([str(tmp_path / "missing.png")]) == 2
    assert "missing.png: error:" in capsys.readouterr().err


def test_every_png_written_through_provenance_carries_the_mark_of_its_config(tmp_path, grid):
    """save_png marks images of 21x21 pixels or more with `config.watermark_key` and says so in a text field; a
    smaller image is written as it is, and says why; `watermark_key=''` writes the pixels as given."""
    config = load("dcgan.py")
    assert config.watermark_key == watermark.DEFAULT_KEY
    fields = provenance.image_provenance(config, 3, 0)
    provenance.save_png(grid, tmp_path / "grid.png", fields)
    with Image.open(tmp_path / "grid.png") as image:
        pixels, text = np.asarray(image), image.text
    np.testing.assert_array_equal(pixels, watermark.embed(grid))
    check = f"python -m genimg_jax.tools.detect FILE --key={config.watermark_key}"
    assert text["watermark"] == f"embedded; check with: {check}"
    assert provenance.WATERMARK_KEY_FIELD not in text and text["step"] == "3"
    assert detect.detect_file(tmp_path / "grid.png", config.watermark_key).detected

    tiny = grid[:16, :16]
    provenance.save_png(tiny, tmp_path / "tiny.png", fields)
    with Image.open(tmp_path / "tiny.png") as image:
        np.testing.assert_array_equal(np.asarray(image), tiny)
        assert image.text["watermark"] == "none: a 16x16 image is too small to carry it"

    unmarked = provenance.image_provenance(load("dcgan.py", "watermark_key="), 3, 0)
    provenance.save_png(grid, tmp_path / "plain.png", unmarked)
    with Image.open(tmp_path / "plain.png") as image:
        np.testing.assert_array_equal(np.asarray(image), grid)
        assert "watermark" not in image.text and image.text == unmarked
