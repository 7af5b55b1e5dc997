"""One process of the 2-process host-rows test (test_multihost.py): 4 CPU devices per process on meshes whose
device order is not process order, as `jax.make_mesh` orders TPU devices by topology. Each process loads the rows
that its devices hold, builds the global training and evaluation batches, and prints them gathered whole."""

import json
import sys

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from two_processes import join

from genimg_jax import data, parallel
from genimg_jax.data.sources import ArraySource

# Mesh position -> device (0-3 are process 0's): each process holds rows far apart in the batch.
ORDERS = {"data": [4, 0, 5, 1, 2, 6, 3, 7], "data_fsdp": [7, 3, 0, 4, 5, 1, 2, 6]}
SHAPES = {"data": {"data": 8, "fsdp": 1}, "data_fsdp": {"data": 4, "fsdp": 2}}
BATCH = 16


def source() -> ArraySource:
    """40 distinct random images with their index as label (the test builds the same one)."""
    images = np.random.default_rng(0).integers(0, 256, (40, 4, 4, 3), dtype=np.uint8)
    return ArraySource(images, np.arange(40, dtype=np.int32), (), resolution=4, channels=3)


def _gathered(batch: dict[str, np.ndarray], sharding) -> dict[str, list]:
    global_batch = data.make_global_batch(batch, sharding)
    return {
        name: np.asarray(multihost_utils.process_allgather(v, tiled=True)).tolist() for name, v in global_batch.items()
    }


def main(process_id: int, port: int) -> None:
    join(process_id, port)
    devices = jax.devices()
    for name, order in ORDERS.items():
        mesh = parallel.make_mesh(ml_collections.ConfigDict(SHAPES[name]), [devices[i] for i in order])
        sharding = parallel.batch_sharding(mesh)
        rows = data.host_rows(sharding, BATCH)
        stream = data.make_train_stream(source(), global_batch_size=BATCH, seed=3, random_flip=True, rows=rows)
        train = [_gathered(next(stream), sharding) for _ in range(3)]
        evaluation = [_gathered(batch, sharding) for batch in data.iterate_once(source(), batch_size=BATCH, rows=rows)]
        record = {"mesh": name, "process": process_id, "rows": rows.tolist(), "train": train, "eval": evaluation}
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
