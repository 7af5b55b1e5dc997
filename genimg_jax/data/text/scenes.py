"""`digit_scenes:SIZE[:OPTION...]` — 2 to 4 handwritten digits on a black SIZE x SIZE canvas, with a caption
that names each digit, its cell of a 2x2 grid and its size ("a small 3 at the top left and a big eight in the
lower right").

Example i of a split is a pure function of (split, i): one generator seeded by `stable_seed` draws first the
layout (`scene_layout`, which needs no images, so a whole split's layouts can be enumerated cheaply), then the
caption's wording, then which digit image of the digits source's same split fills each placement. Nothing is
generated up front. A large digit fills its cell, a small one is `SMALL_FRACTION` of it, centred
(`scene_box`, shared with the caption-agreement metric that crops it back out).

Compositional hold-out: the (digit, cell) pairs of `HELD_OUT` never occur in the train split (a digit that
would land there is drawn again from the others), while test layouts draw from all pairs, so a model can be
asked for combinations it never saw. OPTIONs: `train=N` and `test=N` set the number of examples of a split
(default 10000 and 1000); `held_out` keeps only the test examples that contain a held-out pair.
"""

import functools
from typing import NamedTuple

import numpy as np

from genimg_jax.data.errors import DataError
from genimg_jax.data.images import fit_image
from genimg_jax.data.sources import (
    Field,
    SourceOptions,
    caption_fields,
    digit_images,
    labelled_image_fields,
    stable_seed,
)
from genimg_jax.data.text.grammar import NUM_CELLS, PHRASE_TOKENS, Placement, grammar_vocabulary, scene_caption
from genimg_jax.data.text.pretrained_tokenizer import caption_tokenizer

FORM = "digit_scenes:SIZE[:train=N][:test=N][:held_out]"
CANVAS_SIZES = (48, 64)
GRID = 2  # cells per side
MIN_DIGITS, MAX_DIGITS = 2, NUM_CELLS
SMALL_FRACTION = 5 / 8
# (digit, cell) pairs absent from train: 0 bottom right, 3 top left, 5 bottom left, 7 top right, 9 top left.
HELD_OUT = frozenset({(0, 3), (3, 0), (5, 2), (7, 1), (9, 0)})
DEFAULT_COUNTS = {"train": 10_000, "test": 1_000}
# BOS, the phrases, a separator between each two of them, EOS.
MAX_CAPTION_TOKENS = 1 + MAX_DIGITS * PHRASE_TOKENS + (MAX_DIGITS - 1) + 1


class SceneSpec(NamedTuple):
    size: int
    counts: dict[str, int]
    held_out: bool


def parse_scene_spec(argument: str) -> SceneSpec:
    """The canvas size and options of the text after `digit_scenes:`; DataError naming the form otherwise."""
    size_text, *options = argument.split(":")
    counts, held_out = dict(DEFAULT_COUNTS), False
    for option in options:
        key, equals, value = option.partition("=")
        if option == "held_out":
            held_out = True
        elif equals and key in counts and value.isdigit() and int(value) > 0:
            counts[key] = int(value)
        else:
            raise DataError(f"'digit_scenes:{argument}': unknown option {option!r}; the form is {FORM}")
    if not size_text.isdigit() or int(size_text) not in CANVAS_SIZES:
        raise DataError(f"'digit_scenes:{argument}': SIZE must be one of {CANVAS_SIZES}; the form is {FORM}")
    return SceneSpec(int(size_text), counts, held_out)


def scene_box(cell: int, size: int, canvas: int) -> tuple[int, int, int]:
    """(top, left, side) of the square a digit of `size` (0 small, 1 large) fills in `cell` of a `canvas` image."""
    cell_side = canvas // GRID
    side = cell_side if size else round(cell_side * SMALL_FRACTION)
    row, column = divmod(cell, GRID)
    offset = (cell_side - side) // 2
    return row * cell_side + offset, column * cell_side + offset, side


def _scene_rng(split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(stable_seed("digit_scenes", split, index))


def _draw_layout(rng: np.random.Generator, split: str) -> tuple[Placement, ...]:
    count = int(rng.integers(MIN_DIGITS, MAX_DIGITS + 1))
    layout = []
    for cell in rng.permutation(NUM_CELLS)[:count]:
        allowed = [d for d in range(10) if split != "train" or (d, int(cell)) not in HELD_OUT]
        layout.append(Placement(allowed[rng.integers(len(allowed))], int(cell), int(rng.integers(2))))
    return tuple(layout)


def scene_layout(split: str, index: int) -> tuple[Placement, ...]:
    """The placements of example `index` of `split`, in the order its caption names them, without rendering."""
    return _draw_layout(_scene_rng(split, index), split)


def has_held_out(layout: tuple[Placement, ...]) -> bool:
    return any((placement.digit, placement.cell) in HELD_OUT for placement in layout)


def _with_held_out(split: str, indices: np.ndarray) -> np.ndarray:
    """The positions in `indices` of the scenes of `split` that contain a held-out pair."""
    return np.array([k for k, i in enumerate(indices) if has_held_out(scene_layout(split, int(i)))], np.int64)


def scene_fields(options: SourceOptions) -> dict[str, Field]:
    """The captioned fields, once `options.caption_length` holds the longest caption."""
    if options.caption_length < MAX_CAPTION_TOKENS:
        raise DataError(
            f"digit_scenes captions need up to {MAX_CAPTION_TOKENS} tokens; set config.data.caption_length >= "
            f"{MAX_CAPTION_TOKENS}, not {options.caption_length}"
        )
    return {**labelled_image_fields(options.resolution, options.channels), **caption_fields(options.caption_length)}


@functools.cache
def _digit_pools(split: str) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The digits source's images of `split` (float, 8x8) and, per class, the indices of its images."""
    images, labels = digit_images(split)
    return images, tuple(np.flatnonzero(labels == digit) for digit in range(10))


class DigitScenes:
    """The examples of one split of `digit_scenes:`; see the module docstring."""

    num_classes, class_names = 0, ()

    def __init__(self, argument: str, split: str, options: SourceOptions):
        self._spec = parse_scene_spec(argument)
        self.fields = scene_fields(options)
        if split not in DEFAULT_COUNTS:
            raise DataError(f"'digit_scenes:{argument}' has splits 'train' and 'test', not '{split}'")
        if self._spec.held_out and split != "test":
            raise DataError(f"'digit_scenes:{argument}': option held_out selects test scenes, not {split} ones")
        self._indices = np.arange(self._spec.counts[split])
        if self._spec.held_out:
            self._indices = self._indices[_with_held_out(split, self._indices)]
        self._split, self._options = split, options
        self.vocabulary = caption_tokenizer(options.tokenizer, lambda: grammar_vocabulary("scenes"))

    def __len__(self) -> int:
        return len(self._indices)

    def layout(self, index: int) -> tuple[Placement, ...]:
        return scene_layout(self._split, int(self._indices[index]))

    def held_out_examples(self) -> np.ndarray:
        """The indices of this source's examples whose layouts contain a held-out (digit, cell) pair."""
        return _with_held_out(self._split, self._indices)

    def _drawn(self, index: int) -> tuple[np.random.Generator, tuple[Placement, ...], str]:
        """The generator of example `index` after drawing its layout and caption, the layout and the caption."""
        rng = _scene_rng(self._split, int(self._indices[index]))
        layout = _draw_layout(rng, self._split)
        return rng, layout, scene_caption(layout, rng)

    def caption(self, index: int) -> str:
        return self._drawn(index)[2]

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        rng, layout, caption = self._drawn(index)
        tokens, mask = self.vocabulary.encode(caption, self._options.caption_length)
        images, pools = _digit_pools(self._split)
        size = self._spec.size
        canvas = np.zeros((size, size), np.float32)
        for digit, cell, digit_size in layout:
            top, left, side = scene_box(cell, digit_size, size)
            image = images[pools[digit][rng.integers(len(pools[digit]))]]
            canvas[top : top + side, left : left + side] = fit_image(image, side, 1)[..., 0]
        image = fit_image(canvas, self._options.resolution, self._options.channels)
        return {"image": image, "label": np.int32(0), "tokens": tokens, "tokens_mask": mask}
