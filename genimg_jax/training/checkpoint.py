"""Orbax checkpoints of the whole run: train state (params, optimizer, EMA, step, RNG) and data position.

Two items per step, so a resumed run is the same run: `state` (the train-state pytree, restored straight onto the
target shardings, which may differ from those it was saved with) and `data` (the input stream's JSON position).
Saves are asynchronous; `wait` blocks until the last one is committed.

A process killed mid-save leaves only an Orbax tmp folder, which Orbax ignores; but a *committed* step that was
damaged later is still listed as the latest step: a truncated or missing file fails deep in TensorStore, and flipped
bytes (same sizes) restore silently as wrong numbers. Every save therefore writes the SHA-256 of its files into the
step folder before Orbax commits it (checksums.py), and `restore` verifies them first. `restore_latest` tries the
steps newest first and sets a failing step aside by renaming it to `<step>.corrupt-<n>` (never deleting it; the
name is not a step name, so Orbax, including its keep-N clean-up, ignores it).

With several processes the restore is decided once, by process 0, and every process follows: process 0 picks the
step to try, verifies its checksums and says whether it is damaged; each process then reads its own part (Orbax's
restore without its closing barrier, which a process whose read failed would never reach), trying a failed read
again after a short pause (object stores fail transiently) before it counts as failed, and all processes learn
who failed. Only process 0's verdict sets a step aside, so a read error on another host never renames a good step.

A save that fails (no space left, no permission) surfaces on the next `check`, `save`, `wait` or `close` as one
CheckpointSaveError naming the step's folder; the folder of the failed save is left as an Orbax tmp folder and every
earlier committed step is untouched.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from genimg_jax.training import agreement, checksums, paths

CORRUPT_MARK = ".corrupt-"
ITEMS = ("state", "data")
_TMP_SUFFIX = ".orbax-checkpoint-tmp"  # where Orbax writes a step before renaming it (atomic-rename file systems)
RETRY_DELAYS_S = (0.2, 1.0)  # pauses between the attempts to read a step before its read counts as failed
_ATTEMPTS = len(RETRY_DELAYS_S) + 1
_VERIFIED, _UNCHECKED, _DAMAGED = 0, 1, 2  # process 0's verdict on a step's checksums
_T = TypeVar("_T")


class CheckpointError(RuntimeError):
    """No checkpoint of the workdir can be restored; the message says where and why."""


class DamagedCheckpointError(CheckpointError):
    """Process 0 finds a step damaged (see `Checkpointer.restore`): `restore_latest` sets it aside."""


class CheckpointSaveError(CheckpointError):
    """A checkpoint could not be written (full disk, no permission); earlier steps are kept."""


def committed_steps(directory: str | os.PathLike) -> list[int]:
    """The steps with a committed checkpoint in `directory`, read without opening a manager, which would create the
    folder. Locally Orbax renames a step's folder to its number when the save commits; on an object store the
    folder has that name from the start and a marker file commits it, which `is_path_finalized` checks."""
    directory = paths.as_path(directory)
    steps = sorted(int(path.name) for path in directory.glob("*") if path.name.isdigit() and path.is_dir())
    if paths.is_local(directory):
        return steps
    return [step for step in steps if ocp.step.is_path_finalized(directory / str(step))]


class Checkpointer:
    """Periodic, keep-N checkpoints of (state, data position) under `directory`."""

    def __init__(self, directory: str | os.PathLike, *, keep: int, every: int):
        self.every = every
        self.directory = paths.absolute(directory)
        self._in_flight: int | None = None  # the step of the last save started
        self._failed = False
        with self._save_failures(None):  # a read-only or full directory fails here already
            self._manager = ocp.CheckpointManager(
                self.directory,
                item_names=ITEMS,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=keep,
                    create=True,
                    async_options=ocp.AsyncOptions(post_finalization_callback=self._write_checksums),
                ),
            )
        # Restores without Orbax's barrier across processes (see the module docstring).
        only_this_process = ocp.options.MultiprocessingOptions(active_processes={jax.process_index()})
        self._reader = ocp.Checkpointer(ocp.CompositeCheckpointHandler(), multiprocessing_options=only_this_process)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def should_save(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def save(self, step: int, state: Any, data_state: dict) -> None:
        """Start an asynchronous save of `state` and the data position at `step` (no-op if already saved)."""
        if step in self._manager.all_steps():
            return
        self.wait()  # a failure of the previous save is reported as that step's
        with self._save_failures(step):
            self._in_flight = step
            self._manager.save(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)),
                force=True,
            )

    def _write_checksums(self) -> None:
        """Orbax's hook after all processes wrote the step and before it is committed (runs on process 0 only)."""
        folder = self.directory / f"{self._in_flight}{_TMP_SUFFIX}"
        if not folder.is_dir():  # object stores write the step in place and commit it with a marker file
            folder = self.directory / str(self._in_flight)
        checksums.write_manifest(folder, ITEMS)

    @contextlib.contextmanager
    def _save_failures(self, step: int | None) -> Iterator[None]:
        """Turn any error of Orbax's writing into one CheckpointSaveError naming the step's folder."""
        try:
            yield
        except Exception as error:  # Orbax and TensorStore wrap OSErrors in many types
            self._failed = True
            where = self.directory if step is None else self.directory / str(step)
            kept = ", ".join(map(str, self._committed_steps())) or "none"
            raise CheckpointSaveError(
                f"cannot write checkpoint {where} ({_os_reason(error)}); stopping; committed steps kept: {kept}"
            ) from error

    def _committed_steps(self) -> list[int]:
        return committed_steps(self.directory)

    def check(self) -> None:
        """Raise CheckpointSaveError if the save in flight has failed (cheap; the trainer asks every step).

        Only the process whose write failed raises; launchers stop the others when one process fails."""
        if self._failed:
            return
        with self._save_failures(self._in_flight):
            self._manager.check_for_errors()

    def restore(self, step: int, abstract_state: Any = None) -> tuple[Any, dict]:
        """Restore step `step` onto the shardings of `abstract_state` (a pytree of jax.ShapeDtypeStruct); without a
        target, every array comes back whole on this process's first device, whatever mesh saved it (inspection
        tools).

        Each process reads its part, trying again after a failed read (object stores fail transiently), and every
        process gets the same outcome: DamagedCheckpointError if the checksums (process 0 verifies them) or
        process 0's read fail, or any read of a step without checksums; a plain CheckpointError, the step left in
        place, if only other processes cannot read a step whose checksums match (their hosts are at fault)."""
        damage, verified = self._agreed_damage(step)
        if damage:
            raise DamagedCheckpointError(damage)
        restored, failure = _retried(lambda: self._read(step, abstract_state))
        failing = agreement.processes_where(failure is not None)
        if not failing:
            return restored["state"], restored["data"]
        names = f"process{'es' if len(failing) > 1 else ''} {', '.join(map(str, failing))}"
        if 0 in failing or not verified:
            raise DamagedCheckpointError(failure or f"{names} cannot read it")
        reason = failure or f"see {'their logs' if len(failing) > 1 else 'its log'}"
        raise CheckpointError(
            f"checkpoint step {step} in {self.directory} cannot be read by {names} after {_ATTEMPTS} attempts "
            f"({reason}), though process 0 reads it and its checksums match; it is left in place: check those hosts"
        )

    def _read(self, step: int, abstract_state: Any) -> dict:
        if abstract_state is None:
            abstract_state = self._single_device_target(step)
        return self._reader.restore(
            self.directory / str(step),
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()),
        )

    def _agreed_damage(self, step: int) -> tuple[str | None, bool]:
        """(what the checksums say is wrong with `step`, whether it has checksums): process 0 reads the files and
        every process gets its answer."""
        folder = self.directory / str(step)
        damage, code = None, 0
        if jax.process_index() == 0:
            found, failure = _retried(lambda: checksums.find_damage(folder))
            damage = found or failure
            code = _DAMAGED if damage else _VERIFIED if (folder / checksums.MANIFEST).is_file() else _UNCHECKED
        code = agreement.from_process_0(code)
        if code == _DAMAGED:
            damage = damage or "damaged (process 0 checked the checksums)"
        return damage, code == _VERIFIED

    def _agreed_latest_step(self) -> int | None:
        """The newest step that process 0 sees: the step every process tries to restore next."""
        latest = self._manager.latest_step() if jax.process_index() == 0 else None
        step = agreement.from_process_0(-1 if latest is None else latest)
        return None if step < 0 else step

    def _single_device_target(self, step: int) -> Any:
        with ocp.StandardCheckpointer() as reader:
            metadata = reader.metadata(self.directory / str(step) / "state").item_metadata
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device), metadata)

    def restore_latest(
        self, abstract_state: Any, report: Callable[[str], None] = print
    ) -> tuple[int, Any, dict] | None:
        """(step, state, data position) of the newest step that restores, or None if there is no step at all.

        Process 0 picks each step to try and judges it (see `restore`); each damaged step is reported in one line
        through `report` and set aside (see the module docstring); if every step is damaged, CheckpointError.
        """
        set_aside = []
        while (step := self._agreed_latest_step()) is not None:
            try:
                return (step, *self.restore(step, abstract_state))
            except DamagedCheckpointError as error:
                destination = self._set_aside(step)
                set_aside.append(destination.name)
                where = f"checkpoint step {step} in {self.directory}"
                report(f"{where} cannot be restored ({error}); moved to {destination}")
        if set_aside:
            raise CheckpointError(
                f"no checkpoint in {self.directory} can be restored; the damaged steps were moved to "
                f"{', '.join(set_aside)} (delete them, or the whole directory, to start over)"
            )
        return None

    def _set_aside(self, step: int) -> epath.Path:
        """Rename the step's folder out of Orbax's sight (process 0 picks the name and renames; every process waits
        for it)."""
        number = 1
        if jax.process_index() == 0:
            while (self.directory / f"{step}{CORRUPT_MARK}{number}").exists():
                number += 1
        destination = self.directory / f"{step}{CORRUPT_MARK}{agreement.from_process_0(number)}"
        if jax.process_index() == 0:
            (self.directory / str(step)).rename(destination)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"checkpoint set aside {step}")
        self._manager.reload()
        return destination

    def wait(self) -> None:
        """Block until the save in flight is committed; CheckpointSaveError if it failed (raised only once)."""
        if self._failed:
            return
        with self._save_failures(self._in_flight):
            self._manager.wait_until_finished()

    def close(self) -> None:
        """Wait for the save in flight and release Orbax's threads (a failed save is raised once, by `wait`)."""
        try:
            self.wait()
        finally:
            with contextlib.suppress(Exception):  # the failure, if any, was already raised
                self._manager.close()
            self._reader.close()


def _retried(read: Callable[[], _T]) -> tuple[_T | None, str | None]:
    """(`read()`, None), trying again after each pause of RETRY_DELAYS_S while it raises; (None, the last error in
    one line) if every attempt raised."""
    delays = iter(RETRY_DELAYS_S)
    while True:
        try:
            return read(), None
        except Exception as error:  # Orbax and TensorStore raise many types for unreadable files
            if (delay := next(delays, None)) is None:
                return None, _first_line(error)
            time.sleep(delay)


def _os_reason(error: BaseException) -> str:
    """The operating system's reason for a failed write ("No space left on device"), which TensorStore buries at
    the end of a long message; else the error's first line."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    if code := re.search(r"os_error_code='?(\d+)", str(error)):
        return f"{os.strerror(int(code.group(1)))}, in {type(error).__name__} from TensorStore"
    return _first_line(error)


def _first_line(error: BaseException) -> str:
    """A one-line summary of a (possibly multi-line TensorStore) error."""
    text = str(error).strip().splitlines()
    summary = text[0] if text else ""
    return f"{type(error).__name__}: {summary[:200]}"
