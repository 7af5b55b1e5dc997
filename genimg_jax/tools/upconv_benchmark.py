"""Measures forward+backward time of UpConv against flax.linen.ConvTranspose computing the same function.

    python -m genimg_jax.tools.upconv_benchmark [--repeats 3] [--plain]

The adjoint formulation exists only for speed, so the claim is measured here rather than asserted in tests.
``--plain`` adds UpConv's forward under plain autodiff (no custom vjp), to show where the gain comes from.
Implementations are timed in turns within each repeat so that load from other processes hits all alike.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from genimg_jax.models.layers import UpConv, up_conv

# (batch, in_features, out_features, input size): a small layer, a DCGAN-32 generator layer, a bigger one.
CASES = [(64, 64, 32, 16), (64, 256, 128, 4), (64, 128, 64, 16)]


def _plain_up_conv(z: jax.Array, kernel: jax.Array, strides: int, padding: int) -> jax.Array:
    return up_conv.fun(z, kernel, strides, padding)  # the primal function, differentiated by autodiff


class _PlainUpConv(UpConv):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, self.features, x.shape[-1]))
        bias = self.param("bias", self.bias_init, (self.features,))
        return _plain_up_conv(x, kernel, self.strides, self.padding) + bias


def _fwd_bwd(module: nn.Module, x: jax.Array) -> tuple[Callable, dict]:
    """Jitted gradient of <module(x), g> w.r.t. parameters and input: one layer's share of a train step."""
    params = module.init(jax.random.key(0), x)["params"]
    g = jax.random.normal(jax.random.key(1), module.apply({"params": params}, x).shape)

    def loss(params: dict, x: jax.Array) -> jax.Array:
        return jnp.vdot(module.apply({"params": params}, x), g)

    return jax.jit(jax.grad(loss, argnums=(0, 1))), params


def _time(fn: Callable, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="also time UpConv without its custom vjp")
    args = parser.parse_args()
    device = jax.devices()[0].device_kind
    print(f"jax {jax.__version__} on {device}; median of {args.repeats} after a warm-up; forward+backward")
    header = "batch   in -> out  size    UpConv ms   ConvTranspose ms   speed-up"
    print(header + "   no-custom-vjp ms" * args.plain)
    for batch, c_in, c_out, size in CASES:
        x = jax.random.normal(jax.random.key(2), (batch, size, size, c_in))
        modules = {
            "upconv": UpConv(c_out),
            "flax": nn.ConvTranspose(c_out, (4, 4), (2, 2), padding=2, transpose_kernel=True),
        }
        if args.plain:
            modules["plain"] = _PlainUpConv(c_out)
        steps = {name: _fwd_bwd(module, x) for name, module in modules.items()}
        # Same kernel, same function: check that before comparing speeds.
        params = steps["upconv"][1]
        outputs = [modules[name].apply({"params": params}, x) for name in modules]
        max_diff = max(float(jnp.abs(out - outputs[0]).max()) for out in outputs[1:])
        assert max_diff < 1e-4, f"implementations disagree by {max_diff}"
        times: dict[str, list[float]] = {name: [] for name in modules}
        for i in range(args.repeats + 1):
            for name, (step, _) in steps.items():
                elapsed = _time(step, params, x)
                if i > 0:
                    times[name].append(elapsed)
        ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
        line = f"{batch:5d} {c_in:4d} -> {c_out:<4d} {size:3d}->{2 * size:<3d} {ms['upconv']:10.1f}"
        line += f" {ms['flax']:18.1f} {ms['flax'] / ms['upconv']:9.1f}x"
        print(line + (f" {ms['plain']:18.1f}" if args.plain else ""))


if __name__ == "__main__":
    main()
