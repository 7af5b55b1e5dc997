"""Train the digits feature network on the digits train split and write its weights into the package.

    python -m genimg_jax.tools.train_digits_net [--steps 1500] [--output PATH]

Prints the test-split accuracy. The recipe (metrics/classifier.py) is the one the Classification Accuracy Score
trains its classifiers with; its random shifts of up to 2 pixels keep 1500 training images from being memorised.
Deterministic: same arguments and devices, same weights file.
"""

import argparse
import pathlib

import flax
import numpy as np

from genimg_jax import config, data, parallel
from genimg_jax.metrics import classifier, digits_net


def load_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """All images (uint8 NHWC, 32x32x1) and labels of a digits split."""
    source = data.make_source("digits", split=split, resolution=digits_net.RESOLUTION, channels=digits_net.CHANNELS)
    arrays = data.load_all(source, ("image", "label"))
    return arrays["image"], arrays["label"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--output", type=pathlib.Path, default=digits_net.WEIGHTS_PATH)
    args = parser.parse_args()
    sharding = parallel.batch_sharding(parallel.make_mesh(config.base_config().mesh))
    params = classifier.train_classifier(*load_split("train"), 10, classifier.Recipe(steps=args.steps), sharding)
    for split in ("train", "test"):
        images, labels = load_split(split)
        predictions = classifier.predict(params, images, 10, 64, sharding)
        print(f"{split} accuracy: {classifier.class_accuracies(predictions, labels, 10)[0]:.4f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(flax.serialization.to_bytes(params))
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
