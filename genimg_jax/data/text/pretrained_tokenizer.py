"""Captions tokenized by a pretrained model's own tokenizer (`config.data.tokenizer`, a local Hugging Face
directory such as a CLIP model's) instead of the word-level vocabulary: its BPE, its special tokens, its padding
and attention mask, so a pretrained text tower reads the ids it was trained on."""

from collections.abc import Callable, Sequence

import numpy as np

from genimg_jax.data.text.clip_files import load_tokenizer
from genimg_jax.data.text.vocabulary import Vocabulary

TOKENIZER_KEY = "data.tokenizer"


class PretrainedTokenizer:
    """A Hugging Face tokenizer behind `Vocabulary`'s interface: `encode`, `decode`, `num_tokens`, `unknown_words`
    and `len`."""

    def __init__(self, path: str):
        self.path = path
        self._tokenizer = load_tokenizer(path, TOKENIZER_KEY)

    def __len__(self) -> int:
        return len(self._tokenizer)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PretrainedTokenizer) and self.path == other.path

    def __hash__(self) -> int:
        return hash(self.path)

    def encode(self, text: str, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, tokens_mask), int32 (length,): the tokenizer's ids with its BOS and EOS, cut to `length` (EOS
        kept) and padded with its pad id, mask 1 on the real tokens."""
        encoded = self._tokenizer(text, padding="max_length", truncation=True, max_length=length)
        return np.asarray(encoded["input_ids"], np.int32), np.asarray(encoded["attention_mask"], np.int32)

    def num_tokens(self, text: str) -> int:
        """The tokens of `text` uncut, its special tokens included."""
        return len(self._tokenizer(text)["input_ids"])

    def unknown_words(self, text: str) -> list[str]:
        """None: a byte-level BPE spells every word."""
        return []

    def decode(self, tokens: Sequence[int] | np.ndarray) -> str:
        """The caption of `tokens`, without special tokens and padding."""
        ids = [int(t) for t in np.asarray(tokens).reshape(-1)]
        return self._tokenizer.decode(ids, skip_special_tokens=True).strip()


def caption_tokenizer(tokenizer: str, word_vocabulary: Callable[[], Vocabulary]) -> Vocabulary | PretrainedTokenizer:
    """The pretrained tokenizer of the directory `tokenizer` if one is named, else the source's word vocabulary."""
    return PretrainedTokenizer(tokenizer) if tokenizer else word_vocabulary()
