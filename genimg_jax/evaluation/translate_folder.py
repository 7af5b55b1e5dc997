"""`--mode=translate --input=DIR --out=DIR`: a trained image-to-image model applied to the user's own images.

Every image under DIR (any folder layout the `folder:` source reads) is fitted to the size of the model's
`source` field (the low-resolution side for super-resolution), translated by the latest checkpoint in batches of
`eval.batch_size`, and written to OUT under its own relative path (as .png, with provenance); `OUT/pairs.png`
shows each input beside its output.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError
from genimg_jax.data.folder_source import FolderSource
from genimg_jax.evaluation import grids
from genimg_jax.evaluation.from_checkpoint import restore_latest
from genimg_jax.evaluation.provenance import image_provenance, save_png
from genimg_jax.training.compiled_run import checkpoint_digest, initial_rngs
from genimg_jax.training.paths import as_path


def translate_folder(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike, input_dir: str, out_dir: str
) -> list[epath.Path]:
    """Translate every image under `input_dir` into `out_dir` (see the module docstring); returns the paths."""
    out = as_path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out={out_dir} must be a new or empty folder")
    run, state, step = restore_latest(config, workdir)
    if run.method.conditioning_fields() != ("source",):
        raise ConfigError(
            f"--mode=translate needs a method that translates a source image alone; config.method="
            f"{config.method!r} conditions on {list(run.method.conditioning_fields())}"
        )
    height, width, channels = data.fields_from_config(config.data)["source"].shape
    if height != width:
        raise ConfigError(f"--mode=translate fits images to a square source field, not {height}x{width}")
    images = FolderSource(
        input_dir, "all", height, channels, config.data.bad_images, config.data.small_images, checked=True
    )
    batch_size = config.eval.batch_size

    def translate_batch(state, source, rng):
        return run.method.sample(state, rng, batch_size, {"source": source})

    translate = jax.jit(parallel.traced_on(run.mesh, translate_batch))
    _, rng = initial_rngs(config)
    provenance = image_provenance(config, step, config.seed, checkpoint_digest(as_path(workdir), step))
    inputs, outputs = [], []
    for start in range(0, len(images), batch_size):
        count = min(batch_size, len(images) - start)
        batch = np.zeros((batch_size, height, width, channels), np.uint8)
        batch[:count] = [images[start + i]["image"] for i in range(count)]
        translated = translate(state, jnp.asarray(batch), jax.random.fold_in(rng, start))
        inputs.append(batch[:count])
        outputs.append(data.from_unit_range(jax.device_get(translated))[:count])
    inputs, outputs = np.concatenate(inputs), np.concatenate(outputs)
    if jax.process_index() != 0:
        return []
    paths = []
    for relative, image in zip(images.files, outputs, strict=True):
        path = out / relative.with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(image[..., 0] if image.shape[-1] == 1 else image, path, {**provenance, "input": str(relative)})
        paths.append(path)
    pairs = out / "pairs.png"
    grids.save_grid(_side_by_side(inputs, outputs), pairs, {**provenance, "picture": "input | output"}, columns=2)
    return [*paths, pairs]


def _side_by_side(inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """(input, output) image pairs interleaved for a 2-column grid; inputs upsampled (nearest) to the outputs'
    size and given their channels."""
    scale = outputs.shape[1] // inputs.shape[1]
    inputs = inputs.repeat(scale, axis=1).repeat(scale, axis=2)
    channels = max(inputs.shape[-1], outputs.shape[-1])
    inputs, outputs = (np.broadcast_to(x, (*x.shape[:-1], channels)) for x in (inputs, outputs))
    return np.stack([inputs, outputs], axis=1).reshape(-1, *outputs.shape[1:])
