"""Word-level tokenizer: lower-cased words and punctuation marks, each one token.

Ids 0-3 are fixed for every vocabulary (the contract with the text encoders): 0 pads, 1 stands for any word the
vocabulary lacks, 2 begins every caption (so even an empty caption has one real token and no attention row is
all masked) and 3 ends it. The words follow in order of decreasing frequency in the captions the vocabulary was
built from, ties alphabetical, so rebuilding from the same captions gives the same ids on every machine; the
JSON form (`to_json`, `save`) pins a run's vocabulary across resumes and processes.
"""

import collections
import json
import pathlib
import re
from collections.abc import Iterable, Sequence

import numpy as np

from genimg_jax.data.errors import DataError

PAD, UNKNOWN, BOS, EOS = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """'A small 3, top-left.' -> ['a', 'small', '3', ',', 'top', '-', 'left', '.']"""
    return _TOKEN.findall(text.lower())


class Vocabulary:
    """Words <-> ids; see the module docstring."""

    def __init__(self, words: Sequence[str]):
        duplicates = sorted(word for word, count in collections.Counter(words).items() if count > 1)
        clashes = sorted(set(words) & set(SPECIAL_TOKENS))
        if duplicates or clashes:
            raise DataError(f"vocabulary words must be unique and not special tokens: {duplicates + clashes}")
        self.words = tuple(words)
        self._ids = {word: index for index, word in enumerate(SPECIAL_TOKENS + self.words)}

    @classmethod
    def build(cls, captions: Iterable[str], max_size: int) -> "Vocabulary":
        """The `max_size - 4` most frequent words of `captions` (ties alphabetical) after the special tokens."""
        if max_size < len(SPECIAL_TOKENS):
            raise DataError(f"vocabulary size must be at least {len(SPECIAL_TOKENS)} (special ids), not {max_size}")
        counts = collections.Counter(token for caption in captions for token in tokenize(caption))
        ranked = sorted(counts, key=lambda word: (-counts[word], word))
        return cls(ranked[: max_size - len(SPECIAL_TOKENS)])

    def __len__(self) -> int:
        """Number of ids, the special tokens included: the embedding table's size."""
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def __hash__(self) -> int:
        return hash(self.words)

    def encode(self, text: str, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, mask), int32 (length,): BOS, the word ids and EOS, cut to `length` or padded with 0 (mask 0)."""
        if length < 1:
            raise DataError(f"caption length must be positive, not {length}")
        ids = [BOS, *(self._ids.get(token, UNKNOWN) for token in tokenize(text)), EOS][:length]
        tokens = np.zeros(length, np.int32)
        tokens[: len(ids)] = ids
        return tokens, (np.arange(length) < len(ids)).astype(np.int32)

    def num_tokens(self, text: str) -> int:
        """The tokens of `text` uncut, BOS and EOS included."""
        return len(tokenize(text)) + 2

    def unknown_words(self, text: str) -> list[str]:
        """The words of `text` outside the vocabulary (encoded as the unknown word), sorted."""
        return sorted(set(tokenize(text)) - set(self.words))

    def decode(self, tokens: Sequence[int] | np.ndarray) -> str:
        """The words of `tokens` joined by spaces, without padding, BOS and EOS (unknown words as '<unk>')."""
        names = SPECIAL_TOKENS + self.words
        return " ".join(names[int(t)] for t in np.asarray(tokens).reshape(-1) if int(t) not in (PAD, BOS, EOS))

    def to_json(self) -> str:
        return json.dumps({"special_tokens": list(SPECIAL_TOKENS), "words": list(self.words)})

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        content = json.loads(text)
        if content.get("special_tokens") != list(SPECIAL_TOKENS):
            raise DataError(f"vocabulary JSON has special tokens {content.get('special_tokens')}, not {SPECIAL_TOKENS}")
        return cls(content["words"])

    def save(self, path: str | pathlib.Path) -> None:
        pathlib.Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | pathlib.Path) -> "Vocabulary":
        try:
            return cls.from_json(pathlib.Path(path).read_text())
        except (OSError, ValueError, KeyError) as error:
            raise DataError(f"cannot read vocabulary '{path}': {type(error).__name__}: {error}") from None
