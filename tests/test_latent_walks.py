"""Latent interpolation (slerp, lerp, keyframe walks) against closed forms, and the latent-walk / truncation-sweep
tool on tiny trained GAN, StyleGAN2 and diffusion runs: the GIF holds the frames, and its end frames are the
samples of the end latents."""

import json

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from tiny_configs import TINY_GAN, TINY_STYLEGAN2, TINY_UNET, as_flags, load

from genimg_jax import data, parallel
from genimg_jax.evaluation import latent_walks
from genimg_jax.evaluation.from_checkpoint import restore_latest
from genimg_jax.models.interpolation import keyframe_walk, lerp, slerp
from genimg_jax.tools import latent_walk
from genimg_jax.training import trainer
from genimg_jax.training.compiled_run import compile_run

ONE_STEP = ["train.steps=1", "train.checkpoint_every=1", "train.sample_every=0", "eval.every=0", "eval.batch_size=8"]


def unit(vector):
    return vector / np.linalg.norm(vector)


def test_slerp_is_exact_at_its_ends_keeps_unit_norm_and_turns_at_a_constant_rate():
    rng = np.random.default_rng(0)
    a, b = unit(rng.normal(size=16)), unit(rng.normal(size=16))
    t = np.linspace(0.0, 1.0, 11)
    path = np.asarray(slerp(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), jnp.asarray(t)))
    np.testing.assert_array_equal(path[0], a.astype(np.float32))
    np.testing.assert_array_equal(path[-1], b.astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, rtol=1e-6)
    angle = np.arccos(a @ b)
    along = path.astype(np.float64) @ a
    turned = np.arctan2(np.linalg.norm(path - along[:, None] * a, axis=1), along)  # well-conditioned near 0
    np.testing.assert_allclose(turned, t * angle, atol=1e-6)  # the angle grows linearly in t
    closed_form = (np.sin((1 - t) * angle)[:, None] * a + np.sin(t * angle)[:, None] * b) / np.sin(angle)
    np.testing.assert_allclose(path, closed_form, atol=1e-6)
    # Arrays of any shape interpolate as flat vectors; parallel vectors along the straight line.
    images = slerp(jnp.asarray(a.reshape(2, 2, 4)), jnp.asarray(b.reshape(2, 2, 4)), jnp.asarray(t))
    np.testing.assert_allclose(np.asarray(images).reshape(11, 16), path, atol=1e-6)
    np.testing.assert_allclose(slerp(jnp.ones(3), 3 * jnp.ones(3), jnp.array([0.5]))[0], [2.0, 2.0, 2.0], rtol=1e-6)


def test_keyframe_walk_passes_through_every_keyframe_at_its_position():
    keys = jnp.asarray(np.random.default_rng(1).normal(size=(3, 4)), jnp.float32)
    walk = keyframe_walk(keys, 5, slerp)  # positions 0, 0.5, 1, 1.5, 2
    np.testing.assert_array_equal(walk[::2], keys)
    np.testing.assert_allclose(walk[1], slerp(keys[0], keys[1], jnp.array([0.5]))[0], atol=1e-6)
    np.testing.assert_allclose(walk[3], slerp(keys[1], keys[2], jnp.array([0.5]))[0], atol=1e-6)
    straight = keyframe_walk(keys, 4, lerp)  # positions 0, 2/3, 4/3, 2
    np.testing.assert_allclose(straight[1], keys[0] + 2 / 3 * (keys[1] - keys[0]), atol=1e-6)
    np.testing.assert_array_equal(straight[-1], keys[-1])
    with pytest.raises(ValueError, match="at least 2 keyframes"):
        keyframe_walk(keys[:1], 5)


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
    """A tiny DCGAN workdir after one training step: the tool's whole path, from config.json and checkpoint."""
    workdir = tmp_path_factory.mktemp("dcgan")
    trainer.train(load("dcgan.py", *TINY_GAN, *ONE_STEP), workdir)
    return workdir, [*TINY_GAN, *ONE_STEP]


def initialised(name, *overrides):
    """(compiled run, config, freshly initialised state) on one device: the walk's maths needs no training, and
    compiling the samplers for one device is several times faster than for the eight simulated ones."""
    config = latent_walks.deterministic_sampling(load(name, *overrides, "eval.batch_size=4"))
    run = compile_run(config, parallel.make_mesh(config.mesh, jax.devices()[:1]))
    return run, config, run.init(jax.random.PRNGKey(0))


def gif_frames(path, scale):
    """The frames of a GIF at their own size (every `scale`-th pixel) and the duration of each in ms."""
    frames = iio.imread(path, index=None)
    with Image.open(path) as gif:
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
    return frames[:, ::scale, ::scale], durations


def test_gan_walk_gif_plays_every_frame_and_ends_on_the_samples_of_the_end_latents(dcgan_run, tmp_path, capsys):
    workdir, overrides = dcgan_run
    out = tmp_path / "walk.gif"
    flags = [f"--workdir={workdir}", f"--out={out}", "--frames=9", "--keyframes=3", "--seed=5", "--frame_ms=50"]
    assert latent_walk.main([*flags, *as_flags(overrides)]) == 0
    assert "9 frames through 3 keyframes in z, step 1" in capsys.readouterr().out
    # Pillow stores a run of identical frames once with the summed duration: the GIF still plays 9 frames.
    stored, durations = gif_frames(out, latent_walks.DISPLAY_SIZE // 16)
    assert sum(durations) == 9 * 50 and len(stored) >= 5
    with Image.open(out) as gif:  # a GIF's provenance is its comment
        comment = json.loads(gif.info["comment"])
    assert (comment["step"], comment["seed"], comment["walk"]) == ("1", "5", "9 frames through 3 keyframes in z")
    run, state, _ = restore_latest(load("dcgan.py", *overrides), workdir)
    keys = jax.random.normal(jax.random.PRNGKey(5), (3, 16))
    ends = data.from_unit_range(run.method.sample_latents(state, keys, jax.random.PRNGKey(1)))
    assert np.abs(stored[[0, -1], ..., 0].astype(int) - ends[[0, 2], ..., 0]).max() <= 1  # gray: stored exactly
    # `sample` is `sample_latents` of the latents it draws.
    rng = jax.random.PRNGKey(3)
    drawn = run.method.sample(state, rng, 4)
    np.testing.assert_array_equal(drawn, run.method.sample_latents(state, jax.random.normal(rng, (4, 16)), rng))

    assert latent_walk.main([f"--workdir={workdir}", "--space=w", *as_flags(overrides)]) == 2
    assert latent_walk.main([f"--workdir={workdir}", "--truncation_sweep", *as_flags(overrides)]) == 2
    assert latent_walk.main([f"--workdir={workdir / 'missing'}"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors[0] == "error: --space=w needs a mapping network (stylegan2); method 'gan' has none"
    assert errors[1] == "error: a truncation sweep needs truncation (stylegan2); method 'gan' has none"
    assert "config.json does not exist" in errors[2] and len(errors) == 3


@pytest.mark.slow  # compiling the StyleGAN2 synthesis or the U-Net sampler takes most of a minute
def test_stylegan2_w_walk_and_truncation_sweep():
    run, config, state = initialised("stylegan2.py", *TINY_STYLEGAN2)
    keys = jax.random.normal(jax.random.PRNGKey(0), (2, config.model.z_dim))
    ends = data.from_unit_range(run.method.sample_latents(state, keys, jax.random.PRNGKey(1)))  # constant noise
    frames = latent_walks.walk_frames(run, config, state, frames=4, keyframes=2, space="w")
    assert frames.shape == (4, 8, 8, 1)
    assert np.abs(frames[[0, -1]].astype(int) - ends).max() <= 1

    strip = latent_walks.truncation_strip(run, config, state, [0.0, 1.0], rows=2, seed=2).reshape(2, 2, 8, 8, 1)
    np.testing.assert_array_equal(strip[0, 0], strip[1, 0])  # psi 0: every latent gives the image of w_avg
    latents = jax.random.normal(jax.random.PRNGKey(2), (2, config.model.z_dim))
    untruncated = data.from_unit_range(run.method.sample_latents(state, latents, jax.random.PRNGKey(1)))
    assert np.abs(strip[:, 1].astype(int) - untruncated).max() <= 1
    assert not np.array_equal(strip[0, 1], strip[1, 1])


@pytest.mark.slow  # compiling the StyleGAN2 synthesis or the U-Net sampler takes most of a minute
def test_ddim_walk_of_diffusion_ends_on_the_deterministic_samples_of_the_end_noises():
    run, config, state = initialised("ddpm.py", *TINY_UNET, "sample.sampler=ddpm", "sample.steps=2")
    assert config.sample.sampler == "ddim" and config.sample.eta == 0  # made deterministic
    frames = latent_walks.walk_frames(run, config, state, frames=5, keyframes=2, seed=4)
    noises = jax.random.normal(jax.random.PRNGKey(4), (2, 8, 8, 1))
    other_rng = jax.random.PRNGKey(99)  # deterministic: the sampler's key plays no part
    direct = data.from_unit_range(run.method.sample_latents(state, noises, other_rng))
    assert np.abs(frames[[0, -1]].astype(int) - direct).max() <= 1
    assert len({frame.tobytes() for frame in frames}) >= 3  # the frames in between differ from the ends
