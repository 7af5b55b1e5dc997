"""pix2pix: its networks against the reference's own numbers and definitions, its losses against numpy."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from digits_training import train_on_source
from PIL import Image
from tiny_configs import as_flags, load

from genimg_jax import data, main
from genimg_jax.config import ConfigError, adam_config
from genimg_jax.data.folder_source import FolderSource
from genimg_jax.evaluation.from_checkpoint import restore_latest
from genimg_jax.methods import build_method
from genimg_jax.methods.base import learning_rate_factor
from genimg_jax.methods.pix2pix import ADVERSARIAL, feature_matching
from genimg_jax.metrics import restoration
from genimg_jax.models.pix2pix import (
    InstanceNorm,
    MultiScalePatchDiscriminator,
    PatchDiscriminator,
    UNetGenerator,
    num_dropout_blocks,
    patch_receptive_field,
)
from genimg_jax.training.compiled_run import initial_rngs

# One variant per kind of input: a smaller source (SR), a mask channel, the paper's 256 px; the other embedded
# variants' fields have the shapes of faces_sr4's target and source (sketch, denoising, CT: same-size source).
TRACED_VARIANTS = ("faces_sr4", "faces_inpaint", "facades")


def _num_params(module, *inputs, **kwargs) -> int:
    variables = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *inputs, **kwargs))
    return sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))


def test_unet_256_and_the_70x70_patchgan_have_the_reference_parameter_counts():
    """The counts the reference prints for its defaults, unet_256 and the basic D on 3 + 3 channels with batch
    norm: "[Network G] Total number of parameters : 54.414 M" and "[Network D] ... : 2.769 M"."""
    generator = UNetGenerator(3, 8, 64, "batch")
    g_params = _num_params(generator, jnp.zeros((1, 256, 256, 3)), train=False, deterministic=True)
    assert round(g_params / 1e6, 3) == 54.414
    discriminator = MultiScalePatchDiscriminator(64, 3, "batch")
    assert round(_num_params(discriminator, jnp.zeros((1, 256, 256, 6)), train=False) / 1e6, 3) == 2.769


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_each_logit_of_the_patchgan_sees_exactly_its_receptive_field(num_layers):
    """The gradient of one interior logit is non-zero on a square of side `patch_receptive_field` (70 for the
    default 3 layers) and zero outside it. Batch norm in inference mode is per-pixel, so it mixes nothing."""
    assert patch_receptive_field(3) == 70
    side = patch_receptive_field(num_layers)
    discriminator = PatchDiscriminator(features=4, num_layers=num_layers, norm="batch")
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 128, 128, 2))
    variables = discriminator.init(jax.random.PRNGKey(0), x, train=False)

    def centre_logit(image):
        logits, _ = discriminator.apply(variables, image, train=False)
        return logits[0, logits.shape[1] // 2, logits.shape[2] // 2]

    support = np.abs(np.asarray(jax.jit(jax.grad(centre_logit))(x))[0]).sum(-1) > 0
    rows, columns = np.flatnonzero(support.any(1)), np.flatnonzero(support.any(0))
    assert rows[-1] - rows[0] + 1 == side and columns[-1] - columns[0] + 1 == side
    assert support[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1].all()


@pytest.mark.parametrize(("num_downs", "dropout_blocks"), [(5, 0), (6, 1), (8, 3)])
def test_dropout_sits_only_in_the_inner_8x_blocks(num_downs, dropout_blocks):
    """unet_256 has 3 dropout blocks, a U-Net of 5 levels none: only then is the output with dropout random."""
    assert num_dropout_blocks(num_downs) == dropout_blocks
    if num_downs == 8:
        return
    generator = UNetGenerator(1, num_downs, features=4, norm="batch")
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 2**num_downs, 2**num_downs, 1))
    variables = generator.init(jax.random.PRNGKey(1), x, train=False, deterministic=True)

    @jax.jit
    def translate(seed):
        return generator.apply(
            variables, x, train=False, deterministic=False, rngs={"dropout": jax.random.PRNGKey(seed)}
        )

    assert np.array_equal(translate(0), translate(0))
    assert np.array_equal(translate(0), translate(1)) == (dropout_blocks == 0)
    assert translate(0).shape == x.shape and float(jnp.max(jnp.abs(translate(0)))) <= 1.0


def test_gan_losses_are_the_references_bce_and_mse_on_every_patch():
    """vanilla: BCEWithLogits against 1 (G) and 1/0 (D); lsgan: MSELoss against the same targets."""
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=50), rng.normal(size=50)

    def bce(logits, target):
        p = 1.0 / (1.0 + np.exp(-logits))
        return np.mean(-(target * np.log(p) + (1 - target) * np.log(1 - p)))

    g_vanilla, d_vanilla = ADVERSARIAL["vanilla"]
    np.testing.assert_allclose(g_vanilla(jnp.asarray(fake)), bce(fake, 1.0), rtol=1e-5)
    np.testing.assert_allclose(d_vanilla(jnp.asarray(real), jnp.asarray(fake)), bce(real, 1) + bce(fake, 0), rtol=1e-5)
    g_lsgan, d_lsgan = ADVERSARIAL["lsgan"]
    np.testing.assert_allclose(g_lsgan(jnp.asarray(fake)), np.mean((fake - 1) ** 2), rtol=1e-5)
    expected = np.mean((real - 1) ** 2) + np.mean(fake**2)
    np.testing.assert_allclose(d_lsgan(jnp.asarray(real), jnp.asarray(fake)), expected, rtol=1e-5)


def test_feature_matching_weights_layers_and_scales_as_pix2pixhd():
    """Fake activations offset from the real ones by c[scale][layer] give sum 4 / layers / scales * |c|."""
    offsets = [[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0]]
    real = [[jnp.full((2, 3, 3, 4), float(layer)) for layer in range(4)] for _ in offsets]
    fake = [[r + c for r, c in zip(reals, cs, strict=True)] for reals, cs in zip(real, offsets, strict=True)]
    expected = sum(4.0 / 4 / 2 * abs(c) for cs in offsets for c in cs)
    np.testing.assert_allclose(feature_matching(fake, real), expected, rtol=1e-6)


def test_multiscale_discriminator_judges_avg_pooled_copies_without_counting_padding():
    """Scale 1 sees the 3x3 stride-2 average with padding left out of the count (pix2pixHD's downsampling):
    a constant image stays constant, so both scales of weight-shared-by-copy discriminators agree."""
    discriminator = MultiScalePatchDiscriminator(features=4, num_layers=1, norm="instance", num_scales=2)
    image = jnp.full((1, 32, 32, 2), 0.3)
    variables = discriminator.init(jax.random.PRNGKey(0), image, train=False)
    params = variables["params"]
    shared = {"params": {"scale_0": params["scale_0"], "scale_1": params["scale_0"]}}
    logits, activations = discriminator.apply(shared, image, train=False)
    assert [scale.shape for scale in logits] == [(1, 14, 14), (1, 6, 6)] and len(activations[0]) == 2
    single, _ = PatchDiscriminator(4, 1, "instance").apply(
        {"params": params["scale_0"]}, image[:, :16, :16], train=False
    )
    np.testing.assert_allclose(logits[1], single, atol=1e-6)


def test_learning_rate_holds_then_decays_linearly_like_the_references_linear_policy():
    optim = ml_collections.ConfigDict(adam_config(2e-4).to_dict())
    optim.update(decay_steps=100, decay_start_steps=100)
    factor = learning_rate_factor(optim)
    counts = np.array([0, 50, 100, 150, 199, 250])
    np.testing.assert_allclose([float(factor(c)) for c in counts], [1, 1, 1, 0.5, 0.01, 0], atol=1e-6)


def test_instance_norm_matches_numpy_per_image_and_channel():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(2, 5, 6, 3)).astype(np.float32)
    mean, var = x.mean(axis=(1, 2), keepdims=True), x.var(axis=(1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5)
    plain = InstanceNorm()
    np.testing.assert_allclose(plain.apply(plain.init(jax.random.PRNGKey(0), x), x), expected, atol=1e-5)
    affine = InstanceNorm(affine=True)
    variables = affine.init(jax.random.PRNGKey(0), x)
    scale, bias = np.asarray(variables["params"]["scale"]), np.asarray(variables["params"]["bias"])
    assert np.all(np.abs(scale - 1) < 0.1) and np.all(bias == 0)  # N(1, 0.02) and 0, as the reference's norms
    np.testing.assert_allclose(affine.apply(variables, x), expected * scale + bias, atol=1e-5)


@pytest.mark.slow  # ~1 min: compiling the U-Net's initialisation takes most of it
def test_short_training_denoises_the_faces_better_than_the_noisy_input():
    """400 steps of the embedded denoising config (at half width) beat the noisy input's PSNR on the test faces."""
    config = load("pix2pix.py:faces_denoise", "model.g_features=16", "model.d_features=16")
    method, state, history, _ = train_on_source(config, data.source_from_config(config.data, "train"), 400, True)
    assert np.mean([h["g_l1"] for h in history[-20:]]) < 0.5 * np.mean([h["g_l1"] for h in history[:5]])
    test = data.load_all(data.source_from_config(config.data, "test"))
    outputs = jax.jit(lambda s, b: method.sample(s, jax.random.PRNGKey(0), len(b["source"]), b))(state, test)
    target = test["image"].astype(np.float32)
    translated = restoration.psnr(target, data.from_unit_range(outputs).astype(np.float32))
    noisy = restoration.psnr(target, test["source"].astype(np.float32))
    assert float(translated) > float(noisy) + 1.0, (float(translated), float(noisy))


@pytest.mark.parametrize("variant", TRACED_VARIANTS)
def test_every_variant_traces_a_train_step_and_translates_to_the_target_shape(variant):
    """Abstractly (no arrays): each variant's fields (a smaller SR source, a mask channel) fit the networks."""
    config = load(f"pix2pix.py:{variant}", "data.source=folder_pairs:unused" if variant == "facades" else "seed=0")
    method = build_method(config)
    batch = data.example_batch(config.data, 2)
    state = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), batch)
    _, metrics = jax.eval_shape(method.train_step, state, batch)
    assert {"d_loss", "g_gan", "g_l1"} <= set(metrics)
    conditioning = {name: batch[name] for name in method.conditioning_fields()}
    images = jax.eval_shape(method.sample, state, jax.random.PRNGKey(1), 2, conditioning)
    assert images.shape == batch["image"].shape
    assert ("mask" in conditioning) == (variant == "faces_inpaint")


def test_inpainting_keeps_every_known_pixel_and_fills_only_the_hole():
    """faces_inpaint (`model.keep_known`): the output is the source exactly where the mask is 1; the hole is G's."""
    config = load("pix2pix.py:faces_inpaint", "model.g_features=4", "model.d_features=4")
    method = build_method(config)
    batch = data.load_all(data.source_from_config(config.data, "test"))
    batch = {name: jnp.asarray(values[:4]) for name, values in batch.items()}
    state = jax.jit(method.init_state)(jax.random.PRNGKey(0), batch)
    images = np.asarray(jax.jit(lambda s, b: method.sample(s, jax.random.PRNGKey(1), 4, b))(state, batch))
    known = np.asarray(batch["mask"])[..., 0] == 1
    source = np.asarray(data.to_unit_range(batch["source"]))
    assert 0 < known.mean() < 1
    np.testing.assert_array_equal(images[known], source[known])
    assert np.mean(np.abs(images[~known] - source[~known])) > 0.01
    config.model.use_mask = False
    with pytest.raises(ConfigError, match=r"model\.keep_known"):
        build_method(config)


@pytest.mark.slow  # ~1 min: a 2-step run (the U-Net's init compiles slowly), then the translation
def test_translate_mode_writes_each_users_image_translated_under_its_own_name(tmp_path, capsys):
    """--mode=translate fits each image to the (8x8) source of the SR config and writes the model's 32x32 output
    under the input's relative path, as the method translates those very pixels."""
    tiny = ["model.g_features=4", "model.d_features=4", "train.steps=2", "eval.batch_size=8"]
    workdir, inputs, out = tmp_path / "run", tmp_path / "mine", tmp_path / "out"
    assert main.main(["--config=configs/pix2pix.py:faces_sr4", f"--workdir={workdir}", *as_flags(tiny)]) == 0
    rng = np.random.default_rng(0)
    for name in ("a.png", "sub/b.jpg", "c.png"):
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(inputs / name)
    flags = [f"--workdir={workdir}", "--mode=translate", f"--input={inputs}", f"--out={out}", *as_flags(tiny)]
    flags.append("--config.watermark_key=")  # unmarked, so that the files hold the method's pixels exactly
    assert main.main(["--config=configs/pix2pix.py:faces_sr4", *flags]) == 0
    assert "wrote 3 translations" in capsys.readouterr().out
    written = sorted(str(path.relative_to(out)) for path in out.rglob("*.png"))
    assert written == ["a.png", "c.png", "pairs.png", "sub/b.png"]

    config = load("pix2pix.py:faces_sr4", *tiny)
    run, state, _ = restore_latest(config, workdir)
    source = FolderSource(str(inputs), "all", 8, 1)
    batch = np.stack([source[i]["image"] for i in range(3)] + [np.zeros((8, 8, 1), np.uint8)] * 5)
    rng = jax.random.fold_in(initial_rngs(config)[1], 0)
    expected = data.from_unit_range(run.method.sample(state, rng, 8, {"source": jnp.asarray(batch)}))[:3]
    for image, relative in zip(expected, source.files, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(out / relative.with_suffix(".png"))), image[..., 0])
