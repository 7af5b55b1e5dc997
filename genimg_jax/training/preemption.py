"""Preemption: SIGTERM / SIGINT ask the run to checkpoint and stop at the next step boundary.

A signal handler may run between any two bytecodes, so it only records the signal; the training loop asks
`stop_requested()` after each step, saves, waits for the save to commit and returns. Schedulers (SLURM, Kubernetes,
TPU maintenance events) send SIGTERM some seconds before SIGKILL, which is enough for one checkpoint of a
model this size; a second signal of the same kind gets the previous handler (e.g. KeyboardInterrupt on Ctrl-C
twice), so a stuck save can still be interrupted.

With several processes every one must save the same step (Orbax saves are collective), but a signal may reach
only some of them, or reach them at different steps. There JAX's preemption service decides: the SIGTERM notifier
`jax.distributed.initialize` installs tells the coordination service, which agrees on the next step every process
reaches (`multihost_utils.reached_preemption_sync_point`, a local check on every step: no collective), so the
guard installs no handler of its own that would replace that notifier (and none for SIGINT, which would stop one
host only: Ctrl-C of a multi-host run kills it, and it resumes from the last periodic checkpoint). Only when
the service is disabled (`jax_enable_preemption_service=False`) do the processes all-gather their flags once per
step instead.
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
        self.service_stopped = False

    def install(self) -> None:
        if _preemption_service_runs():
            return  # its SIGTERM notifier must stay in place
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

    def stop_requested(self, step: int) -> bool:
        """Whether to save `step` and stop; the same answer on every process. Call it at every step."""
        if _preemption_service_runs():
            self.service_stopped = multihost_utils.reached_preemption_sync_point(step)
            return self.service_stopped
        local = self.received is not None
        if jax.process_count() == 1:
            return local
        return bool(np.any(multihost_utils.process_allgather(np.array(local, np.int32))))

    @property
    def signal_name(self) -> str:
        if self.service_stopped:
            return "a preemption notice (JAX's preemption service)"
        return self.received.name if self.received is not None else "a stop request from another process"


def _preemption_service_runs() -> bool:
    """Whether `jax.distributed` runs JAX's preemption service (several processes, the service enabled)."""
    return jax.distributed.is_initialized() and bool(jax.config.jax_enable_preemption_service)
