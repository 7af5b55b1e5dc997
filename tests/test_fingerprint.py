"""tools.fingerprint: a hash of every saved array, the same whatever mesh wrote the checkpoint."""

import hashlib

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from genimg_jax import parallel
from genimg_jax.tools import fingerprint
from genimg_jax.training.checkpoint import Checkpointer


def _save(directory, state, step):
    checkpointer = Checkpointer(directory, keep=3, every=0)
    checkpointer.save(step, state, {"step": step})
    checkpointer.wait()
    checkpointer.close()


def _numpy_hash(arrays):
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def test_fingerprint_hashes_every_array_of_a_sharded_checkpoint(tmp_path, capsys):
    mesh = parallel.make_mesh(ml_collections.ConfigDict({"data": -1, "fsdp": 2}))
    kernel = np.arange(64 * 8, dtype=np.float32).reshape(64, 8) / 7
    state = {
        "params": {"kernel": jax.device_put(kernel, NamedSharding(mesh, P("fsdp"))), "bias": np.ones(8, np.float32)},
        "step": np.int32(5),
    }
    _save(tmp_path / "checkpoints", state, 5)
    # Leaves in pytree order (dict keys sorted): params/bias, params/kernel, step.
    expected = _numpy_hash([np.ones(8, np.float32), kernel, np.int32(5)])
    assert fingerprint.checkpoint_fingerprint(tmp_path) == (5, expected, 3)
    assert fingerprint.main([f"--workdir={tmp_path}"]) == 0
    assert capsys.readouterr().out.strip() == f"step 5: fingerprint {expected} (3 arrays)"

    changed = dict(state, params={**state["params"], "kernel": kernel + np.eye(64, 8, dtype=np.float32) * 1e-6})
    _save(tmp_path / "checkpoints", changed, 6)
    assert fingerprint.checkpoint_fingerprint(tmp_path)[1] != expected  # the latest step, one element changed
    assert fingerprint.checkpoint_fingerprint(tmp_path, step=5)[1] == expected


def test_fingerprint_of_a_missing_checkpoint_is_one_error_line(tmp_path, capsys):
    assert fingerprint.main([f"--workdir={tmp_path}"]) == 2
    assert "checkpoints does not exist" in capsys.readouterr().err
    _save(tmp_path / "checkpoints", {"x": np.zeros(3, np.float32)}, 1)
    assert fingerprint.main([f"--workdir={tmp_path}", "--step=2"]) == 2
    assert "no checkpoint of step 2 (steps: [1])" in capsys.readouterr().err
