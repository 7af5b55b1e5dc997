"""Multi-process runs: how processes find each other, and a real 2-process run on 127.0.0.1 (2 CPU devices each)
through training, a checkpoint and a resume, against a single-process run with the same global batch."""

import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from tiny_configs import CONFIGS, TINY_GAN, as_flags, load
from two_processes import run_two_processes

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError, base_config
from genimg_jax.parallel import distributed
from genimg_jax.training import compiled_run, trainer
from genimg_jax.training.checkpoint import Checkpointer

ROOT = pathlib.Path(__file__).parent.parent
CONFIG = CONFIGS / "dcgan.py"
RUN = [*TINY_GAN, "train.log_every=1", "train.checkpoint_every=2", "train.sample_every=2"]


def _distributed(**values):
    config = base_config().distributed
    config.update(values)
    return config


@pytest.mark.parametrize(
    ("values", "environ", "expected"),
    [
        ({}, {}, None),  # a plain single-process run
        (
            {"coordinator_address": "127.0.0.1:1234", "num_processes": 2, "process_id": 1},
            {},
            {"coordinator_address": "127.0.0.1:1234", "num_processes": 2, "process_id": 1},
        ),
        ({}, {"SLURM_JOB_ID": "7", "SLURM_STEP_NUM_TASKS": "16"}, {}),  # an srun task: jax reads the rest
        ({}, {"SLURM_JOB_ID": "7", "SLURM_STEP_NUM_TASKS": "1"}, None),  # one task: nothing to join
        ({}, {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "16"}, None),  # a shell in a 16-task allocation, not srun
        ({}, {"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}, {}),  # multi-host TPU VM
        ({}, {"TPU_WORKER_HOSTNAMES": "w0"}, None),  # single-host TPU VM
        ({"init": "cluster"}, {}, {}),
        ({"init": "off"}, {"SLURM_JOB_ID": "7", "SLURM_STEP_NUM_TASKS": "16"}, None),
    ],
)
def test_initialize_args_follow_config_then_environment(values, environ, expected):
    assert distributed.initialize_args(_distributed(**values), environ) == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"init": "always"}, r"config.distributed.init='always' is invalid: choose one of"),
        ({"coordinator_address": "h:1", "num_processes": 0}, r"config.distributed.num_processes=0 is invalid"),
        ({"coordinator_address": "h:1", "num_processes": 2, "process_id": 2}, r"process_id=2 is invalid.*0\.\.1"),
    ],
)
def test_bad_distributed_settings_are_config_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        distributed.initialize_args(_distributed(**values), {})


def _launch(workdir: pathlib.Path, steps: int) -> str:
    """Run launch/local_multiprocess.sh with 2 processes; returns process 0's output (fails with both logs)."""
    command = [
        str(ROOT / "launch" / "local_multiprocess.sh"),
        "2",
        str(CONFIG),
        str(workdir),
        *as_flags([*RUN, f"train.steps={steps}"]),
    ]
    environ = {**os.environ, "PYTHON": sys.executable, "CPU_DEVICES_PER_PROCESS": "2", "JAX_PLATFORMS": "cpu"}
    try:
        result = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=300)
        failure = None if result.returncode == 0 else f"exit status {result.returncode}"
    except subprocess.TimeoutExpired as timeout:
        result, failure = timeout, "timed out"
    if failure:
        other = workdir / "logs" / "process_1.log"
        pytest.fail(
            f"2-process run {failure}\n--- process 0 stdout ---\n{result.stdout}\n--- process 0 stderr ---\n"
            f"{result.stderr}\n--- process 1 ---\n{other.read_text() if other.exists() else '(no log)'}"
        )
    return result.stdout


def _fingerprints(workdir: pathlib.Path, stdout: str) -> dict[str, str]:
    text = stdout + (workdir / "logs" / "process_1.log").read_text()
    return dict(re.findall(r"process (\d)/2: final state fingerprint (\w+)", text))


def _losses(workdir: pathlib.Path) -> list[tuple[int, float, float]]:
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["d_loss"], r["g_loss"]) for r in records]


@pytest.mark.slow
def test_two_processes_train_checkpoint_resume_and_match_one_process(tmp_path, uncached_subprocesses):
    workdir = tmp_path / "two_processes"
    first = _launch(workdir, steps=2)
    assert "starting a new run" in first
    fingerprints = _fingerprints(workdir, first)
    assert set(fingerprints) == {"0", "1"} and fingerprints["0"] == fingerprints["1"]  # the processes agree

    resumed = _launch(workdir, steps=4)
    assert "from the checkpoint of step 2" in resumed
    fingerprints = _fingerprints(workdir, resumed)
    assert set(fingerprints) == {"0", "1"} and fingerprints["0"] == fingerprints["1"]
    # Only process 0 writes logs and samples: one record per step, not two.
    assert [step for step, _, _ in _losses(workdir)] == [1, 2, 3, 4]
    assert sorted(p.name for p in (workdir / "samples").glob("*.png")) == ["step_0000002.png", "step_0000004.png"]
    # Both processes took part in every checkpoint: each wrote its own part of the state.
    for step in (2, 4):
        written = {p.name for p in (workdir / "checkpoints" / str(step) / "state").iterdir()}
        assert {"ocdbt.process_0", "ocdbt.process_1"} <= written

    # One process (8 devices here) with the same global batch computes the same run.
    config = load("dcgan.py", *RUN, "train.steps=4")
    single = trainer.train(config, tmp_path / "one_process")
    for (step, d_loss, g_loss), (_, d_ref, g_ref) in zip(
        _losses(workdir), _losses(tmp_path / "one_process"), strict=True
    ):
        np.testing.assert_allclose([d_loss, g_loss], [d_ref, g_ref], rtol=1e-4, err_msg=f"step {step}")
    # And its final state equals the 2-process checkpoint, restored here onto 8 devices of one process.
    run = compiled_run.compile_run(config, parallel.make_mesh(config.mesh))
    checkpointer = Checkpointer(workdir / "checkpoints", keep=3, every=0)
    restored, data_state = checkpointer.restore(4, run.abstract_state)
    checkpointer.close()
    assert data_state["step"] == 4
    for a, b in zip(jax.tree.leaves(jax.device_get(restored)), jax.tree.leaves(jax.device_get(single)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


def test_state_fingerprint_depends_on_values_not_on_layout():
    mesh = parallel.make_mesh(base_config().mesh)
    state = {"a": np.zeros((8, 3), np.float32), "b": np.arange(4)}
    replicated = distributed.state_fingerprint(jax.device_put(state, parallel.replicated(mesh)))
    split = jax.device_put(state, {"a": parallel.batch_sharding(mesh), "b": parallel.replicated(mesh)})
    assert distributed.state_fingerprint(split) == replicated
    state["a"][5, 2] = 1e-7
    assert distributed.state_fingerprint(jax.device_put(state)) != replicated


def test_two_processes_follow_process_0s_restore_decision(tmp_path, uncached_subprocesses):
    """Steps 1-3 of a state sharded over 2 processes, restored in turn: after one failed read on process 1 (which
    also lists an older latest step), with lasting read errors on process 1 and then on process 0, and with step 2
    silently damaged (checksums). See tests/restore_worker.py."""
    per_process = run_two_processes(
        pathlib.Path(__file__).parent / "restore_worker.py", str(tmp_path / "ckpt"), logs=tmp_path, devices=2
    )
    first, second = ({record.pop("scenario"): record for record in records} for records in per_process)
    assert list(first) == list(second) == ["transient", "lasting_on_1", "lasting_on_0", "checksums"]
    for name in first:  # the processes restored the same step and see the same folders
        assert {k: v for k, v in first[name].items() if k not in ("process", "message", "reports")} == {
            k: v for k, v in second[name].items() if k not in ("process", "message", "reports")
        }, name
    values = {step: [100.0 * step + row for row in range(8)] for step in (1, 2, 3)}
    # A read that fails once is retried: the step is kept and restored everywhere (process 0's latest step).
    transient = first["transient"]
    assert (transient["step"], transient["data_step"], transient["w"]) == (3, 3, values[3])
    assert transient["listing"] == ["1", "2", "3"] and transient["reports"] == []
    # Only process 1 cannot read a step that process 0 reads and checksums: a clear error everywhere, no rename.
    for record in (first["lasting_on_1"], second["lasting_on_1"]):
        assert record["error"] == "CheckpointError" and record["listing"] == ["1", "2", "3"]
        assert "cannot be read by process 1 after 3 attempts" in record["message"]
        assert "left in place" in record["message"]
    assert "(OSError: injected read error on process 1)" in second["lasting_on_1"]["message"]
    assert "(see its log)" in first["lasting_on_1"]["message"]
    # Process 0 cannot read it: damaged; set aside once under one name, and the previous step restored by all.
    for record in (first["lasting_on_0"], second["lasting_on_0"]):
        assert (record["step"], record["data_step"], record["w"]) == (2, 2, values[2])
        assert record["listing"] == ["1", "2", "3.corrupt-1"]
        [report] = record["reports"]
        assert report.startswith("checkpoint step 3 in ") and report.endswith("/3.corrupt-1")
    assert "injected read error on process 0" in first["lasting_on_0"]["reports"][0]
    # Checksums that process 0 finds wrong set the step aside on every process.
    for record in (first["checksums"], second["checksums"]):
        assert (record["step"], record["data_step"], record["w"]) == (1, 1, values[1])
        assert record["listing"] == ["1", "2.corrupt-1", "3.corrupt-1"]


def test_each_process_loads_the_rows_its_devices_hold_on_a_mesh_out_of_process_order(tmp_path, uncached_subprocesses):
    """2 processes x 4 devices, meshes whose device order interleaves the processes (see tests/rows_worker.py):
    the global training and evaluation batches equal, bit for bit, what one process builds from whole batches."""
    import rows_worker

    per_process = run_two_processes(pathlib.Path(rows_worker.__file__), logs=tmp_path, devices=4)
    source = rows_worker.source()
    stream = data.make_train_stream(source, global_batch_size=rows_worker.BATCH, seed=3, random_flip=True)
    expected_train = [next(stream) for _ in range(3)]
    expected_eval = list(data.iterate_once(source, batch_size=rows_worker.BATCH))
    assert [len(records) for records in per_process] == [2, 2]
    for first, second in zip(*per_process, strict=True):
        assert first["mesh"] == second["mesh"]
        # The processes' rows are disjoint, cover the batch, and are not process 0 first.
        assert sorted(first["rows"] + second["rows"]) == list(range(rows_worker.BATCH))
        assert first["rows"] != list(range(rows_worker.BATCH // 2))
        for record in (first, second):
            for got, expected in zip(record["train"] + record["eval"], expected_train + expected_eval, strict=True):
                assert sorted(got) == sorted(expected)
                for name, value in expected.items():
                    np.testing.assert_array_equal(np.asarray(got[name], value.dtype), value, err_msg=name)
