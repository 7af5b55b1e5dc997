"""Tests of image-to-image data: degradations of any source (statistics against closed forms and PIL/numpy,
mask conventions, per-example determinism), folder pairs in both layouts, unpaired domains, CT phantoms and their
reconstructions, tfds pairs, flips that keep paired fields aligned, and the config keys that compose them."""

import re

import numpy as np
import pytest
from PIL import Image

from genimg_jax import data
from genimg_jax.config import ConfigError, base_config, validate_common
from genimg_jax.data.ct_phantoms import phantom, reconstruct
from genimg_jax.data.sources import stable_seed


def npz_source(tmp_path, images, name="images", **options):
    """`images` (uint8 NHWC, square) as an `npz:` source at their own size, so fitting leaves them unchanged."""
    path = tmp_path / f"{name}.npz"
    np.savez(path, x=images)
    resolution, channels = images.shape[1], images.shape[-1]
    return data.make_source(f"npz:{path}", split="train", resolution=resolution, channels=channels, **options)


def random_images(count, size=16, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, channels), dtype=np.uint8)


def sources_of(source, count):
    return np.stack([source[i]["source"] for i in range(count)]).astype(np.float64)


# --- noise ------------------------------------------------------------------------------------------------


def test_gaussian_noise_has_the_requested_spread_and_no_bias(tmp_path):
    sigma = 10.0
    source = npz_source(tmp_path, np.full((4, 32, 32, 3), 128, np.uint8), degradation=f"noise:gaussian:{sigma}")
    noise = sources_of(source, 4) - 128.0
    count = noise.size
    assert abs(noise.mean()) < 4 * sigma / np.sqrt(count)
    # rounding to integers adds the variance 1/12 of a uniform error; the sample std's own spread is sigma/sqrt(2n)
    assert abs(noise.std() - np.sqrt(sigma**2 + 1 / 12)) < 4 * sigma / np.sqrt(2 * count)


def test_poisson_noise_follows_the_mean_variance_law(tmp_path):
    peak, levels = 30.0, (20, 60, 100)
    images = np.concatenate([np.full((4, 32, 32, 3), level, np.uint8) for level in levels])
    source = npz_source(tmp_path, images, degradation=f"noise:poisson:{peak}")
    noisy = sources_of(source, len(images)).reshape(len(levels), -1)
    for level, values in zip(levels, noisy, strict=True):
        assert abs(values.mean() - level) < 4 * np.sqrt(255 * level / peak / values.size)
        # variance 255 * x / PEAK (the photon counts are Poisson), within the sampling error of a variance
        assert values.var() == pytest.approx(255 * level / peak, rel=0.08)


# --- downsample, gray, edges, sketch ----------------------------------------------------------------------


def test_downsample_is_pils_antialiased_bicubic_and_keeps_flat_images_flat(tmp_path):
    flat = npz_source(tmp_path, np.full((1, 32, 32, 3), 77, np.uint8), "flat", degradation="downsample:4")
    assert flat[0]["source"].shape == (8, 8, 3) and flat[0]["source"].dtype == np.uint8
    assert np.all(flat[0]["source"] == 77)
    for channels in (1, 3):
        images = random_images(2, 32, channels)
        source = npz_source(tmp_path, images, f"random{channels}", degradation="downsample:2")
        for index, image in enumerate(images):
            pil = Image.fromarray(image[..., 0] if channels == 1 else image)
            expected = np.asarray(pil.resize((16, 16), Image.Resampling.BICUBIC)).reshape(16, 16, channels)
            np.testing.assert_array_equal(source[index]["source"], expected)
            np.testing.assert_array_equal(source[index]["image"], image)
    with pytest.raises(data.DataError, match=r"divisible by 3.*valid forms: downsample:K"):
        npz_source(tmp_path, images, degradation="downsample:3")


def test_gray_is_the_bt601_luma_and_needs_colour(tmp_path):
    images = random_images(3)
    source = npz_source(tmp_path, images, degradation="gray")
    luma = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    gray = sources_of(source, 3)
    assert gray.shape == (3, 16, 16, 1)
    assert np.abs(gray[..., 0] - luma).max() <= 0.5 + 1e-9  # the luma, rounded
    with pytest.raises(data.DataError, match=r"gray.*3-channel"):
        npz_source(tmp_path, random_images(1, channels=1), "gray1", degradation="gray")


def square_image(size=32, channels=3):
    """A bright square on a dark background: its edges are the square's outline."""
    image = np.full((size, size, channels), 30, np.uint8)
    image[8:24, 8:24] = 220
    return image


def test_edges_are_black_lines_on_white_along_the_outline(tmp_path):
    source = npz_source(tmp_path, square_image()[None], degradation="edges")[0]["source"]
    assert source.shape == (32, 32, 3) and set(np.unique(source)) == {0, 255}
    assert np.all(source == source[..., :1])  # grey in every channel
    rows, columns = np.mgrid[0:32, 0:32]
    distance = np.minimum.reduce([abs(rows - 7.5), abs(rows - 23.5), abs(columns - 7.5), abs(columns - 23.5)])
    inside_band = np.maximum(abs(rows - 15.5), abs(columns - 15.5)) <= 9  # the outline's neighbourhood
    edge = source[..., 0] == 0
    assert np.all(distance[edge] <= 1.5) and np.all(inside_band[edge])
    assert edge[8:24, 8].sum() + edge[8:24, 7].sum() >= 14  # the left side is traced nearly all along


def test_sketch_is_white_paper_with_dark_strokes_at_edges(tmp_path):
    flat = npz_source(tmp_path, np.full((1, 32, 32, 1), 90, np.uint8), "flat", degradation="sketch")
    assert np.all(flat[0]["source"] == 255)  # the dodge of a flat image with its blurred negative is white
    sketch = npz_source(tmp_path, square_image(channels=1)[None], degradation="sketch")[0]["source"][..., 0]
    assert np.all(sketch[:2, :2] == 255) and np.all(sketch[12:20, 12:20] == 255)  # flat regions stay white
    assert sketch[16, 6:9].min() < 200  # just outside the square's dark side of the edge: a stroke


def test_direction_btoa_swaps_each_pair_to_make_the_degradation(tmp_path):
    """photo -> sketch: the pair of BtoA is the pair of AtoB with `source` and `image` exchanged, and a
    degradation that changes the shape or adds a mask cannot be a target."""
    images = random_images(3, size=16, channels=1)
    forward = npz_source(tmp_path, images, degradation="sketch")
    backward = npz_source(tmp_path, images, degradation="sketch", direction="BtoA")
    assert backward.fields == forward.fields
    for index in range(3):
        np.testing.assert_array_equal(backward[index]["source"], forward[index]["image"])
        np.testing.assert_array_equal(backward[index]["image"], forward[index]["source"])
    for spec in ("downsample:2", "mask:box"):
        with pytest.raises(data.DataError, match=f"direction BtoA makes the degradation '{spec}' the target"):
            npz_source(tmp_path, images, degradation=spec, direction="BtoA")


# --- masks ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["box", "free_form", "half"])
def test_masks_mark_known_pixels_with_one_and_fill_missing_ones_with_127(tmp_path, kind):
    images = random_images(40)
    source = npz_source(tmp_path, images, degradation=f"mask:{kind}")
    fractions = []
    for index, image in enumerate(images):
        example = source[index]
        mask = example["mask"]
        assert mask.shape == (16, 16, 1) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        known = mask[..., 0] == 1
        np.testing.assert_array_equal(example["source"][known], image[known])
        assert np.all(example["source"][~known] == 127)
        np.testing.assert_array_equal(example["image"], image)
        missing = ~known
        fractions.append(missing.mean())
        if kind == "box":  # one rectangle, sides between a quarter and a half of the image's
            rows, columns = np.nonzero(missing)
            height, width = np.ptp(rows) + 1, np.ptp(columns) + 1
            assert missing.sum() == height * width and 4 <= height <= 8 and 4 <= width <= 8
        if kind == "half":  # a whole half: all rows alike (left/right) or all columns alike
            assert missing.mean() == 0.5
            assert np.all(missing == missing[:1]) or np.all(missing == missing[:, :1])
    assert min(fractions) > 0 and max(fractions) < 1
    assert len({tuple(source[i]["mask"].ravel()) for i in range(len(images))}) > (3 if kind == "half" else 30)


def test_free_form_strokes_cover_a_moderate_share(tmp_path):
    source = npz_source(tmp_path, random_images(100, size=32), degradation="mask:free_form")
    fractions = np.array([1.0 - source[i]["mask"].mean() for i in range(100)])
    assert 0.05 < fractions.mean() < 0.5  # inpainting datasets hide between a tenth and a half


# --- determinism ------------------------------------------------------------------------------------------


def test_each_pair_is_fixed_by_spec_split_and_index_only(tmp_path):
    images = np.full((4, 16, 16, 3), 128, np.uint8)
    first = npz_source(tmp_path, images, degradation="noise:gaussian:20")
    second = npz_source(tmp_path, images, degradation="noise:gaussian:20")  # another object, same pairs
    for index in range(4):
        np.testing.assert_array_equal(first[index]["source"], second[index]["source"])
    assert not np.array_equal(first[0]["source"], first[1]["source"])  # same image, other index: other noise
    other_split = data.make_source(
        f"npz:{tmp_path / 'images.npz'}", split="test", resolution=16, channels=3, degradation="noise:gaussian:20"
    )
    assert not np.array_equal(first[0]["source"], other_split[0]["source"])
    masked = npz_source(tmp_path, images, degradation="mask:box")
    streams = [
        data.make_train_stream(masked, global_batch_size=4, seed=3, rows=rows) for rows in (None, [0, 2], [1, 3])
    ]
    whole, *halves = (next(stream) for stream in streams)
    for name in ("source", "mask"):
        np.testing.assert_array_equal(whole[name][[0, 2, 1, 3]], np.concatenate([half[name] for half in halves]))


def test_random_flip_keeps_image_source_and_mask_aligned(tmp_path):
    source = npz_source(tmp_path, random_images(16), degradation="mask:box")
    flipped = next(data.make_train_stream(source, global_batch_size=16, seed=1, random_flip=True))
    plain = next(data.make_train_stream(source, global_batch_size=16, seed=1))
    mirrored = np.all(flipped["image"] == plain["image"][:, :, ::-1], axis=(1, 2, 3))
    assert 0 < mirrored.sum() < 16
    for name in ("image", "source", "mask"):
        np.testing.assert_array_equal(flipped[name][mirrored], plain[name][mirrored][:, :, ::-1])
        np.testing.assert_array_equal(flipped[name][~mirrored], plain[name][~mirrored])
    known = flipped["mask"] == 1
    np.testing.assert_array_equal(np.where(known, flipped["image"], 127), flipped["source"])


# --- folder pairs -----------------------------------------------------------------------------------------


def write_png(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_folder_pairs_from_a_and_b_folders_and_direction(tmp_path):
    a_images, b_images = random_images(3, 8, seed=1), random_images(3, 8, seed=2)
    for index, (a, b) in enumerate(zip(a_images, b_images, strict=True)):
        write_png(tmp_path / "A" / f"{index}.png", a)
        write_png(tmp_path / "B" / f"{index}.{'bmp' if index == 1 else 'png'}", b)  # partners match without suffix
    options = {"split": "train", "resolution": 8, "channels": 3}
    forward = data.make_source(f"folder_pairs:{tmp_path}", **options)
    config = base_config()
    config.data.update(source=f"folder_pairs:{tmp_path}", direction="BtoA", resolution=8, channels=3)
    backward = data.source_from_config(config.data, "train")
    assert len(forward) == 3 and forward.fields == backward.fields == data.fields_from_config(config.data)
    for index in range(3):
        np.testing.assert_array_equal(forward[index]["source"], a_images[index])
        np.testing.assert_array_equal(forward[index]["image"], b_images[index])
        np.testing.assert_array_equal(backward[index]["source"], b_images[index])
        np.testing.assert_array_equal(backward[index]["image"], a_images[index])
    write_png(tmp_path / "B" / "extra" / "lonely.png", a_images[0])
    with pytest.raises(data.DataError, match=r"B/extra/lonely.png' has no partner in '.*A'"):
        data.make_source(f"folder_pairs:{tmp_path}", **options)


def test_folder_pairs_from_side_by_side_images_with_split_folders(tmp_path):
    a_images, b_images = random_images(2, 8, seed=3), random_images(2, 8, seed=4)
    for index, (a, b) in enumerate(zip(a_images, b_images, strict=True)):
        write_png(tmp_path / "train" / f"{index}.png", np.concatenate([a, b], axis=1))
    write_png(tmp_path / "test" / "0.png", np.concatenate([b_images[0], a_images[0]], axis=1))
    train = data.make_source(f"folder_pairs:{tmp_path}", split="train", resolution=8, channels=3)
    for index in range(2):
        np.testing.assert_array_equal(train[index]["source"], a_images[index])
        np.testing.assert_array_equal(train[index]["image"], b_images[index])
    test = data.make_source(f"folder_pairs:{tmp_path}", split="test", resolution=8, channels=1)
    assert len(test) == 1 and test[0]["image"].shape == test[0]["source"].shape == (8, 8, 1)
    # the size check applies to each half: 8-wide halves are too small for resolution 16
    with pytest.raises(data.DataError, match=r"no usable images.*smaller than the resolution"):
        data.make_source(f"folder_pairs:{tmp_path}", split="train", resolution=16, channels=3, small_images="skip")


# --- unpaired domains -------------------------------------------------------------------------------------


def test_unpaired_domains_span_the_larger_one_with_fixed_partners(tmp_path):
    domain_a, domain_b = random_images(3, 8, seed=5), random_images(7, 8, seed=6)
    npz_source(tmp_path, domain_b, "b")  # writes b.npz
    source = npz_source(tmp_path, domain_a, "a", unpaired_source=f"npz:{tmp_path / 'b.npz'}")
    assert len(source) == 7 and set(source.fields) == {"image", "label", "source"}
    examples = [source[i] for i in range(7)]
    for index, example in enumerate(examples):
        np.testing.assert_array_equal(example["image"], domain_a[index % 3])
    partners = [next(j for j in range(7) if np.array_equal(e["source"], domain_b[j])) for e in examples]
    assert sorted(partners) == list(range(7))  # every image of the larger domain once per epoch
    assert partners != list(range(7))  # pseudo-random, not aligned by index
    again = npz_source(tmp_path, domain_a, "a", unpaired_source=f"npz:{tmp_path / 'b.npz'}")
    np.testing.assert_array_equal(again[4]["source"], examples[4]["source"])
    swapped = npz_source(tmp_path, domain_b, "b", unpaired_source=f"npz:{tmp_path / 'a.npz'}")
    assert len(swapped) == 7
    cycled = [next(j for j in range(3) if np.array_equal(swapped[i]["source"], domain_a[j])) for i in range(7)]
    assert set(cycled) == {0, 1, 2}  # the smaller domain cycles


# --- CT phantoms ------------------------------------------------------------------------------------------


def psnr(estimate, target):
    """Peak signal-to-noise ratio in dB of images in [0, 1] (peak 1)."""
    return 10 * np.log10(1.0 / np.mean((np.asarray(estimate, np.float64) - target) ** 2))


def test_phantoms_are_in_the_unit_range_inside_the_scanned_circle_and_vary():
    phantoms = [phantom(32, np.random.default_rng(seed)) for seed in range(5)]
    rows, columns = np.mgrid[0:32, 0:32]
    outside = np.hypot(rows - 15.5, columns - 15.5) > 16
    for image in phantoms:
        assert image.min() >= 0 and image.max() <= 1 and image.max() == 1.0  # the skull
        assert np.all(image[outside] == 0)
        assert len(np.unique(np.round(image, 6))) >= 4  # background, skull, brain and inner ellipses
    assert not np.array_equal(phantoms[0], phantoms[1])


def test_reconstruction_quality_falls_with_fewer_views_and_fewer_photons():
    images = [phantom(32, np.random.default_rng(seed)) for seed in range(3)]

    def mean_psnr(views, photons=None):
        return np.mean(
            [
                psnr(np.clip(reconstruct(image, views, photons, np.random.default_rng(7)), 0, 1), image)
                for image in images
            ]
        )

    sparse = [mean_psnr(views) for views in (100, 24, 8)]
    low_dose = [mean_psnr(100, photons) for photons in (1e7, 1e3, 1e2)]
    # many views: close to the phantom (at 32x32 the band limit of the scan blurs the skull's rim, hence not 30 dB)
    assert sparse[0] > 22
    assert sparse[0] > sparse[1] > sparse[2] and sparse[0] - sparse[2] > 3
    assert low_dose[0] > low_dose[1] > low_dose[2] and low_dose[0] - low_dose[2] > 3


def test_ct_sources_pair_phantoms_with_reconstructions(tmp_path):
    options = {"resolution": 16, "channels": 1}
    sparse = data.make_source("ct:sparse:6", split="train", **options)
    low_dose = data.make_source("ct:lowdose:1000", split="train", **options)
    assert len(sparse) == 2000 and len(data.make_source("ct:sparse:6", split="test", **options)) == 200
    np.testing.assert_array_equal(sparse[3]["image"], low_dose[3]["image"])  # the same phantom k for both tasks
    expected = np.rint(phantom(16, np.random.default_rng(stable_seed("ct", "train", 3))) * 255)
    np.testing.assert_array_equal(sparse[3]["image"][..., 0], expected)
    again = data.make_source("ct:lowdose:1000", split="train", **options)
    np.testing.assert_array_equal(again[5]["source"], low_dose[5]["source"])  # the noise is fixed per example
    assert not np.array_equal(sparse[3]["source"], sparse[3]["image"])
    for bad, message in (
        ("ct:sparse:zero", "valid forms: ct:sparse:ANGLES"),
        ("ct:fewdose:3", "valid forms"),
    ):
        with pytest.raises(data.DataError, match=message):
            data.make_source(bad, split="train", **options)
    with pytest.raises(data.DataError, match="1 channel"):
        data.make_source("ct:sparse:6", split="train", resolution=16, channels=3)


# --- tfds pairs -------------------------------------------------------------------------------------------


def test_tfds_pairs_read_two_image_features(tmp_path):
    import tensorflow_datasets as tfds

    inputs, targets = random_images(4, 8, seed=8), random_images(4, 8, seed=9)

    class GenimgTinyPairs(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            image = tfds.features.Image(shape=(8, 8, 3))
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({"x": image, "y": image}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for index, (x, y) in enumerate(zip(inputs, targets, strict=True)):
                yield index, {"x": x, "y": y}

    GenimgTinyPairs(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
    source = data.make_source(
        "tfds_pairs:genimg_tiny_pairs:x:y", split="train", resolution=8, channels=3, data_dir=str(tmp_path)
    )
    assert len(source) == 4 and source.num_classes == 0
    pairs = {(source[i]["source"].tobytes(), source[i]["image"].tobytes()) for i in range(4)}  # hashed order
    assert pairs == {(x.tobytes(), y.tobytes()) for x, y in zip(inputs, targets, strict=True)}
    with pytest.raises(data.DataError, match="no 'z' feature"):
        data.make_source(
            "tfds_pairs:genimg_tiny_pairs:x:z", split="train", resolution=8, channels=3, data_dir=str(tmp_path)
        )
    with pytest.raises(data.DataError, match=re.escape("tfds_pairs:NAME:SOURCE_FEATURE:TARGET_FEATURE")):
        data.make_source("tfds_pairs:genimg_tiny_pairs:x", split="train", resolution=8, channels=3)


# --- config -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [
        {"degradation": "downsample:4"},
        {"degradation": "mask:free_form"},
        {"degradation": "gray", "channels": 3},
        {"degradation": "edges"},
        {"unpaired_source": "faces", "channels": 3},
        {"source": "ct:lowdose:1000"},
        {"degradation": "noise:poisson:10"},
    ],
)
def test_the_config_knows_the_fields_of_every_composition_unopened(keys):
    config = base_config()
    config.data.update({"resolution": 16, "channels": 1, **keys})
    fields = data.fields_from_config(config.data)
    source = data.source_from_config(config.data, "test")
    assert source.fields == fields
    example = source[0]
    assert {name: (value.shape, value.dtype) for name, value in example.items()} == fields
    assert "source" in fields


def test_config_keys_are_validated_and_errors_name_them():
    config = base_config()
    config.data.degradation = "blur:3"
    for function in (data.fields_from_config, lambda data_config: data.source_from_config(data_config, "test")):
        with pytest.raises(data.DataError, match=r"^config.data.degradation: degradation 'blur:3' is unknown"):
            function(config.data)
    config.data.degradation = "noise:gaussian:-1"
    with pytest.raises(data.DataError, match=r"SIGMA >= 0, not '-1'; valid forms: downsample:K, noise:gaussian"):
        data.fields_from_config(config.data)
    config.data.update(degradation="", unpaired_source="mnist")
    with pytest.raises(data.DataError, match=r"^config.data.unpaired_source: unknown data source 'mnist'"):
        data.fields_from_config(config.data)
    config.data.update(degradation="gray", unpaired_source="faces")
    with pytest.raises(ConfigError, match=r"config.data.unpaired_source='faces' is invalid: both it and"):
        validate_common(config)
    config.data.update(degradation="", unpaired_source="", direction="AtoA")
    with pytest.raises(ConfigError, match=re.escape("config.data.direction='AtoA' is invalid")):
        validate_common(config)
    config.data.direction = "BtoA"
    validate_common(config)
    config.data.update(source="folder_pairs:/nowhere", degradation="mask:box")
    with pytest.raises(data.DataError, match=r"^config.data.degradation: .*already has \['source'\]"):
        data.fields_from_config(config.data)


def test_spec_forms_list_the_new_kinds():
    with pytest.raises(data.DataError, match=r"folder_pairs:PATH.*tfds_pairs:NAME.*ct:sparse:ANGLES"):
        data.make_source("pairs", split="train", resolution=8, channels=1)
