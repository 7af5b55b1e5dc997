"""Sample sets for outside tools: `--mode=generate --num=N --out=DIR` writes N samples of the latest checkpoint
as PNG files (and, with `--npz`, one `.npz` of uint8 images), the same files every time the command runs.

Sample i is drawn from the key `fold_in(PRNGKey(seed), i)` for the conditioning of sample i (conditioning.py:
balanced classes, or the requested ones in turn), one sample per key (the method's `sample` vmapped over the
keys), so a set does not depend on the batch size beyond float rounding, and the first N samples of a larger set
are the set of N. `DIR/000000.png`, ... are 8-bit grayscale or RGB, as pytorch-fid and clean-fid read them, and
carry their provenance (provenance.py) with their index and label, and the invisible watermark of
`config.watermark_key` when 21x21 pixels or larger; `DIR/samples.npz` holds `x` (N, H, W, C) uint8, the same
pixels as the PNGs (marked too: FID of the folder and of the .npz agree), and, for class-conditional methods,
`labels`. Images cross the host one batch at a time, as uint8, and the `.npz` is written as they come
(streamed_npz.py): host memory does not grow with N.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from etils import epath

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError
from genimg_jax.evaluation.conditioning import SampleConditioning
from genimg_jax.evaluation.provenance import image_provenance, save_png, watermarked
from genimg_jax.evaluation.streamed_npz import StreamedNpz
from genimg_jax.training.compiled_run import CompiledRun, checkpoint_digest, compile_run, restore_trained_state
from genimg_jax.training.paths import as_path

NPZ_NAME = "samples.npz"
BALANCED = "balanced"


@dataclasses.dataclass(frozen=True)
class SampleSet:
    """What `generate` wrote."""

    folder: epath.Path
    count: int
    step: int
    npz: epath.Path | None


def requested_classes(config: ml_collections.ConfigDict, labels: str) -> np.ndarray | None:
    """The classes of `--labels` ("balanced", or "0,3,7": sample i of the i mod 3-th), checked against the model."""
    if labels == BALANCED:
        return None
    num_classes = config.model.get("num_classes", 0)
    if not num_classes:
        raise ConfigError(f"--labels={labels}: method {config.method!r} is not class-conditional (model.num_classes=0)")
    try:
        classes = np.array([int(text) for text in labels.split(",")])
    except ValueError:
        raise ConfigError(f"--labels={labels!r} must be '{BALANCED}' or class indices such as 0,3,7") from None
    if np.any(classes < 0) or np.any(classes >= num_classes):
        raise ConfigError(f"--labels={labels}: classes are 0..{num_classes - 1} (model.num_classes={num_classes})")
    return classes


def with_truncation(config: ml_collections.ConfigDict, psi: float | None) -> ml_collections.ConfigDict:
    """`config` sampling with truncation `psi` (None: as configured), for methods that truncate a latent."""
    if psi is None:
        return config
    if "truncation_psi" not in config.get("sample", {}):
        raise ConfigError(
            f"--truncation: method {config.method!r} has no truncation (methods with config.sample.truncation_psi "
            "have: stylegan2)"
        )
    if psi < 0:
        raise ConfigError(f"--truncation={psi} must be >= 0 (1 = none, 0 = the average w)")
    config = config.copy_and_resolve_references()
    config.sample.truncation_psi = psi
    return config


def compile_per_key_sampling(run: CompiledRun) -> Callable[..., jax.Array]:
    """(state, base key, sample indices, their conditioning) -> one sample per index from `fold_in(key, index)`,
    replicated (process 0 writes them)."""
    method = run.method

    def sample(state: Any, key: jax.Array, indices: jax.Array, conditioning: dict[str, jax.Array]) -> jax.Array:
        def one(index: jax.Array, fields: dict[str, jax.Array]) -> jax.Array:
            single = {name: value[None] for name, value in fields.items()}
            return method.sample(state, jax.random.fold_in(key, index), 1, single or None)[0]

        return jax.vmap(one)(indices, conditioning)

    batch, replicated = run.batch_sharding, parallel.replicated(run.mesh)
    return jax.jit(
        parallel.traced_on(run.mesh, sample),
        in_shardings=(run.state_sharding, replicated, batch, batch),
        out_shardings=replicated,
    )


def generate(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    out: str | os.PathLike,
    num: int,
    seed: int | None = None,
    labels: str = BALANCED,
    truncation: float | None = None,
    npz: bool = False,
) -> SampleSet:
    """Write `num` samples of the latest checkpoint of `workdir` to the new or empty folder `out` (see the module
    docstring), in batches of `config.eval.batch_size`; `seed` defaults to `config.seed`."""
    out = as_path(out)
    if num < 1:
        raise ConfigError(f"--num={num} must be positive")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out={out} exists and is not an empty folder; a sample set goes to a new or empty one")
    config = with_truncation(config, truncation)
    classes = requested_classes(config, labels)
    workdir = as_path(workdir)
    run = compile_run(config)
    state, step = restore_trained_state(config, run, workdir)
    seed = config.seed if seed is None else seed
    details = {} if truncation is None else {"truncation_psi": truncation}
    provenance = image_provenance(config, step, seed, checkpoint_digest(workdir, step), **details)
    conditioning = SampleConditioning(config, run.method.conditioning_fields(), classes)
    batch_size, is_main = config.eval.batch_size, jax.process_index() == 0
    sample = compile_per_key_sampling(run)
    key, width = jax.random.PRNGKey(seed), max(6, len(str(num - 1)))
    writer, written_labels = None, []
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    for index, fields in enumerate(conditioning.batches(batch_size, -(-num // batch_size))):
        start = index * batch_size
        indices = np.arange(start, start + batch_size, dtype=np.int32)
        sharded = data.shard_whole_batch({"index": indices, **fields}, run.batch_sharding)
        index_array = sharded.pop("index")
        keep = min(batch_size, num - start)
        images = data.from_unit_range(jax.device_get(sample(state, key, index_array, sharded)))[:keep]
        batch_labels = fields.get("label", np.zeros(0, np.int32))[:keep]
        written_labels.append(batch_labels)
        if not is_main:
            continue
        if npz and writer is None:
            writer = StreamedNpz(out / NPZ_NAME, "x", (num, *images.shape[1:]), np.uint8)
        marked_images = []
        for offset, image in enumerate(images):
            fields_of_image = {"index": str(start + offset)}
            if len(batch_labels):
                fields_of_image["label"] = str(batch_labels[offset])
            marked, fields = watermarked(image, {**provenance, **fields_of_image})
            save_png(marked, out / f"{start + offset:0{width}d}.png", fields)
            marked_images.append(marked)
        if writer:
            writer.append(np.stack(marked_images))  # the .npz holds what the PNGs hold
    if writer:
        labels_array = np.concatenate(written_labels)
        writer.close(**({"labels": labels_array} if len(labels_array) else {}))
    return SampleSet(out, num, step, out / NPZ_NAME if npz else None)
