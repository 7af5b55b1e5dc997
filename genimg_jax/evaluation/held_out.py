"""A method's own per-example evaluation values (ELBO, IWAE bound, denoising loss) averaged over a whole split."""

from typing import Any

import jax

from genimg_jax import data
from genimg_jax.training.compiled_run import CompiledRun


def evaluate_split(run: CompiledRun, state: Any, source: data.ImageSource, batch_size: int, rng: jax.Array) -> dict:
    """Mean of the method's per-example evaluation values over the whole of `source`."""
    totals: dict[str, float] = {}
    count = 0.0
    batches = data.iterate_once(source, batch_size=batch_size, rows=data.host_rows(run.batch_sharding, batch_size))
    for index, local_batch in enumerate(batches):
        batch = data.make_global_batch(local_batch, run.batch_sharding)
        sums, batch_count = run.evaluate(state, batch, jax.random.fold_in(rng, index))
        for name, value in jax.device_get(sums).items():
            totals[name] = totals.get(name, 0.0) + float(value)
        count += float(batch_count)
    return {name: total / count for name, total in totals.items()}
