"""`model.residual` (pix2pix, conditional diffusion): a network that outputs zero answers with exactly the
bicubic baseline the restoration evaluator scores (PIL's float bicubic as the reference); the diffused residual
and its inverse round-trip; sampling adds the upsampled source back to what the sampler draws."""

import types

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
from tiny_configs import TINY_UNET, load

from genimg_jax import data, parallel
from genimg_jax.evaluation.restoration import RestorationEvaluator
from genimg_jax.methods import build_method
from genimg_jax.methods.base import add_residual_base, source_input

NUM_TEST_FACES = 40


def _test_faces(config, num: int) -> dict:
    arrays = data.load_all(data.source_from_config(config.data, "test"))
    return {name: jnp.asarray(values[:num]) for name, values in arrays.items()}


def _pil_bicubic_levels(sources: np.ndarray, size: int) -> np.ndarray:
    """PIL's bicubic upsampling of each gray uint8 source on float pixels (mode "F"), as (N, size, size, 1)."""
    upsampled = [
        Image.fromarray(s[..., 0].astype(np.float32), mode="F").resize((size, size), Image.BICUBIC) for s in sources
    ]
    return np.stack([np.asarray(image) for image in upsampled])[..., None]


def test_pix2pix_with_a_zero_generator_answers_with_the_bicubic_baseline_exactly():
    """faces_sr4 with every G parameter zeroed (G = tanh(0) = 0): the outputs are the bicubic upsampling of the
    8x8 sources, snapped to levels, and the evaluator's PSNR and SSIM equal its baseline's on all 40 test faces."""
    config = load("pix2pix.py:faces_sr4", "model.g_features=4", "model.d_features=4", "eval.batch_size=8")
    assert config.model.residual
    method = build_method(config)
    faces = _test_faces(config, 8)
    state = jax.jit(method.init_state)(jax.random.PRNGKey(0), faces)
    zero_g = {**state.generator, "params": jax.tree.map(jnp.zeros_like, state.generator["params"])}
    state = state.replace(generator=zero_g)

    outputs = jax.jit(lambda s, b: method.sample(s, jax.random.PRNGKey(1), 8, b))(state, faces)
    reference = _pil_bicubic_levels(np.asarray(faces["source"]), config.data.resolution)
    levels = data.from_unit_range(outputs).astype(np.float64)
    assert np.abs(levels - np.clip(reference, 0, 255)).max() <= 0.5 + 1e-3  # rounding, to PIL's float bicubic
    assert np.mean(np.abs(levels - faces["image"])) > 1.0  # not the target: the baseline is a real estimate

    mesh = parallel.make_mesh(config.mesh)
    run = types.SimpleNamespace(method=method, mesh=mesh, state_sharding=parallel.replicated(mesh))
    evaluator = RestorationEvaluator(config, run, ["psnr", "ssim"])
    values = evaluator.per_image(state)
    assert evaluator.num_images == NUM_TEST_FACES
    np.testing.assert_array_equal(values["psnr"], values["psnr_baseline"])
    np.testing.assert_array_equal(values["ssim"], values["ssim_baseline"])


def _diffusion(residual: bool, *overrides: str):
    overrides = [*TINY_UNET, "data.resolution=32", "train.batch_size=4", f"model.residual={residual}", *overrides]
    return build_method(load("conditional_diffusion.py:faces_sr4", *overrides))


def test_diffusion_residual_target_and_its_inverse_round_trip():
    """The diffused data is residual_scale * (target - bicubic(source)), of about unit variance at faces_sr4's
    scale; decoding and adding the source back recovers the target."""
    method = _diffusion(residual=True)
    scale = method.config.model.residual_scale
    assert scale == 7.0
    faces = _test_faces(method.config, 16)
    diffused = method.encode({}, faces)
    upsampled = source_input(faces, 32, use_mask=False)
    target = data.to_unit_range(faces["image"])
    np.testing.assert_allclose(diffused, scale * (target - upsampled), atol=1e-5)
    assert 0.5 < float(jnp.std(diffused)) < 2.0  # scaled to about the unit variance of the noise
    residual = method.decode({}, diffused)  # not clipped: the source is added first
    np.testing.assert_allclose(residual, target - upsampled, atol=1e-6)
    np.testing.assert_allclose(add_residual_base(residual, upsampled), target, atol=1e-6)


def test_diffusion_residual_sample_is_the_plain_sample_plus_the_upsampled_source():
    """Same weights, latents and keys: the residual model's sample is clip(bicubic(source) + what the sampler
    draws / residual_scale), the draw being the plain model's sample (both clip x_0 here, so the draw stays inside
    [-1, 1] where the plain model's final clip is a no-op)."""
    clipped = "sample.clip_denoised=True"
    residual, plain = _diffusion(True, clipped), _diffusion(False, clipped)
    faces = _test_faces(residual.config, 4)
    state = jax.jit(residual.init_state)(jax.random.PRNGKey(0), faces)
    latents = jax.random.normal(jax.random.PRNGKey(1), (4, 32, 32, 1))
    conditioning = {"source": faces["source"]}

    def sample(method):
        return jax.jit(lambda s: method.sample_latents(s, latents, jax.random.PRNGKey(2), conditioning))(state)

    drawn = sample(plain)
    correction = np.asarray(drawn) / residual.config.model.residual_scale
    expected = np.clip(correction + np.asarray(source_input(faces, 32, use_mask=False)), -1.0, 1.0)
    np.testing.assert_allclose(sample(residual), expected, atol=1e-5)
