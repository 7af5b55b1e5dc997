"""Sharding on 8 simulated CPU devices: the rules, real parameter shards, one step under every layout equal to the
single-device step, restoring an FSDP checkpoint on fewer devices, and the collectives in the compiled step."""

import functools
import re

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from tiny_configs import TINY_GAN, TINY_STYLEGAN2, TINY_UNET, load

from genimg_jax import data, parallel
from genimg_jax.config import ConfigError
from genimg_jax.tools import benchmark
from genimg_jax.training import compiled_run
from genimg_jax.training.checkpoint import Checkpointer

# Tiny configs; most tests use the DCGAN. StyleGAN2 adds labels, w split like the batch, minibatch stddev across
# examples, and R1 and path length (both second order) on step 0; DDPM adds sampled timesteps and noise.
FAMILIES = {
    "dcgan": ("dcgan.py", TINY_GAN),
    "stylegan2": ("stylegan2.py", [*TINY_STYLEGAN2, "model.num_classes=10", "train.batch_size=32"]),
    "ddpm": ("ddpm.py", [*TINY_UNET, "train.batch_size=16"]),
}
# Tiny kernels have 128-4096 elements: with this threshold the larger ones are split and the smaller replicated.
MIN_SHARD_SIZE = "sharding.min_size=256"
LAYOUTS = {
    "data_parallel": ["mesh.data=-1", "mesh.fsdp=1"],
    "fsdp": ["mesh.data=1", "mesh.fsdp=-1"],
    "mixed": ["mesh.data=4", "mesh.fsdp=2"],
}
BATCH = 16  # global batch of TINY_GAN


def _config(*overrides, family="dcgan"):
    spec, tiny = FAMILIES[family]
    return load(spec, *tiny, MIN_SHARD_SIZE, *overrides)


def _leaves(state):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(jax.device_get(state))]


def _named_leaves(tree):
    return {parallel.leaf_path(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


@functools.cache
def _compiled(layout: str, num_devices: int = 8, family: str = "dcgan"):
    """(run, AOT-compiled train step) for a layout on the first `num_devices` devices; compiled once per module."""
    config = _config(*LAYOUTS[layout], family=family)
    run = compiled_run.compile_run(config, parallel.make_mesh(config.mesh, jax.devices()[:num_devices]))
    batch = {
        name: jax.ShapeDtypeStruct(zeros.shape, zeros.dtype, sharding=run.batch_sharding)
        for name, zeros in data.example_batch(config.data, config.train.batch_size).items()
    }
    return run, run.train_step.lower(run.abstract_state, batch).compile()


@functools.cache
def _initial_state():
    """One initial state as host arrays; each layout places it with its own shardings (one init compile)."""
    run, _ = _compiled("data_parallel", 1)
    return jax.device_get(run.init(jax.random.PRNGKey(0)))


def _stream():
    source = data.make_source("digits", split="train", resolution=16, channels=1)
    return data.make_train_stream(source, global_batch_size=BATCH, seed=0)


def _train(layout, num_devices, state, batches):
    run, step = _compiled(layout, num_devices)
    state = jax.device_put(state, run.state_sharding)
    for local_batch in batches:
        state, metrics = step(state, data.make_global_batch(local_batch, run.batch_sharding))
    return state, jax.device_get(metrics)


def _assert_close(state, reference):
    # Reductions run in another order; Adam's first steps (about lr * sign(grad)) can turn a float32 rounding
    # difference in a near-zero gradient into a step-sized change, so params match to a tenth of the lr.
    for a, b in zip(_leaves(state), _leaves(reference), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


def _assert_close_but_near_zero_gradients(state, reference, largest_step):
    """As `_assert_close`, for all but 5% of every leaf's elements (or one); those (near-zero gradients, whose Adam
    steps a rounding difference turns) still within `largest_step`, what Adam can move an element in the steps."""
    for a, b in zip(_leaves(state), _leaves(reference), strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        np.testing.assert_allclose(a, b, rtol=0, atol=largest_step)
        outside = np.abs(a - b) > 2e-5 + 1e-4 * np.abs(b)
        assert outside.sum() <= max(1, 0.05 * outside.size), (outside.sum(), outside.size)


@pytest.mark.parametrize(
    ("shape", "fsdp", "min_size", "spec"),
    [
        ((4, 4, 16, 16), 2, 256, P(None, None, None, "fsdp")),  # ties go to the later dimension
        ((100, 64), 4, 256, P("fsdp")),  # the largest dimension, not the last
        ((102, 6), 4, 256, P()),  # no dimension divisible by 4
        ((3, 8, 5), 8, 0, P(None, "fsdp")),
        ((4, 4, 1, 8), 2, 256, P()),  # 128 elements: below min_size
        ((4096,), 1, 0, P()),  # no fsdp axis
    ],
)
def test_fsdp_spec_splits_the_largest_divisible_dimension_of_large_leaves(shape, fsdp, min_size, spec):
    assert parallel.fsdp_spec(shape, fsdp, min_size) == spec


def test_rules_shard_large_parameters_and_their_adam_moments_alike():
    run, _ = _compiled("mixed")
    specs = {name: sharding.spec for name, sharding in _named_leaves(run.state_sharding).items()}
    assert specs["generator/params/UpConv_0/kernel"] == P(None, None, None, "fsdp")  # (4, 4, 16, 16)
    assert specs["discriminator/params/Conv_2/kernel"] == P(None, None, "fsdp")  # (4, 4, 16, 1)
    assert specs["discriminator/params/Conv_0/kernel"] == P()  # (4, 4, 1, 8): small
    for name, spec in specs.items():
        if "batch_stats" in name or name in ("rng", "step") or name.endswith("/count"):
            assert spec == P(), name
        for moment in ("mu", "nu"):  # optimizer states mirror the parameters' paths, hence their shardings
            for model, opt in (("generator", "g_opt_state"), ("discriminator", "d_opt_state")):
                prefix = f"{model}/params/"
                if name.startswith(prefix):
                    assert specs[f"{opt}/0/{moment}/{name[len(prefix) :]}"] == spec
    # 4 kernels of >= 256 elements, each with its Adam mu and nu, and the EMA copies of the 2 generator ones.
    assert sum(spec != P() for spec in specs.values()) == 4 * 3 + 2
    # Rules are ordered: an earlier "replicate" wins over the catch-all.
    config = _config(*LAYOUTS["mixed"], "sharding.rules=(('UpConv_0', 'replicate'), ('.*', 'fsdp'))")
    overridden = parallel.partition_specs(run.abstract_state, run.mesh, config.sharding)
    assert _named_leaves(overridden)["g_opt_state/0/mu/UpConv_0/kernel"] == P()
    assert _named_leaves(overridden)["g_opt_state/0/mu/UpConv_1/kernel"] == P(None, None, None, "fsdp")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sharding.rules=(('kernel', 'shard'),)", r"config.sharding.rules\[0\]=.*one of \['replicate', 'fsdp'\]"),
        ("sharding.rules=(('(', 'fsdp'),)", r"config.sharding.rules\[0\]=.*bad regex"),
        ("sharding.rules=('kernel',)", r"config.sharding.rules\[0\]='kernel' is invalid: must be a \(regex, rule\)"),
        ("sharding.min_size=-1", r"config.sharding.min_size=-1 is invalid"),
    ],
)
def test_bad_sharding_rules_are_config_errors(override, message):
    run, _ = _compiled("mixed")
    with pytest.raises(ConfigError, match=message):
        parallel.partition_specs(run.abstract_state, run.mesh, _config(override).sharding)


def test_unknown_or_misfit_mesh_axes_are_config_errors():
    with pytest.raises(ConfigError, match="does not fit 8 devices"):
        parallel.make_mesh(_config("mesh.data=3", "mesh.fsdp=-1").mesh)
    with pytest.raises(ConfigError, match=r"unknown axes \['model'\]"):
        parallel.mesh_shape({"data": -1, "model": 2}, 8)


def test_fsdp_parameters_are_really_sharded():
    run, _ = _compiled("mixed")
    state = jax.device_put(_initial_state(), run.state_sharding)
    kernel = state.generator["params"]["UpConv_0"]["kernel"]  # (4, 4, 16, 16), split in two along fsdp
    shards = kernel.addressable_shards
    assert len(shards) == 8 and {shard.data.shape for shard in shards} == {(4, 4, 16, 8)}
    halves = {(shard.index[3].start, shard.index[3].stop) for shard in shards}
    assert halves == {(0, 8), (8, 16)}
    for shard in shards:  # each device holds exactly its slice of the full kernel
        np.testing.assert_array_equal(shard.data, np.asarray(kernel)[shard.index])
    scale = state.generator["params"]["BatchNorm_0"]["scale"]  # small: a full copy everywhere
    assert {shard.data.shape for shard in scale.addressable_shards} == {scale.shape}
    per_device = sum(leaf.addressable_shards[0].data.nbytes for leaf in jax.tree.leaves(state))
    total = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
    assert per_device < 0.6 * total  # most of the bytes are in the split kernels and their Adam moments


@functools.cache
def _single_device_reference():
    stream = _stream()
    batches = [next(stream), next(stream)]
    return batches, _train("data_parallel", 1, _initial_state(), batches)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_step_under_every_layout_equals_the_single_device_step(layout):
    batches, (reference, reference_metrics) = _single_device_reference()
    state, metrics = _train(layout, 8, _initial_state(), batches)
    _assert_close(state, reference)
    for name, value in reference_metrics.items():
        np.testing.assert_allclose(metrics[name], value, rtol=1e-4)
    run, _ = _compiled(layout)
    for leaf, sharding in zip(jax.tree.leaves(state), jax.tree.leaves(run.state_sharding), strict=True):
        assert leaf.sharding.spec == sharding.spec  # the step keeps the layout it was given


def test_fsdp_checkpoint_restores_on_two_and_one_devices_and_training_continues(tmp_path):
    """Saved on 8 devices with FSDP (data=4, fsdp=2); restored in the data-parallel layout on 2 and 1 devices."""
    stream = _stream()
    saved, _ = _train("mixed", 8, _initial_state(), [next(stream) for _ in range(2)])
    checkpointer = Checkpointer(tmp_path, keep=1, every=1)
    checkpointer.save(2, saved, stream.get_state())
    checkpointer.wait()
    saved_values = _leaves(saved)
    later_batches = [next(stream) for _ in range(2)]
    reference, _ = _train("mixed", 8, saved, later_batches)

    for num_devices in (2, 1):
        run, _ = _compiled("data_parallel", num_devices)
        restored, data_state = checkpointer.restore(2, run.abstract_state)
        for leaf, value in zip(jax.tree.leaves(restored), saved_values, strict=True):
            np.testing.assert_array_equal(np.asarray(leaf), value)  # bit-identical
            assert len(leaf.addressable_shards) == num_devices and leaf.sharding.spec == P()
        resumed_stream = _stream()
        resumed_stream.set_state(data_state)
        continued, _ = _train("data_parallel", num_devices, restored, [next(resumed_stream) for _ in range(2)])
        _assert_close(continued, reference)
    checkpointer.close()


# Result shapes of a collective in XLA's HLO text, e.g. `%all-reduce.3 = (f32[16]{0}, f32[4,4,1,8]{...}) all-reduce(`.
_COLLECTIVE = re.compile(r"^\s*%\S+ = (.*?) (all-reduce|all-gather|reduce-scatter)(?:-start)?\(", re.MULTILINE)
_SHAPE = re.compile(r"[a-z]+[0-9]*\[([0-9,]*)\]")


def _collective_shapes(hlo: str, kind: str) -> list[tuple[int, ...]]:
    return [
        tuple(int(d) for d in dims.split(",") if d)
        for result, op in _COLLECTIVE.findall(hlo)
        if op == kind
        for dims in _SHAPE.findall(result)
    ]


def _param_shapes(run):
    state = run.abstract_state
    return {leaf.shape for leaf in jax.tree.leaves((state.generator["params"], state.discriminator["params"]))}


def test_data_parallel_step_all_reduces_gradients_and_gathers_nothing():
    run, step = _compiled("data_parallel")
    hlo = step.as_text()
    reduced = _collective_shapes(hlo, "all-reduce")
    gathered = _collective_shapes(hlo, "all-gather")
    # Every gradient of both networks is all-reduced (the generator's only because its latents are split like
    # the batch; drawn from the replicated key they made XLA run the generator in full on every device).
    assert _param_shapes(run) <= set(reduced)
    num_params = sum(int(np.prod(shape)) for shape in _param_shapes(run))
    assert sum(int(np.prod(shape)) for shape in reduced) >= num_params
    # No all-gather of the batch, of activations or of the replicated parameters: in fact none at all.
    assert not [shape for shape in gathered if shape in _param_shapes(run) or shape[:1] == (BATCH,)]
    assert gathered == []


def test_fsdp_step_all_gathers_the_split_parameters_but_never_the_batch():
    run, step = _compiled("mixed")
    gathered = _collective_shapes(step.as_text(), "all-gather")
    shapes, shardings = (
        jax.tree.leaves((tree.generator["params"], tree.discriminator["params"]))
        for tree in (run.abstract_state, run.state_sharding)
    )
    split = {leaf.shape for leaf, sharding in zip(shapes, shardings, strict=True) if sharding.spec != P()}
    assert split and split <= set(gathered)  # FSDP: each split parameter is gathered where it is used
    assert not [shape for shape in gathered if shape[:1] == (BATCH,) and len(shape) > 1]


def test_data_parallel_devices_share_the_work_instead_of_repeating_it():
    """XLA's cost analysis counts one device's partition (so the benchmark multiplies by the device count). The 8
    partitions together do the single-device work plus little: replicated updates of small leaves. With the GAN's
    latents drawn replicated, each device ran the whole generator pass: 6x the work of one device's share."""
    single = benchmark._flops(_compiled("data_parallel", 1)[1])
    all_devices = 8 * benchmark._flops(_compiled("data_parallel")[1])
    assert single <= all_devices <= 1.2 * single


def _family_steps(family: str, layout: str, num_devices: int, steps: int = 2):
    run, step = _compiled(layout, num_devices, family)
    config = run.method.config
    source = data.make_source("digits", split="train", resolution=config.data.resolution, channels=1)
    stream = data.make_train_stream(source, global_batch_size=config.train.batch_size, seed=0)
    state = run.init(jax.random.PRNGKey(0))
    for _ in range(steps):
        state, metrics = step(state, data.make_global_batch(next(stream), run.batch_sharding))
    return state, jax.device_get(metrics), benchmark._flops(step)


@pytest.mark.slow  # 2-3 min: compiling StyleGAN2 and the U-Net for a mixed mesh
@pytest.mark.parametrize("family", ["stylegan2", "ddpm"])
def test_other_families_step_on_a_mixed_mesh_as_on_one_device(family):
    """Two steps on data=4 x fsdp=2 equal the single-device steps; 8 data-parallel devices share the work."""
    reference, reference_metrics, single_flops = _family_steps(family, "data_parallel", 1)
    state, metrics, _ = _family_steps(family, "mixed", 8)
    # StyleGAN2's Adam has b1 = 0: its first step is lr * sign(grad) in every element, whatever the gradient's size.
    optimizers = _compiled("data_parallel", 1, family)[0].method.config.optim
    largest_lr = max(optimizers[name].learning_rate for name in optimizers)
    _assert_close_but_near_zero_gradients(state, reference, largest_step=2 * 2 * largest_lr)
    for name, value in reference_metrics.items():
        np.testing.assert_allclose(metrics[name], value, rtol=1e-4, atol=1e-6, err_msg=name)
    all_devices = 8 * benchmark._flops(_compiled("data_parallel", 8, family)[1])
    assert single_flops <= all_devices <= 1.2 * single_flops
