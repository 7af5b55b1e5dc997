"""Run a worker script as the 2 processes of one JAX run on 127.0.0.1, with simulated CPU devices in each, for
tests of what every process must agree on. A worker takes `PROCESS_ID PORT *args`, joins the run with
`join(process_id, port)` and prints one JSON object per line."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent


def join(process_id: int, port: int) -> None:
    """Connect this worker to the other process (the same start-up as `genimg_jax.main`)."""
    from genimg_jax.config import base_config
    from genimg_jax.parallel import distributed

    config = base_config().distributed
    config.update({"coordinator_address": f"127.0.0.1:{port}", "num_processes": 2, "process_id": process_id})
    distributed.initialize(config)


def run_two_processes(
    script: pathlib.Path, *args: str, logs: pathlib.Path, devices: int, timeout: float = 150
) -> list[list[dict]]:
    """The JSON lines each process of `script` printed (fails the test with both logs if either fails)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environ = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
    }
    logs.mkdir(parents=True, exist_ok=True)
    outputs = [logs / f"process_{index}.out" for index in range(2)]
    processes = []
    for index, output in enumerate(outputs):
        with output.open("w") as sink:
            command = [sys.executable, str(script), str(index), str(port), *args]
            processes.append(subprocess.Popen(command, env=environ, stdout=sink, stderr=subprocess.STDOUT))
    try:
        statuses = [process.wait(timeout=timeout) for process in processes]
    except subprocess.TimeoutExpired:
        statuses = ["timed out"]
    finally:
        for process in processes:
            process.kill()
    if any(status != 0 for status in statuses):
        texts = [f"--- process {i} ---\n{output.read_text()}" for i, output in enumerate(outputs)]
        pytest.fail(f"2-process run of {script.name} failed ({statuses})\n" + "\n".join(texts))
    return [
        [json.loads(line) for line in output.read_text().splitlines() if line.startswith("{")] for output in outputs
    ]
