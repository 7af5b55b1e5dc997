"""Diffusion mathematics against closed forms: schedules, forward noising, EDM preconditioning, samplers, guidance.

The sampler tests use the exact denoiser of Gaussian data x_0 ~ N(mu, s^2 I), E[x_0 | x_0 + sigma n] =
mu + s^2 / (s^2 + sigma^2) (x - mu): run from pure noise, every sampler must return samples with mean mu and
variance s^2.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genimg_jax.diffusion import edm, guidance, samplers, schedules

MU = jnp.array([1.0, -2.0, 0.5, 3.0])
STD = 0.5
NUM = 4000


def gaussian_denoiser(x, sigma, labels):
    return MU + STD**2 / (STD**2 + sigma**2) * (x - MU)


def linear_sigmas():
    return schedules.sigmas_from_alpha_bars(schedules.make_alpha_bars("linear", 1000, 1e-4, 0.02))


def test_linear_schedule_endpoints():
    betas = schedules.linear_betas(1000)
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    alpha_bar = schedules.alpha_bars(betas)
    assert alpha_bar[0] == pytest.approx(1 - 1e-4)
    assert alpha_bar[-1] == pytest.approx(4.036e-5, rel=1e-3)  # the signal DDPM leaves at t = T


def test_cosine_schedule_values():
    alpha_bar = schedules.alpha_bars(schedules.cosine_betas(1000))
    assert np.all(np.diff(alpha_bar) < 0)
    # alpha_bar(T/2) = cos^2(pi/2 * 0.508 / 1.008) / cos^2(pi/2 * 0.008 / 1.008), computed by hand: 0.49384.
    assert alpha_bar[499] == pytest.approx(0.49384, abs=2e-4)
    assert alpha_bar[-1] < 1e-7  # the last beta is clipped at 0.999 instead of reaching 1
    assert schedules.cosine_betas(1000).max() == pytest.approx(0.999)


def test_forward_marginal_matches_closed_form():
    x0 = jnp.array([1.5, -0.5, 0.0])
    alpha_bar = schedules.make_alpha_bars("cosine", 1000, 1e-4, 0.02)
    rng = jax.random.PRNGKey(0)
    for t in (0, 300, 999):
        noise = jax.random.normal(jax.random.fold_in(rng, t), (20000, 3))
        x_t = schedules.add_noise(jnp.broadcast_to(x0, noise.shape), noise, jnp.full((20000,), alpha_bar[t]))
        np.testing.assert_allclose(x_t.mean(0), np.sqrt(alpha_bar[t]) * x0, atol=0.03)
        np.testing.assert_allclose(x_t.var(0), 1 - alpha_bar[t], rtol=0.05, atol=1e-4)
        # The same draw in variance-exploding coordinates: x_0 plus noise of std sigma_t.
        sigma = schedules.sigmas_from_alpha_bars(alpha_bar[t])
        np.testing.assert_allclose((x_t / np.sqrt(alpha_bar[t])).std(0), sigma, rtol=0.05)


def test_edm_preconditioning_gives_unit_variance_target_and_unit_effective_weight():
    sigma_data = 0.5
    rng_x, rng_n = jax.random.split(jax.random.PRNGKey(1))
    x0 = sigma_data * jax.random.normal(rng_x, (50000,))
    noise = jax.random.normal(rng_n, (50000,))
    for sigma in (0.01, 0.5, 20.0):
        x = x0 + sigma * noise
        assert float(jnp.var(edm.c_in(sigma, sigma_data) * x)) == pytest.approx(1.0, rel=0.03)
        target = (x0 - edm.c_skip(sigma, sigma_data) * x) / edm.c_out(sigma, sigma_data)
        assert float(jnp.var(target)) == pytest.approx(1.0, rel=0.03)
        assert float(edm.loss_weight(sigma, sigma_data) * edm.c_out(sigma, sigma_data) ** 2) == pytest.approx(1.0)


def test_edm_training_sigmas_are_log_normal():
    log_sigma = jnp.log(edm.sample_training_sigmas(jax.random.PRNGKey(2), 50000, -1.2, 1.2))
    assert float(log_sigma.mean()) == pytest.approx(-1.2, abs=0.03)
    assert float(log_sigma.std()) == pytest.approx(1.2, rel=0.02)


def test_edm_time_discretisation():
    sigmas = np.asarray(samplers.edm_sigmas(18, 0.002, 80.0, rho=7.0))
    assert sigmas.shape == (19,) and sigmas[-1] == 0.0
    assert sigmas[0] == pytest.approx(80.0) and sigmas[-2] == pytest.approx(0.002)
    assert np.all(np.diff(sigmas) < 0)
    np.testing.assert_allclose(np.diff(sigmas[:-1] ** (1 / 7)), np.diff(sigmas[:-1] ** (1 / 7))[0], rtol=1e-4)
    np.testing.assert_allclose(samplers.edm_sigmas(5, 1.0, 5.0, rho=1.0), [5, 4, 3, 2, 1, 0], rtol=1e-6)


def test_schedule_sigmas_span_the_training_steps():
    training = linear_sigmas()
    sigmas = np.asarray(samplers.schedule_sigmas(training, 10))
    assert sigmas[0] == pytest.approx(training[-1], rel=1e-5)
    assert sigmas[-2] == pytest.approx(training[0], rel=1e-5)
    assert sigmas[-1] == 0.0 and np.all(np.diff(sigmas) < 0)


def _sample(sampler, sigmas, variance_preserving, eta=0.0, seed=0):
    noise_rng, sampler_rng = jax.random.split(jax.random.PRNGKey(seed))
    x = samplers.initial_noise(noise_rng, (NUM, MU.shape[0]), sigmas[0], variance_preserving)
    run = jax.jit(lambda x, rng: samplers.run(sampler, gaussian_denoiser, x, sigmas, None, rng, eta))
    return run(x, sampler_rng)


@pytest.mark.parametrize(
    ("sampler", "eta", "variance_preserving"),
    [("ddpm", 0.0, True), ("ddim", 0.0, True), ("ddim", 1.0, True), ("heun", 0.0, False)],
)
def test_sampler_with_optimal_denoiser_recovers_the_data_distribution(sampler, eta, variance_preserving):
    if variance_preserving:
        sigmas = samplers.schedule_sigmas(linear_sigmas(), 250)
    else:
        sigmas = samplers.edm_sigmas(32, 0.002, 80.0)
    samples = _sample(sampler, sigmas, variance_preserving, eta)
    assert bool(jnp.all(jnp.isfinite(samples)))
    # Standard errors over 4000 samples: 0.008 for the mean, about 2% for the variance.
    np.testing.assert_allclose(samples.mean(0), MU, atol=0.04)
    np.testing.assert_allclose(samples.var(0), STD**2, rtol=0.1)


def test_ddpm_ancestral_step_equals_ddim_with_eta_one():
    """Two formulas for the same update: DDPM's posterior in VP space, DDIM(eta=1) in VE space."""
    sigmas = samplers.schedule_sigmas(linear_sigmas(), 50)
    np.testing.assert_allclose(
        _sample("ddpm", sigmas, True), _sample("ddim", sigmas, True, eta=1.0), rtol=1e-3, atol=1e-3
    )


def test_ddim_with_eta_zero_is_deterministic_and_ignores_the_sampler_key():
    sigmas = samplers.schedule_sigmas(linear_sigmas(), 20)
    x = samplers.initial_noise(jax.random.PRNGKey(0), (64, 4), sigmas[0], True)

    def run(key, eta):
        return samplers.run("ddim", gaussian_denoiser, x, sigmas, None, jax.random.PRNGKey(key), eta)

    np.testing.assert_array_equal(run(1, 0.0), run(1, 0.0))
    np.testing.assert_array_equal(run(1, 0.0), run(2, 0.0))
    assert float(jnp.max(jnp.abs(run(1, 1.0) - run(2, 1.0)))) > 0.01  # eta = 1 does use its noise


@pytest.mark.parametrize(("sampler", "guided"), [("ddpm", False), ("ddim", True), ("heun", False), ("heun", True)])
def test_network_evaluations_counts_the_denoiser_calls(sampler, guided):
    """Run with jit disabled, so that the loops run in Python and every denoiser call is counted (in examples)."""
    evaluated = []

    def counting(x, sigma, labels):
        evaluated.append(x.shape[0])
        return gaussian_denoiser(x, sigma, labels)

    denoise = guidance.guided(counting, 1.0, null_label=10) if guided else counting
    num, steps = 3, 7
    sigmas = samplers.edm_sigmas(steps, 0.002, 80.0)
    with jax.disable_jit():
        samplers.run(sampler, denoise, jnp.zeros((num, 4)), sigmas, jnp.zeros(num, jnp.int32), jax.random.PRNGKey(0))
    assert sum(evaluated) / num == samplers.network_evaluations(sampler, steps, guided)
    assert samplers.network_evaluations("heun", 18) == 35  # EDM's CIFAR-10 sampler


def test_classifier_free_guidance_combination():
    def denoise(x, sigma, labels):  # conditional output 2x(label + 1), "unconditional" (label 10) 22x
        return x * 2.0 * (labels[:, None] + 1.0)

    x, labels = jnp.ones((4, 3)), jnp.array([0, 1, 2, 3])
    conditional = denoise(x, 1.0, labels)
    unconditional = denoise(x, 1.0, jnp.full(4, 10))
    np.testing.assert_allclose(guidance.guided(denoise, 0.0, 10)(x, 1.0, labels), conditional)
    np.testing.assert_allclose(
        guidance.guided(denoise, 2.0, 10)(x, 1.0, labels), 3.0 * conditional - 2.0 * unconditional, rtol=1e-6
    )
    # Guiding denoised images equals guiding noise predictions eps = (x - D) / sigma.
    sigma = 0.7
    eps_guided = (x - guidance.guided(denoise, 2.0, 10)(x, sigma, labels)) / sigma
    eps_c, eps_u = (x - conditional) / sigma, (x - unconditional) / sigma
    np.testing.assert_allclose(eps_guided, guidance.combine(eps_c, eps_u, 2.0), rtol=1e-5)


@pytest.mark.parametrize("variance", samplers.VARIANCES)
def test_ddpm_step_variance_in_ve_coordinates(variance):
    """With x = D = 0 the step returns its noise times sigma_t / sqrt(alpha_bar_next): in VE coordinates the step
    variance is beta / alpha_bar' (fixedlarge) or beta (1 - alpha_bar') / ((1 - alpha_bar) alpha_bar') (fixedsmall),
    beta = 1 - alpha_bar / alpha_bar' being the (respaced) step's; the last step, to sigma = 0, adds no noise."""
    alpha_bar = schedules.make_alpha_bars("linear", 1000, 1e-4, 0.02)
    t, t_next = 600, 550
    sigma, sigma_next = np.sqrt((1 - alpha_bar[[t, t_next]]) / alpha_bar[[t, t_next]])
    beta = 1 - alpha_bar[t] / alpha_bar[t_next]
    expected = beta / alpha_bar[t_next]
    if variance == "beta_tilde":
        expected *= (1 - alpha_bar[t_next]) / (1 - alpha_bar[t])
    zero, one = jnp.zeros(3), jnp.ones(3)
    step = samplers.ddpm_step(zero, zero, jnp.float32(sigma), jnp.float32(sigma_next), one, variance)
    np.testing.assert_allclose(step**2, expected, rtol=1e-4)
    last = samplers.ddpm_step(one, zero, jnp.float32(sigma_next), jnp.float32(0.0), one, variance)
    np.testing.assert_array_equal(last, samplers.ddpm_step(one, zero, jnp.float32(sigma_next), 0.0, zero, variance))


def linear_chain_variance(sigmas: np.ndarray, variance: str, data_variance: float) -> float:
    """Output variance of ancestral sampling with the exact denoiser of N(0, s^2) data, by its linear recursion in
    VP coordinates: x' = (c0 k + c1) x + sigma_t z with Ho et al.'s posterior-mean coefficients c0, c1 and
    E[x_0 | x_t] = k x_t, from x ~ N(0, 1)."""
    alpha_bar = 1 / (1 + sigmas**2)
    var = 1.0
    for ab, ab_next in itertools.pairwise(alpha_bar):
        beta = 1 - ab / ab_next
        c0 = beta * np.sqrt(ab_next) / (1 - ab)
        c1 = (1 - ab_next) * np.sqrt(1 - beta) / (1 - ab)
        k = np.sqrt(ab) * data_variance / (ab * data_variance + 1 - ab)
        step_variance = beta * (1 - ab_next) / (1 - ab) if variance == "beta_tilde" else beta * (ab_next < 1)
        var = (c0 * k + c1) ** 2 * var + step_variance
    return var


def test_ddpm_sampler_output_variance_matches_the_recursion_for_both_variances():
    """Ten respaced steps, so that the two variances give clearly different outputs (Gaussian data, exact denoiser)."""
    sigmas = samplers.schedule_sigmas(linear_sigmas(), 10)
    data_std, num = 0.5, 200_000

    def denoise(x, sigma, labels):
        return data_std**2 / (data_std**2 + sigma**2) * x

    expected = {v: linear_chain_variance(np.asarray(sigmas, np.float64), v, data_std**2) for v in samplers.VARIANCES}
    assert expected["beta"] > 1.2 * expected["beta_tilde"]
    noise_rng, sampler_rng = jax.random.split(jax.random.PRNGKey(0))
    x = samplers.initial_noise(noise_rng, (num, 1), sigmas[0], True)
    for variance in samplers.VARIANCES:
        samples = samplers.run("ddpm", denoise, x, sigmas, None, sampler_rng, variance=variance)
        # Standard error of a variance from 200k draws: 0.3%.
        assert float(jnp.var(samples)) == pytest.approx(expected[variance], rel=0.015)


def test_uniform_respacing_is_ddim_range():
    training = linear_sigmas()
    sigmas = samplers.schedule_sigmas(training, 10, "uniform")
    np.testing.assert_allclose(sigmas[:-1], training[np.arange(0, 1000, 100)[::-1]].astype(np.float32))
    with pytest.raises(ValueError, match="divide"):
        samplers.schedule_sigmas(training, 300, "uniform")
