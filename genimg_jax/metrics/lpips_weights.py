"""LPIPS weights: torch's two files -> one `.npz` of the Flax variables of `lpips.LPIPS`, and that file -> variables.

The `lpips` package builds its AlexNet from torchvision's ImageNet weights (`alexnet-owt-7be5be79.pth`: convolutions
`features.{0,3,6,8,10}.weight/bias`) and adds its learned heads (`lpips/weights/v0.1/alex.pth`:
`lin{0..4}.model.1.weight`, shape (1, C, 1, 1), after a dropout at `model.0`). Both are read without torch by the
restricted unpickler of metrics/inception_weights.py; convolutions OIHW -> HWIO, heads -> (C,). The `.npz` holds
one array per Flax parameter, named by its path joined with '.'; loading checks every name and shape.
"""

import pathlib
import zipfile

import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from genimg_jax.metrics import lpips

# Flax module -> torchvision's `features` index (the ReLUs and pools between them hold no weights).
ALEXNET_MODULES = {
    "conv1": "features.0",
    "conv2": "features.3",
    "conv3": "features.6",
    "conv4": "features.8",
    "conv5": "features.10",
}
LINEAR_KEY = "lin{index}.model.1.weight"
SEPARATOR = "."
CONVERT_COMMAND = "python -m genimg_jax.tools.convert_lpips --alexnet=PTH --linear=PTH --out=NPZ"


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every parameter of `lpips.LPIPS` by its joined path, with its shape (from an abstract init: no compute)."""
    images = jax.ShapeDtypeStruct((1, lpips.MIN_RESOLUTION, lpips.MIN_RESOLUTION, 3), jnp.float32)
    variables = jax.eval_shape(lpips.LPIPS().init, jax.random.PRNGKey(0), images, images)
    flat = flax.traverse_util.flatten_dict(variables["params"], sep=SEPARATOR)
    return {name: tuple(value.shape) for name, value in flat.items()}


def _entry(state_dict: dict[str, np.ndarray], key: str, which: str) -> np.ndarray:
    if key not in state_dict:
        raise ValueError(f"the {which} state dict has no '{key}' (it has {len(state_dict)} entries)")
    return state_dict[key]


def convert_state_dicts(alexnet: dict[str, np.ndarray], linear: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """torchvision AlexNet and lpips v0.1 head state dicts -> the `.npz` arrays (float32), shapes checked."""
    arrays = {}
    for name, module in ALEXNET_MODULES.items():
        arrays[f"alexnet.{name}.kernel"] = _entry(alexnet, f"{module}.weight", "AlexNet").transpose(2, 3, 1, 0)
        arrays[f"alexnet.{name}.bias"] = _entry(alexnet, f"{module}.bias", "AlexNet")
    for index in range(len(lpips.ALEXNET_CONVS)):
        arrays[f"lin{index}"] = _entry(linear, LINEAR_KEY.format(index=index), "LPIPS linear heads").reshape(-1)
    arrays = {name: np.asarray(value, np.float32) for name, value in arrays.items()}
    _check_shapes(arrays)
    return arrays


def _check_shapes(arrays: dict[str, np.ndarray]) -> None:
    for name, shape in expected_shapes().items():
        if name not in arrays:
            raise ValueError(f"no array '{name}'")
        if arrays[name].shape != shape:
            raise ValueError(f"'{name}' has shape {arrays[name].shape}, LPIPS's AlexNet needs {shape}")


def save_lpips_weights(path: str | pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `convert_state_dicts`'s arrays to `path` (atomically: a crash leaves no half file)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp.npz")
    np.savez(temporary, **arrays)
    temporary.replace(path)


def load_lpips_variables(path: str | pathlib.Path) -> dict[str, dict]:
    """Flax variables of `lpips.LPIPS` from the converted `.npz`; ValueError saying what is wrong (missing file,
    not an npz, a missing or misshapen array), never a download."""
    if not path or not pathlib.Path(path).is_file():
        raise ValueError(
            f"LPIPS weights file not found (nothing is downloaded); convert torch's files with {CONVERT_COMMAND}"
        )
    try:
        with np.load(path, allow_pickle=False) as file:
            arrays = {name: file[name] for name in file.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"cannot read it as an .npz ({type(error).__name__}: {error})") from None
    try:
        _check_shapes(arrays)
    except ValueError as error:
        raise ValueError(f"not LPIPS weights written by {CONVERT_COMMAND}: {error}") from None
    params = {name: jnp.asarray(arrays[name], jnp.float32) for name in expected_shapes()}
    return {"params": flax.traverse_util.unflatten_dict(params, sep=SEPARATOR)}
