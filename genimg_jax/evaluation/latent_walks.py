"""Latent walks (animated GIFs) and truncation sweeps (PNG strips) from a trained run's latest checkpoint.

A walk draws K keyframe latents from a seed and renders F frames evenly spaced along the path through them:
slerp between a GAN's z or a diffusion model's initial noise (Shoemake; White 2016; DDIM, Song et al. 2021, sec.
5.3, interpolates its initial noise this way), or straight lines between StyleGAN2's w (`space="w"`), the path
its mapping network makes meaningful. Sampling is made a function of the latent alone (`deterministic_sampling`),
so that neighbouring frames differ only by their latents. A truncation sweep draws `rows` latents and renders each
at every psi in turn (StyleGAN2's truncation trick), one row per latent.

GIF frames hold 256 colours: gray images are stored exactly, RGB ones through Pillow's palette quantization, and
Pillow stores identical consecutive frames once, adding up their durations, so the played walk is unchanged.
A GIF has no text chunks: its provenance (provenance.py) is its comment, as JSON; it carries no watermark (the
palette would not keep it). A truncation sweep is a PNG like every other, provenance and watermark included.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError
from genimg_jax.evaluation.from_checkpoint import restore_latest
from genimg_jax.evaluation.grids import DISPLAY_SIZE, save_grid
from genimg_jax.evaluation.provenance import WATERMARK_KEY_FIELD, image_provenance
from genimg_jax.models.interpolation import keyframe_walk, lerp, slerp
from genimg_jax.training.compiled_run import CompiledRun, checkpoint_digest
from genimg_jax.training.paths import as_path

SPACES = ("z", "w")
SAMPLER_STREAM = 0x57A1C  # the key of any other randomness of sampling, beside the seed's keyframes


def deterministic_sampling(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` whose samples are a function of their latents: a diffusion run's stochastic sampler (DDPM,
    or DDIM with eta > 0) becomes deterministic DDIM (eta = 0; Heun is left as it is), StyleGAN2's per-sample noise
    its constant noise maps."""
    config = copy.deepcopy(config)
    sample = config.get("sample", ml_collections.ConfigDict())
    if sample.get("sampler") == "ddpm" or (sample.get("sampler") == "ddim" and sample.eta):
        sample.sampler, sample.eta = "ddim", 0.0
    if "noise_mode" in sample:
        sample.noise_mode = "const"
    return config


def _check_method(run: CompiledRun, config: ml_collections.ConfigDict) -> None:
    if not hasattr(run.method, "sample_latents"):
        raise ConfigError(f"method {config.method!r} draws no samples from latents: it has no latent walk")
    extra = set(run.method.conditioning_fields()) - {"label"}
    if extra:
        raise ConfigError(f"method {config.method!r} is conditioned on {sorted(extra)}: walks condition on labels only")


def _labels(run: CompiledRun, label: int, num: int) -> dict[str, jax.Array] | None:
    """Every image of a class-conditional model drawn for class `label`; None for unconditional models."""
    return {"label": jnp.full((num,), label, jnp.int32)} if run.method.conditioning_fields() else None


def _render(run: CompiledRun, state: Any, draw: Callable, inputs: jax.Array, batch_size: int) -> np.ndarray:
    """uint8 images of `draw(state, batch)` over the first axis of `inputs`, in batches of `batch_size` (the last
    padded with copies of its last row), so that one compiled shape serves every batch."""
    jitted = jax.jit(parallel.traced_on(run.mesh, draw), out_shardings=parallel.replicated(run.mesh))
    images = []
    for start in range(0, inputs.shape[0], batch_size):
        batch = inputs[start : start + batch_size]
        count = batch.shape[0]
        padded = jnp.concatenate([batch, jnp.repeat(batch[-1:], batch_size - count, axis=0)])
        images.append(data.from_unit_range(jax.device_get(jitted(state, padded)))[:count])
    return np.concatenate(images)


def walk_frames(
    run: CompiledRun,
    config: ml_collections.ConfigDict,
    state: Any,
    frames: int,
    keyframes: int,
    space: str = "z",
    seed: int = 0,
    label: int = 0,
) -> np.ndarray:
    """uint8 frames (F, H, W, C) of a walk through `keyframes` latents drawn from `seed` (see the module docstring).

    `run` was compiled from a `deterministic_sampling` config; `label` is the class of a class-conditional model.
    """
    _check_method(run, config)
    if space not in SPACES:
        raise ConfigError(f"--space={space!r}: choose one of {SPACES}")
    method, batch_size = run.method, config.eval.batch_size
    keys = jax.random.normal(jax.random.PRNGKey(seed), (keyframes, *method.latent_shape()))
    rng = jax.random.fold_in(jax.random.PRNGKey(seed), SAMPLER_STREAM)
    conditioning = _labels(run, label, batch_size)
    if space == "z":
        path = keyframe_walk(keys, frames, slerp)
        return _render(run, state, lambda s, z: method.sample_latents(s, z, rng, conditioning), path, batch_size)
    if not hasattr(method, "map_latents"):
        raise ConfigError(f"--space=w needs a mapping network (stylegan2); method {config.method!r} has none")
    map_keys = jax.jit(parallel.traced_on(run.mesh, lambda s, z: method.map_latents(s, z, _labels(run, label, len(z)))))
    path = keyframe_walk(map_keys(state, keys), frames, lerp)
    return _render(run, state, lambda s, w: method.synthesize_styles(s, w, rng), path, batch_size)


def enlarged(images: np.ndarray) -> np.ndarray:
    """Each pixel of uint8 NHWC `images` repeated so that an image is about `DISPLAY_SIZE` wide (at least once)."""
    scale = max(1, DISPLAY_SIZE // images.shape[2])
    return images.repeat(scale, axis=1).repeat(scale, axis=2)


def write_gif(frames: np.ndarray, path: str | os.PathLike, frame_ms: int, provenance: Mapping[str, str]) -> epath.Path:
    """uint8 frames (F, H, W, C) as a looping GIF, each pixel enlarged (`enlarged`), `frame_ms` per frame, with
    `provenance` (less the watermark key) as its JSON comment."""
    path = as_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = enlarged(frames)
    fields = {name: value for name, value in provenance.items() if name != WATERMARK_KEY_FIELD}
    with path.open("wb") as file:  # local or gs:// (training/paths.py)
        iio.imwrite(
            file,
            pixels[..., 0] if pixels.shape[-1] == 1 else pixels,
            extension=".gif",
            duration=frame_ms,
            loop=0,
            comment=json.dumps(fields).encode(),
        )
    return path


def truncation_strip(
    run: CompiledRun,
    config: ml_collections.ConfigDict,
    state: Any,
    psis: Sequence[float],
    rows: int,
    seed: int = 0,
    label: int = 0,
) -> np.ndarray:
    """uint8 images (rows * len(psis), H, W, C): `rows` latents from `seed`, each rendered at every psi in turn."""
    _check_method(run, config)
    if "truncation_psi" not in config.get("sample", ml_collections.ConfigDict()):
        raise ConfigError(f"a truncation sweep needs truncation (stylegan2); method {config.method!r} has none")
    method = run.method
    latents = jax.random.normal(jax.random.PRNGKey(seed), (rows, *method.latent_shape()))
    rng = jax.random.fold_in(jax.random.PRNGKey(seed), SAMPLER_STREAM)
    conditioning = _labels(run, label, rows)

    def draw(state: Any, z: jax.Array, psi: jax.Array) -> jax.Array:
        return method.sample_latents(state, z, rng, conditioning, truncation_psi=psi)

    jitted = jax.jit(parallel.traced_on(run.mesh, draw), out_shardings=parallel.replicated(run.mesh))
    columns = [data.from_unit_range(jax.device_get(jitted(state, latents, jnp.float32(psi)))) for psi in psis]
    return np.stack(columns, axis=1).reshape(rows * len(psis), *columns[0].shape[1:])


def latent_walk(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    out: str | os.PathLike,
    frames: int,
    keyframes: int,
    space: str = "z",
    seed: int = 0,
    label: int = 0,
    frame_ms: int = 80,
) -> tuple[epath.Path, np.ndarray, int]:
    """Write the walk of `walk_frames` from the latest checkpoint of `workdir` as a GIF; (path, frames, step)."""
    if frames < 2 or keyframes < 2:
        raise ConfigError(f"--frames={frames} and --keyframes={keyframes} must both be at least 2")
    run, state, step = restore_latest(deterministic_sampling(config), workdir)
    images = walk_frames(run, run.method.config, state, frames, keyframes, space, seed, label)
    details = {"walk": f"{frames} frames through {keyframes} keyframes in {space}", "label": label}
    provenance = image_provenance(config, step, seed, checkpoint_digest(workdir, step), **details)
    return write_gif(images, out, frame_ms, provenance), images, step


def truncation_sweep(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    out: str | os.PathLike,
    psis: Sequence[float],
    rows: int,
    seed: int = 0,
    label: int = 0,
) -> tuple[epath.Path, np.ndarray, int]:
    """Write `truncation_strip` from the latest checkpoint of `workdir` as a PNG grid with one column per psi;
    (path, images, step)."""
    if not psis or rows < 1:
        raise ConfigError(f"a truncation sweep needs psi values and at least one row (got {list(psis)}, {rows})")
    run, state, step = restore_latest(deterministic_sampling(config), workdir)
    images = truncation_strip(run, run.method.config, state, psis, rows, seed, label)
    path = as_path(out)
    details = {"truncation_psi": ",".join(f"{psi:g}" for psi in psis), "label": label}
    provenance = image_provenance(config, step, seed, checkpoint_digest(workdir, step), **details)
    save_grid(images, path, provenance, columns=len(psis))
    return path, images, step
