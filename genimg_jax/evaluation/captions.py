"""The `caption_agreement`, `r_precision` and `clip_score` sample metrics of a text-to-image train state.

The model draws `eval.num_samples` images for the captions of `data.eval_split` in index order (sample i for
example i mod N, conditioning.py), snapped to uint8 as real images are, from keys derived from `config.seed` (the
same at every evaluation, so values at different steps are paired comparisons).
- caption_agreement (metrics/caption_agreement.py): the shipped digits net checks each digit the caption names,
  where it names it (`digit_scenes:`), or the whole image (`digits_captions`).
- r_precision (metrics/r_precision.py): the pretrained dual encoder `eval.dual_encoder` ranks each image's
  caption among 99 mismatched captions of the eval split; mean and std over 10 splits.
- clip_score (metrics/clip_score.py): the pretrained CLIP model `eval.clip_model` scores each image against its
  caption, decoded from its tokens with the data's tokenizer and re-tokenized by CLIP's own.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError, require
from genimg_jax.data.text.clip_files import load_clip, load_tokenizer
from genimg_jax.evaluation.conditioning import ConditionedSampler
from genimg_jax.metrics import caption_agreement, clip_score, dual_encoder_file, r_precision
from genimg_jax.training.compiled_run import CompiledRun

CAPTION_METRICS = ("caption_agreement", "r_precision", "clip_score")
CLIP_MODEL_KEY = "eval.clip_model"
CAPTION_SEED_SALT = 0xCA9
MISMATCH_SEED = 0  # the draw of the 99 mismatched captions, the same at every evaluation
# The captioned sources whose captions parse back to digits, and the agreement each gets.
AGREEMENT_BY_SOURCE = {
    "digit_scenes:": caption_agreement.scene_agreement,
    "digits_captions": caption_agreement.digit_agreement,
}


def _agreement_for(source: str) -> Callable[..., dict[str, float]] | None:
    """The agreement function for captions of `source`, None if they do not parse back to digits."""
    for prefix, agreement in AGREEMENT_BY_SOURCE.items():
        if source == prefix or (prefix.endswith(":") and source.startswith(prefix)):
            return agreement
    return None


def validate_caption_config(config: ml_collections.ConfigDict, names: list[str]) -> None:
    """Checks what the requested caption metrics need of the config alone (files are checked when loaded)."""
    if "caption_agreement" in names:
        require(
            _agreement_for(config.data.source) is not None,
            "data.source",
            config.data.source,
            f"caption_agreement needs captions that name digits: {list(AGREEMENT_BY_SOURCE)}",
        )
    if "r_precision" in names:
        require(bool(config.eval.dual_encoder), "eval.dual_encoder", config.eval.dual_encoder, "r_precision needs it")
        require(
            config.eval.num_samples >= r_precision.NUM_SPLITS,
            "eval.num_samples",
            config.eval.num_samples,
            f"r_precision needs at least {r_precision.NUM_SPLITS} (one per split)",
        )
    if "clip_score" in names:
        require(bool(config.eval.clip_model), CLIP_MODEL_KEY, config.eval.clip_model, "clip_score needs it")


class CaptionEvaluator:
    """Caption agreement and R-precision of train states of one compiled run (see the module docstring)."""

    def __init__(self, config: ml_collections.ConfigDict, run: CompiledRun, names: list[str]):
        validate_caption_config(config, names)
        fields = tuple(run.method.conditioning_fields())
        if "tokens" not in fields:
            raise ConfigError(
                f"config.eval.metrics={config.eval.metrics!r}: {names} need a text-to-image method (one that "
                f"conditions on 'tokens'), but method {config.method!r} conditions on {fields}"
            )
        shards = parallel.batch_axis_size(run.mesh)
        batch_size = config.eval.batch_size
        require(batch_size % shards == 0, "eval.batch_size", batch_size, f"must be a multiple of {shards}")
        self.config, self.names = config, names
        self.vocabulary = data.vocabulary_for(config.data)
        self.r_precision = self._load_r_precision() if "r_precision" in names else None
        self.clip_score = self._load_clip_score() if "clip_score" in names else None
        eval_split = data.load_all(
            data.source_from_config(config.data, config.data.eval_split), ("tokens", "tokens_mask")
        )
        self.tokens, self.mask = eval_split["tokens"], eval_split["tokens_mask"]
        self._sampler = ConditionedSampler(
            config, run, jax.random.fold_in(jax.random.PRNGKey(config.seed), CAPTION_SEED_SALT)
        )

    def _load_r_precision(self) -> r_precision.RPrecision:
        path = self.config.eval.dual_encoder
        try:
            encoder = dual_encoder_file.load(path, "config.eval.dual_encoder")
        except (FileNotFoundError, ValueError) as error:
            raise ConfigError(str(error)) from None
        if encoder.vocabulary != self.vocabulary:
            raise ConfigError(
                f"config.eval.dual_encoder={path!r} was trained on captions of another vocabulary "
                f"({encoder.data.get('source')!r}) than config.data.source={self.config.data.source!r}"
            )
        return r_precision.RPrecision(encoder)

    def _load_clip_score(self) -> clip_score.ClipScore:
        path = str(self.config.eval.clip_model)
        return clip_score.ClipScore(*load_clip(path, CLIP_MODEL_KEY), load_tokenizer(path, CLIP_MODEL_KEY))

    def evaluate(self, state: Any) -> dict[str, float]:
        num = self.config.eval.num_samples
        images, conditioning = self._sampler.draw(state, num)
        images = data.to_unit_range(images)
        values = {}
        if "caption_agreement" in self.names:
            agreement = _agreement_for(self.config.data.source)
            values |= agreement(np.asarray(images), conditioning["tokens"], self.vocabulary)
        if self.r_precision:
            true = np.arange(num) % len(self.tokens)
            values |= self.r_precision(np.asarray(images), true, self.tokens, self.mask, MISMATCH_SEED)
        if self.clip_score:
            captions = [self.vocabulary.decode(tokens) for tokens in np.asarray(conditioning["tokens"])]
            values |= self.clip_score(np.asarray(images), captions)
        return values

    def protocol(self) -> dict[str, Any]:
        protocol: dict[str, Any] = {
            "num_samples": self.config.eval.num_samples,
            "captions": f"{self.config.data.eval_split} split in index order, cycled",
            "samples": "snapped to uint8 levels",
            "sample_seed": self.config.seed,
        }
        if "caption_agreement" in self.names:
            protocol["caption_agreement"] = "shipped digits net (metrics/digits_net.py) on each named digit's square"
        if self.r_precision:
            protocol["r_precision"] = {
                "dual_encoder": str(pathlib.Path(self.config.eval.dual_encoder)),
                "trained_on": self.r_precision.encoder.data,
                "candidates": f"the true caption and {r_precision.NUM_MISMATCHED} mismatched ones of the eval split",
                "mismatch_seed": MISMATCH_SEED,
                "splits": r_precision.NUM_SPLITS,
                "rank": "cosine of the global image and sentence features; R = 1",
            }
        if self.clip_score:
            protocol["clip_score"] = {
                "clip_model": str(pathlib.Path(self.config.eval.clip_model)),
                "score": f"mean of {clip_score.SCALE:g} * max(cos(image, caption embedding), 0) (torchmetrics; "
                "Hessel et al. 2021 weight by 2.5)",
                "images": "grey repeated to 3 channels, antialiased bicubic resize to CLIP's image size, its mean/std",
                "captions": "decoded from the sample's tokens by the data's tokenizer, re-tokenized by CLIP's",
            }
        return protocol
