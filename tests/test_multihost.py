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

from genimg_jax import parallel
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
