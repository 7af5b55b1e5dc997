"""Sources whose examples carry a caption, as the int32 fields `tokens` and `tokens_mask` (`caption_fields`):
an existing source wrapped with one caption per example, encoded once when the source opens.

- `digits_captions`: the digits source (same split) with a caption of its label from the digit grammar
  (`grammar.digit_caption`), wording seeded by (split, index), under the grammar's fixed vocabulary.
- `folder_captions:PATH`: an image folder (`folder:` rules) in which every image has a caption file beside it,
  same stem, suffix `.txt` (the whole file is one caption). The vocabulary is built from every `.txt` file
  under PATH, all splits, text only, capped at `config.data.vocabulary_size`, so every split and process
  builds the same one.
- `tfds_captions:NAME:IMAGE_FEATURE:TEXT_FEATURE[:SPLIT]`: a prepared tfds dataset (`tfds:` rules) whose
  TEXT_FEATURE (a Text feature) is the caption; its vocabulary is built from the texts of every split, read
  without decoding the images.

With `config.data.tokenizer` set, every kind encodes its captions with that pretrained tokenizer instead of a word
vocabulary (data/text/pretrained_tokenizer.py).
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genimg_jax.data.errors import DataError
from genimg_jax.data.sources import SOURCE_KINDS, ImageSource, SourceOptions, caption_fields, digit_images, stable_seed
from genimg_jax.data.text.grammar import digit_caption, grammar_vocabulary
from genimg_jax.data.text.pretrained_tokenizer import PretrainedTokenizer, caption_tokenizer
from genimg_jax.data.text.vocabulary import Vocabulary

CAPTION_SUFFIX = ".txt"
TFDS_FORM = "tfds_captions:NAME:IMAGE_FEATURE:TEXT_FEATURE[:SPLIT]"


class CaptionedSource:
    """`base` with `captions[i]` encoded as the `tokens` and `tokens_mask` of example i."""

    def __init__(
        self, base: ImageSource, captions: Sequence[str], vocabulary: Vocabulary | PretrainedTokenizer, length: int
    ):
        if len(captions) != len(base):
            raise DataError(f"{len(captions)} captions for the {len(base)} examples of {base!r}")
        self.fields = {**base.fields, **caption_fields(length)}
        self.num_classes, self.class_names = base.num_classes, base.class_names
        self.captions, self.vocabulary, self._base = tuple(captions), vocabulary, base
        encoded = [vocabulary.encode(caption, length) for caption in captions]
        self._tokens = np.stack([tokens for tokens, _ in encoded]) if encoded else np.zeros((0, length), np.int32)
        self._masks = np.stack([mask for _, mask in encoded]) if encoded else np.zeros((0, length), np.int32)

    def __len__(self) -> int:
        return len(self._base)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {**self._base[index], "tokens": self._tokens[index], "tokens_mask": self._masks[index]}


def digits_captions(argument: str, split: str, options: SourceOptions) -> CaptionedSource:
    _, labels = digit_images(split)
    captions = [
        digit_caption(int(label), np.random.default_rng(stable_seed("digits_captions", split, index)))
        for index, label in enumerate(labels)
    ]
    base = SOURCE_KINDS["digits"].build("", split, options)
    tokenizer = caption_tokenizer(options.tokenizer, lambda: grammar_vocabulary("digits"))
    return CaptionedSource(base, captions, tokenizer, options.caption_length)


def _read_caption(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"image '{path.with_suffix('')}.*' has no caption file '{path}'") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read caption file '{path}': {type(error).__name__}: {error}") from None


def folder_vocabulary(argument: str, options: SourceOptions) -> Vocabulary:
    from genimg_jax.data.folder_source import visible_files

    root = Path(argument).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder '{root}' is missing or not a directory (source 'folder_captions:{argument}')")
    texts = [_read_caption(root / rel) for rel in visible_files(root, "") if rel.suffix == CAPTION_SUFFIX]
    return Vocabulary.build(texts, options.vocabulary_size)


def folder_captions(argument: str, split: str, options: SourceOptions) -> CaptionedSource:
    from genimg_jax.data.folder_source import FolderSource

    policies = (options.bad_images, options.small_images, CAPTION_SUFFIX)
    base = FolderSource(argument, split, options.resolution, options.channels, *policies, checked=True)
    captions = [_read_caption(base.root / rel.with_suffix(CAPTION_SUFFIX)) for rel in base.files]
    return CaptionedSource(
        base,
        captions,
        caption_tokenizer(options.tokenizer, lambda: folder_vocabulary(argument, options)),
        options.caption_length,
    )


def _tfds_parts(argument: str) -> list[str]:
    parts = argument.split(":", 3)
    if len(parts) < 3 or not all(parts[:3]):
        raise DataError(f"'tfds_captions:{argument}' does not have the form {TFDS_FORM}")
    return parts


def _tfds_texts(argument: str, split: str | None, options: SourceOptions) -> list[str]:
    """The captions of `split` (None: of every split, in split-name order), read without decoding images."""
    import tensorflow_datasets as tfds

    from genimg_jax.data.tfds_source import prepared_builder

    name, image_feature, text_feature = _tfds_parts(argument)[:3]
    spec = f"tfds_captions:{argument}"
    builder = prepared_builder(name, options.data_dir, spec)
    features = builder.info.features
    if text_feature not in features or not isinstance(features[text_feature], tfds.features.Text):
        raise DataError(f"{spec}: no Text feature '{text_feature}' (features: {sorted(builder.info.features)})")
    decoders = {image_feature: tfds.decode.SkipDecoding()}
    texts = []
    for each in sorted(builder.info.splits) if split is None else [split]:
        try:
            records = builder.as_data_source(each, decoders=decoders)
        except ValueError as error:
            raise DataError(f"{spec}: cannot read split '{each}': {error}") from error
        texts.extend(_text(records[i][text_feature]) for i in range(len(records)))
    return texts


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def tfds_vocabulary(argument: str, options: SourceOptions) -> Vocabulary:
    return Vocabulary.build(_tfds_texts(argument, None, options), options.vocabulary_size)


def tfds_captions(argument: str, split: str, options: SourceOptions) -> CaptionedSource:
    from genimg_jax.data.tfds_source import TfdsSource

    name, image_feature, _, *split_override = _tfds_parts(argument)
    split = split_override[0] if split_override else split
    captions = _tfds_texts(argument, split, options)
    base = TfdsSource(name, split, options.resolution, options.channels, options.data_dir, image_feature)
    return CaptionedSource(
        base,
        captions,
        caption_tokenizer(options.tokenizer, lambda: tfds_vocabulary(argument, options)),
        options.caption_length,
    )
