"""Non-finite guard around any method's `train_step`, and the trainer's policy for what it finds.

The guard is method-agnostic: it runs the step, tests every metric and every floating leaf of the new state for
NaN/Inf inside the same jitted function, and reports the outcome as the metric `nonfinite_steps` (1 on a bad
step). With `train.nonfinite="skip"` a bad step's update is dropped (`where(ok, new, old)` leaf by leaf, so the
state stays exactly the last good one) and its metrics are zeroed so interval means cover the good steps only;
with "stop" the run ends at the next log or checkpoint step, before anything diverged is saved.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

MODES = ("stop", "skip")
NONFINITE_STEPS = "nonfinite_steps"


def _all_finite(tree: Any) -> jax.Array:
    leaves = [leaf for leaf in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves])) if leaves else jnp.bool_(True)


def guard(train_step: Callable, mode: str) -> Callable:
    """`train_step` with a finiteness test of its metrics and new state; see the module docstring."""
    if mode not in MODES:
        raise ValueError(f"non-finite mode {mode!r} is not one of {MODES}")

    def guarded(state: Any, batch: Any) -> tuple[Any, dict[str, jax.Array]]:
        new_state, metrics = train_step(state, batch)
        ok = _all_finite(metrics) & _all_finite(new_state)
        if mode == "skip":
            new_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, state)
            metrics = {name: jnp.where(ok, value, jnp.zeros_like(value)) for name, value in metrics.items()}
        return new_state, {**metrics, NONFINITE_STEPS: 1.0 - ok.astype(jnp.float32)}

    return guarded


def interval_means(sums: dict[str, float], num_steps: int, mode: str) -> dict[str, float]:
    """Means of summed step metrics over an interval of `num_steps`; `nonfinite_steps` stays a count.

    In skip mode the skipped steps contributed zeros, so the means are over the good steps only (NaN if none).
    In stop mode a bad step's own non-finite values are in the sums and make their means non-finite, which
    `check` then names.
    """
    bad = float(sums.get(NONFINITE_STEPS, 0.0))
    sums = {name: float(value) for name, value in sums.items() if name != NONFINITE_STEPS}
    good = num_steps - bad if mode == "skip" else num_steps
    return {**{name: value / good if good else math.nan for name, value in sums.items()}, NONFINITE_STEPS: bad}


def check(step: int, means: dict[str, float], mode: str, last_checkpoint: int | None) -> None:
    """In stop mode, raise FloatingPointError naming what went non-finite; the last good checkpoint is kept."""
    if mode != "stop" or not means.get(NONFINITE_STEPS):
        return
    bad = [name for name, value in means.items() if not math.isfinite(value)] or ["parameters or optimizer state"]
    kept = f"checkpoint of step {last_checkpoint} is kept" if last_checkpoint else "no checkpoint was saved"
    raise FloatingPointError(
        f"non-finite {', '.join(bad)} at step {step}; stopping ({kept}; "
        f"config.train.nonfinite=skip would skip such steps instead)"
    )


def checked_means(
    step: int, sums: dict[str, jax.Array], num_steps: int, mode: str, last_checkpoint: int | None
) -> dict[str, float]:
    """`interval_means` of the summed step metrics (fetched from the devices), after `check` let them through."""
    means = interval_means(jax.device_get(sums), num_steps, mode)
    check(step, means, mode, last_checkpoint)
    return means
