"""StyleGAN2 / StyleGAN2-ADA: truncation, style mixing, path length, lazy regularisation, ADA, configs, training."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_configs import TINY_STYLEGAN2, load

from genimg_jax import data
from genimg_jax.augment.ada import expand_ops
from genimg_jax.config import ConfigError
from genimg_jax.losses.path_length import path_length_penalty, path_lengths
from genimg_jax.methods import build_method
from genimg_jax.methods.gan.stylegan2 import ema_beta, lazy_adam
from genimg_jax.models.stylegan2 import mix_styles, num_ws

STEPS = 6
R1_INTERVAL, PL_INTERVAL = 2, 3
TINY = [
    *TINY_STYLEGAN2,
    f"loss.r1_interval={R1_INTERVAL}",
    f"loss.pl_interval={PL_INTERVAL}",
]
# ADA adjusts p after every step, by 8 images / 40 = 0.2, so that its controller is visible in a few steps.
TINY_ADA = [*TINY, "augment.interval=1", "augment.adjust_kimg=0.04"]


def _config(name, overrides):
    return load(name, *overrides)


def _batches(config, steps):
    source = data.make_source(
        config.data.source, split="train", resolution=config.data.resolution, channels=config.data.channels
    )
    stream = data.make_train_stream(source, global_batch_size=config.train.batch_size, seed=0)
    return [jax.tree.map(jnp.asarray, next(stream)) for _ in range(steps)]


def _train(config):
    method = build_method(config)
    batches = _batches(config, STEPS)
    initial = jax.jit(method.init_state)(jax.random.PRNGKey(0), batches[0])
    step_fn = jax.jit(method.train_step)
    state, history = initial, []
    for batch in batches:
        state, metrics = step_fn(state, batch)
        history.append({name: float(value) for name, value in jax.device_get(metrics).items()})
    return method, initial, state, history


@pytest.fixture(scope="module")
def digits_run():
    return _train(_config("stylegan2.py", TINY))


@pytest.fixture(scope="module")
def conditional_run():
    return _train(_config("stylegan2.py", [*TINY, "model.num_classes=10"]))


@pytest.fixture(scope="module")
def faces_run():
    return _train(_config("stylegan2_ada.py", TINY_ADA))


def _adam_count(opt_state):
    return int(next(s.count for s in opt_state if isinstance(s, optax.ScaleByAdamState)))


@pytest.mark.slow  # trains the embedded StyleGAN2 configs (~1 min each)
@pytest.mark.parametrize("run_name", ["digits_run", "faces_run"])
def test_embedded_configs_train_with_lazy_regularisation(run_name, request):
    method, initial, state, history = request.getfixturevalue(run_name)
    assert int(state.step) == STEPS
    for name in ("g_loss", "d_loss", "r1_penalty", "pl_penalty", "pl_mean"):
        assert all(np.isfinite(m[name]) for m in history), name
    for step, metrics in enumerate(history):
        # R1 and the path-length penalty are computed exactly on their steps, and only there.
        assert (metrics["r1_penalty"] > 0) == (step % R1_INTERVAL == 0), step
        assert (metrics["pl_penalty"] > 0) == (step % PL_INTERVAL == 0), step
        previous_mean = history[step - 1]["pl_mean"] if step else 0.0
        assert (metrics["pl_mean"] != previous_mean) == (step % PL_INTERVAL == 0), step
    # Each regularisation step is one more Adam update of its network (lazy regularisation as in the paper).
    r1_steps = len(range(0, STEPS, R1_INTERVAL))
    pl_steps = len(range(0, STEPS, PL_INTERVAL))
    assert _adam_count(state.d_opt_state) == STEPS + r1_steps
    assert _adam_count(state.g_opt_state) == STEPS + pl_steps
    # The running average of w moved from zero; the EMA generator equals G after the first step (beta 0 at
    # ramp-up start) and then lags behind it.
    assert float(jnp.linalg.norm(state.w_avg)) > 0
    lag = optax.tree.norm(jax.tree.map(jnp.subtract, state.ema_generator, state.generator))
    moved = optax.tree.norm(jax.tree.map(jnp.subtract, state.ema_generator, initial.generator))
    assert float(lag) > 0 and float(moved) > 0
    images = method.sample(state, jax.random.PRNGKey(1), 5)
    assert images.shape == (5, 8, 8, 1)
    assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0


@pytest.mark.slow  # trains the embedded StyleGAN2 configs (~1 min each)
def test_ada_probability_follows_the_overfitting_heuristic(faces_run):
    _, _, state, history = faces_run
    p = 0.0
    for metrics in history:  # interval 1: every step moves p by 0.2 towards r_t = 0.6
        p = float(np.clip(p + np.sign(metrics["r_t"] - 0.6) * 0.2, 0.0, 1.0))
        assert metrics["ada_p"] == pytest.approx(p, abs=1e-6)
    assert float(state.ada.p) == pytest.approx(p, abs=1e-6)  # p lives in the (checkpointed) state


@pytest.mark.slow  # trains the embedded StyleGAN2 configs (~1 min each)
def test_digits_config_does_not_augment(digits_run):
    _, _, state, history = digits_run
    assert all(m["ada_p"] == 0.0 for m in history) and float(state.ada.p) == 0.0


@pytest.mark.slow  # trains the embedded StyleGAN2 configs (~1 min each)
def test_truncation(digits_run):
    method, _, state, _ = digits_run
    state = state.replace(w_avg=jax.random.normal(jax.random.PRNGKey(2), state.w_avg.shape))
    rng = jax.random.PRNGKey(3)
    sample = jax.jit(method.sample, static_argnums=2, static_argnames=("truncation_psi", "noise_mode"))
    centre = np.asarray(sample(state, rng, 4, truncation_psi=0.0, noise_mode="const"))
    # psi=0: every z gives the image of the average w (with constant noise).
    np.testing.assert_allclose(centre, np.broadcast_to(centre[:1], centre.shape), atol=1e-6)
    w_avg_ws = jnp.broadcast_to(state.w_avg, (1, num_ws(8), state.w_avg.shape[0]))
    expected = jax.jit(method._synthesize, static_argnums=3)(
        state.ema_generator, w_avg_ws, jax.random.PRNGKey(0), "const"
    )
    np.testing.assert_allclose(centre[:1], np.clip(expected, -1, 1), atol=1e-5)
    # psi=1 (the config default) is untruncated: images differ and do not depend on w_avg at all.
    full = np.asarray(sample(state, rng, 4))
    assert np.abs(full - full[:1]).max() > 1e-3
    other_centre = state.replace(w_avg=jnp.zeros_like(state.w_avg))
    np.testing.assert_allclose(full, sample(other_centre, rng, 4, truncation_psi=1.0), atol=1e-6)
    half = np.asarray(sample(state, rng, 4, truncation_psi=0.5))
    assert np.abs(half - full).max() > 1e-4 and np.abs(half - centre).max() > 1e-4


@pytest.mark.slow  # trains the embedded StyleGAN2 configs (~1 min each)
def test_samples_draw_fresh_noise_per_sample_by_default(digits_run):
    """The metrics' noise: with the noise strengths set to 1, psi=0 samples differ by their noise alone under the
    default noise_mode (random, as the reference's metrics) and are identical under "const"."""
    method, _, state, _ = digits_run
    strong = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.ones_like(x) if "strength" in jax.tree_util.keystr(path) else x, state.ema_generator
    )
    state = state.replace(ema_generator=strong)
    sample = jax.jit(method.sample, static_argnums=2, static_argnames=("truncation_psi", "noise_mode"))
    rng = jax.random.PRNGKey(4)
    assert method.config.sample.noise_mode == "random"
    random = np.asarray(sample(state, rng, 4, truncation_psi=0.0))
    const = np.asarray(sample(state, rng, 4, truncation_psi=0.0, noise_mode="const"))
    assert np.abs(random[1:] - random[:1]).max(axis=(1, 2, 3)).min() > 1e-2
    np.testing.assert_allclose(const, np.broadcast_to(const[:1], const.shape), atol=1e-6)


@pytest.mark.slow  # trains the embedded StyleGAN2 configs (~1 min each)
def test_class_conditional_generator_and_discriminator_use_the_labels(conditional_run):
    method, _, state, history = conditional_run
    assert all(np.isfinite(m["g_loss"]) and np.isfinite(m["d_loss"]) for m in history)
    rng = jax.random.PRNGKey(4)
    sample = jax.jit(method.sample, static_argnums=2)
    default = np.asarray(sample(state, rng, 12))
    in_order = {"label": jnp.arange(12) % 10}
    np.testing.assert_array_equal(default, sample(state, rng, 12, in_order))  # None: 0, 1, ..., 9, 0, 1
    sevens = np.asarray(sample(state, rng, 12, {"label": jnp.full((12,), 7)}))
    np.testing.assert_allclose(sevens[7], default[7], atol=1e-6)  # same z, same label: same image
    assert np.abs(sevens[0] - default[0]).max() > 1e-3  # same z, other label: other image
    # The label enters w: one z maps to a different w under another label.
    z = jax.random.normal(jax.random.PRNGKey(5), (2, 16))
    w_by_label = [method._map(state.ema_generator, z, jnp.full((2,), label)) for label in (0, 3)]
    assert float(jnp.abs(w_by_label[0] - w_by_label[1]).max()) > 1e-3
    # The projection discriminator scores one image differently under different labels, and only through
    # its label mapping: zeroing that network's output layer removes the label's effect (and the projection).
    images = jnp.asarray(default[:2])
    logits = [method.discriminator.apply({"params": state.discriminator}, images, jnp.full((2,), c)) for c in (0, 3)]
    assert float(jnp.abs(logits[0] - logits[1]).max()) > 1e-4
    d_params = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.zeros_like(x) if "label_mapping" in jax.tree_util.keystr(path) else x,
        state.discriminator,
    )
    blind = [method.discriminator.apply({"params": d_params}, images, jnp.full((2,), c)) for c in (0, 3)]
    np.testing.assert_allclose(blind[0], blind[1], atol=1e-6)
    # D's label mapping has its own depth (model.d_mapping_layers, the reference's 8), not G's mapping depth (2).
    d_layers = [name for name in state.discriminator["label_mapping"] if name.startswith("dense")]
    g_layers = [name for name in state.generator["mapping"] if name.startswith("dense")]
    assert (len(d_layers), len(g_layers)) == (8, 2)


def test_mix_styles_switches_at_the_cutoff():
    ws1, ws2 = jnp.zeros((2, 6, 3)), jnp.ones((2, 6, 3))
    mixed = np.asarray(mix_styles(ws1, ws2, 4))
    assert np.all(mixed[:, :4] == 0) and np.all(mixed[:, 4:] == 1)
    assert np.all(np.asarray(mix_styles(ws1, ws2, 6)) == 0)  # cutoff num_ws: no mixing


@pytest.mark.slow  # shares the trained digits StyleGAN2 (~1 min)
def test_style_mixing_in_the_generator(digits_run):
    method, _, state, _ = digits_run
    latents = jax.random.normal(jax.random.PRNGKey(4), (2, 3, 16))
    count = num_ws(8)

    @jax.jit
    def styles(params):
        w1, w2 = (method._map(params, z, None) for z in latents)
        # Coin below style_mixing_prob (0.9): cutoff = 1 + floor(u (num_ws - 1)) = 3 for u = 0.7, num_ws = 4.
        mixed, unmixed = method._styles(params, latents, jnp.array([0.5, 0.7]), None)
        plain, _ = method._styles(params, latents, jnp.array([0.95, 0.7]), None)  # coin above it: no mixing
        synthesis = lambda ws: jnp.sum(method._synthesize(params, ws, jax.random.PRNGKey(5)) ** 2)  # noqa: E731
        return w1, w2, mixed, unmixed, plain, jax.grad(synthesis)(mixed)

    w1, w2, mixed, unmixed, plain, grads = styles(state.generator)
    np.testing.assert_allclose(unmixed, w1, rtol=1e-5, atol=1e-6)
    for layer in range(count):
        np.testing.assert_allclose(mixed[:, layer], w1 if layer < 3 else w2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(plain, jnp.repeat(w1[:, None], count, axis=1), rtol=1e-5, atol=1e-6)
    # Every layer's w reaches the image, so mixing at any cutoff changes it.
    assert np.all(np.asarray(jnp.abs(grads).sum(axis=(0, 2))) > 0)


def test_path_length_of_a_linear_synthesis_has_its_closed_form():
    rng_a, rng_w, rng_y = jax.random.split(jax.random.PRNGKey(6), 3)
    a = jax.random.normal(rng_a, (4, 5, 3, 3, 2))  # (num_ws, w_dim, H, W, C)
    ws = jax.random.normal(rng_w, (6, 4, 5))
    y = jax.random.normal(rng_y, (6, 3, 3, 2))
    lengths = path_lengths(lambda w: jnp.einsum("nld,ldhwc->nhwc", w, a), ws, y)
    # J^T y for the linear map is a contracted with y, independent of ws.
    jt_y = np.einsum("nhwc,ldhwc->nld", np.asarray(y), np.asarray(a))
    expected = np.sqrt(np.mean(np.sum(jt_y**2, axis=2), axis=1))
    np.testing.assert_allclose(lengths, expected, rtol=1e-5)
    penalty, new_mean = path_length_penalty(lengths, jnp.float32(1.0), 0.01)
    expected_mean = 1.0 + 0.01 * (expected.mean() - 1.0)
    assert float(new_mean) == pytest.approx(expected_mean, rel=1e-5)
    assert float(penalty) == pytest.approx(np.mean((expected - expected_mean) ** 2), rel=1e-4)


def test_lazy_adam_scales_lr_and_betas():
    config = _config("stylegan2.py", []).optim.g
    params = {"w": jnp.zeros(3)}
    grads = {"w": jnp.array([1.0, -2.0, 0.5])}
    # Adam's first step is -lr sign(g); with lazy regularisation every 4 steps lr becomes lr * 4/5.
    for interval, factor in ((1, 0.5), (4, 0.8), (16, 16 / 17)):
        optimizer = lazy_adam(config, "optim.g", interval)
        updates, _ = optimizer.update(grads, optimizer.init(params), params)
        np.testing.assert_allclose(updates["w"], -config.learning_rate * factor * np.sign(grads["w"]), rtol=1e-5)


def test_cifar10_optimizers_keep_the_lazy_correction_without_path_length():
    """As in the reference, G's Adam gets c = 4/5 (G_reg_interval 4) although pl_weight = 0: lr 0.0025 * 0.8 =
    0.002, beta2 0.99^0.8; D's c = 16/17. Read from Adam's first step: update -lr sign(g), nu = (1 - beta2) g^2."""
    method = build_method(_config("stylegan2.py:cifar10", []))
    assert method.config.loss.pl_weight == 0
    params, grads = {"w": jnp.zeros(2)}, {"w": jnp.array([2.0, -0.5])}
    for optimizer, c in ((method.g_optimizer, 0.8), (method.d_optimizer, 16 / 17)):
        updates, opt_state = optimizer.update(grads, optimizer.init(params), params)
        np.testing.assert_allclose(updates["w"], -0.0025 * c * np.sign(grads["w"]), rtol=1e-5)
        adam_state = next(s for s in opt_state if isinstance(s, optax.ScaleByAdamState))
        np.testing.assert_allclose(1 - adam_state.nu["w"] / grads["w"] ** 2, 0.99**c, rtol=1e-5)
    assert (method.config.model.mapping_layers, method.config.model.d_mapping_layers) == (2, 8)


def test_ema_beta_half_life_and_rampup():
    # Without ramp-up: half-life ema_kimg * 1000 images, so after that many images the old weight is 1/2.
    beta = float(ema_beta(jnp.array(0), 32, 10.0, 0.0))
    assert beta ** (10_000 / 32) == pytest.approx(0.5, rel=1e-4)
    assert float(ema_beta(jnp.array(0), 32, 10.0, 0.05)) == 0.0  # ramp-up from a copy of G
    # Ramp-up: half-life = 0.05 x images seen while that is shorter.
    assert float(ema_beta(jnp.array(1000), 32, 10.0, 0.05)) == pytest.approx(0.5 ** (32 / 1600), rel=1e-5)
    assert float(ema_beta(jnp.array(10**6), 32, 10.0, 0.05)) == pytest.approx(beta, rel=1e-6)


def test_cifar10_variants_use_the_papers_setup():
    plain, ada = _config("stylegan2.py:cifar10", []), _config("stylegan2_ada.py:cifar10", [])
    for config in (plain, ada):
        assert config.data.source == "tfds:cifar10" and config.data.channels == 3
        assert (config.model.mapping_layers, config.model.channel_max, config.model.mbstd_group_size) == (2, 512, 32)
        assert config.train.batch_size == 64 and config.loss.r1_gamma == 0.01 and config.loss.pl_weight == 0
        assert config.model.num_classes == 10 and config.model.d_architecture == "orig"
        assert not config.data.random_flip  # the reference's --mirror is off in its CIFAR-10 runs
    assert (plain.augment.mode, ada.augment.mode) == ("none", "ada")
    # The reference's default augpipe bgc (stylegan2-ada-pytorch train.py): these twelve ops, no cutout.
    bgc = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
    bgc += ("brightness", "contrast", "lumaflip", "hue", "saturation")
    assert set(expand_ops(ada.augment.ops)) == set(bgc)
    faces = _config("stylegan2_ada.py", [])
    assert faces.data.source == "faces" and faces.augment.mode == "ada"
    assert faces.model.output_activation == "linear" and _config("stylegan2.py", []).model.output_activation == "tanh"


@pytest.mark.slow  # shares the trained digits StyleGAN2 (~1 min)
def test_tanh_output_is_the_squashed_linear_output(digits_run):
    """The digits variant's tanh output equals tanh of the linear synthesis with the same parameters."""
    method, _, state, _ = digits_run
    linear = build_method(_config("stylegan2.py", [*TINY, "model.output_activation=linear"]))
    z = jax.random.normal(jax.random.PRNGKey(9), (4, 16))
    ws = jnp.repeat(method._map(state.generator, z, None)[:, None], num_ws(8), axis=1)
    key = jax.random.PRNGKey(10)
    squashed = method._synthesize(state.generator, ws, key)
    np.testing.assert_allclose(squashed, jnp.tanh(linear._synthesize(state.generator, ws, key)), atol=1e-6)
    assert float(jnp.max(jnp.abs(squashed))) < 1.0


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("augment.mode=always", "augment.mode"),
        ("sample.noise_mode=loud", "sample.noise_mode"),
        ("model.mbstd_group_size=5", "model.mbstd_group_size"),
        ("loss.r1_interval=0", "loss.r1_interval"),
        ("model.dtype=float16", "model.dtype"),
        ("model.output_activation=sigmoid", "model.output_activation"),
    ],
)
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=f"config.{key}="):
        build_method(_config("stylegan2.py", [*TINY, override]))


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="variant 'mnist'"):
        load("stylegan2.py:mnist")


@pytest.mark.slow  # shares the trained digits StyleGAN2 (~1 min)
def test_bfloat16_networks_match_float32(digits_run):
    """model.dtype=bfloat16 computes the convolutions in bf16 from the same float32 parameters."""
    f32, _, state, _ = digits_run
    bf16 = build_method(_config("stylegan2.py", [*TINY, "model.dtype=bfloat16"]))
    ws = jax.random.normal(jax.random.PRNGKey(10), (8, num_ws(8), 16))

    @jax.jit
    def forward(generator, discriminator):
        images = [m._synthesize(generator, ws, jax.random.PRNGKey(11)) for m in (f32, bf16)]
        return images, [m._critic(discriminator, None)(images[0]) for m in (f32, bf16)]

    images, logits = forward(state.generator, state.discriminator)
    for reference, low in (images, logits):
        assert low.dtype == jnp.float32
        assert float(jnp.linalg.norm(low - reference) / jnp.linalg.norm(reference)) < 0.05
