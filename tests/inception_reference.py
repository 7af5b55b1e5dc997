"""An independent reference of the FID Inception-v3, written in TensorFlow ops, for the golden-output test.

    python tests/inception_reference.py   # rewrites tests/data/inception_golden.npz

It follows pytorch-fid's definition (torch layouts and names, `x/255 -> bilinear resize (align_corners=False)
-> 2x-1`) with TF's own primitives: `tf.image.resize`, `tf.nn.conv2d` with explicit padding, `avg_pool2d`
with SAME padding (which, like `count_include_pad=False`, averages only over real pixels) and explicit batch
norm. Weights are random but a pure function of each parameter's name, so the test rebuilds the same state
dict from the (name, shape) list stored in the golden file and runs it through the converter and the Flax port.
"""

import pathlib
import zlib

import numpy as np

GOLDEN = pathlib.Path(__file__).parent / "data" / "inception_golden.npz"


def random_parameter(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Deterministic random value of one state-dict entry, scaled so activations stay O(1) through the net."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    leaf = name.rsplit(".", 1)[1]
    if leaf == "weight" and len(shape) > 1:
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    if leaf in ("weight", "running_var"):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    return (rng.standard_normal(shape) * 0.1).astype(np.float32)


def random_state_dict(names: list[str], shapes: list[tuple[int, ...]]) -> dict[str, np.ndarray]:
    return {name: random_parameter(name, tuple(shape)) for name, shape in zip(names, shapes, strict=True)}


def reference_forward(images_uint8: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(state dict it used, pool features, logits) for uint8 NHWC RGB images."""
    import tensorflow as tf

    state: dict[str, np.ndarray] = {}

    def param(name, shape):
        state[name] = random_parameter(name, shape)
        return tf.constant(state[name])

    def basic_conv(name, x, out, kernel, stride=1, padding=(0, 0)):
        kh, kw = kernel
        weight = param(f"{name}.conv.weight", (out, x.shape[-1], kh, kw))  # torch OIHW
        pad = [[0, 0], [padding[0]] * 2, [padding[1]] * 2, [0, 0]]
        x = tf.nn.conv2d(x, tf.transpose(weight, (2, 3, 1, 0)), stride, pad)
        gamma, beta = param(f"{name}.bn.weight", (out,)), param(f"{name}.bn.bias", (out,))
        mean, var = param(f"{name}.bn.running_mean", (out,)), param(f"{name}.bn.running_var", (out,))
        return tf.nn.relu((x - mean) / tf.sqrt(var + 1e-3) * gamma + beta)

    def avg_pool(x):  # SAME padding averages over the valid pixels only
        return tf.nn.avg_pool2d(x, 3, 1, "SAME")

    def block_a(name, x, pool_features):
        b1 = basic_conv(f"{name}.branch1x1", x, 64, (1, 1))
        b5 = basic_conv(f"{name}.branch5x5_1", x, 48, (1, 1))
        b5 = basic_conv(f"{name}.branch5x5_2", b5, 64, (5, 5), padding=(2, 2))
        b3 = basic_conv(f"{name}.branch3x3dbl_1", x, 64, (1, 1))
        b3 = basic_conv(f"{name}.branch3x3dbl_2", b3, 96, (3, 3), padding=(1, 1))
        b3 = basic_conv(f"{name}.branch3x3dbl_3", b3, 96, (3, 3), padding=(1, 1))
        bp = basic_conv(f"{name}.branch_pool", avg_pool(x), pool_features, (1, 1))
        return tf.concat([b1, b5, b3, bp], -1)

    def block_b(name, x):
        b3 = basic_conv(f"{name}.branch3x3", x, 384, (3, 3), stride=2)
        bd = basic_conv(f"{name}.branch3x3dbl_1", x, 64, (1, 1))
        bd = basic_conv(f"{name}.branch3x3dbl_2", bd, 96, (3, 3), padding=(1, 1))
        bd = basic_conv(f"{name}.branch3x3dbl_3", bd, 96, (3, 3), stride=2)
        return tf.concat([b3, bd, tf.nn.max_pool2d(x, 3, 2, "VALID")], -1)

    def block_c(name, x, c7):
        b1 = basic_conv(f"{name}.branch1x1", x, 192, (1, 1))
        b7 = basic_conv(f"{name}.branch7x7_1", x, c7, (1, 1))
        b7 = basic_conv(f"{name}.branch7x7_2", b7, c7, (1, 7), padding=(0, 3))
        b7 = basic_conv(f"{name}.branch7x7_3", b7, 192, (7, 1), padding=(3, 0))
        bd = basic_conv(f"{name}.branch7x7dbl_1", x, c7, (1, 1))
        for index, (out, kernel, padding) in enumerate(
            [(c7, (7, 1), (3, 0)), (c7, (1, 7), (0, 3)), (c7, (7, 1), (3, 0)), (192, (1, 7), (0, 3))], start=2
        ):
            bd = basic_conv(f"{name}.branch7x7dbl_{index}", bd, out, kernel, padding=padding)
        bp = basic_conv(f"{name}.branch_pool", avg_pool(x), 192, (1, 1))
        return tf.concat([b1, b7, bd, bp], -1)

    def block_d(name, x):
        b3 = basic_conv(f"{name}.branch3x3_1", x, 192, (1, 1))
        b3 = basic_conv(f"{name}.branch3x3_2", b3, 320, (3, 3), stride=2)
        b7 = basic_conv(f"{name}.branch7x7x3_1", x, 192, (1, 1))
        b7 = basic_conv(f"{name}.branch7x7x3_2", b7, 192, (1, 7), padding=(0, 3))
        b7 = basic_conv(f"{name}.branch7x7x3_3", b7, 192, (7, 1), padding=(3, 0))
        b7 = basic_conv(f"{name}.branch7x7x3_4", b7, 192, (3, 3), stride=2)
        return tf.concat([b3, b7, tf.nn.max_pool2d(x, 3, 2, "VALID")], -1)

    def block_e(name, x, pool):
        b1 = basic_conv(f"{name}.branch1x1", x, 320, (1, 1))
        b3 = basic_conv(f"{name}.branch3x3_1", x, 384, (1, 1))
        b3 = tf.concat(
            [
                basic_conv(f"{name}.branch3x3_2a", b3, 384, (1, 3), padding=(0, 1)),
                basic_conv(f"{name}.branch3x3_2b", b3, 384, (3, 1), padding=(1, 0)),
            ],
            -1,
        )
        bd = basic_conv(f"{name}.branch3x3dbl_1", x, 448, (1, 1))
        bd = basic_conv(f"{name}.branch3x3dbl_2", bd, 384, (3, 3), padding=(1, 1))
        bd = tf.concat(
            [
                basic_conv(f"{name}.branch3x3dbl_3a", bd, 384, (1, 3), padding=(0, 1)),
                basic_conv(f"{name}.branch3x3dbl_3b", bd, 384, (3, 1), padding=(1, 0)),
            ],
            -1,
        )
        bp = basic_conv(f"{name}.branch_pool", pool(x), 192, (1, 1))
        return tf.concat([b1, b3, bd, bp], -1)

    x = tf.constant(images_uint8, tf.float32) / 255.0
    x = tf.image.resize(x, (299, 299), method="bilinear", antialias=False)
    x = 2.0 * x - 1.0
    x = basic_conv("Conv2d_1a_3x3", x, 32, (3, 3), stride=2)
    x = basic_conv("Conv2d_2a_3x3", x, 32, (3, 3))
    x = basic_conv("Conv2d_2b_3x3", x, 64, (3, 3), padding=(1, 1))
    x = tf.nn.max_pool2d(x, 3, 2, "VALID")
    x = basic_conv("Conv2d_3b_1x1", x, 80, (1, 1))
    x = basic_conv("Conv2d_4a_3x3", x, 192, (3, 3))
    x = tf.nn.max_pool2d(x, 3, 2, "VALID")
    x = block_a("Mixed_5b", x, 32)
    x = block_a("Mixed_5c", x, 64)
    x = block_a("Mixed_5d", x, 64)
    x = block_b("Mixed_6a", x)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = block_c(name, x, c7)
    x = block_d("Mixed_7a", x)
    x = block_e("Mixed_7b", x, avg_pool)
    x = block_e("Mixed_7c", x, lambda t: tf.nn.max_pool2d(t, 3, 1, "SAME"))
    features = tf.reduce_mean(x, axis=(1, 2))
    weight, bias = param("fc.weight", (1008, 2048)), param("fc.bias", (1008,))
    logits = features @ tf.transpose(weight) + bias
    return state, features.numpy(), logits.numpy()


def main() -> None:
    images = np.random.default_rng(0).integers(0, 256, (2, 37, 37, 3), dtype=np.uint8)
    state, features, logits = reference_forward(images)
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        GOLDEN,
        images=images,
        features=features,
        logits=logits,
        names=np.array(list(state)),
        shapes=np.array([",".join(map(str, v.shape)) for v in state.values()]),
    )
    print(f"wrote {GOLDEN}: features {features.shape} (|mean| {np.abs(features).mean():.3g}), logits {logits.shape}")


if __name__ == "__main__":
    main()
