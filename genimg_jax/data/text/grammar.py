"""The caption grammars of the embedded captioned sources, each invertible: every caption it writes parses back to
the content that produced it, which is what lets `metrics/caption_agreement` check generated images against
their prompts.

- Digit captions (`digits_captions`): one template (`DIGIT_TEMPLATES`) around one digit, written as a numeral or
  a word ("a handwritten 3", "the digit three"); no template word names a digit, so the digit is the one digit
  token of the caption.
- Scene captions (`digit_scenes`): one phrase per placed digit, "a <size> <digit> <at|in> the <row> <column>",
  with synonyms for sizes (small|little, large|big), rows (top|upper, bottom|lower) and digits, joined as
  "P1 and P2" or "P1, P2, ... and Pn" in the order of the layout. Every phrase has `PHRASE_TOKENS` tokens.

The vocabularies are the grammar's words in alphabetical order (`grammar_vocabulary`), fixed without reading
data, so they are identical in every run and process.
"""

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from genimg_jax.data.errors import DataError
from genimg_jax.data.text.vocabulary import Vocabulary, tokenize

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_TEMPLATES = (
    "a handwritten {}",
    "the digit {}",
    "a picture of a {}",
    "a picture of the number {}",
    "the number {}",
    "a drawing of the digit {}",
    "handwritten {}",
    "{}",
)
# Cells of the 2x2 grid in row-major order; a position is the row word then the column word.
ROW_WORDS = (("top", "upper"), ("bottom", "lower"))
COLUMN_WORDS = ("left", "right")
NUM_CELLS = len(ROW_WORDS) * len(COLUMN_WORDS)
SIZE_WORDS = (("small", "little"), ("large", "big"))  # index 0: small, 1: large
PREPOSITIONS = ("at", "in")
PHRASE_TOKENS = 7  # a, size, digit, preposition, the, row, column


class Placement(NamedTuple):
    """One digit of a scene: its class, its grid cell (row-major) and its size (0 small, 1 large)."""

    digit: int
    cell: int
    size: int


def _digit_text(digit: int, rng: np.random.Generator) -> str:
    return str(digit) if rng.random() < 0.5 else DIGIT_WORDS[digit]


def digit_caption(digit: int, rng: np.random.Generator) -> str:
    """A caption naming `digit`, template and spelling drawn from `rng`."""
    return DIGIT_TEMPLATES[rng.integers(len(DIGIT_TEMPLATES))].format(_digit_text(digit, rng))


def _digit_of_token(token: str) -> int | None:
    if token.isdigit() and len(token) == 1:
        return int(token)
    return DIGIT_WORDS.index(token) if token in DIGIT_WORDS else None


def parse_digit_caption(text: str) -> int:
    """The digit a digit caption names; DataError unless it names exactly one."""
    digits = [d for d in map(_digit_of_token, tokenize(text)) if d is not None]
    if len(digits) != 1:
        raise DataError(f"caption {text!r} names {len(digits)} digits, not one")
    return digits[0]


def scene_caption(layout: Sequence[Placement], rng: np.random.Generator) -> str:
    """The caption of `layout`, wording drawn from `rng`; see the module docstring."""
    phrases = []
    for digit, cell, size in layout:
        row, column = divmod(cell, len(COLUMN_WORDS))
        words = (
            "a",
            SIZE_WORDS[size][rng.integers(2)],
            _digit_text(digit, rng),
            PREPOSITIONS[rng.integers(2)],
            "the",
            ROW_WORDS[row][rng.integers(2)],
            COLUMN_WORDS[column],
        )
        phrases.append(" ".join(words))
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _parse_phrase(words: list[str], text: str) -> Placement:
    def index_in(options: Iterable[Sequence[str]], word: str) -> int | None:
        return next((i for i, synonyms in enumerate(options) if word in synonyms), None)

    if len(words) == PHRASE_TOKENS and words[0] == "a" and words[3] in PREPOSITIONS and words[4] == "the":
        size, digit = index_in(SIZE_WORDS, words[1]), _digit_of_token(words[2])
        row, column = index_in(ROW_WORDS, words[5]), index_in([(w,) for w in COLUMN_WORDS], words[6])
        if None not in (size, digit, row, column):
            return Placement(digit, row * len(COLUMN_WORDS) + column, size)
    raise DataError(f"caption {text!r}: {' '.join(words)!r} is not 'a <size> <digit> at the <row> <column>'")


def parse_scene_caption(text: str) -> tuple[Placement, ...]:
    """The layout a scene caption describes, in the order it names the digits (the inverse of `scene_caption`)."""
    phrases, current = [], []
    for token in tokenize(text):
        if token in (",", "and"):
            phrases.append(current)
            current = []
        else:
            current.append(token)
    return tuple(_parse_phrase(words, text) for words in [*phrases, current])


def _words(texts: Iterable[str]) -> Vocabulary:
    return Vocabulary(sorted({token for text in texts for token in tokenize(text)}))


def grammar_vocabulary(grammar: str) -> Vocabulary:
    """The fixed vocabulary of grammar "digits" or "scenes": every word it can write, alphabetical."""
    digits = [*DIGIT_WORDS, *map(str, range(10))]
    if grammar == "digits":
        return _words([*(template.format("") for template in DIGIT_TEMPLATES), *digits])
    if grammar == "scenes":
        return _words(["a the , and", *digits, *PREPOSITIONS, *COLUMN_WORDS, *sum(SIZE_WORDS + ROW_WORDS, ())])
    raise DataError(f"no caption grammar {grammar!r}; there are 'digits' and 'scenes'")
