"""Building blocks shared by the network families.

Convolutions follow PyTorch's integer ``padding`` convention so that layer specs from papers and reference
implementations (Conv2d(k, s, p), ConvTranspose2d(k, s, p)) translate one to one. Layout is NHWC.
"""

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype
from jax import lax

Initializer = nn.initializers.Initializer

# Radford et al. (2016): all weights from N(0, 0.02).
DCGAN_INIT: Initializer = nn.initializers.normal(stddev=0.02)

_NHWC = ("NHWC", "HWIO", "NHWC")
# Fan-in scaling over (k, k, in_features) of an `UpConv` kernel, whose HWIO shape is (k, k, out, in): the convention
# of flax's ConvTranspose default, which the DCGAN N(0, 0.02) init is not.
UPCONV_FAN_IN_INIT: Initializer = nn.initializers.variance_scaling(
    1.0, "fan_in", "truncated_normal", in_axis=-1, out_axis=-2
)


def dcgan_scale_init(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32) -> jax.Array:
    """BatchNorm scale from N(1, 0.02), as in the DCGAN reference code."""
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def rematerialized(module: type[nn.Module], enabled: bool, static_argnums: tuple[int, ...] = ()) -> type[nn.Module]:
    """`module`, recomputing its activations in the backward pass instead of keeping them when `enabled`
    (`model.remat`: memory for compute). `static_argnums` count the module itself as argument 0. Give instances
    explicit names: the wrapped class would otherwise rename them, and with them the parameters and their init."""
    return nn.remat(module, static_argnums=static_argnums) if enabled else module


def num_doublings(resolution: int) -> int:
    """Number of stride-2 stages between a 4x4 map and ``resolution``; rejects sizes the nets cannot reach."""
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of 2 and >= 8, got {resolution}")
    return resolution.bit_length() - 3


def conv(features: int, kernel_size: int = 4, strides: int = 2, padding: int = 1, **kwargs) -> nn.Conv:
    """An ``nn.Conv`` with PyTorch Conv2d(k, s, p) arguments: output size floor((H + 2p - k) / s) + 1."""
    return nn.Conv(
        features,
        (kernel_size, kernel_size),
        strides=(strides, strides),
        padding=((padding, padding), (padding, padding)),
        **kwargs,
    )


def upconv_output_size(size: int, kernel_size: int, strides: int, padding: int) -> int:
    """Spatial size after ConvTranspose2d(k, s, p): the smallest one that Conv2d(k, s, p) maps to ``size``."""
    return (size - 1) * strides - 2 * padding + kernel_size


def _strided_conv(x: jax.Array, kernel: jax.Array, strides: int, padding: int) -> jax.Array:
    return lax.conv_general_dilated(
        x, kernel, (strides, strides), ((padding, padding), (padding, padding)), dimension_numbers=_NHWC
    )


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def up_conv(z: jax.Array, kernel: jax.Array, strides: int, padding: int) -> jax.Array:
    """Transposed convolution J^T z, J the Jacobian of ``x -> conv(x, kernel, strides, padding)``.

    ``kernel`` has the HWIO shape of that strided conv: (kh, kw, out_features, in_features) from the point of
    view of the up-sampling. The custom vjp exists for speed only: XLA's CPU backend computes the weight
    gradient of a transposed convolution 20-30x slower than that of an ordinary strided conv, and the two are
    the same quantity because <up(z, W), g> = <z, conv(g, W)>.
    """
    n, h, w, _ = z.shape
    kh, kw, out_features, _ = kernel.shape
    h_out, w_out = upconv_output_size(h, kh, strides, padding), upconv_output_size(w, kw, strides, padding)
    big = jax.ShapeDtypeStruct((n, h_out, w_out, out_features), z.dtype)
    (out,) = jax.linear_transpose(lambda x: _strided_conv(x, kernel, strides, padding), big)(z)
    return out


def _up_conv_fwd(
    z: jax.Array, kernel: jax.Array, strides: int, padding: int
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return up_conv(z, kernel, strides, padding), (z, kernel)


def _up_conv_bwd(
    strides: int, padding: int, residuals: tuple[jax.Array, jax.Array], g: jax.Array
) -> tuple[jax.Array, jax.Array]:
    z, kernel = residuals
    dz, vjp_kernel = jax.vjp(lambda w: _strided_conv(g, w, strides, padding), kernel)
    (dkernel,) = vjp_kernel(z)
    return dz, dkernel


up_conv.defvjp(_up_conv_fwd, _up_conv_bwd)


class UpConv(nn.Module):
    """Learnable up-sampling with PyTorch ConvTranspose2d(k, s, p) semantics, fast to train on CPU.

    Output size (H - 1) * s - 2p + k: (k4, s2, p1) doubles H and W, (k4, s1, p0) maps 1x1 to 4x4.
    Same function as ``nn.ConvTranspose(..., padding=k - 1 - p, transpose_kernel=True)`` on the same kernel,
    but its gradients go through :func:`up_conv`'s custom vjp. Supports reverse mode only (no ``jax.jvp``).
    A PyTorch ConvTranspose2d weight (in, out, k, k) becomes ``kernel`` as ``weight.transpose(2, 3, 1, 0)``.
    """

    features: int
    kernel_size: int = 4
    strides: int = 2
    padding: int = 1
    use_bias: bool = True
    kernel_init: Initializer = DCGAN_INIT
    bias_init: Initializer = nn.initializers.zeros_init()
    dtype: jnp.dtype | None = None  # computation dtype; parameters stay float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, self.features, x.shape[-1]))
        bias = self.param("bias", self.bias_init, (self.features,)) if self.use_bias else None
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = up_conv(x, kernel, self.strides, self.padding)
        return y if bias is None else y + bias
