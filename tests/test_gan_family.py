"""Every embedded GAN config trains a few steps at a tiny size; conditioning, multi-scale D, lazy penalties,
spectral-norm state and ADA's p behave as specified."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import load

from genimg_jax import data
from genimg_jax.config import ConfigError, adam_config, apply_overrides
from genimg_jax.methods import build_method
from genimg_jax.methods.base import adam
from genimg_jax.methods.gan.common import rampup_ema_decay
from genimg_jax.models import gan_layers
from genimg_jax.models.resnet_gan import Discriminator

EMBEDDED = [
    "dcgan.py",
    "wgan_gp.py",
    "sngan.py",
    "sngan.py:faces",
    "sngan.py:faces_ada",
    "sagan.py",
    "cgan_projection.py",
]
# Trained by `make test`; the others (30-45 s each) by `make test-slow`.
FAST_EMBEDDED = ("dcgan.py", "sngan.py:faces")


def _tiny(spec, *extra):
    config = load(spec)
    d_steps = config.train.d_steps
    overrides = [
        "data.resolution=16",
        "model.g_features=8",
        "model.d_features=8",
        "model.latent_dim=8",
        f"train.batch_size={4 * d_steps}",
        *extra,
    ]
    return apply_overrides(config, overrides)


def _batches(config, steps):
    source = data.make_source(config.data.source, split="train", resolution=config.data.resolution, channels=1)
    stream = data.make_train_stream(source, global_batch_size=config.train.batch_size, seed=0)
    return [jax.tree.map(jnp.asarray, next(stream)) for _ in range(steps)]


def _train(config, steps=2):
    method = build_method(config)
    batches = _batches(config, steps)
    state = method.init_state(jax.random.PRNGKey(0), batches[0])
    initial = state
    step_fn = jax.jit(method.train_step)
    history = []
    for batch in batches:
        state, metrics = step_fn(state, batch)
        history.append(jax.device_get(metrics))
    return method, initial, state, history


# ADA adjusts p after every D step by batch * interval / (kimg * 1000) = 4 / 4 = 1, so its sign shows at once.
SHRINK = {"sngan.py:faces_ada": ["augment.interval=1", "augment.adjust_kimg=0.004"]}
_RUNS = {}


def _run(spec):
    if spec not in _RUNS:
        _RUNS[spec] = _train(_tiny(spec, *SHRINK.get(spec, [])))
    return _RUNS[spec]


@pytest.mark.parametrize(
    "spec", [spec if spec in FAST_EMBEDDED else pytest.param(spec, marks=pytest.mark.slow) for spec in EMBEDDED]
)
def test_embedded_configs_train_with_finite_losses(spec):
    method, initial, state, history = _run(spec)
    assert int(state.step) == 2
    for metrics in history:
        for name in ("d_loss", "g_loss", "penalty", "d_grad_norm", "g_grad_norm"):
            assert np.isfinite(metrics[name]), (spec, name, metrics[name])
    # Both networks moved.
    for network in ("generator", "discriminator"):
        before, after = (jax.tree.leaves(getattr(s, network)["params"]) for s in (initial, state))
        assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True)), network
    images = method.sample(state, jax.random.PRNGKey(1), 10)
    assert images.shape == (10, 16, 16, 1)
    assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0


@pytest.mark.slow  # ~1 min: compiles a step for every penalty
def test_penalties_are_active_where_configured():
    assert all(float(m["penalty"]) > 0 for m in _run("wgan_gp.py")[3])
    assert all(float(m["penalty"]) == 0 for m in _run("sngan.py")[3])


def test_spectral_norm_power_iteration_state_is_carried_and_updated():
    _, initial, state, _ = _run("sngan.py")
    paths = [
        jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(state.discriminator["batch_stats"])
    ]
    assert any(path.endswith("/u']") for path in paths), "power-iteration vectors live in the D state"
    before = jax.tree.leaves(initial.discriminator["batch_stats"])
    after = jax.tree.leaves(state.discriminator["batch_stats"])
    assert any(not np.allclose(b, a) for b, a in zip(before, after, strict=True))


def test_ada_probability_lives_in_the_state_and_follows_the_sign_of_r_t():
    *_, state, history = _run("sngan.py:faces_ada")
    expected = 0.0
    for metrics in history:
        expected = max(expected + (1.0 if metrics["r_t"] > 0.6 else -1.0), 0.0)  # clamped at 0 only
        assert float(metrics["ada_p"]) == pytest.approx(expected)
    assert float(state.ada.p) == pytest.approx(expected)


@pytest.mark.slow  # ~50 s: trains a conditional GAN
def test_class_conditional_samples_follow_the_requested_labels():
    method, _, state, _ = _run("cgan_projection.py")
    # Give every class its own batch-norm scale and shift so that labels matter visibly.
    params = state.ema_generator["params"]
    noise = iter(jax.random.split(jax.random.PRNGKey(3), 100))
    perturbed = jax.tree_util.tree_map_with_path(
        lambda path, x: (
            x + 0.5 * jax.random.normal(next(noise), x.shape) if "class_" in jax.tree_util.keystr(path) else x
        ),
        params,
    )
    state = state.replace(ema_generator={**state.ema_generator, "params": perturbed})
    rng = jax.random.PRNGKey(4)
    default = method.sample(state, rng, 12)
    in_order = method.sample(state, rng, 12, {"label": jnp.arange(12) % 10})
    np.testing.assert_array_equal(default, in_order)  # conditioning=None means 0, 1, ..., 9, 0, 1
    sevens = method.sample(state, rng, 12, {"label": jnp.full((12,), 7)})
    assert sevens.shape == (12, 16, 16, 1)
    np.testing.assert_allclose(sevens[7], default[7], atol=1e-6)  # same latent, same label: same image
    assert float(jnp.max(jnp.abs(sevens[0] - default[0]))) > 1e-3  # same latent, other label: other image


def test_projection_head_adds_the_class_embedding_inner_product():
    head = gan_layers.ProjectionHead(num_classes=3)
    features = jax.random.normal(jax.random.PRNGKey(0), (4, 5))
    labels = jnp.array([0, 1, 2, 1])
    variables = head.init(jax.random.PRNGKey(1), features, labels, train=False)
    dense = variables["params"]["Dense_0"]["Dense_0"]
    embedding = variables["params"]["Embed_0"]["embedding"]
    expected = features @ dense["kernel"][:, 0] + dense["bias"][0] + jnp.sum(embedding[labels] * features, axis=1)
    np.testing.assert_allclose(head.apply(variables, features, labels, train=False), expected, rtol=1e-5)
    unconditional = gan_layers.ProjectionHead(num_classes=0)
    u_vars = {"params": {"Dense_0": variables["params"]["Dense_0"]}}
    np.testing.assert_allclose(
        unconditional.apply(u_vars, features, None, train=False),
        features @ dense["kernel"][:, 0] + dense["bias"][0],
        rtol=1e-5,
    )


def test_multi_scale_discriminator_judges_each_scale_with_its_own_weights():
    config = _tiny("sngan.py", "model.d_scales=2")
    method = build_method(config)
    batch = _batches(config, 1)[0]
    state = method.init_state(jax.random.PRNGKey(0), batch)
    images = data.to_unit_range(batch["image"])
    logits = method.discriminator.apply(state.discriminator, images, None, train=False)
    assert logits.shape == (images.shape[0], 2)
    half = images.reshape(images.shape[0], 8, 2, 8, 2, 1).mean(axis=(2, 4))  # 2x2 average pooling
    scale_net = Discriminator(features=config.model.d_features, spectral_norm=True)
    for scale, x in enumerate([images, half]):
        variables = {collection: v[f"scale_{scale}"] for collection, v in state.discriminator.items()}
        expected = scale_net.apply(variables, x, None, train=False)
        np.testing.assert_allclose(logits[:, scale], expected, rtol=1e-4, atol=1e-5)


def test_lazy_r1_multi_scale_bfloat16_dcgan():
    """One run exercising three options: the R1 penalty on every 2nd D step only, a two-scale discriminator
    (its losses stay finite), and bfloat16 computation with float32 parameters."""
    config = _tiny(
        "dcgan.py",
        "loss.penalty=r1",
        "loss.penalty_interval=2",
        "loss.penalty_weight=1.0",
        "model.d_scales=2",
        "model.dtype=bfloat16",
    )
    _, _, state, history = _train(config, steps=3)
    penalties = [float(m["penalty"]) for m in history]
    assert penalties[0] > 0 and penalties[1] == 0 and penalties[2] > 0
    assert all(np.isfinite(m["d_loss"]) and np.isfinite(m["g_loss"]) for m in history)
    params = jax.tree.leaves(state.generator["params"]) + jax.tree.leaves(state.discriminator["params"])
    assert {leaf.dtype for leaf in params} == {jnp.dtype(jnp.float32)}


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("loss.adversarial=wgan", "loss.adversarial"),
        ("loss.penalty=r3", "loss.penalty"),
        ("augment.mode=diffaugment:color", "augment.mode"),
        ("augment.policy=colour", "augment.policy"),
        ("augment.ops=('xflip', 'noise')", "augment.ops"),
        ("augment.p=1.5", "augment.p"),
        ("train.d_steps=3", "train.batch_size"),
        ("model.d_scales=3", "model.d_scales"),
        ("model.d_pooling=max", "model.d_pooling"),
        ("train.g_batch_multiple=0", "train.g_batch_multiple"),
        ("train.sample_generator=best", "train.sample_generator"),
    ],
)
def test_bad_gan_settings_name_the_key(override, key):
    config = _tiny("sngan.py:faces_ada", override)
    with pytest.raises(ConfigError, match=re.escape(f"config.{key}=")):
        build_method(config)


def test_dcgan_rejects_class_conditioning():
    with pytest.raises(ConfigError, match=re.escape("config.model.num_classes")):
        build_method(_tiny("dcgan.py", "model.num_classes=10"))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("dcgan.py:cifar10", {"batch": 128, "d_steps": 1, "lr": (2e-4, 2e-4), "b": (0.5, 0.999), "decay": 0}),
        (
            "wgan_gp.py:cifar10",
            {"batch": 320, "d_steps": 5, "lr": (2e-4, 2e-4), "b": (0.0, 0.9), "decay": 100000, "recipe": (2, "live")},
        ),
        (
            "sngan.py:cifar10",
            {"batch": 320, "d_steps": 5, "lr": (2e-4, 2e-4), "b": (0.0, 0.9), "decay": 50000, "recipe": (2, "live")},
        ),
        ("sagan.py:cifar10", {"batch": 64, "d_steps": 1, "lr": (1e-4, 4e-4), "b": (0.0, 0.9), "decay": 0}),
        (
            "cgan_projection.py:cifar10",
            {"batch": 320, "d_steps": 5, "lr": (2e-4, 2e-4), "b": (0.0, 0.9), "decay": 50000, "recipe": (2, "live")},
        ),
    ],
)
def test_cifar10_variants_use_the_papers_batch_and_optimiser(spec, expected):
    config = load(spec)
    assert config.data.source == "tfds:cifar10" and config.data.channels == 3
    assert config.train.batch_size == expected["batch"] and config.train.d_steps == expected["d_steps"]
    assert (config.optim.g.learning_rate, config.optim.d.learning_rate) == expected["lr"]
    assert (config.optim.d.b1, config.optim.d.b2) == expected["b"]
    # Linear decay to 0 over the generator updates, and over the d_steps-times more discriminator updates.
    assert config.optim.g.decay_steps == expected["decay"]
    assert config.optim.d.decay_steps == expected["decay"] * expected["d_steps"]
    # The authors' code: G steps on 2x the D batch and the live generator is evaluated (SNGAN, projection, WGAN-GP).
    assert (config.train.g_batch_multiple, config.train.sample_generator) == expected.get("recipe", (1, "ema"))
    # The WGAN-GP code's critic mean-pools; the SNGAN / projection code's head has no bias.
    assert config.model.d_pooling == ("mean" if spec.startswith("wgan_gp") else "sum")
    assert config.model.d_head_bias == (spec.split(".")[0] not in ("sngan", "cgan_projection"))
    build_method(config)  # every key validates


def test_generator_step_batch_is_the_multiple_of_the_discriminator_batch():
    """train.g_batch_multiple=2: each of the 5 D steps fakes 4 images (its slice of 20), the G step 8 (IWT, SNP)."""
    method = build_method(_tiny("wgan_gp.py", "train.g_batch_multiple=2"))
    batch = _batches(method.config, 1)[0]
    state = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), batch)
    sizes, generate = [], method._generate
    method._generate = lambda variables, rng, num: (sizes.append(num), generate(variables, rng, num))[1]
    jax.eval_shape(method.train_step, state, batch)
    assert sizes == [4] * 5 + [8]


def test_mean_pooling_divides_the_sum_pooled_logit_by_the_map_area():
    """With no head bias, the logit is linear in the pooled features: sum pooling over the final 8x8 maps gives 64
    times the mean-pooled logit (the WGAN-GP critic's pooling), from the same weights."""
    images = jax.random.normal(jax.random.PRNGKey(0), (3, 16, 16, 1))
    nets = {p: Discriminator(features=8, spectral_norm=False, pooling=p, head_bias=False) for p in ("sum", "mean")}
    variables = nets["sum"].init(jax.random.PRNGKey(1), images, None, train=False)
    assert "bias" not in variables["params"]["ProjectionHead_0"]["Dense_0"]["Dense_0"]
    logits = {p: net.apply(variables, images, None, train=False) for p, net in nets.items()}
    np.testing.assert_allclose(logits["sum"], 64 * logits["mean"], rtol=1e-5)


def test_live_sample_generator_uses_the_trained_weights_and_their_statistics():
    """train.sample_generator=live samples the trained generator (params and batch-norm statistics); ema the EMA."""
    batch = _batches(_tiny("sngan.py"), 1)[0]
    samples = {}
    for choice in ("live", "ema"):
        method = build_method(_tiny("sngan.py", f"train.sample_generator={choice}"))
        state = method.init_state(jax.random.PRNGKey(0), batch)
        ema = jax.tree.map(lambda x: 0.5 * x, state.ema_generator["params"])
        state = state.replace(ema_generator={**state.ema_generator, "params": ema})
        samples[choice] = method.sample(state, jax.random.PRNGKey(2), 4)
        latents = method._latents(jax.random.PRNGKey(2), 4)
        expected = state.generator if choice == "live" else state.ema_generator
        np.testing.assert_allclose(samples[choice], method.generator.apply(expected, latents, None, train=False))
    assert float(jnp.abs(samples["live"] - samples["ema"]).max()) > 1e-3


@pytest.mark.parametrize(
    ("warmup_steps", "decay_steps", "factors"),
    [
        (0, 4, [1.0, 0.75, 0.5, 0.25, 0.0]),  # linear decay to 0 at decay_steps
        (4, 0, [0.25, 0.5, 0.75, 1.0, 1.0]),  # linear warm-up, then constant
        (2, 4, [0.5, 0.75, 0.5, 0.25, 0.0]),  # one schedule: the product of both
    ],
)
def test_learning_rate_warmup_and_decay_trace_their_schedule(warmup_steps, decay_steps, factors):
    # With a constant gradient every Adam update is -lr_t * g / (|g| + eps), so the updates trace the schedule.
    optim_config = adam_config(1e-2)
    optim_config.update(warmup_steps=warmup_steps, decay_steps=decay_steps)
    optimizer = adam(optim_config, "optim.g")
    params = {"w": jnp.zeros(3)}
    state = optimizer.init(params)
    sizes = []
    for _ in range(5):
        updates, state = optimizer.update({"w": jnp.ones(3)}, state, params)
        sizes.append(float(-updates["w"][0]))
    np.testing.assert_allclose(sizes, 1e-2 * np.array(factors), rtol=1e-5, atol=1e-9)


def test_a_negative_schedule_length_names_its_section():
    optim_config = adam_config(1e-2)
    optim_config.warmup_steps = -1
    with pytest.raises(ConfigError, match=re.escape("config.optim.d.warmup_steps=-1 is invalid")):
        adam(optim_config, "optim.d")


def test_unknown_variant_is_one_config_error():
    with pytest.raises(ConfigError, match="variant 'cifar' is unknown"):
        load("sngan.py:cifar")


def test_rampup_ema_decay_follows_stylegan2_ada():
    # Half-life of 0.999 at batch 64: 64 ln 2 / -ln 0.999 images; ramp-up 0.05 caps it at 5% of images seen.
    assert float(rampup_ema_decay(jnp.array(0), 64, 0.999, 0.05)) == 0.0  # the first average is a copy
    half_life = 64 * np.log(0.5) / np.log(0.999)
    at_100 = 0.5 ** (64 / (100 * 64 * 0.05))
    assert float(rampup_ema_decay(jnp.array(100), 64, 0.999, 0.05)) == pytest.approx(at_100, rel=1e-5)
    late = int(half_life / (64 * 0.05)) + 10
    assert float(rampup_ema_decay(jnp.array(late), 64, 0.999, 0.05)) == pytest.approx(0.999, rel=1e-6)
