"""ADA's controller of the augmentation probability p (Karras et al. 2020, "Training GANs with Limited Data").

p adapts to the overfitting heuristic r_t = E[sign(D(real))]: every `interval` D steps p moves up when r_t
exceeds the target and down otherwise, fast enough to go from 0 to 1 in `adjust_kimg` thousand real images. p
lives in the train state, so it is checkpointed with everything else.
"""

import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class AdaState:
    """Augmentation probability and the running sums of sign(D(real)) since its last adjustment."""

    p: jax.Array
    sign_sum: jax.Array
    num_logits: jax.Array
    num_steps: jax.Array


def init_ada_state(p: float = 0.0) -> AdaState:
    return AdaState(
        p=jnp.float32(p),
        sign_sum=jnp.zeros((), jnp.float32),
        num_logits=jnp.zeros((), jnp.float32),
        num_steps=jnp.zeros((), jnp.int32),
    )


def ada_update(
    p: jax.Array, rt_estimate: jax.Array, *, target: float, batch_size: int, adjust_kimg: float, interval: int
) -> jax.Array:
    """One adjustment: p += sign(r_t - target) * batch_size * interval / (adjust_kimg * 1000), kept >= 0.

    As in the reference, p is not capped at 1; above 1 every op applies to every image (and each of the two
    arbitrary rotations with probability 1).
    """
    step = batch_size * interval / (adjust_kimg * 1000.0)
    return jnp.maximum(p + jnp.sign(rt_estimate - target) * step, 0.0)


def ada_observe(
    state: AdaState, real_logits: jax.Array, *, target: float = 0.6, adjust_kimg: float = 500.0, interval: int = 4
) -> AdaState:
    """Accumulate sign(D(real)) of one D step; every `interval` steps adjust p from their mean and reset the sums."""
    sign_sum = state.sign_sum + jnp.sum(jnp.sign(real_logits.astype(jnp.float32)))
    num_logits = state.num_logits + real_logits.size
    num_steps = state.num_steps + 1
    due = num_steps >= interval
    new_p = ada_update(
        state.p,
        sign_sum / jnp.maximum(num_logits, 1.0),
        target=target,
        batch_size=real_logits.shape[0],
        adjust_kimg=adjust_kimg,
        interval=interval,
    )
    return AdaState(
        p=jnp.where(due, new_p, state.p),
        sign_sum=jnp.where(due, 0.0, sign_sum),
        num_logits=jnp.where(due, 0.0, num_logits),
        num_steps=jnp.where(due, 0, num_steps),
    )
