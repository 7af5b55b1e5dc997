"""Command line: `python -m genimg_jax.main --config=configs/X.py --workdir=DIR [--mode=train|sample|eval|audit]`,
or `--mode=generate --num=N --out=DIR [--npz] [--seed=S] [--labels=balanced|0,3,7] [--truncation=PSI]`,
or (image-to-image models) `--mode=translate --input=DIR --out=DIR`,
or (text-to-image models) `--mode=sample --prompt=TEXT [--prompt=TEXT ...] [--prompts=FILE] [--per_prompt=K]`.

Any `--config.a.b=value` argument overrides a key of the config. Mistakes in the config, the data or the workdir
end the run with one line on stderr naming what is wrong and where (exit status 2). Exit status 75: a stop request
(SIGTERM, a preemption notice) ended training with its checkpoint committed; run the same command again.
"""

import argparse
import sys
from collections.abc import Sequence

import jax
from absl import flags

from genimg_jax.cli import PREEMPTED, parse_with_overrides, run_command
from genimg_jax.config import ConfigError, apply_overrides, load_config
from genimg_jax.evaluation import from_checkpoint, prompts, sample_sets, translate_folder
from genimg_jax.parallel import distributed
from genimg_jax.training import trainer

MODES = ("train", "sample", "eval", "audit", "generate", "translate")
# The flags of the modes that have their own, and the ones each needs.
MODE_FLAGS = {
    "generate": ("num", "out", "npz", "seed", "labels", "truncation"),
    "translate": ("input", "out"),
    "sample": ("prompt", "prompts", "per_prompt"),
}
REQUIRED_FLAGS = {"generate": ("num", "out"), "translate": ("input", "out")}


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.main", description=__doc__)
    parser.add_argument("--config", required=True, help="configs/X.py, or configs/X.py:ARG for a variant")
    parser.add_argument("--workdir", required=True, help="directory for checkpoints, logs and samples")
    parser.add_argument("--mode", choices=MODES, default="train")
    generate = parser.add_argument_group("--mode=generate: a sample set of the latest checkpoint for outside tools")
    generate.add_argument("--num", type=int, help="number of samples")
    generate.add_argument("--out", help="new or empty folder for 000000.png, ... (or the translations)")
    generate.add_argument("--npz", action="store_true", default=None, help="also write OUT/samples.npz (uint8 x)")
    generate.add_argument("--seed", type=int, help="sample i from fold_in(PRNGKey(seed), i); default config.seed")
    generate.add_argument("--labels", help="balanced (default) or classes in turn, e.g. 0,3,7")
    generate.add_argument("--truncation", type=float, help="truncation psi for methods with a mapping network")
    translate = parser.add_argument_group("--mode=translate: an image-to-image model applied to a folder of images")
    translate.add_argument("--input", help="folder of images to translate (written to --out under their own names)")
    prompted = parser.add_argument_group("--mode=sample of a text-to-image model: samples for your own captions")
    prompted.add_argument("--prompt", action="append", help="a caption (repeat the flag for more)")
    prompted.add_argument("--prompts", help="a text file of captions, one per line")
    prompted.add_argument("--per_prompt", type=int, help="samples per caption (default 4)")
    return parser


def check_mode_flags(args: argparse.Namespace) -> None:
    """Each mode's own flags only with it, and the ones it needs given."""
    allowed = MODE_FLAGS.get(args.mode, ())
    for name in dict.fromkeys(name for names in MODE_FLAGS.values() for name in names):
        if getattr(args, name) is not None and name not in allowed:
            modes = [mode for mode, names in MODE_FLAGS.items() if name in names]
            raise ConfigError(
                f"--{name} is a flag of {' and '.join(f'--mode={m}' for m in modes)}, not of --mode={args.mode}"
            )
    missing = [name for name in REQUIRED_FLAGS.get(args.mode, ()) if getattr(args, name) is None]
    if missing:
        raise ConfigError(f"--mode={args.mode} needs {' and '.join(f'--{name}' for name in missing)}")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    """Run the mode `args` names; the exit status (cli.PREEMPTED when a stop request ended training)."""
    check_mode_flags(args)
    config = apply_overrides(load_config(args.config), overrides)
    config.lock()  # a later typo in code reading the config is an error, not a silent new key
    flags.FLAGS.mark_as_parsed()  # libraries used here (grain, tfds) may read absl flags; argv is ours
    distributed.initialize(config.distributed)  # before anything touches a device
    if args.mode == "train":
        result = trainer.run_training(config, args.workdir)
        if jax.process_count() > 1:  # every process reports; equal fingerprints show the hosts agree
            fingerprint = distributed.state_fingerprint(result.state)
            print(f"process {jax.process_index()}/{jax.process_count()}: final state fingerprint {fingerprint}")
        if result.preempted:
            return PREEMPTED
    elif args.mode == "sample" and (args.prompt or args.prompts):
        texts = prompts.read_prompts(args.prompt, args.prompts)
        written = prompts.sample_prompts(config, args.workdir, texts, args.per_prompt or 4)
        if written:
            print(f"wrote {len(written) - 1} samples of {len(texts)} prompts and {written[-1]}")
    elif args.mode == "sample":
        for path in from_checkpoint.sample(config, args.workdir):
            print(f"wrote {path}")
    elif args.mode == "generate":
        written = sample_sets.generate(
            config,
            args.workdir,
            args.out,
            args.num,
            seed=args.seed,
            labels=args.labels or sample_sets.BALANCED,
            truncation=args.truncation,
            npz=bool(args.npz),
        )
        extra = f" and {written.npz}" if written.npz else ""
        print(f"wrote {written.count} samples of step {written.step} to {written.folder}{extra}")
    elif args.mode == "translate":
        paths = translate_folder.translate_folder(config, args.workdir, args.input, args.out)
        print(f"wrote {len(paths) - 1} translations and {paths[-1]}" if paths else "translated on another process")
    elif args.mode == "eval":
        print(f"wrote {from_checkpoint.evaluate(config, args.workdir)}")
    else:
        print(f"wrote {from_checkpoint.memorization_audit(config, args.workdir)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: run(*parse_with_overrides(parser(), argv)))


if __name__ == "__main__":
    sys.exit(main())
