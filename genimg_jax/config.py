"""Experiment configs: loading `configs/*.py`, command-line overrides, and one clear error per mistake.

ml_collections' own flag machinery reports a typo in an override as a traceback (or, for a missing file, not at
all), so overrides are applied here: every key must already exist in the config, values are parsed to the type of
the field they replace, and a typo names the closest existing keys.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import importlib.util
import pathlib
import types
from collections.abc import Collection, Iterable
from typing import Any

import ml_collections

# The data section of every CIFAR-10 paper setup (prepared offline as a tfds dataset; see the README).
CIFAR10_DATA = {"source": "tfds:cifar10", "resolution": 32, "channels": 3}
# The CIFAR-10 papers' evaluation: Inception (pytorch-fid's weights file, `eval.inception_weights`) features and
# logits of 50k samples against the 50k train images, FID and IS (Heusel et al.; Ho et al. and Karras et al. use
# the train split too). A run that sets it fails at start-up, in one line, if the weights file is not given.
# Inputs reach 299x299 as pytorch-fid resizes them, not as the TF1 graph behind the published numbers does (see
# the README's evaluation section), one of the two differences left in the protocol.
CIFAR10_EVAL = {"metrics": "fid,is", "feature_net": "inception", "num_samples": 50_000, "reference_split": "train"}


class ConfigError(ValueError):
    """A config file, key or value that cannot be used; the message names which and where."""


def load_python_file(path_text: str, kind: str) -> types.ModuleType:
    """Run the python file at `path_text` (a `kind` file: config, study) as a module of its own, outside the
    package; a missing file is a ConfigError naming it."""
    path = pathlib.Path(path_text)
    if not path.is_file():
        raise ConfigError(f"{kind} file {path_text!r} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"_genimg_{kind}_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Load `path/to/config.py` or `path/to/config.py:ARG` by calling its `get_config()` (or `get_config(ARG)`)."""
    path_text, _, arg = spec.partition(":")
    module = load_python_file(path_text, "config")
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path_text!r} defines no get_config()")
    config = module.get_config(arg) if arg else module.get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"get_config() in {path_text!r} returned {type(config).__name__}, not a ConfigDict")
    return config


def flat_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """All leaf keys of `config` as dotted paths, e.g. `train.steps`."""
    keys = []
    for name, value in config.items():
        path = f"{prefix}{name}"
        if isinstance(value, ml_collections.ConfigDict):
            keys.extend(flat_keys(value, f"{path}."))
        else:
            keys.append(path)
    return keys


def check_variant(variant: str, variants: Collection[str]) -> None:
    """Raise a ConfigError unless `variant` (the `:ARG` of `--config=configs/X.py:ARG`) is one of `variants`."""
    if variant not in variants:
        raise ConfigError(f"config variant {variant!r} is unknown; choose one of {list(variants)}")


# Keys that moved to another place, as {old dotted key: patterns of its replacements}; a pattern's `*` stands for
# the network of an `optim.<net>` section. An override of an old key names those replacements the config has.
_ADAM_KEYS = ("learning_rate", "b1", "b2", "eps", "weight_decay", "grad_clip_norm", "warmup_steps", "decay_steps")
MOVED_KEYS: dict[str, tuple[str, ...]] = {
    "model.augment": ("augment.mode", "augment.policy"),
    "model.ada_target": ("augment.target",),
    "model.ada_interval": ("augment.interval",),
    "model.ada_kimg": ("augment.adjust_kimg",),
    "model.ada_ops": ("augment.ops",),
    "model.loss": ("loss.adversarial",),
    "model.penalty": ("loss.penalty",),
    "model.penalty_weight": ("loss.penalty_weight",),
    "model.penalty_interval": ("loss.penalty_interval",),
    **{f"optim.{key}": (f"optim.*.{key}",) for key in _ADAM_KEYS},
}


def _moved_key_error(config: ml_collections.ConfigDict, dotted: str) -> ConfigError | None:
    patterns = MOVED_KEYS.get(dotted, ())
    keys = flat_keys(config)
    replacements = [key for pattern in patterns for key in keys if fnmatch.fnmatchcase(key, pattern)]
    if not replacements:
        return None
    return ConfigError(f"config.{dotted} was moved: use {', '.join('config.' + key for key in replacements)}")


def _unknown_key_error(config: ml_collections.ConfigDict, dotted: str, missing: str) -> ConfigError:
    """The error for override key `dotted`, of which `missing` (its first missing section, or itself) is absent."""
    moved = _moved_key_error(config, dotted)
    if moved is not None:
        return moved
    close = difflib.get_close_matches(missing, flat_keys(config), n=3, cutoff=0.8)
    hint = f"; did you mean {', '.join('config.' + c for c in close)}?" if close else ""
    return ConfigError(f"unknown config key config.{missing}{hint}")


def _parse_value(text: str, current: Any, field_type: type | None, dotted: str) -> Any:
    """Parse a command-line string into the type of the field it overrides."""
    target = field_type if field_type is not None else type(current)
    try:
        if target is bool:
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError("expected true or false")
            return lowered in ("true", "1")
        if target is int:
            return int(text)
        if target is float:
            return float(text)
        if target is str:
            return text
        if target in (tuple, list):
            parsed = ast.literal_eval(text)
            if not isinstance(parsed, tuple | list):
                parsed = (parsed,)
            return target(parsed)
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as error:
        name = getattr(target, "__name__", str(target))
        raise ConfigError(f"config.{dotted}={text!r} is not a valid {name}: {error}") from None


def apply_overrides(config: ml_collections.ConfigDict, overrides: Iterable[str]) -> ml_collections.ConfigDict:
    """Apply `a.b=value` overrides in place; each key must already exist in the config."""
    for override in overrides:
        dotted, sep, text = override.partition("=")
        if not sep:
            raise ConfigError(f"override {override!r} must look like config.KEY=VALUE")
        *parents, leaf = dotted.split(".")
        node = config
        for depth, name in enumerate(parents):
            if name not in node or not isinstance(node[name], ml_collections.ConfigDict):
                raise _unknown_key_error(config, dotted, ".".join([*parents[: depth + 1], leaf]))
            node = node[name]
        if leaf not in node:
            raise _unknown_key_error(config, dotted, dotted)
        if isinstance(node[leaf], ml_collections.ConfigDict):
            raise ConfigError(f"config.{dotted} is a section; override one of its keys instead")
        node[leaf] = _parse_value(text, node[leaf], node.get_type(leaf), dotted)
    return config


def require(condition: bool, key: str, value: Any, expectation: str) -> None:
    """Raise a ConfigError naming `config.<key>` unless `condition` holds."""
    if not condition:
        raise ConfigError(f"config.{key}={value!r} is invalid: {expectation}")


def require_choice(config: ml_collections.ConfigDict, key: str, choices: Iterable[str]) -> None:
    """Raise a ConfigError unless the value at dotted `key` is one of `choices`."""
    value = config
    for name in key.split("."):
        value = value[name]
    choices = sorted(choices)
    require(value in choices, key, value, f"choose one of {choices}")


def validate_common(config: ml_collections.ConfigDict) -> None:
    """Checks every method shares; each method validates its own `model` section."""
    for section in ("data", "model", "optim", "train", "eval", "mesh"):
        if section not in config:
            raise ConfigError(f"config has no section config.{section}")
    train, data = config.train, config.data
    require(train.steps > 0, "train.steps", train.steps, "must be positive")
    require(train.batch_size > 0, "train.batch_size", train.batch_size, "must be positive")
    require(train.microbatch >= 0, "train.microbatch", train.microbatch, "must be >= 0 (0 = no accumulation)")
    for key in ("log_every", "sample_every", "checkpoint_every"):
        require(train[key] >= 0, f"train.{key}", train[key], "must be >= 0 (0 disables)")
    require(train.keep_checkpoints > 0, "train.keep_checkpoints", train.keep_checkpoints, "must be positive")
    require(data.channels in (1, 3), "data.channels", data.channels, "must be 1 or 3")
    resolution = data.resolution
    require(
        resolution >= 8 and resolution & (resolution - 1) == 0,
        "data.resolution",
        resolution,
        "must be a power of two >= 8",
    )
    require_choice(config, "data.bad_images", ("error", "skip"))
    require_choice(config, "data.small_images", ("upscale", "skip"))
    require_choice(config, "data.direction", ("AtoB", "BtoA"))
    require(data.read_threads >= 0, "data.read_threads", data.read_threads, "must be >= 0 (0 = from the CPU count)")
    require(data.num_workers >= 0, "data.num_workers", data.num_workers, "must be >= 0 (0 = no worker processes)")
    require(data.caption_length > 0, "data.caption_length", data.caption_length, "must be positive")
    require(data.vocabulary_size >= 4, "data.vocabulary_size", data.vocabulary_size, "must be >= 4 (special ids)")
    require(
        not (data.degradation and data.unpaired_source),
        "data.unpaired_source",
        data.unpaired_source,
        f"both it and config.data.degradation={data.degradation!r} make the field 'source'; set one of them",
    )
    require_choice(config, "train.nonfinite", ("stop", "skip"))
    require(config.eval.every >= 0, "eval.every", config.eval.every, "must be >= 0 (0 disables)")


def base_config() -> ml_collections.ConfigDict:
    """Sections every experiment shares, with defaults; `configs/*.py` start from this and fill in the method.

    Every key an experiment may override must exist here or in the experiment file: overrides cannot add keys.
    """
    config = ml_collections.ConfigDict()
    config.method = ""
    config.seed = 0
    # Every PNG the project writes carries an invisible mark of this key ('' = none): evaluation/watermark.py;
    # `python -m genimg_jax.tools.detect FILE` checks it.
    config.watermark_key = "genimg_jax"
    config.data = ml_collections.ConfigDict(
        {
            # digits | faces | tfds:NAME[:SPLIT] | folder:PATH | npz:PATH | folder_pairs:PATH | ct:sparse:ANGLES |
            # ct:lowdose:PHOTONS | tfds_pairs:NAME:SOURCE_FEATURE:TARGET_FEATURE[:SPLIT] | captioned: digits_captions |
            # digit_scenes:SIZE[:train=N][:test=N][:held_out] | folder_captions:PATH |
            # tfds_captions:NAME:IMAGE_FEATURE:TEXT_FEATURE[:SPLIT] (README, data sources)
            "source": "digits",
            # adds field `source` (and `mask`) to each example, fixed per example: downsample:K |
            # noise:gaussian:SIGMA | noise:poisson:PEAK | mask:box | mask:free_form | mask:half | gray | edges |
            # sketch ('' = off); see genimg_jax/data/degradations.py
            "degradation": "",
            # unpaired domains (CycleGAN): a second source spec whose images become field `source` ('' = off)
            "unpaired_source": "",
            # AtoB: field `source` = folder_pairs' A or the degraded image, `image` = B or the clean one | BtoA: swapped
            "direction": "AtoB",
            "data_dir": "",  # tensorflow-datasets data directory ('' = tfds default)
            "train_split": "train",
            "eval_split": "test",
            "resolution": 32,
            "channels": 1,
            "random_flip": False,
            "bad_images": "error",  # undecodable image files in a folder source: error | skip (counted warning)
            "small_images": "upscale",  # images smaller than the resolution: upscale | skip (counted warning)
            # threads reading (decoding, fitting) the examples of each training batch in every process; the batches
            # are the same for any count (0 = min(8, CPU cores)); measured: experiments/records/input_throughput.md
            "read_threads": 0,
            # worker processes making training batches in every process (grain; same batches; 0 = none), for hosts
            # with more cores than one interpreter's threads keep busy
            "num_workers": 0,
            "caption_length": 16,  # tokens per caption of a captioned source (BOS and EOS included)
            "vocabulary_size": 5000,  # most ids of a vocabulary built from a dataset's captions
            # captions tokenized by the tokenizer in this local Hugging Face directory (e.g. a CLIP model's, for
            # text_diffusion's model.text.pretrained) instead of the word vocabulary ('' = the word vocabulary)
            "tokenizer": "",
        }
    )
    config.model = ml_collections.ConfigDict()
    config.optim = ml_collections.ConfigDict()
    config.train = ml_collections.ConfigDict(
        {
            "steps": 1000,
            "batch_size": 64,  # global, over all devices and processes
            # examples per device per gradient pass (gradient accumulation, as EDM's batch_gpu; 0 = the device's whole
            # share at once): see genimg_jax/methods/microbatching.py; only methods with MICROBATCHING accept it
            "microbatch": 0,
            # compare XLA's memory estimate of the compiled step with the device's memory before the first step, and
            # stop with one line if it cannot fit (training/memory_check.py)
            "memory_check": True,
            "log_every": 50,
            # TensorBoard events in <workdir>/tensorboard, written by TensorFlow's file system (training/reporting.py)
            "tensorboard": True,
            "sample_every": 250,
            "num_sample_images": 64,
            "checkpoint_every": 500,
            "keep_checkpoints": 3,
            "nonfinite": "stop",  # a NaN/Inf in a step's metrics or new state: stop | skip (the update, counted)
        }
    )
    config.eval = ml_collections.ConfigDict(
        {
            "every": 0,
            "batch_size": 256,
            # Sample metrics (genimg_jax/evaluation/samples.py), any of fid,kid,is,pr,label_accuracy,cas,
            # caption_agreement,r_precision,clip_score,psnr,ssim,lpips ('' = none, the default; fid..label_accuracy
            # need a feature net that suits the data), from `num_samples` generated images against
            # `reference_split`; cas (class-conditional methods) draws as many as data.train_split holds;
            # caption_agreement, r_precision and clip_score (text-to-image methods) draw for the captions of
            # data.eval_split; psnr, ssim and lpips (image-to-image
            # methods) compare the method's output for each example of data.eval_split with its target
            # (evaluation/restoration.py).
            "metrics": "",
            "num_samples": 2000,
            "reference_split": "train",
            # FID against the mean and covariance in this .npz (pytorch-fid's `mu`/`sigma`; tools.fid_stats writes
            # one) instead of features of `reference_split` ('' = off); only fid, is and label_accuracy then.
            "reference_stats": "",
            "feature_net": "digits",  # digits (32x32 grayscale, shipped) | inception (needs inception_weights)
            "inception_weights": "",  # pytorch-fid's pt_inception-2015-12-05-*.pth
            "cache_dir": "",  # reference features cache ('' = WORKDIR/eval_cache)
            "best_metric": "",  # keep the best checkpoint in WORKDIR/best by this value, e.g. fid ('' = off)
            "kid_subsets": 100,
            "kid_subset_size": 1000,
            "is_splits": 10,
            "pr_neighbours": 3,
            # Classification Accuracy Score (genimg_jax/evaluation/cas.py): the digits CNN trained from scratch for
            # `cas_steps` Adam steps (cosine-decayed `cas_learning_rate`, random shifts of up to `cas_max_shift`
            # pixels, seed `cas_seed`), the recipe of the shipped digits feature net.
            "cas_steps": 500,
            "cas_batch_size": 64,
            "cas_learning_rate": 2e-3,
            "cas_max_shift": 2,
            "cas_seed": 0,
            # caption_agreement and r_precision (text-to-image methods, evaluation/captions.py): r_precision ranks
            # captions with this dual encoder, written by `python -m genimg_jax.tools.train_dual_encoder`.
            "dual_encoder": "",
            # clip_score: a local Hugging Face directory of a full CLIP model (config.json, flax_model.msgpack,
            # tokenizer and preprocessor files), e.g. openai/clip-vit-base-patch32 downloaded beforehand.
            "clip_model": "",
            # Restoration metrics (psnr, ssim, lpips): measured on rgb | y (BT.601 luma, 16..235, as MATLAB and
            # BasicSR) after removing `crop_border` pixels from each side (SR papers crop the scale factor);
            # lpips needs `lpips_weights`, the .npz of `python -m genimg_jax.tools.convert_lpips`.
            "restoration_channel": "rgb",
            "crop_border": 0,
            "lpips_weights": "",
        }
    )
    # Mesh axis sizes; -1 takes the remaining devices. Both axes split the batch; `fsdp` also splits large
    # train-state leaves (see genimg_jax/parallel/sharding.py). Default: pure data parallelism over every device.
    config.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1})
    # Which train-state leaves `fsdp` splits: (regex over the leaf path, "replicate" | "fsdp"), first match wins.
    config.sharding = ml_collections.ConfigDict(
        {
            "rules": (("batch_stats", "replicate"), (r"(^|/)(rng|step|count)$", "replicate"), (".*", "fsdp")),
            "min_size": 2**14,  # leaves with fewer elements stay replicated: splitting them costs more than it saves
        }
    )
    # Multi-process start-up (genimg_jax/parallel/distributed.py). init: auto = the explicit coordinator below if given,
    # else jax's own detection in an srun step of several tasks or on a multi-host TPU VM; cluster = always
    # jax.distributed.initialize() with no arguments; off = one process.
    config.distributed = ml_collections.ConfigDict(
        {"init": "auto", "coordinator_address": "", "num_processes": 0, "process_id": -1}
    )
    return config


def adam_config(
    learning_rate: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> ml_collections.ConfigDict:
    """An `optim.<net>` section for `methods.base.adam`; every method's optimisers are made from one of these.

    The learning rate ramps up linearly over the first `warmup_steps` optimizer updates and, when `decay_steps` > 0,
    decays linearly to 0 over that many updates after the first `decay_start_steps` (0 disables either; pix2pix
    and CycleGAN hold the rate for half the run, then decay it); `exponential_decay` < 1 multiplies it by that
    factor after every update (PixelCNN++'s schedule; 1 disables). `grad_clip_norm` > 0 clips the global norm.
    """
    return ml_collections.ConfigDict(
        {
            "learning_rate": learning_rate,
            "b1": b1,
            "b2": b2,
            "eps": eps,
            "weight_decay": 0.0,
            "grad_clip_norm": 0.0,
            "warmup_steps": 0,
            "decay_steps": 0,
            "decay_start_steps": 0,
            "exponential_decay": 1.0,
        }
    )
