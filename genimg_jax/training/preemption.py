"""Preemption: SIGTERM / SIGINT ask the run to checkpoint and stop at the next step boundary.

A signal handler may run between any two bytecodes, so it only records the signal; the training loop asks
`stop_requested()` after each step, saves, waits for the save to commit and returns. Schedulers (SLURM, Kubernetes,
TPU maintenance events) send SIGTERM some seconds before SIGKILL, which is enough for one checkpoint of a
model this size; a second signal of the same kind gets the previous handler (e.g. KeyboardInterrupt on Ctrl-C
twice), so a stuck save can still be interrupted.

With several processes every one must save the same step (Orbax saves are collective), but a signal may reach
only some of them, or reach them at different steps: `stop_requested()` therefore all-gathers the flags once
per step (a few bytes) and every process stops when any one was asked to.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import jax
import numpy as np
from jax.experimental import multihost_utils

SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOPPED_MARK = "its checkpoint is committed"  # experiments/fault_injection.py looks for it in the trainer's output


def stopped_message(signal_name: str, step: int) -> str:
    """The trainer's last line after a stop request: the step whose checkpoint is committed, and what to do."""
    return f"received {signal_name} at step {step}: {STOPPED_MARK}; run the same command again to continue"


class PreemptionGuard:
    """Context manager that turns SIGTERM/SIGINT into a stop request; previous handlers come back on exit."""

    def __init__(self, signals: tuple[signal.Signals, ...] = SIGNALS):
        self._signals = signals
        self._previous: dict[signal.Signals, object] = {}
        self.received: signal.Signals | None = None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():  # Python only delivers signals there
            for signum in self._signals:
                self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        """Put back the handlers that were there before `install` (safe to call more than once)."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> PreemptionGuard:
        self.install()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum)
        previous = self._previous.get(self.received)
        if previous is not None:  # a second signal goes to whoever handled it before us
            signal.signal(signum, previous)

    def stop_requested(self) -> bool:
        """Whether any process received a signal; the same answer on every process."""
        local = self.received is not None
        if jax.process_count() == 1:
            return local
        return bool(np.any(multihost_utils.process_allgather(np.array(local, np.int32))))

    @property
    def signal_name(self) -> str:
        return self.received.name if self.received is not None else "a stop request from another process"
