"""The restoration metrics `psnr`, `ssim` and `lpips` of an image-to-image train state: the method's output for
every example of `data.eval_split` against the example's `image`, beside the same metrics of doing nothing.

One ordered pass over the eval split (`data.iterate_once`, padding rows dropped), each batch sharded over the mesh
like training batches; `method.sample` gets the batch's conditioning fields (its `source`, and `mask` where the
method asks for it) in one jitted function with the metrics, and its output is snapped to uint8 levels, as a real
image is. The baseline is the input itself: the `source` field, repeated to RGB if gray and, for super-resolution
(a source of H/K x W/K), upsampled by `jax.image.resize`'s bicubic (Keys a = -0.5, half-pixel centres), snapped to
uint8 as well; so every evaluation reads as "output vs baseline". Keys derive from `config.seed`, the same at
every evaluation, so values at different steps are paired comparisons.

PSNR and SSIM are measured on the 0..255 scale (`data_range` 255) on `eval.restoration_channel` after removing
`eval.crop_border` pixels from each side (metrics/restoration.py); LPIPS on the whole RGB image in [-1, 1]. An
output identical to its target has infinite PSNR: each image's PSNR is capped at `PSNR_CAP_DB` before the mean
over images, so one exact image does not make the mean infinite (a finite uint8 PSNR exceeds 100 dB only below
one wrong level in 150 000 values). All three are means of per-image values over the split.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError, require, require_choice
from genimg_jax.metrics import features, lpips, lpips_weights, restoration
from genimg_jax.training.compiled_run import CompiledRun

RESTORATION_METRICS = ("psnr", "ssim", "lpips")
DATA_RANGE = 255.0
PSNR_CAP_DB = 100.0
RESTORATION_SEED_SALT = 0x7E5
SSIM_WINDOW = 2 * restoration.SSIM_RADIUS + 1


def validate_restoration_config(config: ml_collections.ConfigDict, names: list[str]) -> None:
    """The `eval` keys the requested restoration metrics read, checked against the data's image size."""
    evaluation, resolution = config.eval, config.data.resolution
    require_choice(config, "eval.restoration_channel", restoration.CHANNELS)
    if evaluation.restoration_channel == "y":
        require(config.data.channels == 3, "eval.restoration_channel", "y", "needs RGB data (data.channels=3)")
    least, what = (SSIM_WINDOW, "SSIM's 11x11 window") if "ssim" in names else (1, "a pixel")
    require(
        evaluation.crop_border >= 0 and resolution - 2 * evaluation.crop_border >= least,
        "eval.crop_border",
        evaluation.crop_border,
        f"must be >= 0 and leave {what} of {resolution}x{resolution} images",
    )
    if "lpips" in names:
        require(
            bool(evaluation.lpips_weights),
            "eval.lpips_weights",
            evaluation.lpips_weights,
            f"must name the .npz of {lpips_weights.CONVERT_COMMAND} (eval.metrics asks for lpips)",
        )
        require(
            resolution >= lpips.MIN_RESOLUTION,
            "eval.metrics",
            evaluation.metrics,
            f"asks for lpips, whose AlexNet needs images of at least {lpips.MIN_RESOLUTION}x{lpips.MIN_RESOLUTION}, "
            f"not {resolution}x{resolution}",
        )


def check_pair_fields(config: ml_collections.ConfigDict, conditioning: tuple[str, ...]) -> tuple[int, bool]:
    """(upsampling factor K, whether the source is gray under RGB targets) of the data's `source` field, which
    must be the target's size or H/K x W/K, with its channels or one; the data must hold every field of the
    method's `conditioning`."""
    fields = data.fields_from_config(config.data)
    missing = sorted(set(conditioning) - set(fields))
    if missing:
        raise ConfigError(
            f"config.data.source={config.data.source!r} has no fields {missing} (it has {sorted(fields)}), which "
            f"method {config.method!r} conditions on; restoration metrics compare its output with the target"
        )
    (height, width, channels), (low_height, low_width, low_channels) = fields["image"].shape, fields["source"].shape
    factor = height // low_height
    if factor * low_height != height or factor * low_width != width or low_channels not in (1, channels):
        raise ConfigError(
            f"config.data.source={config.data.source!r}: its source field {list(fields['source'].shape)} is neither "
            f"the image's {list(fields['image'].shape)} nor an integer downscaling of it"
        )
    return factor, low_channels != channels


def baseline_levels(source: jax.Array, target_shape: tuple[int, ...]) -> jax.Array:
    """The input as an answer, in uint8 levels (float32) of the target's shape: gray repeated to RGB, a smaller
    source upsampled by bicubic interpolation and snapped back to levels."""
    levels = source.astype(jnp.float32)
    if levels.shape[-1] != target_shape[-1]:
        levels = jnp.repeat(levels, target_shape[-1], axis=-1)
    if levels.shape != tuple(target_shape):
        levels = jnp.clip(jnp.round(jax.image.resize(levels, target_shape, "bicubic")), 0.0, 255.0)
    return levels


def per_image_values(
    names: list[str], targets: jax.Array, answers: jax.Array, eval_config: ml_collections.ConfigDict, lpips_variables
) -> dict[str, jax.Array]:
    """The requested metrics (N,) of `answers` against `targets`, both uint8 levels as float32."""
    options = {
        "data_range": DATA_RANGE,
        "channel": eval_config.restoration_channel,
        "crop_border": eval_config.crop_border,
    }
    values = {}
    if "psnr" in names:
        values["psnr"] = jnp.minimum(restoration.per_image_psnr(targets, answers, **options), PSNR_CAP_DB)
    if "ssim" in names:
        values["ssim"] = restoration.per_image_ssim(targets, answers, **options)
    if "lpips" in names:
        values["lpips"] = lpips.lpips_distance(
            lpips_variables, data.to_unit_range(targets), data.to_unit_range(answers)
        )
    return values


class RestorationEvaluator:
    """PSNR, SSIM and LPIPS of outputs and of the baseline over the eval split (see the module docstring)."""

    def __init__(self, config: ml_collections.ConfigDict, run: CompiledRun, names: list[str]):
        self.names = [name for name in names if name in RESTORATION_METRICS]
        validate_restoration_config(config, self.names)
        fields = tuple(run.method.conditioning_fields())
        if "source" not in fields:
            raise ConfigError(
                f"config.eval.metrics={config.eval.metrics!r}: asks for {self.names}, which need an image-to-image "
                f"method (one that conditions on 'source'), but method {config.method!r} conditions on {fields}"
            )
        self.factor, self.gray_source = check_pair_fields(config, fields)
        shards = parallel.batch_axis_size(run.mesh)
        batch_size = config.eval.batch_size
        require(batch_size % shards == 0, "eval.batch_size", batch_size, f"must be a multiple of {shards}")
        self.config, self.num_images = config, None
        self.lpips_variables = self._lpips_variables() if "lpips" in self.names else None
        self.source = data.source_from_config(config.data, config.data.eval_split)
        self.rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), RESTORATION_SEED_SALT)
        self._sharding = batch_sharding = parallel.batch_sharding(run.mesh)
        method, names, eval_config = run.method, self.names, config.eval

        def measure(state, lpips_variables, rng, batch):
            outputs = method.sample(state, rng, batch_size, {name: batch[name] for name in fields})
            outputs = jax.lax.with_sharding_constraint(data.quantized(outputs), batch_sharding)
            targets = batch["image"].astype(jnp.float32)
            answers = {  # uint8 levels: the outputs are snapped already, so rounding is exact
                "": jnp.round((outputs + 1.0) * 127.5),
                "_baseline": baseline_levels(batch["source"], targets.shape),
            }
            values = {data.IS_EXAMPLE: batch[data.IS_EXAMPLE]}
            for suffix, levels in answers.items():
                measured = per_image_values(names, targets, levels, eval_config, lpips_variables)
                values |= {name + suffix: value for name, value in measured.items()}
            return values

        replicated = parallel.replicated(run.mesh)
        self._measure = jax.jit(  # values come back replicated, so every process can read them
            measure,
            in_shardings=(run.state_sharding, replicated, replicated, batch_sharding),
            out_shardings=replicated,
        )

    def _lpips_variables(self) -> dict:
        path = self.config.eval.lpips_weights
        try:
            return lpips_weights.load_lpips_variables(path)
        except ValueError as error:
            raise ConfigError(f"config.eval.lpips_weights={path!r}: {error}") from None

    def per_image(self, state: Any) -> dict[str, np.ndarray]:
        """Every requested metric of every eval example, for the outputs (`psnr`) and the baseline
        (`psnr_baseline`), in index order."""
        batch_size = self.config.eval.batch_size
        batches = data.iterate_once(self.source, batch_size=batch_size, rows=data.host_rows(self._sharding, batch_size))
        collected: dict[str, list[np.ndarray]] = {}
        for index, local_batch in enumerate(batches):
            batch = data.make_global_batch(local_batch, self._sharding)
            values = jax.device_get(
                self._measure(state, self.lpips_variables, jax.random.fold_in(self.rng, index), batch)
            )
            keep = np.asarray(values.pop(data.IS_EXAMPLE))
            for name, value in values.items():
                collected.setdefault(name, []).append(np.asarray(value, np.float64)[keep])
        per_image = {name: np.concatenate(parts) for name, parts in collected.items()}
        self.num_images = len(next(iter(per_image.values())))
        return per_image

    def evaluate(self, state: Any) -> dict[str, float]:
        return {name: float(np.mean(values)) for name, values in self.per_image(state).items()}

    def protocol(self) -> dict[str, Any]:
        evaluation = self.config.eval
        channel = evaluation.restoration_channel
        baseline = "the source field itself" if self.factor == 1 else f"the source upsampled x{self.factor} by bicubic"
        baseline += " (gray repeated to RGB)" if self.gray_source else ""
        protocol = {
            "metrics": self.names,
            "split": self.config.data.eval_split,
            "num_images": self.num_images,
            "data_range": DATA_RANGE,
            "channel": "y: BT.601 luma on 16..235, unrounded (MATLAB rgb2ycbcr, BasicSR)" if channel == "y" else "rgb",
            "crop_border": evaluation.crop_border,
            "psnr": f"mean over images of 10 log10(255^2 / MSE), each capped at {PSNR_CAP_DB} dB",
            "ssim": "Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, population covariance; "
            "mean over the valid region and channels, then over images",
            "outputs": "method.sample of each example's conditioning fields, snapped to uint8 levels",
            "baseline": f"{baseline}, snapped to uint8 levels",
            "sample_seed": self.config.seed,
        }
        if "lpips" in self.names:
            protocol["lpips"] = {
                "net": "alex",
                "version": "0.1",
                "weights": evaluation.lpips_weights,
                "weights_sha256": features.file_hash(evaluation.lpips_weights),
                "images": "whole RGB images in [-1, 1] (no crop, no luma)",
            }
        return protocol
