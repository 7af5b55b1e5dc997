"""Per-host batches for training (infinite, shuffled, resumable) and for evaluation (one ordered pass).

Built on `grain.MapDataset`, whose random access makes the position in the stream one integer:
`range(len(source)) -> shuffle -> repeat -> batch(global_batch_size)` is a dataset of *global batches of
source indices* (cheap integers), so global batch k is the same on every host for any number of processes.
Each process then keeps the contiguous rows `[p * B_local, (p + 1) * B_local)` of it and decodes only those.
Contiguous (not strided) rows make the concatenation of the processes' batches in process order equal to the
1-process batch row for row, which is the order `jax.make_array_from_process_local_data` assembles them in.
Resuming is slicing the batch dataset at the saved step; the state holds no process count, so a run can resume
on a different number of hosts.

Shuffling: grain reshuffles every epoch with seed `base + epoch`; `base` is derived from the run seed through
`numpy.random.SeedSequence` so that seeds 0 and 1 do not give shifted copies of the same epoch sequence.
Flips are drawn per global batch from `(seed, step)`, so a position is flipped identically on any host layout.
Batches are prepared ahead by a small grain thread pool (decoding in PIL and tfds releases the GIL).
"""

from collections.abc import Iterator
from typing import Any

import grain
import numpy as np

from genimg_jax.data.errors import DataError
from genimg_jax.data.sources import ImageSource

# Batches are the prefetched elements, so a small buffer already hides decoding behind a training step.
_READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=2)
_SHUFFLE, _FLIP = 0, 1  # purposes mixed into the run seed


def _derived_seed(seed: int, purpose: int) -> int:
    """A uint32 for one random purpose; `% 2**64` admits negative run seeds."""
    return int(np.random.SeedSequence([int(seed) % 2**64, purpose]).generate_state(1)[0])


def _host_rows(global_batch_size: int, process_index: int, process_count: int) -> slice:
    """This process's rows of every global batch."""
    if global_batch_size < 1 or process_count < 1 or global_batch_size % process_count:
        raise DataError(
            f"global batch size {global_batch_size} must be a positive multiple of the process count {process_count}"
        )
    if not 0 <= process_index < process_count:
        raise DataError(f"process_index {process_index} is outside 0..{process_count - 1}")
    local = global_batch_size // process_count
    return slice(process_index * local, (process_index + 1) * local)


def _load(source: ImageSource, indices: np.ndarray) -> dict[str, np.ndarray]:
    examples = [source[int(i)] for i in indices]
    return {
        "image": np.stack([e["image"] for e in examples]),
        "label": np.array([e["label"] for e in examples], np.int32),
    }


def _check_not_empty(source: ImageSource) -> int:
    if len(source) == 0:
        raise DataError(f"data source {source!r} has no examples")
    return len(source)


class TrainStream:
    """Infinite iterator of per-host batches with `get_state`/`set_state` for exact resume."""

    def __init__(self, batches: grain.MapDataset, fingerprint: dict[str, int]):
        self._batches = batches
        self._fingerprint = fingerprint
        self.set_state({"step": 0, **fingerprint})

    def __iter__(self) -> "TrainStream":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._iterator)
        self._step += 1
        return batch

    def get_state(self) -> dict[str, int]:
        """JSON-serialisable position: global batches consumed, plus what must match to resume."""
        return {"step": self._step, **self._fingerprint}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continues right after the batch at which `state` was taken (by this or an equivalent stream)."""
        mismatch = {key: (state.get(key), value) for key, value in self._fingerprint.items() if state.get(key) != value}
        if mismatch:
            details = ", ".join(f"{key}: saved {saved}, now {now}" for key, (saved, now) in mismatch.items())
            raise DataError(f"data stream state does not belong to this stream ({details})")
        self._step = int(state["step"])
        self._iterator = iter(self._batches[self._step :].to_iter_dataset(_READ_OPTIONS))


def make_train_stream(
    source: ImageSource,
    *,
    global_batch_size: int,
    seed: int,
    random_flip: bool = False,
    process_index: int = 0,
    process_count: int = 1,
) -> TrainStream:
    """Infinite shuffled per-host batches `{"image": uint8 (B_local, H, W, C), "label": int32 (B_local,)}`,
    `B_local = global_batch_size // process_count`; every epoch is a fresh permutation of the source."""
    rows = _host_rows(global_batch_size, process_index, process_count)
    num_examples = _check_not_empty(source)
    flip_seed = _derived_seed(seed, _FLIP)

    def host_batch(step: int, global_indices: np.ndarray) -> dict[str, np.ndarray]:
        batch = _load(source, global_indices[rows])
        if random_flip:
            flips = (np.random.default_rng([flip_seed, step]).random(global_batch_size) < 0.5)[rows]
            batch["image"][flips] = batch["image"][flips, :, ::-1]
        return batch

    batches = (
        grain.MapDataset.range(num_examples)
        .shuffle(seed=_derived_seed(seed, _SHUFFLE))
        .repeat()
        .batch(global_batch_size)
        .map_with_index(host_batch)
    )
    return TrainStream(
        batches, {"seed": int(seed), "global_batch_size": global_batch_size, "num_examples": num_examples}
    )


def iterate_once(
    source: ImageSource, *, batch_size: int, process_index: int = 0, process_count: int = 1
) -> Iterator[dict[str, np.ndarray]]:
    """One ordered pass over the source for evaluation. Every process yields the same number of batches of the
    same shape (the last is zero-padded, `"mask"` False on padding), so jitted evaluation compiles once and
    multi-host collectives stay in step. `batch_size` is global, as in `make_train_stream`."""
    rows = _host_rows(batch_size, process_index, process_count)
    num_examples = _check_not_empty(source)
    image_shape = source[0]["image"].shape
    local = rows.stop - rows.start

    def host_batch(step: int) -> dict[str, np.ndarray]:
        positions = np.arange(step * batch_size, (step + 1) * batch_size)[rows]
        mask = positions < num_examples
        batch = {
            "image": np.zeros((local, *image_shape), np.uint8),
            "label": np.zeros(local, np.int32),
            "mask": mask,
        }
        if mask.any():
            loaded = _load(source, positions[mask])
            batch["image"][mask], batch["label"][mask] = loaded["image"], loaded["label"]
        return batch

    num_batches = -(-num_examples // batch_size)
    return iter(grain.MapDataset.range(num_batches).map(host_batch).to_iter_dataset(_READ_OPTIONS))
