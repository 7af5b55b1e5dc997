"""Classification Accuracy Score of trained class-conditional runs, as a markdown table beside the real baseline.

    python -m experiments.cas_table --run=cgan_projection=WORKDIR [--run=ddpm_guided=WORKDIR ...]
        [--override=eval.cas_steps=500 ...] [--output=experiments/records/cas_digits.md]

Each `--run` names one of CONDITIONAL_CONFIGS (the embedded class-conditional setups) and the workdir it was
trained in (with the same config and overrides); its latest checkpoint is restored and scored by
evaluation/cas.py. The real baseline is cached in WORKDIR/eval_cache, so runs on the same data share its value
only when they share the workdir; it depends on the data's resolution, so configs at 16x16 and 32x32 each have
their own.
"""

from __future__ import annotations

import argparse
import pathlib

from genimg_jax.config import apply_overrides, load_config
from genimg_jax.evaluation.cas import CasEvaluator
from genimg_jax.evaluation.from_checkpoint import restore_latest

CONFIGS = pathlib.Path(__file__).parent.parent / "configs"
# name -> (config spec under configs/, overrides that make it class-conditional)
CONDITIONAL_CONFIGS = {
    "cgan_projection": ("cgan_projection.py:digits", ()),
    "stylegan2_conditional": ("stylegan2.py:digits", ("model.num_classes=10",)),
    "ddpm_guided": ("ddpm.py:digits_guided", ()),
    "edm_conditional": ("edm.py:digits", ("model.num_classes=10", "model.label_dropout=0")),
}


def score_run(name: str, workdir: str, overrides: list[str]) -> tuple[int, dict[str, float], int]:
    """(checkpoint step, CAS values, data resolution) of the run `name` trained in `workdir`."""
    spec, conditional = CONDITIONAL_CONFIGS[name]
    config = apply_overrides(load_config(str(CONFIGS / spec)), [*conditional, "eval.metrics=cas", *overrides])
    run, state, step = restore_latest(config, workdir)
    evaluator = CasEvaluator(config, run, pathlib.Path(config.eval.cache_dir or pathlib.Path(workdir) / "eval_cache"))
    return step, evaluator.evaluate(state), config.data.resolution


def markdown(results: dict[str, tuple[int, dict[str, float], int]]) -> str:
    """One row per run (CAS, real baseline, their ratio, naive augmentation), then the per-class accuracies."""
    lines = [
        "| config | resolution | step | CAS | real baseline | CAS / baseline | naive augmentation |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (step, values, resolution) in results.items():
        cas, baseline = values["cas_accuracy"], values["cas_real_baseline"]
        lines.append(
            f"| `{name}` | {resolution}x{resolution} | {step} | {cas:.3f} | {baseline:.3f} | {cas / baseline:.2f} | "
            f"{values['cas_naive_augmentation']:.3f} |"
        )
    classes = sorted(int(key.rsplit("_", 1)[1]) for key in next(iter(results.values()))[1] if "accuracy_class_" in key)
    lines += ["", "Per class (CAS / real baseline):", ""]
    lines += ["| config | " + " | ".join(str(c) for c in classes) + " |", "|---" * (len(classes) + 1) + "|"]
    for name, (_, values, _) in results.items():
        cells = [
            f"{values[f'cas_accuracy_class_{c}']:.2f} / {values[f'cas_real_baseline_class_{c}']:.2f}" for c in classes
        ]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="NAME=WORKDIR, NAME one of CONDITIONAL_CONFIGS")
    parser.add_argument("--override", action="append", default=[], help="key=value for every run's config")
    parser.add_argument("--output", type=pathlib.Path, help="also write the table to this markdown file")
    args = parser.parse_args()
    results = {}
    for entry in args.run:
        name, _, workdir = entry.partition("=")
        if name not in CONDITIONAL_CONFIGS or not workdir:
            parser.error(f"--run={entry!r}: expected NAME=WORKDIR with NAME one of {sorted(CONDITIONAL_CONFIGS)}")
        results[name] = score_run(name, workdir, args.override)
    table = markdown(results)
    print(table, end="")
    if args.output:
        args.output.write_text(table)


if __name__ == "__main__":
    main()
