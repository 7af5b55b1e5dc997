"""Run a study, or collect its results:

    python -m genimg_jax.experiments run experiments/X.py --root=DIR [--parallel=N] [--config.KEY=VALUE ...]
    python -m genimg_jax.experiments run experiments/X.py --root=DIR --print-launch=local|slurm|tpu
    python -m genimg_jax.experiments table experiments/X.py --root=DIR [--config.KEY=VALUE ...]

`run` trains every (cell, seed) of the study in `DIR/runs/<hash of its resolved config>`, skipping finished runs
and resuming interrupted ones; `--print-launch` prints each run's `launch/` command instead, for a cluster.
`table` writes `DIR/report/`: results.md, results.csv, runs.csv, PNG plots and report.html. Extra `--config.*`
overrides apply to every run (e.g. a machine's inception weights path, which is not part of the hash); give
`table` the same ones as `run`. Run both from the repository root: config paths in studies are relative to it.
"""

import argparse
import pathlib
import sys
from collections.abc import Sequence

from genimg_jax.cli import parse_with_overrides, run_command
from genimg_jax.experiments import launch, report, results, runner
from genimg_jax.experiments.study import expand, load_study

INTERRUPTED = 130  # the shell's status for Ctrl-C; the runs resume when the study runs again


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "table"):
        command = commands.add_parser(name)
        command.add_argument("study", help="experiments/X.py")
        command.add_argument("--root", required=True, type=pathlib.Path, help="the study's directory")
    commands.choices["run"].add_argument("--parallel", type=int, default=1, help="runs trained at once")
    commands.choices["run"].add_argument("--print-launch", choices=launch.TARGETS, help="print launch lines only")
    return parser


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    study = load_study(args.study)
    runs = expand(study, args.root, overrides)
    if args.command == "table":
        rows = results.cell_rows(study, runs)
        directory = args.root / "report"
        directory.mkdir(parents=True, exist_ok=True)
        text = results.markdown(study, rows)
        (directory / "results.md").write_text(text)
        written = results.write_csvs(study, rows, directory)
        page = report.write_html(study, rows, directory, report.write_pictures(study, rows, directory))
        print(text)
        print("wrote " + ", ".join(str(path) for path in [directory / "results.md", *written, page]))
        return 0
    if args.print_launch:
        for one in runs:
            print(launch.launch_line(one, args.print_launch, study.name))
        return 0
    if args.parallel < 1:
        print(f"error: --parallel={args.parallel} must be at least 1", file=sys.stderr)
        return 2
    try:
        outcome = runner.run_study(runs, args.parallel)
    except KeyboardInterrupt:
        return INTERRUPTED
    for failed, status in outcome.failed:
        print(f"failed: {failed.cell.name} seed={failed.seed} (exit status {status}) in {failed.workdir}")
    print(f"{len(outcome.finished)}/{len(runs)} runs finished; tables: python -m genimg_jax.experiments table "
          f"{args.study} --root={args.root}")  # fmt: skip
    return 1 if outcome.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: run(*parse_with_overrides(parser(), argv)))


if __name__ == "__main__":
    sys.exit(main())
