"""Diffusion methods on real digits: each config's loss falls in a short run, samples have the right form,
latent diffusion runs on a VAE trained here, and the published CIFAR-10 configs have the published sizes."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import TINY_UNET, load

from genimg_jax import data
from genimg_jax.config import ConfigError
from genimg_jax.diffusion import edm
from genimg_jax.methods import build_method
from genimg_jax.methods.latent_diffusion import LatentDiffusion
from genimg_jax.tools import compare_samplers
from genimg_jax.training import compiled_run, trainer
from genimg_jax.training.pretrained import load_pretrained

TRAIN_STEPS = 40


def digits_batches(config, num_batches, batch_size):
    source = data.make_source("digits", split="train", resolution=config.data.resolution, channels=1)
    stream = data.make_train_stream(source, global_batch_size=batch_size, seed=0)
    return [jax.tree.map(jnp.asarray, next(stream)) for _ in range(num_batches)]


def train_and_probe(config):
    """Train TRAIN_STEPS steps; the evaluation loss of the live weights before and after, on fixed data and noise."""
    method = build_method(config, load_pretrained(config))
    batches = digits_batches(config, TRAIN_STEPS, config.train.batch_size)
    probe_batch = digits_batches(config, 1, 256)[0]
    evaluate = jax.jit(method.evaluate_batch)

    def probe(state):
        values = evaluate(state.replace(ema_params=state.params), probe_batch, jax.random.PRNGKey(7))
        assert values["loss"].shape == (256,) and bool(jnp.all(values["loss"] >= 0))
        return float(jnp.mean(values["loss"]))

    state = jax.jit(method.init_state)(jax.random.PRNGKey(0), batches[0])
    before = probe(state)
    step = jax.jit(method.train_step)
    for batch in batches:
        state, metrics = step(state, batch)
        assert np.isfinite(float(metrics["loss"]))
    return method, state, before, probe(state), probe_batch


def untrained_edm_loss(second_moment, config):
    """Expected EDM loss of D = c_skip x (zero network output) for data with E[x^2] = `second_moment` per pixel:
    lambda E|c_skip sigma n - (1 - c_skip) x|^2 = (sigma_d^4 + sigma^2 m2) / (sigma_d^2 (sigma^2 + sigma_d^2))."""
    model = config.model
    sigma = edm.sample_training_sigmas(jax.random.PRNGKey(11), 200_000, model.p_mean, model.p_std)
    sd2 = model.sigma_data**2
    return float(jnp.mean((sd2**2 + sigma**2 * second_moment) / (sd2 * (sigma**2 + sd2))))


@pytest.mark.slow  # ~1 min: trains or compiles the U-Net several times
@pytest.mark.parametrize("spec", ["ddpm.py", "ddpm.py:digits_guided", "edm.py"])
def test_short_training_lowers_the_loss_and_samples_are_images(spec):
    config = load(spec, *TINY_UNET)
    method, state, before, after, probe_batch = train_and_probe(config)
    # Zero-initialised output layers: a DDPM network predicts eps_hat = 0, whose loss is E|eps|^2 = 1.
    if config.model.parameterization == "edm":
        second_moment = float(jnp.mean(data.to_unit_range(probe_batch["image"]) ** 2))
        assert before == pytest.approx(untrained_edm_loss(second_moment, config), rel=0.15)
    else:
        assert before == pytest.approx(1.0, rel=0.05)
    assert after < 0.8 * before
    assert int(state.step) == TRAIN_STEPS

    images = jax.jit(lambda s, r: method.sample(s, r, 10))(state, jax.random.PRNGKey(1))
    assert images.shape == (10, 8, 8, 1)
    assert bool(jnp.all(jnp.abs(images) <= 1.0))


def test_ddpm_denoiser_feeds_the_network_the_timestep_of_each_noise_level():
    """A DDPM network sees x / sqrt(1 + sigma^2) and the t with sigma_t = sigma; D = x - sigma eps."""
    config = load("ddpm.py", *TINY_UNET)
    method = build_method(config)
    seen = {}

    def network(params, x, t, labels, rng, augment_labels=None):
        seen["x"], seen["t"] = x, t
        return jnp.ones_like(x)

    method._network = network
    x = jnp.full((3, 8, 8, 1), 2.0)
    sigma = jnp.asarray(method.training_sigmas[[0, 400, 999]], jnp.float32)
    denoised = method.denoiser(None)(x, sigma, None)
    np.testing.assert_allclose(seen["t"], [0, 400, 999], atol=1e-2)
    np.testing.assert_allclose(seen["x"][:, 0, 0, 0], 2.0 * np.sqrt(method.alpha_bar[jnp.array([0, 400, 999])]))
    np.testing.assert_allclose(denoised[:, 0, 0, 0], 2.0 - sigma, rtol=1e-5)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("sample.sampler=euler", "config.sample.sampler"),
        ("model.parameterization=v", "config.model.parameterization"),
        ("sample.guidance_scale=2.0", "config.sample.guidance_scale"),
        ("sample.eta=1.5", "config.sample.eta"),
        ("sample.variance=learned", "config.sample.variance"),
        ("sample.respacing=quadratic", "config.sample.respacing"),
        ("eval.bpd_timesteps=1", "config.eval.bpd_timesteps"),
        ("augment.mode=ada", "config.augment.mode"),
        ("augment.mode=edm", "config.model.augment_dim"),
        ("augment.p=1.5", "config.augment.p"),
    ],
)
def test_invalid_settings_name_their_key(override, key):
    config = load("ddpm.py", override)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_method(config)


def test_cifar10_configs_have_the_published_setup():
    ddpm = load("ddpm.py:cifar10")
    method = build_method(ddpm)
    params = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), data.example_batch(ddpm.data, 1)).params
    assert sum(leaf.size for leaf in jax.tree.leaves(params)) == pytest.approx(35.7e6, rel=0.002)  # Ho et al.
    assert (ddpm.optim.denoiser.learning_rate, ddpm.train.batch_size, ddpm.train.ema_decay) == (2e-4, 128, 0.9999)
    assert ddpm.data.source == "tfds:cifar10" and ddpm.model.dropout == 0.1
    assert ddpm.sample.variance == "beta" and ddpm.sample.clip_denoised  # fixedlarge, x_0 clipped (run_cifar.py)
    edm = load("edm.py:cifar10")
    assert (edm.model.parameterization, edm.sample.sampler, edm.sample.steps) == ("edm", "heun", 18)
    assert not edm.sample.clip_denoised  # edm_sampler does not clip
    assert edm.train.batch_size // edm.train.microbatch == 8  # EDM's batch_gpu 64 on one device
    assert (edm.train.batch_size, edm.optim.denoiser.learning_rate, edm.model.dropout) == (512, 1e-3, 0.13)


def test_edm_augmentation_conditions_the_training_loss_only():
    """With augment.mode = "edm" the training loss augments x0 and feeds the network the augment labels through a
    bias-free linear map into its embedding; the held-out loss (and sampling, through the same label-free
    denoiser) gives zero labels, so that map's weights change nothing there."""
    config = load("edm.py", *TINY_UNET, "augment.mode=edm", "augment.p=0.5", "model.augment_dim=9")
    method = build_method(config)
    x0 = data.to_unit_range(digits_batches(config, 1, 32)[0]["image"])
    # Random weights everywhere: the zero-initialised output layers would hide any dependence on the embedding.
    shapes = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), {"image": x0}).params
    numpy_rng = np.random.default_rng(1)
    params = jax.tree.map(lambda leaf: jnp.asarray(0.2 * numpy_rng.normal(size=leaf.shape), jnp.float32), shapes)
    map_augment = params["ConditioningEmbedding_0"]["map_augment"]
    assert map_augment["kernel"].shape == (9, config.model.features) and "bias" not in map_augment
    perturbed = jax.tree.map(lambda leaf: leaf, params)
    perturbed["ConditioningEmbedding_0"]["map_augment"] = {"kernel": map_augment["kernel"] + 1.0}

    @jax.jit
    def losses(params):
        rng = jax.random.PRNGKey(2)
        return method.loss(params, x0, None, rng, train=True), method.loss(params, x0, None, rng, train=False)

    (train, held_out), (train_perturbed, held_out_perturbed) = losses(params), losses(perturbed)
    assert float(jnp.max(jnp.abs(train - train_perturbed))) > 1e-3
    np.testing.assert_array_equal(held_out, held_out_perturbed)


def test_edm_cifar10_uses_edm_augmentation():
    config = load("edm.py:cifar10")
    assert (config.augment.mode, config.augment.p, config.model.augment_dim) == ("edm", 0.12, 9)
    assert not config.data.random_flip  # EDM's dataset x-flips are off: the augment pipe flips, with labels


def tiny_vae(workdir):
    config = load(
        "vae.py",
        "data.resolution=16",
        "model.features=8",
        "model.latent_dim=4",
        "train.steps=10",
        "train.batch_size=16",
        "train.sample_every=0",
        "train.log_every=0",
        "eval.every=0",
    )
    trainer.train(config, workdir)


def ldm_config(first_stage_workdir, *extra):
    overrides = [
        "data.resolution=16",
        "model.features=32",
        "model.num_res_blocks=1",
        f"model.first_stage_workdir={first_stage_workdir}",
        "train.batch_size=32",
        "sample.steps=4",
        "optim.denoiser.warmup_steps=5",
        *extra,
    ]
    return load("ldm.py", *overrides)


@pytest.mark.slow  # ~1 min: trains or compiles the U-Net several times
def test_latent_diffusion_on_a_vae_trained_here(tmp_path):
    tiny_vae(tmp_path / "vae")
    config = ldm_config(tmp_path / "vae")
    method, state, before, after, _ = train_and_probe(config)
    assert isinstance(method, LatentDiffusion) and method.data_shape == (4,)
    assert before == pytest.approx(1.0, rel=0.15)  # zero network output, unit-variance latents, sigma_data = 1
    # Even the best denoiser of unit Gaussian data has this weighted loss 1 at every sigma: only the latents'
    # departure from a Gaussian can be learnt, so the fall is smaller than in pixel space.
    assert after < 0.9 * before
    # The measured scale gives the training latents unit standard deviation.
    source = data.make_source("digits", split="train", resolution=16, channels=1)
    images = jnp.asarray(np.stack([source[i]["image"] for i in range(len(source))][:1024]))
    latents = method.encode(state.first_stage, {"image": images})
    assert latents.shape == (1024, 4)
    assert float(jnp.std(latents)) == pytest.approx(1.0, rel=1e-3)
    # The first stage is frozen: training left the VAE parameters as restored.
    for trained, restored in zip(
        jax.tree.leaves(state.first_stage), jax.tree.leaves(method.first_stage_params()), strict=True
    ):
        np.testing.assert_array_equal(trained, restored)
    images = method.sample(state, jax.random.PRNGKey(3), 6)
    assert images.shape == (6, 16, 16, 1) and bool(jnp.all(jnp.abs(images) <= 1.0))

    # The whole path through the trainer, then a grid per sampler from its checkpoint.
    workdir = tmp_path / "ldm"
    trainer.train(ldm_config(tmp_path / "vae", "train.steps=3", "train.sample_every=0", "eval.every=0"), workdir)
    assert compare_samplers.main([f"--workdir={workdir}", "--samplers=ddim,heun", "--num=4", "--steps=3"]) == 0
    assert (workdir / "samples" / "compare_heun_3.png").is_file()
    assert (workdir / "samples" / "compare_ddim_3.png").is_file()


def test_latent_diffusion_needs_a_trained_vae_workdir(tmp_path):
    with pytest.raises(ConfigError, match=r"config\.model\.first_stage_workdir=''"):
        load_pretrained(ldm_config(""))
    with pytest.raises(ConfigError, match=r"config\.model\.first_stage_workdir=.*config\.json does not exist"):
        load_pretrained(ldm_config(tmp_path / "missing"))
    (tmp_path / "gan").mkdir()
    (tmp_path / "gan" / "config.json").write_text(json.dumps({"method": "gan"}))
    with pytest.raises(ConfigError, match=r"config\.model\.first_stage_workdir=.*not a 'vae' or 'vqvae' run"):
        load_pretrained(ldm_config(tmp_path / "gan"))
    (tmp_path / "old").mkdir()  # a VAE run whose saved config lacks keys this version needs
    (tmp_path / "old" / "config.json").write_text(json.dumps({"method": "vae", "model": {}}))
    with pytest.raises(ConfigError, match=r"config\.model\.first_stage_workdir=.*does not fit this version's 'vae'"):
        load_pretrained(ldm_config(tmp_path / "old"))


def test_guidance_is_applied_before_clipping():
    """Denoiser outputs beyond [-1, 1]: conditional 1.5, unconditional -0.5; w = 1 gives 2(1.5) + 0.5 = 3.5, clipped
    to 1. Clipping each prediction first would give 2(1) + 0.5 = 2.5."""
    config = load("ddpm.py:digits_guided", *TINY_UNET)
    method = build_method(config)
    null = config.model.num_classes
    method.denoiser = lambda params: lambda x, sigma, labels: jnp.where(labels[:, None] == null, -0.5, 1.5) + 0 * x
    x, labels = jnp.zeros((3, 2)), jnp.array([0, 1, 2])
    np.testing.assert_allclose(method.sampling_denoiser(None, guided=True)(x, 1.0, labels), 1.0)
    config.sample.clip_denoised = False
    np.testing.assert_allclose(method.sampling_denoiser(None, guided=True)(x, 1.0, labels), 3.5)


# One level, one block, no attention: the cheapest U-Net to compile, for tests of the step's plumbing.
ONE_LEVEL_UNET = [
    *TINY_UNET,
    "model.channel_multipliers=(1,)",
    "model.num_res_blocks=1",
    "model.attention_resolutions=()",
]


def test_bits_per_dim_evaluation_on_held_out_images():
    """A strided bound of a tiny untrained model: per example, L_T as its closed form, and the total at least the
    decoder plus the prior (the KL terms are >= 0)."""
    config = load("ddpm.py", *ONE_LEVEL_UNET, "eval.bpd_timesteps=3")
    method = build_method(config)
    batch = digits_batches(config, 1, 8)[0]
    state = jax.jit(method.init_state)(jax.random.PRNGKey(0), batch)
    values = jax.jit(method.evaluate_batch)(state, batch, jax.random.PRNGKey(1))
    assert set(values) == {"loss", "bpd_strided", "bpd_decoder", "bpd_prior"}
    x0 = np.asarray(data.to_unit_range(batch["image"]), np.float64).reshape(8, -1)
    last = float(method.alpha_bar_float64[-1])
    prior_nats = 0.5 * (last * x0**2 + (1 - last) - 1 - np.log(1 - last)).sum(-1)
    np.testing.assert_allclose(values["bpd_prior"], prior_nats / (x0.shape[1] * np.log(2)), rtol=1e-3, atol=1e-9)
    assert bool(jnp.all(values["bpd_strided"] >= values["bpd_decoder"] + values["bpd_prior"] - 1e-5))
    with pytest.raises(ConfigError, match=r"config\.eval\.bpd_timesteps"):
        build_method(load("edm.py", "eval.bpd_timesteps=4"))


@pytest.mark.slow  # ~1 min: trains or compiles the U-Net several times
def test_gradient_accumulation_equals_the_full_batch_step():
    """Batch 32 over 8 devices (4 each) in micro-batches of 2 per device: the same update as one pass, each
    micro-batch split over the devices (no data moved between them: no all-to-all, all-gather or permute)."""
    results = {}
    for microbatch in (0, 2):
        run = compiled_run.compile_run(load("ddpm.py", *ONE_LEVEL_UNET, f"train.microbatch={microbatch}"))
        if not results:
            batch = data.make_global_batch(digits_batches(run.method.config, 1, 32)[0], run.batch_sharding)
            initial = run.init(jax.random.PRNGKey(0))
        step = run.train_step.lower(initial, batch).compile()
        state, metrics = step(jax.tree.map(jnp.copy, initial), batch)  # the step donates its state
        results[microbatch] = jax.device_get((state.params, metrics)), step.as_text()
    (full, full_metrics), _ = results[0]
    (accumulated, metrics), hlo = results[2]
    np.testing.assert_allclose(metrics["loss"], full_metrics["loss"], rtol=1e-6)
    np.testing.assert_allclose(metrics["grad_norm"], full_metrics["grad_norm"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(accumulated), jax.tree.leaves(full), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert not any(op in hlo for op in ("all-to-all", "all-gather", "collective-permute"))


@pytest.mark.parametrize(
    ("spec", "microbatch", "message"),
    [("ddpm.py", 3, "must divide the 4 examples per device"), ("vae.py", 2, "has no gradient accumulation")],
)
def test_microbatch_settings_that_cannot_work_name_the_key(spec, microbatch, message):
    config = load(spec, "train.batch_size=32", f"train.microbatch={microbatch}")
    with pytest.raises(ConfigError, match=rf"config\.train\.microbatch={microbatch}.*{message}"):
        compiled_run.compile_run(config)
