"""Pretrain the DAMSM dual encoder (models/dual_encoder.py) on a captioned source and write it to one file.

    python -m genimg_jax.tools.train_dual_encoder --data=digit_scenes:64 --out=PATH.msgpack [--steps 800]

AttnGAN's DAMSM recipe (pretrain_DAMSM.py, DAMSM.yml): the sum of the four DAMSM losses (losses/damsm.py), Adam
with learning rate 0.002 and betas (0.5, 0.999), the text encoder's gradients clipped to norm 0.25, batches of 48;
AttnGAN trains 600 epochs, the default 800 steps are about 4 epochs of digit_scenes (README: the numbers they reach).
Deviations: no per-epoch learning-rate decay (AttnGAN's 0.98, down to a tenth) and no augmentation (AttnGAN's flips
would contradict the scenes' left/right captions). Prints the loss on the train batches and, at the end, the eval
split's loss and its R-precision (metrics/r_precision.py) for real images, and for the same images shuffled against
their captions. Deterministic: same arguments and devices, same file.
"""

import argparse
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genimg_jax import config, data
from genimg_jax.cli import run_command
from genimg_jax.losses import damsm
from genimg_jax.metrics import dual_encoder_file, r_precision
from genimg_jax.models.dual_encoder import DualEncoder, DualEncoderSpec, init_params


def data_config(source: str, resolution: int, channels: int, caption_length: int) -> ml_collections.ConfigDict:
    section = config.base_config().data
    section.update({"source": source, "resolution": resolution, "channels": channels, "caption_length": caption_length})
    return section


def load_split(section: ml_collections.ConfigDict, split: str) -> dict[str, np.ndarray]:
    """Images as [-1, 1] floats, tokens and masks of every example of `split`."""
    arrays = data.load_all(data.source_from_config(section, split), ("image", "tokens", "tokens_mask"))
    return {**arrays, "image": np.asarray(data.to_unit_range(arrays["image"]))}


def make_step(spec: DualEncoderSpec, optimizer: optax.GradientTransformation) -> tuple[Callable, Callable]:
    """(jitted train step (params, opt_state, batch) -> (params, opt_state, losses), jitted losses (params, batch))."""
    model = DualEncoder(spec)

    def losses(params, batch):
        (regions, image_global), (words, sentences) = model.apply(
            {"params": params}, batch["image"], batch["tokens"], batch["tokens_mask"]
        )
        return damsm.damsm_losses(regions, image_global, words, sentences, batch["tokens_mask"])

    def objective(params, batch):
        values = losses(params, batch)
        return values["loss"], values

    @jax.jit
    def step(params, opt_state, batch):
        grads, values = jax.grad(objective, has_aux=True)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, values

    return step, jax.jit(losses)


def _text_encoder_only(params: dict) -> dict:
    """The mask of the leaves AttnGAN clips the gradients of: the text encoder's."""
    return {name: name == "text_encoder" for name in params}


def train(
    train_split: dict[str, np.ndarray], spec: DualEncoderSpec, steps: int, batch_size: int, seed: int, log_every: int
) -> dict:
    """The dual encoder's parameters after `steps` Adam steps on batches drawn at random (seeded) from the split."""
    optimizer = optax.chain(
        optax.masked(optax.clip_by_global_norm(0.25), _text_encoder_only), optax.adam(2e-3, b1=0.5, b2=0.999)
    )
    params = init_params(spec, jax.random.PRNGKey(seed))
    opt_state = optimizer.init(params)
    step, _ = make_step(spec, optimizer)
    rng = np.random.default_rng(seed)
    for index in range(steps):
        chosen = rng.choice(len(train_split["tokens"]), batch_size, replace=False)
        params, opt_state, values = step(params, opt_state, {k: jnp.asarray(v[chosen]) for k, v in train_split.items()})
        if index % log_every == 0 or index == steps - 1:
            print(f"step {index}: " + " ".join(f"{k} {float(v):.3f}" for k, v in values.items()), flush=True)
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a captioned source spec, e.g. digit_scenes:64")
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--caption-length", type=int, default=33)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=100)
    args = parser.parse_args(argv)
    return run_command(lambda: run(args))


def run(args: argparse.Namespace) -> None:
    section = data_config(args.data, args.resolution, args.channels, args.caption_length)
    vocabulary = data.vocabulary_for(section)
    train_split, eval_split = load_split(section, "train"), load_split(section, "test")
    spec = DualEncoderSpec(len(vocabulary), args.caption_length, args.resolution, args.channels)
    params = train(train_split, spec, args.steps, args.batch_size, args.seed, args.log_every)
    recorded = {k: section[k] for k in ("source", "resolution", "channels", "caption_length")} | {"steps": args.steps}
    encoder = dual_encoder_file.TrainedDualEncoder(spec, vocabulary, params, recorded)
    dual_encoder_file.save(args.out, encoder)
    evaluate(encoder, eval_split, args.batch_size)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


def evaluate(encoder: dual_encoder_file.TrainedDualEncoder, split: dict[str, np.ndarray], batch_size: int) -> None:
    """Prints the eval split's mean loss over whole batches, and R-precision of its real images, true and shuffled."""
    _, losses = make_step(encoder.spec, optax.identity())
    starts = range(0, len(split["tokens"]) - batch_size + 1, batch_size)
    mean = np.mean(
        [float(losses(encoder.params, {k: v[s : s + batch_size] for k, v in split.items()})["loss"]) for s in starts]
    )
    print(f"eval loss {mean:.3f}")
    metric, true = r_precision.RPrecision(encoder), np.arange(len(split["tokens"]))
    for name, images in (("real", split["image"]), ("shuffled", np.random.default_rng(1).permutation(split["image"]))):
        values = metric(images, true, split["tokens"], split["tokens_mask"])
        print(f"R-precision, {name} eval images: {values['r_precision']:.4f} ± {values['r_precision_std']:.4f}")


if __name__ == "__main__":
    raise SystemExit(main())
