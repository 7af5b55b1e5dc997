"""Convert pytorch-fid's Inception weights (`pt_inception-2015-12-05-*.pth`) to Flax variables, without torch.

The file is the state dict that pytorch-fid converted from TTUR's TF graph. Both of torch's formats are read:
the zip archive (torch >= 1.6: `*/data.pkl` plus one raw entry per storage under `*/data/`) and the legacy
stream (magic, protocol, system info, object pickle, storage keys, then each storage as int64 length + bytes).
The pickle names torch's rebuild functions and storage classes; a restricted unpickler maps exactly those to
numpy, and refuses any other global, so a weights file cannot run code.
"""

import collections
import pathlib
import pickle
import struct
import zipfile
from typing import Any, ClassVar

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
EXPECTED_FILE = "pt_inception-2015-12-05-6726825d.pth"  # the file pytorch-fid uses


class _Tensor:
    """A tensor view (storage key, offset, size, stride in elements), materialised once storages are read."""

    def __init__(self, storage: tuple[str, Any], offset: int, size: tuple, stride: tuple):
        self.key, self.dtype = storage
        self.offset, self.size, self.stride = offset, tuple(size), tuple(stride)

    def materialise(self, storages: dict[str, np.ndarray]) -> np.ndarray:
        flat = storages[self.key].view(self.dtype)[self.offset :]
        itemsize = flat.dtype.itemsize
        return np.lib.stride_tricks.as_strided(flat, self.size, [s * itemsize for s in self.stride]).copy()


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(tensor, *unused):
    return tensor


class _StateDictUnpickler(pickle.Unpickler):
    _GLOBALS: ClassVar[dict] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if (module, name) not in self._GLOBALS:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name} in a state-dict file")
        return self._GLOBALS[(module, name)]

    def persistent_load(self, pid: tuple) -> tuple[str, Any]:
        # ("storage", dtype, key, location, numel[, view_metadata])
        return str(pid[2]), pid[1]


def _read_zip(path: pathlib.Path) -> tuple[dict, dict[str, np.ndarray]]:
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if not pickles:
            raise ValueError(f"{path} is a zip file without a */data.pkl entry: not a torch checkpoint")
        prefix = pickles[0][: -len("data.pkl")]
        with archive.open(pickles[0]) as file:
            objects = _StateDictUnpickler(file).load()
        storages = {
            name[len(prefix) + len("data/") :]: np.frombuffer(archive.read(name), np.uint8)
            for name in archive.namelist()
            if name.startswith(prefix + "data/")
        }
    return objects, storages


def _read_legacy(path: pathlib.Path) -> tuple[dict, dict[str, np.ndarray]]:
    with open(path, "rb") as file:
        if pickle.load(file) != LEGACY_MAGIC:
            raise ValueError(f"{path} is neither a torch zip archive nor a legacy torch file")
        pickle.load(file)  # protocol version
        pickle.load(file)  # system info
        unpickler = _StateDictUnpickler(file)
        objects = unpickler.load()
        tensors = [t for t in objects.values() if isinstance(t, _Tensor)]
        dtypes = {t.key: np.dtype(t.dtype) for t in tensors}
        storages = {}
        for key in pickle.load(file):
            (numel,) = struct.unpack("<q", file.read(8))
            storages[str(key)] = np.frombuffer(file.read(numel * dtypes[str(key)].itemsize), np.uint8)
    return objects, storages


def read_state_dict(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """A torch state-dict file as {name: numpy array}."""
    path = pathlib.Path(path)
    objects, storages = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
    return {name: t.materialise(storages) for name, t in objects.items() if isinstance(t, _Tensor)}


def convert_state_dict(state_dict: dict[str, np.ndarray]) -> dict[str, dict]:
    """pytorch-fid names and layouts -> {"params": ..., "batch_stats": ...} of `inception.FIDInceptionV3`.

    Convolutions OIHW -> HWIO, dense (out, in) -> (in, out); batch-norm weight/bias -> scale/bias and running
    statistics -> batch_stats mean/var; `num_batches_tracked` counters are dropped.
    """
    variables: dict[str, dict] = {"params": {}, "batch_stats": {}}
    renames = {
        "weight": ("params", "scale"),
        "bias": ("params", "bias"),
        "running_mean": ("batch_stats", "mean"),
        "running_var": ("batch_stats", "var"),
    }
    for name, value in state_dict.items():
        *modules, leaf = name.split(".")
        if leaf == "num_batches_tracked":
            continue
        if modules[-1] == "bn":
            collection, leaf = renames[leaf]
        elif leaf == "weight":
            collection, leaf = "params", "kernel"
            value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
        else:
            collection = "params"
        node = variables[collection]
        for module in modules:
            node = node.setdefault(module, {})
        node[leaf] = np.asarray(value, np.float32)
    return variables


def load_inception_variables(path: str | pathlib.Path) -> dict[str, dict]:
    """Flax variables of the FID Inception from the user's weights file; a missing file says where to put it."""
    path = pathlib.Path(path) if path else None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"Inception weights file {str(path) if path else '(none given)'} not found: nothing is downloaded. "
            f"Put pytorch-fid's {EXPECTED_FILE} (the FID Inception state dict) on this machine and name it "
            "with --config.eval.inception_weights=PATH"
        )
    return convert_state_dict(read_state_dict(path))
