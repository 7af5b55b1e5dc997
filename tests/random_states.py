"""Train states of a diffusion method's shapes filled with random weights, made without compiling the init (a
U-Net's costs ~30 s here) and away from the zero-initialised output layers, so that every input matters."""

import jax
import jax.numpy as jnp
import numpy as np


def random_params(shapes, seed: int, scale: float = 0.1):
    """N(0, scale^2) leaves of the shapes of the pytree `shapes` (e.g. from jax.eval_shape)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda leaf: jnp.asarray(scale * rng.standard_normal(leaf.shape), leaf.dtype), shapes)


def random_diffusion_state(method, batch: dict, seed: int):
    """A pixel-space `DiffusionState` of `method` for `batch`'s shapes holding N(0, 0.1^2) weights."""
    shapes = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), batch)
    params = random_params(shapes.params, seed)
    return shapes.replace(
        step=jnp.zeros((), jnp.int32),
        rng=jax.random.PRNGKey(seed),
        params=params,
        ema_params=params,
        opt_state=method.optimizer.init(params),
        first_stage={},
    )
