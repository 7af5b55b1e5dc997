"""One process of the 2-process restore test (test_multihost.py): saves steps 1-3 of a state sharded over both
processes, then restores them under injected read errors and real damage, printing what it restored per scenario.

Read errors are injected into one process's Orbax reads only, as an object store's transient or lasting failures
on one host would be."""

import json
import pathlib
import sys

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec
from two_processes import join

from genimg_jax.training.checkpoint import Checkpointer


def _values(step: int) -> np.ndarray:
    return np.arange(8, dtype=np.float32) + 100 * step


def _state(step: int, sharding: NamedSharding) -> dict:
    return {"w": jax.make_array_from_callback((8,), sharding, lambda index: _values(step)[index])}


def _fail_reads(checkpointer: Checkpointer, process: int, step: int, times: int) -> None:
    """Make the next `times` reads of `step` by process `process` raise OSError."""
    if jax.process_index() != process:
        return
    read, left = checkpointer._reader.restore, [times]

    def failing_read(directory, *args, **kwargs):
        if pathlib.Path(directory).name == str(step) and left[0] > 0:
            left[0] -= 1
            raise OSError(f"injected read error on process {process}")
        return read(directory, *args, **kwargs)

    checkpointer._reader.restore = failing_read


def _scenario(name: str, directory: pathlib.Path, target: dict, *, fail: tuple[int, int, int] | None = None) -> None:
    checkpointer = Checkpointer(directory, keep=5, every=1)
    if fail:
        _fail_reads(checkpointer, *fail)
    if name == "transient" and jax.process_index() == 1:
        checkpointer._manager.latest_step = lambda: 1  # this host's listing lags behind: process 0's step counts
    reports, result = [], {"scenario": name, "process": jax.process_index()}
    try:
        step, state, data_state = checkpointer.restore_latest(target, report=reports.append)
        w = multihost_utils.process_allgather(state["w"], tiled=True)
        result.update(step=step, data_step=data_state["step"], w=np.asarray(w).tolist())
    except Exception as error:
        result.update(error=type(error).__name__, message=str(error))
    multihost_utils.sync_global_devices(f"scenario {name}")
    checkpointer.close()
    result.update(reports=reports, listing=sorted(path.name for path in directory.iterdir()))
    print(json.dumps(result), flush=True)


def main(process_id: int, port: int, directory: pathlib.Path) -> None:
    join(process_id, port)
    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    checkpointer = Checkpointer(directory, keep=5, every=1)
    for step in (1, 2, 3):
        checkpointer.save(step, _state(step, sharding), {"step": step})
    checkpointer.close()
    target = {"w": jax.ShapeDtypeStruct((8,), np.float32, sharding=sharding)}
    _scenario("transient", directory, target, fail=(1, 3, 1))  # process 1's first read fails, its retry works
    _scenario("lasting_on_1", directory, target, fail=(1, 3, 99))
    _scenario("lasting_on_0", directory, target, fail=(0, 3, 99))
    if process_id == 0:  # a silently wrong data position in step 2, which only the checksums reveal
        (directory / "2" / "data" / "metadata").write_text('{"step": 999}')
    multihost_utils.sync_global_devices("step 2 damaged")
    _scenario("checksums", directory, target)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), pathlib.Path(sys.argv[3]))
