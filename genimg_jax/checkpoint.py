"""Orbax checkpoints of the whole run: train state (params, optimizer, EMA, step, RNG) and data position.

Two items per step, so a resumed run is the same run: `state` (the train-state pytree, restored straight onto the
target shardings, which may differ from those it was saved with) and `data` (the input stream's JSON position).
Saves are asynchronous; `wait` blocks until the last one is committed.
"""

import pathlib
from typing import Any

import orbax.checkpoint as ocp


class Checkpointer:
    """Periodic, keep-N checkpoints of (state, data position) under `directory`."""

    def __init__(self, directory: str | pathlib.Path, *, keep: int, every: int):
        self.every = every
        self._manager = ocp.CheckpointManager(
            pathlib.Path(directory).absolute(),
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

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """Restore step `step` onto the shardings of `abstract_state` (a pytree of jax.ShapeDtypeStruct)."""
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()),
        )
        return restored["state"], restored["data"]

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()
