"""Decisions that every process of a run must take alike, such as which checkpoint step to restore: taken from
process 0's view, or from every process's answer, through JAX's collectives. A process that decided on its own
could rename a step the others are reading, or wait in a barrier the others never reach. With one process these
are the values themselves.

Every process must call each function, in the same order.
"""

import jax
import numpy as np
from jax.experimental import multihost_utils


def from_process_0(value: int) -> int:
    """Process 0's `value` (an int32) on every process."""
    if jax.process_count() == 1:
        return value
    return int(multihost_utils.broadcast_one_to_all(np.int32(value)))


def processes_where(flag: bool) -> list[int]:
    """The indices of the processes whose `flag` is true, the same list on every process."""
    if jax.process_count() == 1:
        return [0] if flag else []
    flags = multihost_utils.process_allgather(np.int32(flag))
    return [int(index) for index in np.flatnonzero(flags)]
