"""Gradient accumulation: a global batch taken in sequential micro-batches inside one train step (`train.microbatch`).

`train.microbatch` is the number of examples each device takes at once, as EDM's `batch_gpu`; 0 takes its whole
share of the batch. The step averages the micro-batches' losses and gradients, which equals the full-batch step
when the loss is a mean over examples and every random draw is made for the whole batch before it is split (a
method's job; dropout masks are the exception: each micro-batch draws its own).

The rounds are unrolled in Python rather than written as `lax.scan`, whose body runs convolutions 10-30x slower on
XLA's CPU backend; an optimization barrier between rounds keeps them sequential, so that only one micro-batch's
activations are live at a time on any backend, as inside a scan.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax

from genimg_jax import parallel
from genimg_jax.config import ConfigError

LossFn = Callable[[Any, Any, int], tuple[jax.Array, Any]]  # (params, micro-batch, round) -> (mean loss, aux)


def accumulation_rounds(batch_size: int, shards: int, microbatch: int) -> int:
    """How many micro-batches a step of `batch_size` examples over `shards` devices takes (1 when off)."""
    per_shard = batch_size // shards
    if not microbatch or microbatch >= per_shard:
        return 1
    if per_shard % microbatch:
        raise ConfigError(
            f"config.train.microbatch={microbatch} must divide the {per_shard} examples per device "
            f"(train.batch_size={batch_size} over {shards} batch shards)"
        )
    return per_shard // microbatch


def value_and_grad(loss_fn: LossFn, params: Any, batch: Any, microbatch: int) -> tuple[tuple[jax.Array, Any], Any]:
    """((loss, aux), gradients) of `loss_fn` over `batch`, averaged over its micro-batches of `microbatch`
    examples per device; `batch` is a pytree of batch-sharded arrays, and aux a pytree of arrays averaged like
    the loss (e.g. scalar metrics)."""
    leaves = jax.tree.leaves(batch)
    rounds = accumulation_rounds(leaves[0].shape[0], parallel.batch_shards(), microbatch)
    gradient = jax.value_and_grad(loss_fn, has_aux=True)
    if rounds == 1:
        return gradient(params, batch, 0)
    total = None
    for index in range(rounds):
        micro = jax.tree.map(functools.partial(parallel.microbatch, rounds=rounds, index=index), batch)
        if total is not None:  # the next round starts only when this one's gradients are summed
            total, micro = jax.lax.optimization_barrier((total, micro))
        result = gradient(params, micro, index)
        total = result if total is None else jax.tree.map(jax.numpy.add, total, result)
    return jax.tree.map(lambda x: x / rounds, total)
