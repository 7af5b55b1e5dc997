"""Latent text diffusion on a VQ-VAE trained here: the first stage's encode -> decode is the VQ-VAE's own
reconstruction, latents are the encoder's spatial map at unit variance, padding changes nothing, training lowers
the loss with the first stage frozen, prompts sample through the unchanged path, and a bad first stage is one
clear line."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from random_states import random_diffusion_state
from test_text_diffusion import LENGTH, VOCAB, _captions, _with_padding_content
from tiny_configs import load

from genimg_jax import data
from genimg_jax.config import ConfigError
from genimg_jax.evaluation import prompts
from genimg_jax.methods import build_method
from genimg_jax.methods.latent_text_diffusion import LatentTextDiffusion
from genimg_jax.models import vector_quantizer as vq
from genimg_jax.training import trainer
from genimg_jax.training.pretrained import load_pretrained, trained_state

RESOLUTION, CODE_DIM = 16, 3  # a 4x4x3 latent
TINY = [
    f"data.resolution={RESOLUTION}",
    f"data.caption_length={LENGTH}",
    f"model.text.vocab_size={VOCAB}",
    "model.text.features=16",
    "model.text.num_heads=2",
    "model.features=8",
    "model.channel_multipliers=(1, 2)",
    "model.attention_resolutions=(4,)",
    "train.batch_size=4",
    "optim.denoiser.warmup_steps=5",
    "sample.steps=4",
]


@pytest.fixture(scope="module")
def vqvae_workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("vqvae")
    config = load(
        "vqvae.py:digits_f4",
        f"data.resolution={RESOLUTION}",
        "model.features=8",
        f"model.code_dim={CODE_DIM}",
        "model.residual_blocks=1",
        "model.num_codes=16",
        "model.prior_width=16",
        "model.prior_depth=1",
        "model.prior_heads=1",
        "train.steps=20",
        "train.batch_size=16",
        "train.sample_every=0",
        "train.log_every=0",
        "eval.every=0",
    )
    trainer.train(config, workdir)
    return workdir


def latent_text_config(first_stage_workdir, *extra):
    return load("latent_text_diffusion.py", *TINY, f"model.first_stage_workdir={first_stage_workdir}", *extra)


@pytest.fixture(scope="module")
def tiny(vqvae_workdir):
    config = latent_text_config(vqvae_workdir)
    return build_method(config, load_pretrained(config))


def _train_images(count: int) -> np.ndarray:
    source = data.make_source("digits", split="train", resolution=RESOLUTION, channels=1)
    return np.stack([source[i]["image"] for i in range(count)])


def test_encode_decode_is_the_vqvae_reconstruction_and_latents_have_unit_variance(tiny, vqvae_workdir):
    method = tiny
    assert isinstance(method, LatentTextDiffusion)
    first_stage = method.first_stage_params()
    images = jnp.asarray(_train_images(1024))
    latents = method.encode(first_stage, {"image": images})
    # The pre-quantisation map: spatial, code_dim channels, at 1/4 of the resolution, scaled to unit variance.
    assert latents.shape == (1024, RESOLUTION // 4, RESOLUTION // 4, CODE_DIM) == (1024, *method.data_shape)
    assert float(jnp.std(latents)) == pytest.approx(1.0, rel=1e-4)
    vqvae, state = trained_state(str(vqvae_workdir), ("vqvae",))
    unit = data.to_unit_range(images)
    vectors, codes = vqvae.encode(state.params, state.codebook, unit)
    np.testing.assert_allclose(latents, method.latent_scale * vectors, rtol=1e-6, atol=1e-6)
    # Decoding quantises first, so it is the VQ-VAE's reconstruction, not its decoder applied to the raw map.
    reconstruction = vqvae.decode_codes(state.params, state.codebook, codes)
    decoded = method.decode(first_stage, latents)
    np.testing.assert_allclose(decoded, reconstruction, atol=1e-5)
    unquantised = jnp.clip(vqvae.decoder.apply({"params": state.params["decoder"]}, vectors), -1.0, 1.0)
    assert float(jnp.max(jnp.abs(unquantised - reconstruction))) > 1e-3
    assert bool(jnp.all(vq.nearest_codes(latents / method.latent_scale, state.codebook.embedding) == codes))


def test_padding_changes_nothing_on_latents(tiny):
    method = tiny
    captions = _captions(2)
    padded = _with_padding_content(captions, 3)
    batch = {"image": _train_images(4), **captions}
    state = random_diffusion_state(method, batch, seed=1).replace(first_stage=method.first_stage_params())
    x = jax.random.normal(jax.random.PRNGKey(4), (4, *method.data_shape))
    t = jnp.full((4,), 300.0)
    network = jax.jit(lambda labels: method._network(state.params, x, t, labels, None))
    np.testing.assert_array_equal(network(padded), network(captions))
    changed = {**captions, "tokens": captions["tokens"].copy()}
    changed["tokens"][3, 1] = 5 if captions["tokens"][3, 1] != 5 else 6  # a real token of caption 3
    assert float(jnp.max(jnp.abs(network(changed) - network(captions)))) > 1e-6
    sample = jax.jit(lambda labels: method.sample(state, jax.random.PRNGKey(5), 4, labels))
    images = sample(captions)
    assert images.shape == (4, RESOLUTION, RESOLUTION, 1) and bool(jnp.all(jnp.abs(images) <= 1.0))
    np.testing.assert_array_equal(sample(padded), images)


def test_bad_first_stage_is_one_clear_line(tmp_path, vqvae_workdir):
    cases = [
        (tmp_path / "missing", "config.json does not exist"),
        (tmp_path / "gan", "it is a 'gan' run, not a 'vae' or 'vqvae' run"),
    ]
    (tmp_path / "gan").mkdir()
    (tmp_path / "gan" / "config.json").write_text(json.dumps({"method": "gan"}))
    for workdir, problem in cases:
        with pytest.raises(ConfigError) as error:
            load_pretrained(latent_text_config(workdir))
        message = str(error.value)
        assert message.startswith(f"config.model.first_stage_workdir='{workdir}' is invalid")
        assert problem in message and "\n" not in message
    mismatch = r"config\.data\.resolution=32 is invalid: .*first stage's data\.resolution=16"
    with pytest.raises(ConfigError, match=mismatch):
        config = latent_text_config(vqvae_workdir, "data.resolution=32")
        build_method(config, load_pretrained(config))
    with pytest.raises(ConfigError, match=r"config\.model\.network='mlp'.*spatial latents"):
        config = latent_text_config(vqvae_workdir, "model.network=mlp")
        build_method(config, load_pretrained(config))
    with pytest.raises(ConfigError, match=r"config\.model\.text\.pretrained='clip' is invalid: .*trains its text"):
        config = latent_text_config(vqvae_workdir, "model.text.pretrained=clip")
        build_method(config, load_pretrained(config))


@pytest.mark.slow
def test_short_training_lowers_the_loss_and_prompts_sample(tiny, vqvae_workdir, tmp_path):
    """Four fixed caption -> image pairs: the loss falls by a fifth within 40 steps, the first stage stays as
    restored; then the trainer's path and `--mode=sample --prompt`'s on a 3-step run."""
    method = tiny
    batch = {"image": jnp.asarray(_train_images(4)), **_captions(18)}
    state = jax.jit(method.init_state)(jax.random.PRNGKey(0), batch)
    step = jax.jit(method.train_step)
    losses = []
    for _ in range(40):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    for trained, restored in zip(
        jax.tree.leaves(state.first_stage), jax.tree.leaves(method.first_stage_params()), strict=True
    ):
        np.testing.assert_array_equal(trained, restored)

    workdir = tmp_path / "latent_text"
    overrides = (
        "data.caption_length=16",
        "model.text.vocab_size=32",
        "train.steps=3",
        "train.batch_size=8",
        "eval.batch_size=8",
    )
    run_config = latent_text_config(vqvae_workdir, *overrides, "train.sample_every=0", "eval.every=0")
    trainer.train(run_config, workdir)
    paths = prompts.sample_prompts(run_config, workdir, ["a handwritten 3", "the digit seven"], per_prompt=2)
    assert len(paths) == 5
    assert np.asarray(Image.open(paths[0])).shape == (RESOLUTION, RESOLUTION)
