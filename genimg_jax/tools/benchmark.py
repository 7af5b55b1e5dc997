"""Train-step benchmark: `python -m genimg_jax.tools.benchmark --config=configs/X.py [--config.a.b=v ...]`.

Prints compile time, steps/s and images/s (median over repeats after warm-up), peak memory, and FLOPs per step
from XLA's cost analysis with the achieved FLOP/s. Numbers are printed, never asserted: they depend on the machine.

`--all [--configs=DIR] [--only=dcgan,vae]` first measures the machine's jitted float32 matmul rate (2048 x 2048,
`MATMUL_SIZE`), then every config file's default variant, and prints one line per config with its FLOP rate as a
fraction of the matmul rate: a ratio measured within one run moves much less from machine to machine than the
absolute figures. A config that cannot run here (a latent diffusion model without its first-stage VAE) prints why.
"""

import argparse
import pathlib
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from genimg_jax import data
from genimg_jax.cli import parse_with_overrides, run_command
from genimg_jax.config import ConfigError, apply_overrides, load_config
from genimg_jax.training.compiled_run import compile_run
from genimg_jax.training.memory_check import step_memory

MATMUL_SIZE = 2048
TABLE_COLUMNS = ("compile_s", "images_per_s", "gflop_per_step", "achieved_gflop_per_s", "step_memory_mib")


def _flops(compiled: jax.stages.Compiled) -> float:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older jax returned one dict per device program
        analysis = analysis[0]
    return float(analysis.get("flops", 0.0)) if analysis else 0.0


def _median_rate(function: Callable[[], jax.Array], repeats: int, calls: int) -> float:
    """Median calls/s of `function` over `repeats` timed groups of `calls`, after one warm-up call."""
    jax.block_until_ready(function())
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            result = function()
        jax.block_until_ready(result)
        rates.append(calls / (time.perf_counter() - start))
    return statistics.median(rates)


def matmul_gflop_per_s(size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """The rate of a jitted float32 `size` x `size` matmul on the default device: the machine's yardstick."""
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (size, size), jnp.float32)
    multiply = jax.jit(jnp.matmul)
    return 2 * size**3 * _median_rate(lambda: multiply(a, b), repeats, calls=5) / 1e9


def benchmark(config, repeats: int, steps_per_repeat: int, warmup: int) -> dict[str, float]:
    """Measure the jitted train step of `config` on a real batch of its training data."""
    run = compile_run(config)
    source = data.source_from_config(config.data, config.data.train_split)
    stream = data.make_train_stream(
        source,
        global_batch_size=config.train.batch_size,
        seed=config.seed,
        rows=data.host_rows(run.batch_sharding, config.train.batch_size),
    )
    batch = data.make_global_batch(next(stream), run.batch_sharding)
    state = run.init(jax.random.PRNGKey(config.seed))

    start = time.perf_counter()
    compiled = run.train_step.lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start

    for _ in range(warmup):
        state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps_per_repeat):
            state, metrics = compiled(state, batch)
        jax.block_until_ready((state, metrics))
        rates.append(steps_per_repeat / (time.perf_counter() - start))
    steps_per_second = statistics.median(rates)
    devices = len(run.mesh.devices.flat)
    flops = _flops(compiled) * devices  # the cost analysis counts one device's partition of the SPMD program
    device_bytes = step_memory(compiled).total
    return {
        "devices": devices,
        "global_batch": config.train.batch_size,
        "compile_s": compile_seconds,
        "steps_per_s": steps_per_second,
        "steps_per_s_min": min(rates),
        "steps_per_s_max": max(rates),
        "images_per_s": steps_per_second * config.train.batch_size,
        "gflop_per_step": flops / 1e9,
        "achieved_gflop_per_s": flops * steps_per_second / 1e9,
        "step_memory_mib": device_bytes / 2**20,
        "host_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def benchmark_all(
    config_dir: pathlib.Path, only: Sequence[str], repeats: int, steps_per_repeat: int, warmup: int
) -> tuple[float, list[tuple[str, dict[str, float] | str]]]:
    """(matmul GFLOP/s, [(config name, `benchmark` results or why it could not run)]) for every `config_dir/*.py`
    (or those named in `only`), each at its default variant."""
    names = sorted(path.stem for path in config_dir.glob("*.py"))
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise ConfigError(f"--only names configs not in {config_dir}: {unknown}; there are {names}")
    yardstick = matmul_gflop_per_s()
    rows = []
    for name in only or names:
        try:
            results = benchmark(load_config(str(config_dir / f"{name}.py")), repeats, steps_per_repeat, warmup)
        except (ConfigError, FileNotFoundError) as error:
            rows.append((name, f"not run: {error}"))
            continue
        rows.append((name, results))
        print(format_row(name, results, yardstick), flush=True)
    return yardstick, rows


def format_row(name: str, results: dict[str, float] | str, yardstick: float) -> str:
    """One table line: the config, the numbers of `TABLE_COLUMNS` and the FLOP rate as a fraction of `yardstick`."""
    if isinstance(results, str):
        return f"| `{name}` | {results} |"
    values = " | ".join(f"{results[column]:.3g}" for column in TABLE_COLUMNS)
    return f"| `{name}` | {results['global_batch']} | {values} | {results['achieved_gflop_per_s'] / yardstick:.0%} |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.tools.benchmark", description=__doc__)
    parser.add_argument("--config", help="one config file (or --all)")
    parser.add_argument("--all", action="store_true", help="every config in --configs, against the matmul rate")
    parser.add_argument("--configs", default="configs", help="the folder of config files --all measures")
    parser.add_argument("--only", default="", help="with --all: comma-separated config names (default: all)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps_per_repeat", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)

    def run() -> None:
        args, overrides = parse_with_overrides(parser, argv)
        print(f"benchmark on {jax.devices()[0].platform} x {jax.device_count()}, jax {jax.__version__}")
        if args.all:
            only = [name.strip() for name in args.only.split(",") if name.strip()]
            print(f"| config | batch | {' | '.join(TABLE_COLUMNS)} | of matmul rate |", flush=True)
            yardstick, rows = benchmark_all(
                pathlib.Path(args.configs), only, args.repeats, args.steps_per_repeat, args.warmup
            )
            for name, results in rows:
                if isinstance(results, str):
                    print(format_row(name, results, yardstick))
            print(f"matmul rate ({MATMUL_SIZE} x {MATMUL_SIZE} float32, jitted): {yardstick:.4g} GFLOP/s")
            return
        if not args.config:
            raise ConfigError("give --config=FILE, or --all")
        config = apply_overrides(load_config(args.config), overrides)
        results = benchmark(config, args.repeats, args.steps_per_repeat, args.warmup)
        print(f"benchmark of {args.config}")
        for name, value in results.items():
            print(f"  {name:22s} {value:.4g}" if isinstance(value, float) else f"  {name:22s} {value}")

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
