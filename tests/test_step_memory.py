"""Memory of a train step: gradient accumulation and remat lower XLA's estimate; a step that cannot fit stops in
one line before anything is written."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_configs import CONFIGS, TINY_GAN, TINY_UNET, load

from genimg_jax.config import ConfigError
from genimg_jax.methods import microbatching
from genimg_jax.models.unet import UNet
from genimg_jax.tools import step_memory
from genimg_jax.training import memory_check, trainer
from genimg_jax.training.compiled_run import compile_run

BATCH = 64


class ConvStack(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for _ in range(4):
            x = nn.relu(nn.Conv(32, (3, 3))(x))
        return x


def temporaries(function, *args) -> int:
    return jax.jit(function).lower(*args).compile().memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize("unroll", [True, False], ids=["unrolled", "scanned"])
def test_accumulated_rounds_hold_one_micro_batch_of_activations_at_a_time(unroll):
    """XLA may run independent rounds side by side (XLA:CPU did, keeping 93% of the full batch's activations with
    8 unrolled rounds); chained or scanned rounds keep about 1/rounds of them, and the result is the full batch's."""
    network = ConvStack()
    images = jax.random.normal(jax.random.PRNGKey(0), (BATCH, 16, 16, 3))
    params = network.init(jax.random.PRNGKey(1), images[:1])

    def loss_fn(params, micro, index):
        return jnp.mean(network.apply(params, micro["x"]) ** 2), ()

    def accumulated(params, batch, microbatch):
        return microbatching.value_and_grad(loss_fn, params, batch, microbatch, unroll=unroll)

    batch = {"x": images}
    full = temporaries(functools.partial(accumulated, microbatch=0), params, batch)
    for rounds in (2, 8):
        micro = temporaries(functools.partial(accumulated, microbatch=BATCH // rounds), params, batch)
        assert micro < full * (1 / rounds + 0.15), (rounds, micro / full)
    (loss, _), grads = jax.jit(functools.partial(accumulated, microbatch=8))(params, batch)
    (full_loss, _), full_grads = jax.jit(functools.partial(accumulated, microbatch=0))(params, batch)
    np.testing.assert_allclose(loss, full_loss, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(full_grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.slow  # 2 min: compiles every remat-able network twice
def test_remat_keeps_the_parameters_and_the_gradients():
    """Same names, init, loss and gradients with and without remat. Its memory saving shows on accelerators only:
    XLA:CPU drops the optimization barriers that keep the recomputation apart, so it merges it with the forward
    pass again (measured: the same temporaries); there it must at least cost nothing."""
    images, t = jax.random.normal(jax.random.PRNGKey(0), (32, 16, 16, 1)), jnp.linspace(0, 999, 32)
    results = {}
    for remat in (False, True):
        network = UNet(features=16, channel_multipliers=(1, 2), num_res_blocks=1, attention_resolutions=(), remat=remat)
        params = network.init(jax.random.PRNGKey(1), images, t)

        def loss(params, network=network):
            noise = network.apply(params, images, t, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
            return jnp.mean((noise - images) ** 2)

        results[remat] = params, jax.jit(jax.value_and_grad(loss))(params), temporaries(jax.grad(loss), params)
    (params, (value, grads), memory), (remat_params, (remat_value, remat_grads), remat_memory) = results.values()
    assert jax.tree.structure(params) == jax.tree.structure(remat_params)  # same names: checkpoints interchange
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(remat_params), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(remat_value, value, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(remat_grads), jax.tree.leaves(grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert remat_memory <= memory * 1.01, remat_memory / memory


def test_the_message_says_how_much_is_needed_and_which_knobs_help():
    config = load("ddpm.py", *TINY_UNET)
    memory = memory_check.StepMemory(arguments=2 * 2**30, outputs=0, temporaries=98 * 2**30)
    with pytest.raises(ConfigError) as error:
        memory_check.check_fits(memory, 24 * 2**30, config, "cpu:0", accumulates=True)
    message = str(error.value)
    assert "\n" not in message
    for part in ("100.0 GiB per device", "98.0 GiB temporaries", "cpu:0 has 24.0 GiB", "train.microbatch"):
        assert part in message
    assert "model.remat=True" not in message  # it saves nothing on XLA:CPU
    with pytest.raises(ConfigError, match=r"gpu:0 has 24.0 GiB; try train.microbatch .*, model.remat=True"):
        memory_check.check_fits(memory, 24 * 2**30, config, "gpu:0", accumulates=True)
    memory_check.check_fits(memory, 100 * 2**30, config, "cpu:0", accumulates=True)  # exactly fits: no error


def test_a_step_too_big_for_the_device_stops_before_anything_is_written(tmp_path, monkeypatch):
    quick = [*TINY_GAN, "train.sample_every=0", "eval.every=0"]
    config = load("dcgan.py", *quick, "train.steps=2")
    monkeypatch.setattr(memory_check, "device_memory", lambda device: 1024)
    workdir = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"the train step needs .* GiB per device"):
        trainer.train(config, workdir)
    assert not workdir.exists()
    trainer.train(load("dcgan.py", *quick, "train.steps=1", "train.memory_check=False"), workdir)
    assert (workdir / "checkpoints").is_dir()  # the check off: the step runs (in host memory, as XLA:CPU does)
    # Relaunching the finished run runs no step, so nothing is compiled or checked: it ends without an error.
    monkeypatch.setattr(memory_check, "check_train_step", lambda run, config: pytest.fail("checked a finished run"))
    trainer.train(load("dcgan.py", *quick, "train.steps=1"), workdir)


def test_the_step_memory_tool_prints_the_estimate_the_check_uses(capsys):
    overrides = [f"--config.{o}" for o in TINY_GAN]
    assert step_memory.main(["--config=" + str(CONFIGS / "dcgan.py"), *overrides]) == 0
    header, line = capsys.readouterr().out.strip().splitlines()
    config = load("dcgan.py", *TINY_GAN)
    expected = memory_check.check_train_step(compile_run(config), config)
    assert f"batch {config.train.batch_size} over {jax.device_count()} cpu devices" in header
    assert line.startswith("  train.microbatch=0: ") and line.endswith(": fits")
    assert f"{expected.total / 2**30:.2f} GiB per device" in line
