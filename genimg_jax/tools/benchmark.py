"""Train-step benchmark: `python -m genimg_jax.tools.benchmark --config=configs/X.py [--config.a.b=v ...]`.

Prints compile time, steps/s and images/s (median over repeats after warm-up), peak memory, and FLOPs per step
from XLA's cost analysis with the achieved FLOP/s. Numbers are printed, never asserted: they depend on the machine.
"""

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Sequence

import jax

from genimg_jax import data
from genimg_jax.cli import parse_with_overrides, run_command
from genimg_jax.config import apply_overrides, load_config
from genimg_jax.training.compiled_run import compile_run


def _flops(compiled: jax.stages.Compiled) -> float:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older jax returned one dict per device program
        analysis = analysis[0]
    return float(analysis.get("flops", 0.0)) if analysis else 0.0


def _device_memory_bytes(compiled: jax.stages.Compiled) -> int | None:
    """Peak bytes the step needs on a device: arguments + outputs + temporaries, from XLA's memory analysis."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None
    return int(
        analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        + analysis.temp_size_in_bytes
        - analysis.alias_size_in_bytes
    )


def benchmark(config, repeats: int, steps_per_repeat: int, warmup: int) -> dict[str, float]:
    """Measure the jitted train step of `config` on a real batch of its training data."""
    run = compile_run(config)
    source = data.source_from_config(config.data, config.data.train_split)
    stream = data.make_train_stream(
        source,
        global_batch_size=config.train.batch_size,
        seed=config.seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
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
    device_bytes = _device_memory_bytes(compiled)
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
        "step_memory_mib": device_bytes / 2**20 if device_bytes is not None else float("nan"),
        "host_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg_jax.tools.benchmark", description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps_per_repeat", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)

    def run() -> None:
        args, overrides = parse_with_overrides(parser, argv)
        config = apply_overrides(load_config(args.config), overrides)
        results = benchmark(config, args.repeats, args.steps_per_repeat, args.warmup)
        print(f"benchmark of {args.config} ({jax.devices()[0].platform}, jax {jax.__version__})")
        for name, value in results.items():
            print(f"  {name:22s} {value:.4g}" if isinstance(value, float) else f"  {name:22s} {value}")

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
