"""Per-host batches for training (infinite, shuffled, resumable) and for evaluation (one ordered pass, and
fixed batches of some fields for conditioning samples), each a dict holding every field the source declares.

Built on `grain.MapDataset`, whose random access makes the position in the stream one integer:
`range(len(source)) -> shuffle -> repeat -> batch(global_batch_size)` is a dataset of *global batches of
source indices* (cheap integers), so global batch k is the same on every host for any number of processes.
Each process then keeps the rows of it that its devices hold (`rows`, from `sharding.host_rows`), in ascending
order, and decodes only those; `jax.make_array_from_process_local_data` places them on those devices, so row r
of the global array is example r of the step whatever order the mesh puts the devices in (on TPU it follows the
topology, not the processes, and a process's rows need not be one block).
Resuming is slicing the batch dataset at the saved step; the state holds no process count, so a run can resume
on a different number of hosts.

Shuffling: grain reshuffles every epoch with seed `base + epoch`; `base` is derived from the run seed through
`numpy.random.SeedSequence` so that seeds 0 and 1 do not give shifted copies of the same epoch sequence.
Flips are drawn per global batch from `(seed, step)`, so a position is flipped identically on any host layout;
a flip mirrors every image field (rank 3) of the example together.
Reading: grain prepares two batches ahead on two threads, and each batch reads (decodes, fits) its examples on
a shared pool of `read_threads` threads (PIL's decoders and resampling release the GIL): the batch's indices are
cut into one run per thread, each read in one call of the source's `__getitems__` where it has one (a batched
array_record read for `tfds:`) and joined in row order, so a batch is the same bit for bit for any thread count.
Threads share one interpreter, so for many cores a training stream can also make its batches in `num_workers`
grain worker processes (`mp_prefetch`: worker w makes batches w, w + n, ..., read back in order), the same bits
again; the source travels to each worker pickled, and starting them takes seconds.
"""

import functools
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grain
import numpy as np
from absl import flags

from genimg_jax.data.errors import DataError
from genimg_jax.data.sources import Field, ImageSource

# Batches are the prefetched elements, so a small buffer already hides decoding behind a training step.
_READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=2)
_SHUFFLE, _FLIP = 0, 1  # purposes mixed into the run seed
IS_EXAMPLE = "is_example"  # key of `iterate_once` batches: True for real examples, False for padding
DEFAULT_READ_THREADS = min(8, os.cpu_count() or 1)


def _derived_seed(seed: int, purpose: int) -> int:
    """A uint32 for one random purpose; `% 2**64` admits negative run seeds."""
    return int(np.random.SeedSequence([int(seed) % 2**64, purpose]).generate_state(1)[0])


def _checked_rows(rows: Sequence[int] | None, batch_size: int) -> np.ndarray:
    """This process's rows of every global batch (default: all of them), as ascending indices."""
    if batch_size < 1:
        raise DataError(f"batch size {batch_size} must be positive")
    if rows is None:
        return np.arange(batch_size)
    checked = np.asarray(rows)
    if (
        checked.ndim != 1
        or not checked.size
        or np.any(np.diff(checked) <= 0)
        or not 0 <= checked[0] <= checked[-1] < batch_size
    ):
        raise DataError(f"host rows {checked.tolist()} must be ascending indices in 0..{batch_size - 1}")
    return checked


def _stack(source: ImageSource, name: str, field: Field, values: list[np.ndarray]) -> np.ndarray:
    """One field of a batch; a value that differs from the declaration is a DataError naming the field."""
    stacked = np.stack(values)
    if stacked.shape[1:] != field.shape or stacked.dtype != field.dtype:
        raise DataError(
            f"data source {source!r}: field '{name}' is declared {field.dtype}{list(field.shape)} but an example "
            f"holds {stacked.dtype}{list(stacked.shape[1:])}"
        )
    return stacked


@functools.cache
def _reader_pool(threads: int) -> ThreadPoolExecutor:
    """One pool per thread count for the whole process: streams come and go (evaluation opens one per pass)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="genimg-read")


def _load(
    source: ImageSource, indices: np.ndarray, names: Sequence[str] | None = None, threads: int = 1
) -> dict[str, np.ndarray]:
    """The fields `names` (default: all) of the examples at `indices`, stacked, read on `threads` threads."""
    positions = [int(i) for i in indices]
    read_many = getattr(source, "__getitems__", None) or (lambda chunk: [source[i] for i in chunk])
    if threads > 1 and len(positions) > 1:
        chunks = [chunk.tolist() for chunk in np.array_split(positions, min(threads, len(positions)))]
        examples = [example for part in _reader_pool(threads).map(read_many, chunks) for example in part]
    else:
        examples = read_many(positions)
    names = source.fields if names is None else names
    return {name: _stack(source, name, source.fields[name], [e[name] for e in examples]) for name in names}


def load_all(source: ImageSource, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The fields `names` (default: all) of every example of `source`, in index order, stacked in host memory:
    for what trains on a whole split at once (the classifiers of metrics/classifier.py)."""
    return _load(source, np.arange(_check_not_empty(source)), names)


def _checked_threads(read_threads: int) -> int:
    if read_threads < 0:
        raise DataError(f"read_threads={read_threads} must be >= 0 (0 = {DEFAULT_READ_THREADS}, from the CPU count)")
    return read_threads or DEFAULT_READ_THREADS


def _check_not_empty(source: ImageSource) -> int:
    if len(source) == 0:
        raise DataError(f"data source {source!r} has no examples")
    return len(source)


class TrainStream:
    """Infinite iterator of per-host batches with `get_state`/`set_state` for exact resume."""

    def __init__(self, batches: grain.MapDataset, fingerprint: dict[str, int], num_workers: int = 0):
        self._batches = batches
        self._fingerprint = fingerprint
        self._num_workers = num_workers
        self._iterator = None
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
        self.close()
        self._step = int(state["step"])
        batches = self._batches[self._step :].to_iter_dataset(_READ_OPTIONS)
        if self._num_workers:
            if not flags.FLAGS.is_parsed():  # grain's workers read absl flags; commands parse theirs with argparse
                flags.FLAGS.mark_as_parsed()
            batches = batches.mp_prefetch(grain.MultiprocessingOptions(num_workers=self._num_workers))
        self._iterator = iter(batches)

    def close(self) -> None:
        """Stops the worker processes, if any (they also stop with this process)."""
        if self._iterator is not None and hasattr(self._iterator, "close"):
            self._iterator.close()
        self._iterator = None  # dropped now, not at interpreter exit, when grain's cleanup finds its modules gone


def make_train_stream(
    source: ImageSource,
    *,
    global_batch_size: int,
    seed: int,
    random_flip: bool = False,
    rows: Sequence[int] | None = None,
    read_threads: int = 0,
    num_workers: int = 0,
) -> TrainStream:
    """Infinite shuffled per-host batches of every field of `source`, e.g. `{"image": uint8 (B_local, H, W, C),
    "label": int32 (B_local,)}`: the `rows` of each global batch (default: all), `B_local = len(rows)`; every
    epoch is a fresh permutation of the source. Each batch is read on `read_threads` threads (0: the default), in
    this process or in one of `num_workers` worker processes (0: none)."""
    rows = _checked_rows(rows, global_batch_size)
    threads = _checked_threads(read_threads)
    if num_workers < 0:
        raise DataError(f"num_workers={num_workers} must be >= 0 (0 = read in this process)")
    num_examples = _check_not_empty(source)
    flip_seed = _derived_seed(seed, _FLIP)
    image_fields = [name for name, field in source.fields.items() if len(field.shape) == 3]

    def host_batch(step: int, global_indices: np.ndarray) -> dict[str, np.ndarray]:
        batch = _load(source, global_indices[rows], threads=threads)
        if random_flip:
            flips = (np.random.default_rng([flip_seed, step]).random(global_batch_size) < 0.5)[rows]
            for name in image_fields:
                batch[name][flips] = batch[name][flips, :, ::-1]
        return batch

    batches = (
        grain.MapDataset.range(num_examples)
        .shuffle(seed=_derived_seed(seed, _SHUFFLE))
        .repeat()
        .batch(global_batch_size)
        .map_with_index(host_batch)
    )
    fingerprint = {"seed": int(seed), "global_batch_size": global_batch_size, "num_examples": num_examples}
    return TrainStream(batches, fingerprint, num_workers)


def iterate_once(
    source: ImageSource, *, batch_size: int, rows: Sequence[int] | None = None, read_threads: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """One ordered pass over the source for evaluation, with every field of `source`. Every process yields the
    same number of batches of the same shape (the last is zero-padded, `IS_EXAMPLE` False on padding), so
    jitted evaluation compiles once and multi-host collectives stay in step. `batch_size` is global and `rows`
    this process's rows of each batch, and `read_threads` as in `make_train_stream`."""
    if IS_EXAMPLE in source.fields:
        raise DataError(f"data source {source!r} declares a field '{IS_EXAMPLE}', the name of the padding marker")
    rows = _checked_rows(rows, batch_size)
    threads = _checked_threads(read_threads)
    num_examples = _check_not_empty(source)
    local = len(rows)

    def host_batch(step: int) -> dict[str, np.ndarray]:
        positions = np.arange(step * batch_size, (step + 1) * batch_size)[rows]
        is_example = positions < num_examples
        batch = {name: np.zeros((local, *field.shape), field.dtype) for name, field in source.fields.items()}
        if is_example.any():
            for name, values in _load(source, positions[is_example], threads=threads).items():
                batch[name][is_example] = values
        return {**batch, IS_EXAMPLE: is_example}

    num_batches = -(-num_examples // batch_size)
    return iter(grain.MapDataset.range(num_batches).map(host_batch).to_iter_dataset(_READ_OPTIONS))


def cycled_batches(
    source: ImageSource, names: Sequence[str], *, batch_size: int, num_batches: int
) -> Iterator[dict[str, np.ndarray]]:
    """`num_batches` whole global batches of the fields `names`: batch k holds the examples k * batch_size + i
    modulo `len(source)`, in index order, cycling through the source as often as needed. The same on every
    process (each loads every row), e.g. to condition evaluation samples on the eval split."""
    num_examples = _check_not_empty(source)
    unknown = sorted(set(names) - set(source.fields))
    if unknown:
        raise DataError(f"data source {source!r} has no fields {unknown} (it has {sorted(source.fields)})")
    batches = grain.MapDataset.range(num_examples).repeat().batch(batch_size)[:num_batches]
    read = functools.partial(_load, source, names=names, threads=DEFAULT_READ_THREADS)
    return iter(batches.map(read).to_iter_dataset(_READ_OPTIONS))
