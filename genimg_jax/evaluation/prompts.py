"""`--mode=sample --prompt=TEXT [--prompt=...] | --prompts=FILE [--per_prompt=K]`: a text-to-image model's samples
for the user's own captions.

Each prompt is encoded with the vocabulary of the run's data (`data.vocabulary_for`, the one training used), cut
to `data.caption_length` tokens; words the vocabulary lacks become the unknown token, which the model learned
nothing about, so each prompt with such words is reported in one line. The K samples of each prompt are drawn in
batches of `eval.batch_size` (the last padded), written to `samples/prompts_step_<step>/<p>_<k>.png` and shown in
`samples/prompts_step_<step>.png`: one row per prompt, its caption under each image.
"""

from __future__ import annotations

import os
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError
from genimg_jax.evaluation import grids
from genimg_jax.evaluation.from_checkpoint import restore_latest
from genimg_jax.evaluation.provenance import image_provenance, save_png
from genimg_jax.training.compiled_run import checkpoint_digest, initial_rngs
from genimg_jax.training.paths import as_path

TEXT_FIELDS = ("tokens", "tokens_mask")


def read_prompts(prompts: list[str] | None, prompts_file: str | None) -> list[str]:
    """The `--prompt` values, then the non-empty lines of `--prompts`; ConfigError if there are none."""
    texts = list(prompts or [])
    if prompts_file:
        path = pathlib.Path(prompts_file)
        if not path.is_file():
            raise ConfigError(f"--prompts={prompts_file} is not a file")
        texts += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not texts:
        raise ConfigError("--prompts names a file without any prompt")
    return texts


def encode_prompts(config: ml_collections.ConfigDict, prompts: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(tokens, tokens_mask) int32 (P, caption_length) of `prompts`, and one warning line per prompt that has
    unknown words or was cut."""
    vocabulary = data.vocabulary_for(config.data)
    length = config.data.caption_length
    encoded = [vocabulary.encode(text, length) for text in prompts]
    warnings = []
    for text in prompts:
        unknown = vocabulary.unknown_words(text)
        if unknown:
            warnings.append(f"prompt {text!r}: words the model never saw: {', '.join(unknown)}")
        if vocabulary.num_tokens(text) > length:
            warnings.append(f"prompt {text!r}: cut to data.caption_length={length} tokens")
    tokens, masks = (np.stack(column) for column in zip(*encoded, strict=True))
    return tokens, masks, warnings


def sample_prompts(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike, prompts: list[str], per_prompt: int
) -> list[epath.Path]:
    """Write `per_prompt` samples of the latest checkpoint for each prompt, and their captioned grid (see the
    module docstring); returns the paths (the grid last), empty on processes other than 0."""
    if per_prompt < 1:
        raise ConfigError(f"--per_prompt={per_prompt} must be at least 1")
    run, state, step = restore_latest(config, workdir)
    fields = run.method.conditioning_fields()
    if tuple(fields) != TEXT_FIELDS:
        raise ConfigError(
            f"--prompt needs a text-to-image method; config.method={config.method!r} conditions on {list(fields)}"
        )
    tokens, masks, warnings = encode_prompts(config, prompts)
    for line in warnings:
        print(line)
    tokens, masks = np.repeat(tokens, per_prompt, axis=0), np.repeat(masks, per_prompt, axis=0)
    batch_size = config.eval.batch_size

    def sample_batch(state, tokens, mask, rng):
        return run.method.sample(state, rng, batch_size, {"tokens": tokens, "tokens_mask": mask})

    sample = jax.jit(parallel.traced_on(run.mesh, sample_batch))
    _, rng = initial_rngs(config)
    images = []
    for start in range(0, len(tokens), batch_size):
        rows = np.minimum(np.arange(start, start + batch_size), len(tokens) - 1)
        drawn = sample(state, jnp.asarray(tokens[rows]), jnp.asarray(masks[rows]), jax.random.fold_in(rng, start))
        images.append(data.from_unit_range(jax.device_get(drawn))[: len(tokens) - start])
    images = np.concatenate(images)
    if jax.process_index() != 0:
        return []
    workdir = as_path(workdir)
    provenance = image_provenance(config, step, config.seed, checkpoint_digest(workdir, step))
    folder = workdir / "samples" / f"prompts_step_{step:07d}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        prompt, k = divmod(index, per_prompt)
        path = folder / f"{prompt:03d}_{k:02d}.png"
        save_png(image[..., 0] if image.shape[-1] == 1 else image, path, {**provenance, "prompt": prompts[prompt]})
        paths.append(path)
    grid = folder.parent / f"prompts_step_{step:07d}.png"
    captions = [text for text in prompts for _ in range(per_prompt)]
    grids.save_captioned_grid(images, captions, grid, {**provenance, "picture": "samples per prompt"}, per_prompt)
    return [*paths, grid]
