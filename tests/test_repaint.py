"""RePaint: its jump schedule against the paper's rule, and its sampler with exact denoisers for Gaussian data,
where the distribution of the missing pixels given the known ones is a closed form."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import TINY_UNET, load

from genimg_jax import data
from genimg_jax.config import ConfigError
from genimg_jax.diffusion import repaint, samplers, schedules
from genimg_jax.methods import build_method
from genimg_jax.methods.diffusion import DiffusionState

MU, SCALE = 0.2, 0.3
# DDPM's ancestral step with the exact x_0 mean still drops the x_0 posterior's variance, a bias that shrinks with
# the step size: on N(0.2, 0.3^2) the plain 50-step sampler gives 0.71 of the variance, the 1000-step one 0.975.
FINE_STEPS, PAPER_STEPS = 1000, 250


def test_schedule_small_case_by_hand():
    # Jump points 0, 2, 4 (multiples of 2 below 7 - 2), each used once.
    expected = [6, 5, 4, 5, 6, 5, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0]
    np.testing.assert_array_equal(repaint.jump_schedule(7, 2, 2), expected)


@pytest.mark.parametrize("steps, jump, resamplings", [(250, 10, 10), (23, 3, 4), (12, 5, 1)])
def test_schedule_structure(steps, jump, resamplings):
    schedule = repaint.jump_schedule(steps, jump, resamplings)
    assert schedule[0] == steps - 1 and schedule[-1] == 0
    moves = np.diff(schedule).tolist()
    assert set(moves) <= {-1, 1}
    runs = [(move, len(list(group))) for move, group in itertools.groupby(moves)]  # (direction, length)
    ups = [index for index, (move, _) in enumerate(runs) if move == 1]
    assert all(runs[i][1] == jump for i in ups)  # every jump is `jump` steps up ...
    assert all(runs[i + 1][1] >= jump for i in ups)  # ... then at least `jump` down, back to its point
    starts = np.cumsum([0] + [length for _, length in runs])[ups]
    points, counts = np.unique(schedule[starts], return_counts=True)
    expected_points = np.arange(0, steps - jump, jump) if resamplings > 1 else np.array([], int)
    np.testing.assert_array_equal(points, expected_points)
    np.testing.assert_array_equal(counts, resamplings - 1)  # r - 1 resamplings at each jump point
    assert len(schedule) == steps + 2 * jump * len(ups)


def _sigmas(steps: int) -> jax.Array:
    """`steps` of DDPM's T = 1000 linear schedule (RePaint respaces to 250)."""
    training = schedules.sigmas_from_alpha_bars(schedules.alpha_bars(schedules.linear_betas(1000)))
    return samplers.schedule_sigmas(training, steps)


def _gaussian_denoiser(covariance: np.ndarray) -> samplers.Denoiser:
    """E[x_0 | x] for x_0 ~ N(MU, C) over the last axis and x = x_0 + sigma n: MU + C (C + sigma^2 I)^-1 (x - MU)."""
    covariance = jnp.asarray(covariance, jnp.float32)
    eye = jnp.eye(covariance.shape[0])

    def denoise(x, sigma, labels):
        gain = covariance @ jnp.linalg.inv(covariance + sigma**2 * eye)
        return MU + (x - MU) @ gain.T

    return denoise


def _inpaint(covariance, known, mask, steps, jump, resamplings, num, seed=0):
    """`num` RePaint samples of x_0 ~ N(MU, covariance) given `known` where `mask` is 1, with the exact denoiser."""
    sigmas = _sigmas(steps)
    schedule = repaint.jump_schedule(steps, jump, resamplings)
    noise_rng, rng = jax.random.split(jax.random.key(seed))
    shape = (num, len(mask))
    x = samplers.initial_noise(noise_rng, shape, sigmas[0], variance_preserving=True)
    known = jnp.broadcast_to(jnp.asarray(known, jnp.float32), shape)
    denoise = _gaussian_denoiser(covariance)
    run = jax.jit(lambda x, rng: repaint.inpaint(denoise, x, known, jnp.asarray(mask), sigmas, schedule, None, rng))
    return np.asarray(run(x, rng), np.float64)


def test_known_pixels_kept_and_independent_pixels_follow_the_prior():
    mask = np.array([1.0, 1.0, 0.0, 0.0])
    known = np.array([0.9, -0.7, 0.0, 0.0])  # far from the prior: independent pixels must not notice
    num = 4000
    samples = _inpaint(SCALE**2 * np.eye(4), known, mask, FINE_STEPS, jump=10, resamplings=2, num=num)
    np.testing.assert_array_equal(samples[:, :2], np.broadcast_to(known[:2], (num, 2)).astype(np.float32))
    unknown = samples[:, 2:].ravel()
    assert abs(unknown.mean() - MU) < 4 * SCALE / np.sqrt(unknown.size)
    assert abs(unknown.var() / SCALE**2 - 1) < 4 * np.sqrt(2 / unknown.size) + 0.03  # + the sampler's bias


def _gaussian_kl(samples: np.ndarray, mean: float, std: float) -> float:
    """KL(N(sample mean, sample var) || N(mean, std^2))."""
    m, v = samples.mean(), samples.var()
    return 0.5 * (v / std**2 + (m - mean) ** 2 / std**2 - 1 - np.log(v / std**2))


def test_resampling_harmonises_correlated_pixels():
    rho = 0.9
    covariance = SCALE**2 * np.array([[1.0, rho], [rho, 1.0]])
    known_value = MU + 2 * SCALE
    target_mean, target_std = MU + rho * (known_value - MU), np.sqrt(1 - rho**2) * SCALE
    kls = {}
    for resamplings in (1, 10):
        samples = _inpaint(covariance, [known_value, 0.0], np.array([1.0, 0.0]), PAPER_STEPS, 10, resamplings, 2000)
        kls[resamplings] = _gaussian_kl(samples[:, 1], target_mean, target_std)
    # Measured: KL 0.93 without resampling (the missing pixel barely moves towards the known one), 0.05 with it.
    assert kls[10] < 0.2 * kls[1]


def test_method_inpaint_keeps_the_known_pixels_of_uint8_images():
    """The method's plumbing (uint8 in, mask, config's jumps, clipping, images out) with a stand-in network: the
    U-Net itself is what `sample` tests already cover, and compiling it inside the loop costs a minute on CPU."""
    config = load("ddpm.py", *TINY_UNET, "sample.repaint_jump_length=2", "sample.repaint_resamplings=2")
    method = build_method(config)
    method._network = lambda params, x, t, labels, rng, augment_labels=None: 0.5 * x  # a stand-in eps-prediction
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 8, 8, 1), dtype=np.uint8)
    mask = np.ones((8, 8, 8, 1), np.uint8)
    mask[:, 2:6, 3:7] = 0
    state = DiffusionState(jnp.zeros((), jnp.int32), jax.random.key(0), {}, {}, {}, {})
    source = np.where(mask == 1, images, 127).astype(np.uint8)  # as the data layer's mask degradations give it
    output = np.asarray(jax.jit(method.inpaint)(state, jax.random.key(1), jnp.asarray(source), jnp.asarray(mask)))
    known = mask[..., 0] == 1
    assert output.shape == images.shape
    np.testing.assert_array_equal(output[known], np.asarray(data.to_unit_range(jnp.asarray(images)))[known])
    missing = output[~known]
    assert np.all(np.abs(missing) <= 1.0) and np.unique(missing).size > missing.size // 2  # sampled, not a fill


@pytest.mark.parametrize(
    ("spec", "override", "key"),
    [
        ("ddpm.py", "sample.repaint_jump_length=0", "sample.repaint_jump_length"),
        ("ddpm.py", "sample.repaint_resamplings=0", "sample.repaint_resamplings"),
    ],
)
def test_bad_repaint_settings_name_their_key(spec, override, key):
    with pytest.raises(ConfigError, match=key):
        build_method(load(spec, *TINY_UNET, override))


def test_repaint_refuses_edm_models():
    method = build_method(load("edm.py", *TINY_UNET))
    with pytest.raises(ConfigError, match=r"model\.parameterization"):
        method.inpaint(None, jax.random.key(0), jnp.zeros((1, 8, 8, 1), jnp.uint8), jnp.ones((1, 8, 8, 1), jnp.uint8))


def test_sample_repaint_makes_an_unconditional_checkpoint_an_inpainting_method():
    """`sample.repaint`: `sample` (what the restoration evaluator and the grids call) takes the masked `source` and
    its `mask` as conditioning and returns RePaint's inpainting, the known pixels the source's."""
    overrides = ["data.degradation=mask:box", "sample.repaint=true", "sample.repaint_jump_length=2"]
    config = load("ddpm.py", *TINY_UNET, *overrides)
    method = build_method(config)
    assert method.conditioning_fields() == ("source", "mask")
    method._network = lambda params, x, t, labels, rng, augment_labels=None: 0.5 * x
    source = data.make_source("digits", split="test", resolution=8, channels=1, degradation="mask:box")
    examples = [source[index] for index in range(6)]
    conditioning = {name: jnp.asarray(np.stack([e[name] for e in examples])) for name in ("source", "mask")}
    state = DiffusionState(jnp.zeros((), jnp.int32), jax.random.key(0), {}, {}, {}, {})
    output = np.asarray(jax.jit(method.sample, static_argnums=2)(state, jax.random.key(1), 6, conditioning))
    known = np.asarray(conditioning["mask"])[..., 0] == 1
    assert 0 < known.mean() < 1
    np.testing.assert_array_equal(output[known], np.asarray(data.to_unit_range(conditioning["source"]))[known])
    assert np.abs(output[~known] - np.asarray(data.to_unit_range(conditioning["source"]))[~known]).max() > 0.05

    # The grids at sample steps: source | inpainting | target | mask per example (nothing without sample.repaint).
    batch = {**conditioning, "image": jnp.asarray(np.stack([e["image"] for e in examples]))}
    rows = np.asarray(jax.jit(method.illustrations)(state, batch, jax.random.key(1))["translations"])
    assert rows.shape == (6, 4, 8, 8, 1)
    np.testing.assert_array_equal(rows[:, 1], output)  # the same key: the same inpainting as `sample`
    np.testing.assert_array_equal(rows[:, 0], np.asarray(data.to_unit_range(conditioning["source"])))
    np.testing.assert_array_equal(rows[:, 2], np.asarray(data.to_unit_range(batch["image"])))
    np.testing.assert_array_equal(rows[:, 3], 2.0 * np.asarray(conditioning["mask"]) - 1.0)
    assert build_method(load("ddpm.py", *TINY_UNET)).illustrations(state, batch, jax.random.key(1)) == {}


@pytest.mark.parametrize(
    ("spec", "overrides"),
    [("ddpm.py", ["sample.repaint=true"]), ("conditional_diffusion.py", ["sample.repaint=true"])],
)
def test_sample_repaint_needs_a_mask_degradation_and_an_unconditional_model(spec, overrides):
    with pytest.raises(ConfigError, match=r"sample\.repaint"):
        build_method(load(spec, *TINY_UNET, *overrides))
