"""Preemption, damaged checkpoints (also silently, by flipped bytes), failed saves, the workdir lock, the non-finite
guard, and random kills (on 8 devices with FSDP, and on 2 processes) that must not change the result."""

import errno
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import TINY_GAN, load

from genimg_jax import data, main, parallel
from genimg_jax.config import ConfigError
from genimg_jax.methods.gan.gan import GAN
from genimg_jax.training import compiled_run, nonfinite, trainer
from genimg_jax.training.checkpoint import Checkpointer, CheckpointError
from genimg_jax.training.checksums import MANIFEST
from genimg_jax.training.preemption import PreemptionGuard
from genimg_jax.training.workdir_lock import LOCK_NAME, workdir_lock

ROOT = pathlib.Path(__file__).parent.parent
TINY = [*TINY_GAN, "train.log_every=2", "train.sample_every=0", "train.checkpoint_every=2"]


def _tiny_gan(*overrides):
    return load("dcgan.py", *TINY, *overrides)


def _leaves(state):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(jax.device_get(state))]


# --- corrupt checkpoints (Checkpointer alone, toy state) ----------------------------------------------------


def _toy_checkpoints(directory, steps, keep=5):
    checkpointer = Checkpointer(directory, keep=keep, every=1)
    for step in steps:
        checkpointer.save(step, {"w": jnp.full((64,), float(step)), "n": jnp.int32(step)}, {"step": step})
    checkpointer.wait()
    return checkpointer


def _largest_file(step_dir):
    return max((p for p in (step_dir / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def test_damaged_steps_are_reported_set_aside_and_the_newest_good_one_used(tmp_path):
    checkpointer = _toy_checkpoints(tmp_path, [1, 2, 3], keep=3)
    target = jax.eval_shape(lambda: {"w": jnp.zeros((64,)), "n": jnp.int32(0)})
    truncated = _largest_file(tmp_path / "3")
    truncated.write_bytes(truncated.read_bytes()[:10])
    (tmp_path / "2" / "state" / "_METADATA").unlink()
    reports = []
    step, state, data_state = checkpointer.restore_latest(target, report=reports.append)
    assert (step, float(state["w"][0]), data_state) == (1, 1.0, {"step": 1})
    assert [r.split(" cannot be restored")[0] for r in reports] == [
        f"checkpoint step 3 in {tmp_path}",
        f"checkpoint step 2 in {tmp_path}",
    ]
    for report, step in zip(reports, (3, 2), strict=True):
        assert "\n" not in report and report.endswith(f"moved to {tmp_path}/{step}.corrupt-1")
    # Set aside, never deleted: the damaged files are all still there.
    assert (tmp_path / "3.corrupt-1" / truncated.relative_to(tmp_path / "3")).stat().st_size == 10
    # Keep-3 clean-up deletes steps 1 and 2 but never the set-aside folders; their steps can be saved again.
    for step in (2, 3, 4, 5):
        checkpointer.save(step, {"w": jnp.full((64,), float(step)), "n": jnp.int32(step)}, {"step": step})
    checkpointer.wait()
    checkpointer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.corrupt-1", "3", "3.corrupt-1", "4", "5"]


def _flip_bytes_of_array_data(step_dir):
    """Bit rot: invert 4 bytes in the middle of the step's array data (its largest file); sizes stay the same."""
    path = max((p for p in (step_dir / "state").glob("ocdbt.process_*/d/*")), key=lambda p: p.stat().st_size)
    content = bytearray(path.read_bytes())
    content[len(content) // 2 : len(content) // 2 + 4] = bytes(b ^ 0xFF for b in content[len(content) // 2 :][:4])
    path.write_bytes(bytes(content))


def test_flipped_bytes_are_detected_by_checksums_and_the_previous_step_is_used(tmp_path):
    weights = {step: np.random.default_rng(step).standard_normal(1024).astype(np.float32) for step in (1, 2)}
    checkpointer = Checkpointer(tmp_path, keep=5, every=1)
    for step, w in weights.items():
        checkpointer.save(step, {"w": jnp.asarray(w)}, {"step": step})
    checkpointer.wait()
    target = jax.eval_shape(lambda: {"w": jnp.zeros((1024,))})
    _flip_bytes_of_array_data(tmp_path / "2")
    # Without its checksums Orbax restores the damaged step as if it were good, with wrong numbers.
    unchecked = tmp_path.parent / "unchecked"
    shutil.copytree(tmp_path, unchecked)
    (unchecked / "2" / MANIFEST).unlink()
    silently_wrong, _ = Checkpointer(unchecked, keep=5, every=0).restore(2, target)
    assert not np.array_equal(silently_wrong["w"], weights[2])

    reports = []
    step, state, _ = checkpointer.restore_latest(target, report=reports.append)
    assert step == 1 and np.array_equal(state["w"], weights[1])
    [report] = reports
    assert report.startswith(f"checkpoint step 2 in {tmp_path} cannot be restored (state/ocdbt.")
    assert "differs from its checksum written at save (sha256)" in report and "\n" not in report
    assert (tmp_path / "2.corrupt-1").is_dir()
    checkpointer.close()


def test_no_restorable_step_is_a_clear_error(tmp_path):
    checkpointer = _toy_checkpoints(tmp_path, [1])
    (tmp_path / "1" / "data" / "metadata").write_text("{trunc")
    target = jax.eval_shape(lambda: {"w": jnp.zeros((64,)), "n": jnp.int32(0)})
    with pytest.raises(CheckpointError, match=r"no checkpoint in .* can be restored; .* moved to 1\.corrupt-1"):
        checkpointer.restore_latest(target, report=lambda _: None)
    assert Checkpointer(tmp_path, keep=5, every=0).restore_latest(target) is None  # nothing left: a fresh start


# --- failed saves (a fault-injected writer: no space left on the device) -------------------------------------


def test_a_save_that_fails_stops_the_run_with_one_line_and_keeps_every_earlier_step(tmp_path, monkeypatch, capsys):
    from orbax.checkpoint._src.handlers import json_checkpoint_handler

    from experiments import fault_injection

    write = json_checkpoint_handler.JsonCheckpointHandler._save_fn

    async def full_disk_at_step_6(handler, position, directory):
        if position["step"] == 6:
            raise OSError(errno.ENOSPC, "No space left on device", str(directory / "metadata"))
        return await write(handler, position, directory)

    monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", full_disk_at_step_6)
    flags = [f"--config={ROOT / 'configs' / 'dcgan.py'}", f"--workdir={tmp_path}"]
    flags += [f"--config.{override}" for override in [*TINY, "train.steps=10", "train.log_every=1"]]
    assert main.main(flags) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    failed_step = tmp_path / "checkpoints" / "6"
    assert line.startswith(f"error: cannot write checkpoint {failed_step} (No space left on device: ")
    assert line.endswith("stopping; committed steps kept: 2, 4")
    logged = [json.loads(record)["step"] for record in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert 6 <= logged[-1] < 10  # stopped once the failure was known, not at the end
    assert not (tmp_path / LOCK_NAME).exists()  # the lock is released however the run ends
    assert fault_injection.checkpoint_problems(tmp_path) == []  # every earlier step restores
    assert Checkpointer(tmp_path / "checkpoints", keep=3, every=0).all_steps() == [2, 4]

    monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", write)  # space freed
    assert main.main(flags) == 0
    assert "from the checkpoint of step 4" in capsys.readouterr().out


# --- one writer per workdir ---------------------------------------------------------------------------------


def _write_lock(workdir, host, pid):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / LOCK_NAME).write_text(json.dumps({"host": host, "pid": pid, "since": "2026-12-01T10:00:00+00:00"}))


def test_a_live_holder_of_the_workdir_stops_a_second_run_with_one_line(tmp_path):
    host = socket.gethostname()
    _write_lock(tmp_path, host, os.getppid())  # alive: the process that started these tests
    with pytest.raises(ConfigError) as refused:
        trainer.train(_tiny_gan("train.steps=2"), tmp_path)
    assert str(refused.value) == (
        f"workdir {tmp_path} is in use by pid {os.getppid()} on host {host} since 2026-12-01T10:00:00+00:00; wait for "
        f"that run to end, use another --workdir, or delete {tmp_path / LOCK_NAME} if that run is dead"
    )
    _write_lock(tmp_path, "another-host", 1)  # pid liveness cannot be checked across hosts: never taken over
    cannot_check = r"on host another-host since .* \(another host: it cannot be checked here\)"
    with pytest.raises(ConfigError, match=cannot_check), workdir_lock(tmp_path):
        pass
    assert json.loads((tmp_path / LOCK_NAME).read_text())["host"] == "another-host"


def test_a_lock_left_by_a_dead_process_is_taken_over_and_released_at_the_end(tmp_path, capsys):
    dead = subprocess.Popen(["true"])
    dead.wait()
    _write_lock(tmp_path, socket.gethostname(), dead.pid)
    with workdir_lock(tmp_path):
        held = json.loads((tmp_path / LOCK_NAME).read_text())
        assert (held["pid"], held["host"]) == (os.getpid(), socket.gethostname())
        with pytest.raises(ConfigError, match=f"is in use by pid {os.getpid()}"), workdir_lock(tmp_path):
            pass  # not even the same process may take it twice
    assert f"took over the lock of {tmp_path} from pid {dead.pid}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_unwritable_workdir_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    unwritable = rf"^cannot write to workdir {tmp_path}/file/run \(Not a directory"
    with pytest.raises(ConfigError, match=unwritable), workdir_lock(tmp_path / "file" / "run"):
        pass


# --- non-finite guard (pure functions) ----------------------------------------------------------------------


def _toy_step(state, batch):
    new = {"w": state["w"] + batch["x"], "count": state["count"] + 1}
    return new, {"loss": jnp.sum(new["w"])}


@pytest.mark.parametrize("mode", nonfinite.MODES)
def test_guard_keeps_the_last_good_state_when_skipping(mode):
    step = jax.jit(nonfinite.guard(_toy_step, mode))
    state = {"w": jnp.arange(3.0), "count": jnp.int32(5)}
    good, metrics = step(state, {"x": jnp.ones(3)})
    np.testing.assert_array_equal(good["w"], [1.0, 2.0, 3.0])
    assert int(good["count"]) == 6 and float(metrics["loss"]) == 6.0 and float(metrics["nonfinite_steps"]) == 0.0
    bad, metrics = step(good, {"x": jnp.array([0.0, jnp.nan, 0.0])})
    assert float(metrics["nonfinite_steps"]) == 1.0
    if mode == "skip":  # the update is dropped, integer leaves included, and the loss does not count
        np.testing.assert_array_equal(bad["w"], good["w"])
        assert int(bad["count"]) == 6 and float(metrics["loss"]) == 0.0
    else:  # stop: the trainer will stop; nothing is hidden
        assert np.isnan(bad["w"][1]) and np.isnan(metrics["loss"])


def test_interval_means_and_stop_message():
    sums = {"loss": 6.0, "nonfinite_steps": 1.0}
    assert nonfinite.interval_means(sums, 4, "skip") == {"loss": 2.0, "nonfinite_steps": 1.0}  # 3 good steps
    assert np.isnan(nonfinite.interval_means({"loss": 0.0, "nonfinite_steps": 2.0}, 2, "skip")["loss"])
    nonfinite.check(8, {"loss": np.nan, "nonfinite_steps": 1.0}, "skip", 6)  # skip never stops
    nonfinite.check(8, {"loss": 1.0, "nonfinite_steps": 0.0}, "stop", 6)
    with pytest.raises(FloatingPointError, match=r"^non-finite parameters or optimizer state at step 8; stopping"):
        nonfinite.check(8, {"loss": 1.0, "nonfinite_steps": 1.0}, "stop", 6)


def test_skip_mode_drops_every_diverged_update_and_counts_it(tmp_path, monkeypatch):
    """Params become NaN from the 5th step on; skipped steps leave the state at the 4th step's, bit for bit."""
    original = GAN.train_step

    def poisoned(self, state, batch):
        new_state, metrics = original(self, state, batch)
        poison = jnp.where(state.step >= 4, jnp.nan, 0.0)
        generator = jax.tree.map(lambda p: p + poison, new_state.generator)
        return new_state.replace(generator=generator), metrics

    monkeypatch.setattr(GAN, "train_step", poisoned)
    final = trainer.train(_tiny_gan("train.steps=8", "train.nonfinite=skip"), tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["nonfinite_steps"]) for r in records] == [(2, 0), (4, 0), (6, 2), (8, 2)]
    assert np.isnan(records[2]["d_loss"]) and np.isfinite(records[1]["d_loss"])  # no good step in 5..6
    assert int(final.step) == 4
    checkpointer = Checkpointer(tmp_path / "checkpoints", keep=3, every=0)
    config = _tiny_gan()
    run = compiled_run.compile_run(config, parallel.make_mesh(config.mesh))
    kept, data_state = checkpointer.restore(4, run.abstract_state)
    assert data_state["step"] == 4
    for a, b in zip(_leaves(kept), _leaves(final), strict=True):
        np.testing.assert_array_equal(a, b)


# --- preemption --------------------------------------------------------------------------------------------


def test_guard_turns_signals_into_a_request_and_restores_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with PreemptionGuard() as guard:
        assert not guard.stop_requested(1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.stop_requested(2) and guard.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_checkpoints_the_current_step_and_a_damaged_latest_step_is_skipped(tmp_path, monkeypatch, capsys):
    make_global_batch = data.make_global_batch
    calls = []

    def signalling(*args, **kwargs):  # SIGTERM arrives while step 3 is running
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return make_global_batch(*args, **kwargs)

    monkeypatch.setattr(data, "make_global_batch", signalling)
    sigterm_before = signal.getsignal(signal.SIGTERM)
    state = trainer.train(_tiny_gan("train.steps=6"), tmp_path)
    monkeypatch.setattr(data, "make_global_batch", make_global_batch)
    assert int(state.step) == 3
    assert signal.getsignal(signal.SIGTERM) is sigterm_before
    assert "received SIGTERM at step 3: its checkpoint is committed" in capsys.readouterr().out
    checkpointer = Checkpointer(tmp_path / "checkpoints", keep=3, every=0)
    assert checkpointer.all_steps() == [2, 3]
    checkpointer.close()

    # The step saved on SIGTERM is damaged before the restart: the run reports it, sets it aside and uses step 2.
    (tmp_path / "checkpoints" / "3" / "state" / "manifest.ocdbt").unlink()
    resumed = trainer.train(_tiny_gan("train.steps=6"), tmp_path)
    out = capsys.readouterr().out
    assert f"checkpoint step 3 in {tmp_path / 'checkpoints'} cannot be restored" in out
    assert "resuming" in out and "from the checkpoint of step 2" in out
    assert int(resumed.step) == 6 and (tmp_path / "checkpoints" / "3.corrupt-1").is_dir()


# --- random kills -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_random_kills_and_a_preemption_leave_the_run_bitwise_unchanged(tmp_path, monkeypatch):
    from experiments import fault_injection

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("XLA_FLAGS", "")  # the runs use one device: faster to start, and equality is per device count
    overrides = [*fault_injection.DEFAULT_OVERRIDES, "train.steps=16"]
    summary = fault_injection.run_faults(
        "configs/dcgan.py", overrides, tmp_path, kills=2, signals=["kill", "term"], seed=0
    )
    assert summary["failures"] == []
    assert summary["interruptions"] == {"kill": 1, "term": 1}


@pytest.mark.slow  # ~40 s: killed and resumed runs on 8 devices
def test_a_kill_on_8_devices_with_fsdp_leaves_the_run_bitwise_unchanged(tmp_path, monkeypatch):
    """The kill storm reduced to one SIGKILL: the run in a subprocess on 8 simulated devices (data=4, fsdp=2), the
    reference and the resume in this process on the same mesh."""
    from experiments import fault_injection

    monkeypatch.chdir(ROOT)
    overrides = [*fault_injection.DEFAULT_OVERRIDES, "train.steps=8", "mesh.fsdp=2"]
    config = load("dcgan.py", *overrides)
    trainer.train(config, tmp_path / "reference")
    commands = fault_injection.main_commands("configs/dcgan.py", tmp_path / "interrupted", overrides)
    attempt = fault_injection.Attempt(commands, tmp_path / "interrupted.log")
    attempt.wait_for_step(random.Random(0).randint(2, 6))
    attempt.send(signal.SIGKILL)
    assert attempt.wait() == -signal.SIGKILL and attempt.step < 8
    assert fault_injection.checkpoint_problems(tmp_path / "interrupted") == []
    trainer.train(config, tmp_path / "interrupted")  # takes over the dead run's lock
    assert fault_injection.final_differences(tmp_path / "reference", tmp_path / "interrupted") == []


@pytest.mark.slow
def test_kills_and_a_preemption_notice_to_one_of_2_processes_leave_the_run_bitwise_unchanged(
    tmp_path, monkeypatch, uncached_subprocesses
):
    """The SIGTERM reaches one process only; JAX's preemption service stops both at the step they agree on, and
    the run exits with the preempted status (fault_injection counts any other status as a failure)."""
    from experiments import fault_injection

    monkeypatch.chdir(ROOT)
    overrides = [*fault_injection.DEFAULT_OVERRIDES, "train.steps=20"]
    summary = fault_injection.run_faults(
        "configs/dcgan.py", overrides, tmp_path, kills=2, signals=["term", "kill"], seed=0, processes=2
    )
    assert summary["failures"] == []
    assert summary["interruptions"] == {"term": 1, "kill": 1}
