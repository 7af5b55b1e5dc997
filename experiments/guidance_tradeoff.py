"""The classifier-free guidance trade-off of a trained conditional diffusion run: sample quality (FID) against
how well samples follow their conditioning (caption agreement, or label accuracy) over guidance scales w.

    python -m experiments.guidance_tradeoff --config=configs/text_diffusion.py:digits16 --workdir=WORKDIR
        [--scales=-1,0,0.5,1,2,4] [--metrics=fid,caption_agreement] [--x=digit_agreement] [--y=fid]
        [--override=eval.num_samples=1000 ...] [--output=experiments/records/guidance_tradeoff.md]

Each scale evaluates the workdir's latest checkpoint with `sample.guidance_scale=w` (w = 0: the conditional
model; w = -1 the unconditional one, (1 + w) D(x | c) - w D(x | null)) through the same sample metrics as
`--mode=eval`, from the same sample keys, so the points differ only in w. Writes a markdown table and a plot
(OUTPUT with .png) of y against x, each point labelled by its w.
"""

from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any

from genimg_jax.config import apply_overrides, load_config
from genimg_jax.evaluation.from_checkpoint import restore_latest
from genimg_jax.evaluation.samples import SampleEvaluator
from genimg_jax.experiments import charts

DEFAULT_SCALES = (-1.0, 0.0, 0.5, 1.0, 2.0, 4.0)


def evaluate_scales(
    spec: str, workdir: str, scales: list[float], metrics: str, overrides: list[str]
) -> tuple[int, dict[float, dict[str, float]], dict[str, Any]]:
    """(checkpoint step, {w: sample metric values}, the metrics' protocol) of the latest checkpoint of `workdir`
    at each scale."""
    values, step, protocol = {}, -1, {}
    for scale in scales:
        config = apply_overrides(
            load_config(spec), [f"sample.guidance_scale={scale}", f"eval.metrics={metrics}", *overrides]
        )
        run, state, step = restore_latest(config, workdir)
        evaluator = SampleEvaluator(config, run, workdir)
        values[scale], protocol = evaluator.evaluate(state), evaluator.protocol()
    return step, values, protocol


def markdown(values: dict[float, dict[str, float]], names: list[str]) -> str:
    """One row per guidance scale, one column per value name."""
    lines = ["| w | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for scale, row in values.items():
        lines.append(f"| {scale:g} | " + " | ".join(f"{row[name]:.4g}" for name in names) + " |")
    return "\n".join(lines)


def tradeoff_chart(values: dict[float, dict[str, float]], x: str, y: str, title: str) -> charts.Image.Image:
    """`y` against `x`, one point per scale, joined in order of w and labelled "w=..."."""
    series = charts.Series(
        "guidance scale",
        [row[x] for row in values.values()],
        [row[y] for row in values.values()],
        point_labels=[f"w={scale:g}" for scale in values],
    )
    return charts.chart([series], title, x, y_label=y)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the run's config file (and variant), as it was trained")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--scales", default=",".join(f"{w:g}" for w in DEFAULT_SCALES))
    parser.add_argument("--metrics", default="fid,caption_agreement", help="eval.metrics at every scale")
    parser.add_argument("--x", default="digit_agreement", help="the value on the horizontal axis")
    parser.add_argument("--y", default="fid", help="the value on the vertical axis")
    parser.add_argument("--override", action="append", default=[], help="KEY=VALUE of the run and the evaluation")
    parser.add_argument("--output", default="guidance_tradeoff.md")
    args = parser.parse_args(argv)
    scales = [float(scale) for scale in args.scales.split(",")]
    step, values, protocol = evaluate_scales(args.config, args.workdir, scales, args.metrics, args.override)
    names = sorted({name for row in values.values() for name in row if not name.startswith("fid_")})
    output = pathlib.Path(args.output)
    table = markdown(values, names)
    output.write_text(
        f"`{args.config}`, step {step}, overrides {args.override or 'none'}\n\n{table}\n\n"
        f"Protocol:\n\n```json\n{json.dumps(protocol, indent=1, default=str)}\n```\n"
    )
    title = f"{pathlib.Path(args.config).name}, step {step}"
    picture = charts.save(tradeoff_chart(values, args.x, args.y, title), output.with_suffix(".png"))
    print(table)
    print(f"wrote {output} and {picture}")


if __name__ == "__main__":
    main()
