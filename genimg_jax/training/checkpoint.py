"""Orbax checkpoints of the whole run: train state (params, optimizer, EMA, step, RNG) and data position.

Two items per step, so a resumed run is the same run: `state` (the train-state pytree, restored straight onto the
target shardings, which may differ from those it was saved with) and `data` (the input stream's JSON position).
Saves are asynchronous; `wait` blocks until the last one is committed.

A process killed mid-save leaves only an Orbax tmp folder, which Orbax ignores; but a *committed* step that was
damaged later (a truncated or missing file) is still listed as the latest step, and restoring it fails with a long
TensorStore error. `restore_latest` therefore tries the steps newest first and sets a failing step aside by
renaming it to `<step>.corrupt-<n>` (never deleting it; the name is not a step name, so Orbax, including its keep-N
clean-up, ignores it).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

CORRUPT_MARK = ".corrupt-"


class CheckpointError(RuntimeError):
    """No checkpoint of the workdir can be restored; the message says where and why."""


class Checkpointer:
    """Periodic, keep-N checkpoints of (state, data position) under `directory`."""

    def __init__(self, directory: str | pathlib.Path, *, keep: int, every: int):
        self.every = every
        self.directory = pathlib.Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            item_names=("state", "data"),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        )

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
        self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)),
            force=True,
        )

    def restore(self, step: int, abstract_state: Any = None) -> tuple[Any, dict]:
        """Restore step `step` onto the shardings of `abstract_state` (a pytree of jax.ShapeDtypeStruct); without a
        target, every array comes back whole on this process's first device, whatever mesh saved it (inspection
        tools)."""
        if abstract_state is None:
            abstract_state = self._single_device_target(step)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()),
        )
        return restored["state"], restored["data"]

    def _single_device_target(self, step: int) -> Any:
        with ocp.StandardCheckpointer() as reader:
            metadata = reader.metadata(self.directory / str(step) / "state").item_metadata
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device), metadata)

    def restore_latest(
        self, abstract_state: Any, report: Callable[[str], None] = print
    ) -> tuple[int, Any, dict] | None:
        """(step, state, data position) of the newest step that restores, or None if there is no step at all.

        Each step that fails is reported in one line through `report` and set aside (see the module docstring);
        if every step fails, CheckpointError.
        """
        set_aside = []
        while (step := self._manager.latest_step()) is not None:
            try:
                return (step, *self.restore(step, abstract_state))
            except Exception as error:  # Orbax and TensorStore raise many types for damaged files
                reason = _first_line(error)
                destination = self._set_aside(step)
                set_aside.append(destination.name)
                report(
                    f"checkpoint step {step} in {self.directory} cannot be restored ({reason}); moved to {destination}"
                )
        if set_aside:
            raise CheckpointError(
                f"no checkpoint in {self.directory} can be restored; the damaged steps were moved to "
                f"{', '.join(set_aside)} (delete them, or the whole directory, to start over)"
            )
        return None

    def _set_aside(self, step: int) -> pathlib.Path:
        """Rename the step's folder out of Orbax's sight (process 0 renames; every process waits for it)."""
        source = self.directory / str(step)
        number = 1
        while (destination := self.directory / f"{step}{CORRUPT_MARK}{number}").exists():
            number += 1
        if jax.process_index() == 0:
            source.rename(destination)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"checkpoint set aside {step}")
        self._manager.reload()
        return destination

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()


def _first_line(error: BaseException) -> str:
    """A one-line summary of a (possibly multi-line TensorStore) error."""
    text = str(error).strip().splitlines()
    summary = text[0] if text else ""
    return f"{type(error).__name__}: {summary[:200]}"
