"""Pretrained CLIP (Radford et al. 2021) read from a local Hugging Face directory with `transformers`' Flax classes.

A directory is what `save_pretrained` writes (or a download of e.g. openai/clip-vit-base-patch32): config.json,
Flax weights (flax_model.msgpack), the tokenizer's files and, for the image tower, preprocessor_config.json.
Nothing is downloaded (`local_files_only`). `transformers` is imported only here, when a directory is used, so the
rest of the project never needs it (the `text` extra installs it). Every problem is one DataError line naming the
config key that gave the directory.
"""

import functools
import importlib
import pathlib
from typing import Any

import jax
import numpy as np
from flax import traverse_util

from genimg_jax.data.errors import DataError

FLAX_WEIGHTS = "flax_model.msgpack"


def transformers_module() -> Any:
    """The `transformers` package, its warnings silenced; a DataError naming the extra if it is missing."""
    try:
        transformers = importlib.import_module("transformers")
    except ImportError:
        message = "a pretrained CLIP directory needs Hugging Face transformers: pip install -e '.[text]'"
        raise DataError(message) from None
    transformers.logging.set_verbosity_error()  # e.g. the unused image-tower weights when loading the text tower
    return transformers


def _directory(path: str, key: str, weights: bool) -> pathlib.Path:
    """`path` if it is a directory with config.json (and Flax weights if `weights`); else a DataError."""
    directory = pathlib.Path(path).expanduser()
    if not path:
        problem = "name a local Hugging Face CLIP directory (config.json, flax_model.msgpack, tokenizer files)"
    elif not directory.is_dir():
        problem = f"{directory} is not a directory"
    elif not (directory / "config.json").is_file():
        problem = f"{directory} has no config.json (write one there with save_pretrained)"
    elif weights and not (directory / FLAX_WEIGHTS).is_file():
        problem = f"{directory} has no Flax weights {FLAX_WEIGHTS} (PyTorch-only checkpoints are not read)"
    else:
        return directory
    raise DataError(f"config.{key}={path!r} is invalid: {problem}")


def _loaded(load: Any, directory: pathlib.Path, key: str, what: str, **options: Any) -> Any:
    """`load(directory, local_files_only=True, **options)`, any failure as one DataError line."""
    try:
        return load(directory, local_files_only=True, **options)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"config.{key}={str(directory)!r}: cannot load its {what}: {message}") from None


def _model(cls: Any, directory: pathlib.Path, key: str, what: str) -> tuple[Any, dict]:
    """(model, params) of `cls` from `directory`'s weights, without the random initialisation `from_pretrained`
    otherwise runs first; weights that do not cover the model's parameters are a DataError."""
    model, params = _loaded(cls.from_pretrained, directory, key, what, _do_init=False)
    expected = jax.eval_shape(lambda rng: model.init_weights(rng, model.input_shape), jax.random.PRNGKey(0))
    shapes = {name: leaf.shape for name, leaf in traverse_util.flatten_dict(expected).items()}
    loaded = {name: np.shape(leaf) for name, leaf in traverse_util.flatten_dict(params).items()}
    wrong = sorted(name for name, shape in shapes.items() if loaded.get(name) != shape)
    if wrong:
        problem = f"{len(wrong)} of its {len(shapes)} weights missing or misshapen, e.g. {'/'.join(wrong[0])}"
        raise DataError(f"config.{key}={str(directory)!r}: cannot load its {what}: {problem}")
    return model, params


@functools.cache
def load_tokenizer(path: str, key: str) -> Any:
    """The tokenizer (CLIP's BPE, special tokens and padding) saved in the directory `path`."""
    transformers = transformers_module()
    return _loaded(transformers.AutoTokenizer.from_pretrained, _directory(path, key, False), key, "tokenizer")


def load_text_model(path: str, key: str) -> tuple[Any, dict]:
    """(FlaxCLIPTextModel, its params) of the directory `path`: a full CLIP model's text tower or a text model
    alone."""
    transformers = transformers_module()
    return _model(transformers.FlaxCLIPTextModel, _directory(path, key, True), key, "CLIP text tower")


@functools.cache
def load_clip(path: str, key: str) -> tuple[Any, dict, Any]:
    """(FlaxCLIPModel, its params, CLIPImageProcessor) of the full CLIP directory `path`."""
    transformers = transformers_module()
    directory = _directory(path, key, True)
    model, params = _model(transformers.FlaxCLIPModel, directory, key, "CLIP model")
    processor = _loaded(transformers.CLIPImageProcessor.from_pretrained, directory, key, "image preprocessing")
    return model, params, processor
