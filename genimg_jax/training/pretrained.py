"""Parts of a method that come from disk (latent diffusion's first-stage autoencoder, text diffusion's pretrained
CLIP text tower), loaded here and handed to the method's constructor: methods do no I/O.

A method class lists the parts it needs in `PRETRAINED` (`methods.pretrained_parts`); each name has one loader
below, which reads the config keys that locate it and fails with one error line naming them.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genimg_jax import data
from genimg_jax.config import ConfigError, require
from genimg_jax.data.text.clip_files import load_text_model
from genimg_jax.methods import build_method, pretrained_parts
from genimg_jax.methods.latent_diffusion import FirstStage
from genimg_jax.models.clip_text import PretrainedTextEncoder, TextTower
from genimg_jax.training.checkpoint import Checkpointer
from genimg_jax.training.paths import as_path
from genimg_jax.training.workdir import read_saved_config

FIRST_STAGE_KEY = "model.first_stage_workdir"
TEXT_TOWER_KEY = "model.text.pretrained"
FIRST_STAGE_METHODS = ("vae", "vqvae")  # the methods whose runs can be a first stage (`latent_diffusion.Autoencoder`)
LATENT_SCALE_EXAMPLES = 1024  # training images whose latents set the scale when model.latent_scale = 0


def _first_stage_error(workdir: str, problem: str) -> ConfigError:
    return ConfigError(f"config.{FIRST_STAGE_KEY}={workdir!r} is invalid: {problem}")


def trained_state(workdir: str, expected_methods: tuple[str, ...]) -> tuple[Any, Any]:
    """(method, train state at the latest checkpoint) of the finished run in `workdir`, whose method must be one of
    `expected_methods`, restored onto this process's first device; problems are ConfigErrors naming
    `FIRST_STAGE_KEY`."""
    runs = " or ".join(repr(name) for name in expected_methods)
    if not workdir:
        raise _first_stage_error(workdir, f"name the workdir of a trained {runs} run (e.g. of configs/vae.py)")
    try:
        saved = read_saved_config(workdir)
    except (FileNotFoundError, ConfigError) as error:
        raise _first_stage_error(workdir, str(error)) from None
    if saved.get("method") not in expected_methods:
        raise _first_stage_error(workdir, f"it is a {saved.get('method')!r} run, not a {runs} run")
    try:
        method = build_method(saved)
    except (ConfigError, AttributeError, KeyError) as error:  # AttributeError: a key this version expects
        raise _first_stage_error(
            workdir, f"its config.json does not fit this version's {saved.method!r} method ({error})"
        ) from None
    checkpoint_dir = as_path(workdir) / "checkpoints"
    if not checkpoint_dir.is_dir():  # checked first: the checkpointer would create it
        raise _first_stage_error(workdir, f"{checkpoint_dir} does not exist; train the first stage first")
    checkpointer = Checkpointer(checkpoint_dir, keep=saved.train.keep_checkpoints, every=0)
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise _first_stage_error(workdir, f"{checkpoint_dir} holds no checkpoint; train the first stage first")
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        abstract_state = jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
            jax.eval_shape(method.init_state, jax.random.PRNGKey(0), data.example_batch(saved.data, 1)),
        )
        state, _ = checkpointer.restore(step, abstract_state)
    finally:
        checkpointer.close()
    return method, state


def load_first_stage(config: ml_collections.ConfigDict) -> FirstStage:
    """The autoencoder of `model.first_stage_workdir`, with `model.latent_scale` or, if 0, 1 / std of the latents
    of the first `LATENT_SCALE_EXAMPLES` training images (the scale factor of Rombach et al.)."""
    scale = config.model.latent_scale
    require(scale >= 0, "model.latent_scale", scale, "must be >= 0 (0 = measure)")
    autoencoder, state = trained_state(str(config.model.first_stage_workdir), FIRST_STAGE_METHODS)
    params = autoencoder.latent_params(state)
    if not scale:
        source = data.source_from_config(config.data, config.data.train_split)
        count = min(len(source), LATENT_SCALE_EXAMPLES)
        images = np.stack([source[index]["image"] for index in range(count)])
        scale = float(1.0 / jnp.std(autoencoder.encode_latents(params, jnp.asarray(images))))
    return FirstStage(autoencoder=autoencoder, params=params, latent_scale=scale)


def load_text_tower(config: ml_collections.ConfigDict) -> TextTower:
    """The frozen CLIP text tower of `model.text.pretrained`, its null caption the empty string encoded by the
    captions' tokenizer (`data.tokenizer`, the same directory) at `data.caption_length`."""
    path, length = str(config.model.text.pretrained), config.data.caption_length
    model, params = load_text_model(path, TEXT_TOWER_KEY)
    positions = model.config.max_position_embeddings
    if length > positions:
        raise ConfigError(f"config.data.caption_length={length} is invalid: {path} reads at most {positions} tokens")
    null = data.vocabulary_for(config.data).encode("", length)
    return TextTower(PretrainedTextEncoder(model.module), {"tower": jax.tree.map(jnp.asarray, params)}, *null)


LOADERS: dict[str, Callable[[ml_collections.ConfigDict], Any]] = {
    "first_stage": load_first_stage,
    "text_tower": load_text_tower,
}


def load_pretrained(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """{part name: loaded part} for every part `config.method` needs (`methods.pretrained_parts`)."""
    return {name: LOADERS[name](config) for name in pretrained_parts(config)}
