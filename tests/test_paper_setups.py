"""Every `:cifar10` paper setup at its published size: built and its train step traced abstractly (no arrays), the
papers' evaluation protocol by default, and one setup trained, evaluated and sampled for real (slow)."""

import jax
import numpy as np
import pytest
from inception_reference import GOLDEN, random_state_dict
from torch_format import write_state_dict

from genimg_jax import data, main, parallel
from genimg_jax.config import CIFAR10_EVAL
from genimg_jax.tools import paper_setups
from genimg_jax.training.compiled_run import compile_run

# Parameters of the networks as their reference implementations count them.
PUBLISHED_SIZES = {
    "ddpm": {"params": 35_746_307},  # 35.7M (Ho et al. 2020, appendix B): hojonathanho/diffusion's unet2d16b2
    # EDM's SongUNet with train.py's DDPM++ CIFAR-10 arguments (55,732,739) and its 9 augment labels (+1,152).
    "edm": {"params": 55_733_891},
}


@pytest.fixture(scope="module")
def traced():
    """(config, network sizes, train-step metrics shapes) of every paper setup, traced on one device."""
    results = {}
    for name in paper_setups.PAPER_CONFIGS:
        config = paper_setups.paper_config(name)
        run = compile_run(config, parallel.make_mesh(config.mesh, devices=jax.devices()[:1]))
        batch = data.example_batch(config.data, config.train.batch_size)
        _, metrics = jax.eval_shape(run.train_step, run.abstract_state, batch)
        results[name] = config, paper_setups.network_sizes(run.abstract_state), metrics
    return results


@pytest.mark.slow  # tracing every paper setup at full size takes ~2 min
@pytest.mark.parametrize("name", paper_setups.PAPER_CONFIGS)
def test_paper_setup_traces_one_train_step_at_its_published_size(traced, name):
    config, sizes, metrics = traced[name]
    assert config.data.resolution == 32 and config.data.channels == 3
    assert set(sizes) in ({"generator", "discriminator"}, {"params"}) and min(sizes.values()) > 500_000
    assert metrics and all(value.shape == () for value in metrics.values())  # every metric a scalar
    if name in PUBLISHED_SIZES:
        assert sizes == PUBLISHED_SIZES[name]


@pytest.mark.parametrize("name", paper_setups.PAPER_CONFIGS)
def test_paper_setup_evaluates_as_its_paper_by_default(name):
    config = paper_setups.paper_config(name)  # the config alone: no tracing, so this runs in the fast suite
    # Ho et al. (Appendix B) and Karras et al.: FID and IS of 50k samples, FID against the training set.
    paper = {"metrics": "fid,is", "feature_net": "inception", "num_samples": 50_000, "reference_split": "train"}
    assert {key: config.eval[key] for key in paper} == paper == CIFAR10_EVAL
    assert config.eval.every > 0 and config.train.steps % config.eval.every == 0


def test_paper_setup_without_the_inception_weights_stops_at_start_up_in_one_line(tmp_path, capsys):
    images = paper_setups.write_cifar_shaped_folder(tmp_path / "images", images_per_class=1)
    flags = [f"--config.data.source=folder:{images}", "--config.train.steps=1"]
    assert main.main(["--config=configs/dcgan.py:cifar10", f"--workdir={tmp_path / 'run'}", *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--config.eval.inception_weights=PATH" in error
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained before it stopped


@pytest.mark.slow
def test_one_paper_setup_trains_evaluates_and_samples_at_full_size(tmp_path, capsys):
    """DCGAN's CIFAR-10 setup, 2 steps at the published size, FID/IS on 16 samples with random Inception weights."""
    golden = np.load(GOLDEN)
    shapes = [tuple(int(d) for d in s.split(",")) for s in golden["shapes"]]
    weights = tmp_path / "pt_inception_random.pth"
    write_state_dict(weights, random_state_dict([str(n) for n in golden["names"]], shapes))
    paper_setups.write_cifar_shaped_folder(tmp_path / "images", images_per_class=2)
    argv = [f"--root={tmp_path}", f"--inception_weights={weights}", "--only=dcgan", "--num_samples=16"]
    assert paper_setups.main(argv) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("dcgan") and " ok: " in line and "fid " in line and "is_mean " in line
    assert (tmp_path / "dcgan" / "samples" / "step_0000002.png").is_file()
