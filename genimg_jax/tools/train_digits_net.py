"""Train the digits feature network on the digits train split and write its weights into the package.

    python -m genimg_jax.tools.train_digits_net [--steps 1500] [--output PATH]

Prints the test-split accuracy. Augmentation (random shifts of up to 2 pixels) keeps 1500 training images
from being memorised. Deterministic: same arguments, same weights file.
"""

import argparse
import pathlib

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from genimg_jax import data
from genimg_jax.metrics import digits_net


def load_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """All images (uint8 NHWC, 32x32x1) and labels of a digits split."""
    source = data.make_source("digits", split=split, resolution=digits_net.RESOLUTION, channels=digits_net.CHANNELS)
    examples = [source[i] for i in range(len(source))]
    return np.stack([e["image"] for e in examples]), np.array([e["label"] for e in examples])


def random_shift(rng: jax.Array, images: jax.Array, max_shift: int = 2) -> jax.Array:
    """Each image translated by an integer offset in [-max_shift, max_shift]^2, filled with the background (-1)."""
    size = images.shape[1]
    padded = jnp.pad(images, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)), constant_values=-1.0)
    offsets = jax.random.randint(rng, (images.shape[0], 2), 0, 2 * max_shift + 1)
    return jax.vmap(lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (size, size, image.shape[-1])))(
        padded, offsets
    )


def accuracy(params: dict, images: np.ndarray, labels: np.ndarray) -> float:
    logits = digits_net.DigitsNet().apply({"params": params}, data.to_unit_range(images))["logits"]
    return float(np.mean(np.argmax(np.asarray(logits), axis=-1) == labels))


def train(steps: int, batch_size: int = 64, learning_rate: float = 2e-3, seed: int = 0) -> dict:
    images, labels = load_split("train")
    model = digits_net.DigitsNet()
    optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
    params = digits_net.init_params(jax.random.PRNGKey(seed))
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, batch_images, batch_labels, rng):
        def loss_fn(params):
            logits = model.apply({"params": params}, random_shift(rng, data.to_unit_range(batch_images)))["logits"]
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch_labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    order = np.random.default_rng(seed)
    rng = jax.random.PRNGKey(seed + 1)
    for index in range(steps):
        rows = order.choice(len(images), batch_size, replace=False)
        params, opt_state, loss = step(params, opt_state, images[rows], labels[rows], jax.random.fold_in(rng, index))
        if (index + 1) % 250 == 0:
            print(f"step {index + 1}/{steps} loss {float(loss):.4f}", flush=True)
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--output", type=pathlib.Path, default=digits_net.WEIGHTS_PATH)
    args = parser.parse_args()
    params = train(args.steps)
    for split in ("train", "test"):
        print(f"{split} accuracy: {accuracy(params, *load_split(split)):.4f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(flax.serialization.to_bytes(params))
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
