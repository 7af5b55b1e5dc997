"""The package's layers: a module imports from its own layer or below, never above (DESIGN.md).

Read from the source with `ast`, so the test sees every import, including ones inside functions, without running
any of them.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).parent.parent / "genimg_jax"

# Top to bottom. A module belongs to the first layer one of whose prefixes it starts with. The training loop sits
# above evaluation (it runs evaluations); the rest of training/ (compiled run, checkpoints, ...) sits below it,
# so that evaluating, sampling or auditing a saved run never imports the loop.
LAYERS = (
    ("commands", ("genimg_jax.main", "genimg_jax.cli", "genimg_jax.tools", "genimg_jax.experiments")),
    ("training loop", ("genimg_jax.training.trainer",)),
    ("evaluation", ("genimg_jax.evaluation",)),
    ("training", ("genimg_jax.training",)),
    ("methods", ("genimg_jax.methods",)),
    (
        "building blocks",
        ("genimg_jax.models", "genimg_jax.losses", "genimg_jax.augment", "genimg_jax.diffusion", "genimg_jax.metrics"),
    ),
    ("data", ("genimg_jax.data",)),
    ("parallel", ("genimg_jax.parallel",)),
    ("config", ("genimg_jax.config",)),
)


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return index
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS in {__file__}")


def imported_modules(path: pathlib.Path, source: str) -> list[tuple[int, str]]:
    """(line, module) of every `genimg_jax` import in `source`, the text of `path`; `from genimg_jax.x import y`
    counts as x.y if y is a module, else as x."""
    found = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("genimg_jax")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genimg_jax"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").is_file() or (
                    PACKAGE.parent / candidate.replace(".", "/") / "__init__.py"
                ).is_file()
                found.append((node.lineno, candidate if is_module else node.module))
    return found


SOURCES = sorted(
    path for path in PACKAGE.rglob("*.py") if path != PACKAGE / "__init__.py"
)  # the marker imports nothing


def upward_imports(path: pathlib.Path, source: str | None = None) -> list[str]:
    """The imports of `path` (or of `source` as if it were that file's text) from a layer above its own."""
    own = layer_of(module_name(path))
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line} ({LAYERS[own][0]}) imports {module} ({LAYERS[layer_of(module)][0]})"
        for line, module in imported_modules(path, path.read_text() if source is None else source)
        if module != "genimg_jax" and layer_of(module) < own
    ]


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_imports_from_a_layer_above_it(path):
    assert upward_imports(path) == []


def test_the_check_sees_an_upward_import():
    """A model that imported the trainer would be reported (the check can fail)."""
    fake = PACKAGE / "models" / "dcgan.py"
    text = fake.read_text() + "\nfrom genimg_jax.training import trainer\n"
    assert upward_imports(fake, text) == [
        f"genimg_jax/models/dcgan.py:{text.count(chr(10))} (building blocks) imports genimg_jax.training.trainer "
        "(training loop)"
    ]


def test_every_module_has_a_layer():
    for path in SOURCES:
        layer_of(module_name(path))


def test_no_module_sits_loose_beside_the_packages():
    """Only the entry point, the command helpers, the config and the package marker live in genimg_jax/ itself."""
    loose = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "cli.py", "config.py", "main.py"]
