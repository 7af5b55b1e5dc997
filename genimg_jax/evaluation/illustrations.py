"""Pictures a method draws beside its samples (reconstructions, interpolations, DRAW canvases), as PNG grids.

A method may define `illustrations(state, batch, rng) -> {name: images in [-1, 1]}`; `batch` is a fixed batch of
the eval split, so pictures from different steps show the same examples. An entry is NHWC (tiled as a square) or
(rows, columns, H, W, C) (tiled keeping its rows, e.g. one interpolation per row).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
from etils import epath

from genimg_jax import data, parallel
from genimg_jax.evaluation.grids import save_grid
from genimg_jax.training.compiled_run import CompiledRun


def fixed_batch(source: data.ImageSource, count: int) -> dict[str, np.ndarray]:
    """Every field of the first `count` examples of `source` (all of them if it has fewer), the same on every
    process."""
    examples = [source[index] for index in range(min(count, len(source)))]
    return {name: np.stack([example[name] for example in examples]) for name in source.fields}


def compile_illustrations(
    run: CompiledRun, config: ml_collections.ConfigDict, source: data.ImageSource, rng: jax.Array
) -> Callable[[Any], dict[str, np.ndarray]]:
    """state -> {name: uint8 images} on a fixed batch of `config.train.num_sample_images` examples of `source`,
    jit-compiled once. `run`'s method has `illustrations`."""
    replicated = parallel.replicated(run.mesh)
    batch = {
        key: jax.make_array_from_process_local_data(replicated, value, value.shape)
        for key, value in fixed_batch(source, config.train.num_sample_images).items()
    }
    illustrate = jax.jit(
        run.method.illustrations, in_shardings=(run.state_sharding, replicated, replicated), out_shardings=replicated
    )

    def draw(state: Any) -> dict[str, np.ndarray]:
        pictures = jax.device_get(illustrate(state, batch, rng))
        return {name: data.from_unit_range(images) for name, images in pictures.items()}

    return draw


def write_illustrations(
    pictures: dict[str, np.ndarray], step: int, directory: epath.Path, provenance: Mapping[str, str]
) -> list[epath.Path]:
    """Write each uint8 picture as `directory/<name>_step_<step>.png` with `provenance`; returns the paths."""
    paths = []
    for name, images in pictures.items():
        columns = images.shape[1] if images.ndim == 5 else None
        path = directory / f"{name}_step_{step:07d}.png"
        save_grid(images.reshape(-1, *images.shape[-3:]), path, {**provenance, "picture": name}, columns=columns)
        paths.append(path)
    return paths
