"""Preemption, damaged checkpoints, the non-finite guard, and random kills that must not change the result."""

import json
import os
import pathlib
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import TINY_GAN, load

from genimg_jax import data, parallel
from genimg_jax.methods.gan.gan import GAN
from genimg_jax.training import compiled_run, nonfinite, trainer
from genimg_jax.training.checkpoint import Checkpointer, CheckpointError
from genimg_jax.training.preemption import PreemptionGuard

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


def test_no_restorable_step_is_a_clear_error(tmp_path):
    checkpointer = _toy_checkpoints(tmp_path, [1])
    (tmp_path / "1" / "data" / "metadata").write_text("{trunc")
    target = jax.eval_shape(lambda: {"w": jnp.zeros((64,)), "n": jnp.int32(0)})
    with pytest.raises(CheckpointError, match=r"no checkpoint in .* can be restored; .* moved to 1\.corrupt-1"):
        checkpointer.restore_latest(target, report=lambda _: None)
    assert Checkpointer(tmp_path, keep=5, every=0).restore_latest(target) is None  # nothing left: a fresh start


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
        assert not guard.stop_requested()
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.stop_requested() and guard.signal_name == "SIGTERM"
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
