"""Config loading, overrides and the one-line errors a mistake produces."""

import re

import pytest
from tiny_configs import CONFIGS, load

from genimg_jax import main as cli
from genimg_jax.cli import split_override_args
from genimg_jax.config import (
    MOVED_KEYS,
    ConfigError,
    apply_overrides,
    check_variant,
    flat_keys,
    load_config,
    validate_common,
)
from genimg_jax.methods import build_method


@pytest.fixture(params=["dcgan.py", "vae.py", "vae.py:beta", "draw.py", "draw.py:mnist"])
def config(request):
    return load(request.param)


def test_shipped_configs_validate_and_build(config):
    validate_common(config)
    assert build_method(config).config is config
    for section in ("data", "model", "optim", "train", "eval", "mesh"):
        assert section in config


def test_overrides_parse_to_the_field_type():
    config = load("dcgan.py")
    apply_overrides(
        config,
        [
            "train.steps=7",
            "optim.g.learning_rate=0.5",
            "data.random_flip=true",
            "data.source=faces",
            "seed=3",
        ],
    )
    assert config.train.steps == 7 and isinstance(config.train.steps, int)
    assert config.optim.g.learning_rate == 0.5
    assert config.data.random_flip is True
    assert config.data.source == "faces"
    assert config.seed == 3
    apply_overrides(config, ["optim.g.learning_rate=1"])  # an int literal for a float field stays a float
    assert isinstance(config.optim.g.learning_rate, float)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.stpes=3", "unknown config key config.train.stpes; did you mean config.train.steps"),
        ("trian.steps=3", "unknown config key config.trian.steps; did you mean config.train.steps"),
        ("train.steps=abc", "config.train.steps='abc' is not a valid int"),
        ("data.random_flip=maybe", "config.data.random_flip='maybe' is not a valid bool"),
        ("train=3", "config.train is a section"),
        ("train.steps", "must look like config.KEY=VALUE"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    config = load("dcgan.py")
    with pytest.raises(ConfigError, match=re.escape(message)):
        apply_overrides(config, [override])


def test_split_override_args_accepts_both_spellings():
    overrides, rest = split_override_args(["--config.a.b=1", "--workdir=x", "--config.c", "2"])
    assert overrides == ["a.b=1", "c=2"]
    assert rest == ["--workdir=x"]


def test_missing_config_file_and_variant_argument(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "nope.py"))
    variant = tmp_path / "variant.py"
    variant.write_text(
        "import ml_collections\ndef get_config(arg):\n    return ml_collections.ConfigDict({'size': int(arg)})\n"
    )
    assert load_config(f"{variant}:5").size == 5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.resolution=12", "config.data.resolution=12 is invalid: must be a power of two"),
        ("data.channels=2", "config.data.channels=2 is invalid"),
        ("train.steps=0", "config.train.steps=0 is invalid"),
        ("loss.adversarial=softplus", "config.loss.adversarial='softplus' is invalid"),
        ("method=flow", "config.method='flow' is unknown"),
    ],
)
def test_bad_values_name_the_key(override, message):
    config = load("dcgan.py", override)
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_common(config)
        build_method(config)


def test_vae_likelihood_is_validated():
    config = load("vae.py", "model.likelihood=poisson")
    with pytest.raises(ConfigError, match=re.escape("config.model.likelihood='poisson' is invalid")):
        build_method(config)


def test_command_line_error_is_one_line_and_writes_nothing(tmp_path, capsys):
    workdir = tmp_path / "run"
    status = cli.main(["--config", str(CONFIGS / "dcgan.py"), f"--workdir={workdir}", "--config.train.stpes=3"])
    error = capsys.readouterr().err.strip()
    assert status == 2
    expected = "error: unknown config key config.train.stpes; did you mean config.train.steps, config.train.d_steps?"
    assert error == expected
    assert not workdir.exists()


@pytest.mark.parametrize(
    ("spec", "override", "message"),
    [
        ("dcgan.py", "model.penalty=r1", "config.model.penalty was moved: use config.loss.penalty"),
        ("dcgan.py", "model.loss=hinge", "config.model.loss was moved: use config.loss.adversarial"),
        ("sngan.py:faces_ada", "model.ada_ops=xflip", "config.model.ada_ops was moved: use config.augment.ops"),
        (
            "sngan.py:faces",
            "model.augment=diffaugment:color",
            "config.model.augment was moved: use config.augment.mode, config.augment.policy",
        ),
        (
            "ddpm.py",
            "optim.warmup_steps=5",
            "config.optim.warmup_steps was moved: use config.optim.denoiser.warmup_steps",
        ),
        (
            "vae.py",
            "optim.learning_rate=1",
            "config.optim.learning_rate was moved: use config.optim.vae.learning_rate",
        ),
        (
            "stylegan2.py",
            "optim.b1=0.5",
            "config.optim.b1 was moved: use config.optim.d.b1, config.optim.g.b1",
        ),
    ],
)
def test_moved_key_names_its_replacement(spec, override, message):
    with pytest.raises(ConfigError) as error:
        apply_overrides(load_config(str(CONFIGS / spec)), [override])
    assert str(error.value) == message


def test_every_moved_key_is_gone_and_has_a_replacement_in_some_shipped_config():
    keys = set()
    for spec in ("dcgan.py", "sngan.py:faces", "ddpm.py", "vae.py", "draw.py", "stylegan2.py"):
        keys.update(flat_keys(load_config(str(CONFIGS / spec))))
    for old, patterns in MOVED_KEYS.items():
        assert old not in keys
        assert any(
            re.fullmatch(pattern.replace(".", r"\.").replace("*", "[^.]+"), key) for pattern in patterns for key in keys
        ), old


def test_a_moved_key_without_its_replacement_in_this_config_is_unknown():
    # StyleGAN2 has a loss section but no adversarial-loss choice: nothing to point to.
    with pytest.raises(ConfigError, match=r"^unknown config key config\.model\.loss$"):
        apply_overrides(load_config(str(CONFIGS / "stylegan2.py")), ["model.loss=hinge"])


@pytest.mark.parametrize("spec", ["dcgan.py:cifar", "ddpm.py:mnist", "edm.py:x", "draw.py:x", "vae.py:x"])
def test_unknown_variant_has_one_message_everywhere(spec):
    name = spec.partition(":")[2]
    with pytest.raises(ConfigError, match=rf"^config variant '{name}' is unknown; choose one of \["):
        load_config(str(CONFIGS / spec))


def test_check_variant_lists_the_choices():
    check_variant("b", ("a", "b"))
    with pytest.raises(ConfigError, match=re.escape("config variant 'c' is unknown; choose one of ['a', 'b']")):
        check_variant("c", ("a", "b"))
