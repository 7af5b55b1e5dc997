"""A few jitted training steps of a method on real digits, for tests that look at what training produced."""

import jax
import jax.numpy as jnp
import ml_collections

from genimg_jax import data
from genimg_jax.methods import build_method


def train_on_digits(config: ml_collections.ConfigDict, steps: int, jit_init: bool = False) -> tuple:
    """(method, final state, per-step metrics, first batch) after `steps` steps from seed 0; `jit_init` compiles
    the initialisation, which for a deep net takes far less time than running it op by op."""
    source = data.make_source("digits", split="train", resolution=config.data.resolution, channels=1)
    return train_on_source(config, source, steps, jit_init)


def train_on_source(config: ml_collections.ConfigDict, source: data.ImageSource, steps: int, jit_init: bool = False):
    """`train_on_digits` on the examples of any `source` (e.g. `data.source_from_config(config.data, "train")`)."""
    method = build_method(config)
    stream = data.make_train_stream(source, global_batch_size=config.train.batch_size, seed=0)
    batches = [jax.tree.map(jnp.asarray, next(stream)) for _ in range(steps)]
    init = jax.jit(method.init_state) if jit_init else method.init_state
    state = init(jax.random.PRNGKey(0), batches[0])
    step = jax.jit(method.train_step)
    history = []
    for batch in batches:
        state, metrics = step(state, batch)
        history.append(jax.device_get(metrics))
    return method, state, history, batches[0]
