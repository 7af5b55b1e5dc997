"""Random-access image sources and the `make_source` spec parser.

A source is anything with `__len__`, `__getitem__(i) -> {field name: array}`, `fields`, `num_classes` and
`class_names`: grain's `RandomAccessDataSource` protocol plus metadata, so the pipeline can shuffle by index and
resume from an integer position without reading data it skips. `fields` declares the named fields of every
example (name -> per-example shape and dtype): always `image` (uint8 HWC), here also `label` (int32; 0 for
unlabeled data, whose `num_classes` is 0), and in other sources e.g. `source`, `mask` or `tokens`. Each form of
spec (`SOURCE_KINDS`) also states its fields without opening anything (`fields_from_config`), so shapes can be
traced before any data is read.

Image-to-image data comes in three ways: spec forms whose examples are pairs (`folder_pairs:`, `tfds_pairs:`,
the CT phantoms `ct:`), a degradation of any source (`config.data.degradation`, `make_source(degradation=)`), or
a second, unpaired source (`config.data.unpaired_source`); the last two wrap the source (derived_sources.py).

Text-to-image data are sources whose examples also carry a caption as int32 fields `tokens` and `tokens_mask`
(`caption_fields`; word-level, see data/text/vocabulary.py): `digits_captions` (each digit with a caption from a
template), `digit_scenes:SIZE` (2-4 digits placed on a 2x2 grid, named with their positions and sizes, with
(digit, cell) pairs held out of train), `folder_captions:PATH` (a `.txt` caption beside each image) and
`tfds_captions:NAME:IMAGE_FEATURE:TEXT_FEATURE[:SPLIT]`. Each form states its vocabulary
(`vocabulary_for(config.data)`): a fixed one from the grammar for the embedded two, else one built from all the
captions of the dataset, capped at `config.data.vocabulary_size`; `config.data.caption_length` tokens per caption.
With `config.data.tokenizer` (a pretrained model's directory) every captioned kind encodes with that tokenizer
instead (data/text/pretrained_tokenizer.py).

The two embedded sources are real data that ship inside installed packages, so tests and the default
configs run offline: scikit-learn's handwritten digits and scikit-image's LFW subset. Their train/test split
is fixed by hashing each example's index (`_fixed_split`), independent of any run seed and of the numpy
version, so evaluation numbers stay comparable between runs and machines.
"""

import contextlib
import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genimg_jax.data.errors import DataError
from genimg_jax.data.images import fit_image
from genimg_jax.data.text.pretrained_tokenizer import PretrainedTokenizer, caption_tokenizer
from genimg_jax.data.text.vocabulary import Vocabulary

SPEC_FORMS = (
    "digits",
    "faces",
    "tfds:NAME",
    "tfds:NAME:SPLIT",
    "folder:PATH",
    "npz:PATH",
    "folder_pairs:PATH",
    "tfds_pairs:NAME:SOURCE_FEATURE:TARGET_FEATURE[:SPLIT]",
    "ct:sparse:ANGLES",
    "ct:lowdose:PHOTONS",
    "digits_captions",
    "digit_scenes:SIZE[:train=N][:test=N][:held_out]",
    "folder_captions:PATH",
    "tfds_captions:NAME:IMAGE_FEATURE:TEXT_FEATURE[:SPLIT]",
)


class Field(NamedTuple):
    """One named field of a source's examples. A field of rank 3 is an image (HWC), flipped with `image` when
    the pipeline flips, so paired fields (a translation's `source`, an inpainting `mask`) stay aligned."""

    shape: tuple[int, ...]  # per example, without the batch axis
    dtype: np.dtype


def labelled_image_fields(resolution: int, channels: int) -> dict[str, Field]:
    """The fields of every built-in source: the fitted image and its class."""
    return {
        "image": Field((resolution, resolution, channels), np.dtype(np.uint8)),
        "label": Field((), np.dtype(np.int32)),
    }


def paired_image_fields(resolution: int, channels: int) -> dict[str, Field]:
    """The fields of a paired source: the target `image`, its `label` and the input `source`, all of one size."""
    fields = labelled_image_fields(resolution, channels)
    return {**fields, "source": fields["image"]}


def caption_fields(length: int) -> dict[str, Field]:
    """The fields of a caption of `length` tokens: the token ids and which of them are real (1) or padding (0)."""
    return {"tokens": Field((length,), np.dtype(np.int32)), "tokens_mask": Field((length,), np.dtype(np.int32))}


def stable_seed(*parts: object) -> int:
    """A seed in [0, 2**63) from the text of `parts` (BLAKE2), the same on every machine and numpy version: what
    fixes per-example randomness (degradations, phantoms, unpaired partners) independently of any run seed."""
    digest = hashlib.blake2b("\x1f".join(str(part) for part in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class ImageSource(Protocol):
    """What every source provides; see the module docstring."""

    fields: dict[str, Field]  # what `__getitem__` returns, by name
    num_classes: int  # 0 when unlabeled (then every label is 0)
    class_names: tuple[str, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, np.ndarray]: ...


def example(image: np.ndarray, label: int) -> dict[str, np.ndarray]:
    """The one element layout of the built-in sources (`labelled_image_fields`)."""
    return {"image": image, "label": np.int32(label)}


def _fixed_split(name: str, num_examples: int, num_test: int, split: str) -> np.ndarray:
    """Sorted indices of `split` ("train" or "test"): the test set is the `num_test` indices with the smallest
    BLAKE2 hash of `name:index`, a permutation that no library upgrade can change."""
    order = sorted(range(num_examples), key=lambda i: hashlib.blake2b(f"{name}:{i}".encode()).digest())
    if split == "test":
        return np.sort(order[:num_test])
    if split == "train":
        return np.sort(order[num_test:])
    raise DataError(f"source '{name}' has splits 'train' and 'test', not '{split}'")


class ArraySource:
    """Images held in memory at their native size (on the 0..255 scale), fitted to the resolution on access,
    so memory stays small whatever resolution a config asks for."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str],
        resolution: int,
        channels: int,
    ):
        self._images = images
        self._labels = labels
        self._resolution = resolution
        self._channels = channels
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.fields = labelled_image_fields(resolution, channels)

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return example(fit_image(self._images[index], self._resolution, self._channels), self._labels[index])


@dataclasses.dataclass(frozen=True)
class SourceOptions:
    """The `config.data` options a source may use beside its spec."""

    resolution: int
    channels: int
    data_dir: str | None = None  # where tfds looks for prepared datasets (None: tfds' default)
    bad_images: str = "error"  # image-folder policies for undecodable and too-small files (see folder_source)
    small_images: str = "upscale"
    direction: str = "AtoB"  # which side of a pair is `source`: AtoB | BtoA (folder_pairs, derived_sources)
    caption_length: int = 16  # tokens per caption (captioned sources)
    vocabulary_size: int = 5000  # most ids of a vocabulary built from a dataset's captions
    tokenizer: str = ""  # a pretrained model's tokenizer directory for the captions ('' = the word vocabulary)


@dataclasses.dataclass(frozen=True)
class SourceKind:
    """One form of source spec: how to build it (from the text after `NAME:` for prefixed forms, the split and
    the options), the fields of its examples, known without reading data, and, for captioned forms, the
    vocabulary of its captions (from the argument and the options)."""

    build: Callable[[str, str, SourceOptions], ImageSource]
    fields: Callable[[SourceOptions], dict[str, Field]]
    vocabulary: Callable[[str, SourceOptions], Vocabulary] | None = None


def digit_images(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 images (float32, 0..255) and labels of the digits source's `split`."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    keep = _fixed_split("digits", len(bunch.images), 297, split)
    return bunch.images[keep].astype(np.float32) * (255.0 / 16.0), bunch.target[keep]  # stored values are 0..16


def _digits(argument: str, split: str, options: SourceOptions) -> ArraySource:
    images, labels = digit_images(split)
    return ArraySource(images, labels, [str(d) for d in range(10)], options.resolution, options.channels)


def _faces(argument: str, split: str, options: SourceOptions) -> ArraySource:
    from skimage.data import lfw_subset

    faces = lfw_subset()  # float64 in [0, 1]: the first 100 are faces, the last 100 background crops
    keep = _fixed_split("faces", len(faces), 40, split)
    labels = (np.arange(len(faces)) >= 100).astype(np.int32)
    images = faces[keep].astype(np.float32) * 255.0
    return ArraySource(images, labels[keep], ("face", "non_face"), options.resolution, options.channels)


def _tfds(argument: str, split: str, options: SourceOptions) -> ImageSource:
    from genimg_jax.data.tfds_source import TfdsSource

    name, _, split_override = argument.partition(":")
    return TfdsSource(name, split_override or split, options.resolution, options.channels, options.data_dir)


def _folder(argument: str, split: str, options: SourceOptions) -> ImageSource:
    from genimg_jax.data.folder_source import FolderSource

    return FolderSource(argument, split, options.resolution, options.channels, options.bad_images, options.small_images)


def _npz(argument: str, split: str, options: SourceOptions) -> ArraySource:
    """uint8 images under `x` (NHWC or NHW, e.g. a generated set's .npz) and, if present, int labels under
    `labels`; held in memory, and the whole file serves every split."""
    try:
        with np.load(argument) as arrays:
            images = arrays["x"]
            labels = arrays["labels"] if "labels" in arrays.files else None
    except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
        raise DataError(f"cannot read images (key 'x') from '{argument}': {type(error).__name__}: {error}") from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise DataError(f"'{argument}' key 'x' must be uint8 NHWC or NHW images, not {images.dtype} {images.shape}")
    num_classes = 0 if labels is None else int(labels.max()) + 1
    labels = np.zeros(len(images), np.int32) if labels is None else labels.astype(np.int32)
    return ArraySource(images, labels, [str(c) for c in range(num_classes)], options.resolution, options.channels)


def _folder_pairs(argument: str, split: str, options: SourceOptions) -> ImageSource:
    from genimg_jax.data.folder_pairs import FolderPairsSource

    policies = (options.bad_images, options.small_images, options.direction)
    return FolderPairsSource(argument, split, options.resolution, options.channels, *policies)


def _tfds_pairs(argument: str, split: str, options: SourceOptions) -> ImageSource:
    from genimg_jax.data.tfds_source import tfds_pairs

    return tfds_pairs(argument, split, options.resolution, options.channels, options.data_dir)


def _ct(argument: str, split: str, options: SourceOptions) -> ImageSource:
    from genimg_jax.data.ct_phantoms import CtPhantoms

    return CtPhantoms(argument, split, options.resolution, options.channels)


def _labelled_images(options: SourceOptions) -> dict[str, Field]:
    return labelled_image_fields(options.resolution, options.channels)


def _paired_images(options: SourceOptions) -> dict[str, Field]:
    return paired_image_fields(options.resolution, options.channels)


def _ct_fields(options: SourceOptions) -> dict[str, Field]:
    from genimg_jax.data.ct_phantoms import ct_fields

    return ct_fields(options.resolution, options.channels)


def _captioned_images(options: SourceOptions) -> dict[str, Field]:
    return {**labelled_image_fields(options.resolution, options.channels), **caption_fields(options.caption_length)}


def _text_builder(name: str) -> Callable:
    """The function `name` of data/text, imported when called (captioned kinds load only what they use)."""

    def call(*args: object) -> object:
        import importlib

        module, _, function = name.rpartition(".")
        return getattr(importlib.import_module(f"genimg_jax.data.text.{module}"), function)(*args)

    return call


def _grammar_vocabulary(grammar: str) -> Callable[[str, SourceOptions], Vocabulary]:
    return lambda argument, options: _text_builder("grammar.grammar_vocabulary")(grammar)


# Keys ending in ':' are prefixed forms (`tfds:NAME`); the others are whole specs. Heavy imports
# (tensorflow_datasets) happen only in the builder of the form that needs them.
SOURCE_KINDS: dict[str, SourceKind] = {
    "digits": SourceKind(_digits, _labelled_images),
    "faces": SourceKind(_faces, _labelled_images),
    "tfds:": SourceKind(_tfds, _labelled_images),
    "folder:": SourceKind(_folder, _labelled_images),
    "npz:": SourceKind(_npz, _labelled_images),
    "folder_pairs:": SourceKind(_folder_pairs, _paired_images),
    "tfds_pairs:": SourceKind(_tfds_pairs, _paired_images),
    "ct:": SourceKind(_ct, _ct_fields),
    "digits_captions": SourceKind(
        _text_builder("captioned.digits_captions"), _captioned_images, _grammar_vocabulary("digits")
    ),
    "digit_scenes:": SourceKind(
        _text_builder("scenes.DigitScenes"), _text_builder("scenes.scene_fields"), _grammar_vocabulary("scenes")
    ),
    "folder_captions:": SourceKind(
        _text_builder("captioned.folder_captions"), _captioned_images, _text_builder("captioned.folder_vocabulary")
    ),
    "tfds_captions:": SourceKind(
        _text_builder("captioned.tfds_captions"), _captioned_images, _text_builder("captioned.tfds_vocabulary")
    ),
}


def _parse(spec: str, options: SourceOptions) -> tuple[SourceKind, str]:
    """(kind, argument) of `spec`, after checking the options every source relies on."""
    if options.channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {options.channels} (source '{spec}')")
    if options.resolution < 1:
        raise DataError(f"resolution must be positive, got {options.resolution} (source '{spec}')")
    if spec in SOURCE_KINDS and not spec.endswith(":"):
        return SOURCE_KINDS[spec], ""
    prefix, colon, argument = spec.partition(":")
    if colon and prefix + colon in SOURCE_KINDS:
        return SOURCE_KINDS[prefix + colon], argument
    raise DataError(f"unknown data source '{spec}'; valid forms: {', '.join(SPEC_FORMS)}")


def _options(data_config: ml_collections.ConfigDict) -> SourceOptions:
    return SourceOptions(
        resolution=data_config.resolution,
        channels=data_config.channels,
        data_dir=data_config.data_dir or None,
        bad_images=data_config.bad_images,
        small_images=data_config.small_images,
        # absent from the configs that runs saved before them
        direction=data_config.get("direction", "AtoB"),
        caption_length=data_config.get("caption_length", SourceOptions.caption_length),
        vocabulary_size=data_config.get("vocabulary_size", SourceOptions.vocabulary_size),
        tokenizer=data_config.get("tokenizer", SourceOptions.tokenizer),
    )


@dataclasses.dataclass(frozen=True)
class _Specs:
    """What `config.data` composes: the source, and at most one of a degradation of it or a second (unpaired)
    source whose images become field `source` (see derived_sources); '' = none."""

    source: str
    degradation: str = ""
    unpaired_source: str = ""

    @classmethod
    def of(cls, data_config: ml_collections.ConfigDict) -> "_Specs":
        return cls(data_config.source, data_config.get("degradation", ""), data_config.get("unpaired_source", ""))


@contextlib.contextmanager
def _naming(key: str | None) -> Iterator[None]:
    """Prefixes a DataError raised inside with `config.data.<key>: ` (nothing if `key` is None)."""
    try:
        yield
    except DataError as error:
        if key is None:
            raise
        raise DataError(f"config.data.{key}: {error}") from None


def _check_one_derivation(specs: _Specs) -> None:
    if specs.degradation and specs.unpaired_source:
        raise DataError(
            f"config.data.degradation={specs.degradation!r} and config.data.unpaired_source={specs.unpaired_source!r} "
            f"both make the field 'source'; set one of them"
        )


def _compose(specs: _Specs, split: str, options: SourceOptions, name_keys: bool) -> ImageSource:
    """The source `specs` describe; errors name the config key at fault if `name_keys`."""
    from genimg_jax.data.derived_sources import DegradedSource, UnpairedSource

    _check_one_derivation(specs)
    with _naming("source" if name_keys else None):
        source = _build(specs.source, split, options)
    if specs.degradation:
        with _naming("degradation" if name_keys else None):
            return DegradedSource(source, specs.degradation, split, options.direction)
    if specs.unpaired_source:
        with _naming("unpaired_source" if name_keys else None):
            return UnpairedSource(source, _build(specs.unpaired_source, split, options))
    return source


def source_from_config(data_config: ml_collections.ConfigDict, split: str) -> ImageSource:
    """The source a `config.data` section names, for `split`, with every option of that section applied
    (`degradation`, `unpaired_source`); a failure names the config key it came from."""
    return _compose(_Specs.of(data_config), split, _options(data_config), name_keys=True)


def fields_from_config(data_config: ml_collections.ConfigDict) -> dict[str, Field]:
    """The fields of the examples of the source `config.data` names, without opening it."""
    from genimg_jax.data.derived_sources import degradation_for, degraded_fields, unpaired_fields

    specs, options = _Specs.of(data_config), _options(data_config)
    _check_one_derivation(specs)
    with _naming("source"):
        fields = _fields(specs.source, options)
    if specs.degradation:
        with _naming("degradation"):
            return degraded_fields(fields, degradation_for(fields, specs.degradation), options.direction)
    if specs.unpaired_source:
        with _naming("unpaired_source"):
            return unpaired_fields(fields, _fields(specs.unpaired_source, options))
    return fields


def vocabulary_for(data_config: ml_collections.ConfigDict) -> Vocabulary | PretrainedTokenizer:
    """The tokenizer of the captions of `config.data.source` (its size for the text encoder; `encode` for user
    prompts): the pretrained one of `config.data.tokenizer` if set, else the source's word vocabulary; DataError if
    the source has no captions."""
    options = _options(data_config)
    with _naming("source"):
        kind, argument = _parse(data_config.source, options)
        if kind.vocabulary is None:
            captioned = [name for name, other in SOURCE_KINDS.items() if other.vocabulary is not None]
            raise DataError(f"'{data_config.source}' has no captions; captioned kinds: {', '.join(captioned)}")
    return caption_tokenizer(options.tokenizer, lambda: kind.vocabulary(argument, options))


def example_batch(data_config: ml_collections.ConfigDict, batch_size: int) -> dict[str, jax.Array]:
    """Zeros shaped like a global batch of every field of `config.data`'s source, for tracing shapes."""
    return {
        name: jnp.zeros((batch_size, *field.shape), field.dtype)
        for name, field in fields_from_config(data_config).items()
    }


def make_source(
    spec: str,
    *,
    split: str,
    resolution: int,
    channels: int,
    data_dir: str | None = None,
    bad_images: str = "error",
    small_images: str = "upscale",
    direction: str = "AtoB",
    degradation: str = "",
    unpaired_source: str = "",
    caption_length: int = SourceOptions.caption_length,
    vocabulary_size: int = SourceOptions.vocabulary_size,
) -> ImageSource:
    """Builds the source named by `spec` (one of `SPEC_FORMS`, or a kind added to `SOURCE_KINDS`) with the
    options of `SourceOptions` (`caption_length` and `vocabulary_size` for captioned sources), degraded by
    `degradation` (a `degradations.DEGRADATION_FORMS` spec) or paired with the images of the second source
    `unpaired_source` as field `source` ('' = neither)."""
    options = SourceOptions(
        resolution, channels, data_dir, bad_images, small_images, direction, caption_length, vocabulary_size
    )
    return _compose(_Specs(spec, degradation, unpaired_source), split, options, name_keys=False)


def _fields(spec: str, options: SourceOptions) -> dict[str, Field]:
    kind, _ = _parse(spec, options)
    return kind.fields(options)


def _build(spec: str, split: str, options: SourceOptions) -> ImageSource:
    kind, argument = _parse(spec, options)
    return kind.build(argument, split, options)
