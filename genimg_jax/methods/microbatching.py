"""Gradient accumulation: a global batch taken in sequential micro-batches inside one train step (`train.microbatch`).

`train.microbatch` is the number of examples each device takes at once, as EDM's `batch_gpu`; 0 takes its whole
share of the batch. The step averages the micro-batches' losses and gradients, which equals the full-batch step
when the loss is a mean over examples and every random draw is made for the whole batch before it is split (a
method's job; dropout masks are the exception: each micro-batch draws its own).

On XLA's CPU backend the rounds are unrolled in Python, as `lax.scan` bodies run convolutions 10-30x slower
there; elsewhere they are a `lax.scan`, which compiles one round whatever their number. Unrolled rounds are
independent, so XLA may run their forward passes side by side, and XLA:CPU does (it drops optimization barriers:
a step with 8 rounds kept 93% of the full batch's activation memory). Each unrolled round therefore takes
parameters that depend on the previous rounds' summed gradients through an exact identity (adding -0.0), so that
only one micro-batch's activations are live at a time, as inside a scan.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from genimg_jax import parallel
from genimg_jax.config import ConfigError

# (params, micro-batch, round) -> (mean loss, aux); round is None without accumulation, else an int or a traced int
LossFn = Callable[[Any, Any, Any], tuple[jax.Array, Any]]


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


def value_and_grad(
    loss_fn: LossFn, params: Any, batch: Any, microbatch: int, unroll: bool | None = None
) -> tuple[tuple[jax.Array, Any], Any]:
    """((loss, aux), gradients) of `loss_fn` over `batch`, averaged over its micro-batches of `microbatch`
    examples per device; `batch` is a pytree of batch-sharded arrays, and aux a pytree of arrays averaged like
    the loss (e.g. scalar metrics). `unroll`: rounds unrolled (True) or scanned (False); None: unrolled on CPU."""
    leaves = jax.tree.leaves(batch)
    rounds = accumulation_rounds(leaves[0].shape[0], parallel.batch_shards(), microbatch)
    gradient = jax.value_and_grad(loss_fn, has_aux=True)
    if rounds == 1:
        return gradient(params, batch, None)
    if unroll is None:
        unroll = jax.default_backend() == "cpu"
    total = _unrolled(gradient, params, batch, rounds) if unroll else _scanned(gradient, params, batch, rounds)
    return jax.tree.map(lambda x: x / rounds, total)


def _unrolled(gradient: Callable, params: Any, batch: Any, rounds: int) -> Any:
    total = None
    for index in range(rounds):
        micro = jax.tree.map(functools.partial(parallel.microbatch, rounds=rounds, index=index), batch)
        result = gradient(params if total is None else _after(params, total), micro, index)
        total = result if total is None else jax.tree.map(jnp.add, total, result)
    return total


def _scanned(gradient: Callable, params: Any, batch: Any, rounds: int) -> Any:
    stacked = jax.tree.map(functools.partial(parallel.stacked_microbatches, rounds=rounds), batch)

    def accumulate(total, round_inputs):
        index, micro = round_inputs
        return jax.tree.map(jnp.add, total, gradient(params, micro, index)), None

    first = jax.tree.map(lambda x: x[0], stacked)
    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(gradient, params, first, 0))
    total, _ = jax.lax.scan(accumulate, zeros, (jnp.arange(rounds), stacked))
    return total


def _after(params: Any, total: Any) -> Any:
    """`params` unchanged, as values that XLA can compute only once every gradient in `total` is: each leaf plus
    -0.0 (exact for every float, signed zeros included) made from their sum, which XLA cannot fold away."""
    summed = sum(jnp.sum(leaf.astype(jnp.float32)) for leaf in jax.tree.leaves(total))
    negative_zero = -(0.0 * jnp.abs(summed))
    return jax.tree.map(lambda leaf: leaf + negative_zero.astype(leaf.dtype), params)
