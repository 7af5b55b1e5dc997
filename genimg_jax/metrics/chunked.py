"""A jitted per-example function over arrays of any length, in chunks whose shapes compile once each."""

from collections.abc import Callable

import numpy as np


def apply_in_chunks(function: Callable, *arrays: np.ndarray, chunk: int) -> np.ndarray:
    """`function(*arrays)` over chunks of `chunk` rows of the leading axis, concatenated. The last chunk is padded
    to a power of two (at most `chunk`) by repeating its last row, a valid example (a padded caption keeps its
    tokens), so few shapes compile and the padding's outputs are dropped. `function` must treat rows independently."""
    outputs = []
    for start in range(0, len(arrays[0]), chunk):
        parts = [np.asarray(array[start : start + chunk]) for array in arrays]
        size = len(parts[0])
        padded_size = min(chunk, 1 << (size - 1).bit_length())
        padded = [np.concatenate([part, np.repeat(part[-1:], padded_size - size, axis=0)]) for part in parts]
        outputs.append(np.asarray(function(*padded))[:size])
    return np.concatenate(outputs) if outputs else np.zeros(0)
