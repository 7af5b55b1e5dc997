"""Writes state dicts in torch's two file formats without torch, for testing the weight converter.

Torch pickles tensors as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`
with storages as persistent ids `("storage", torch.FloatStorage, key, "cpu", numel)`. Stand-in `torch` modules
give pickle those global names; storage bytes go into zip entries (`archive/data/<key>`) or, in the legacy
format, after the pickles as int64 element count + raw bytes.
"""

import collections
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _FakeModules:
    """Temporarily installs `torch` and `torch._utils` modules holding the names torch's pickles refer to."""

    def __enter__(self):
        self.saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
        torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
        torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})

        def _rebuild_tensor_v2(*args):
            raise AssertionError("only pickled, never called")

        _rebuild_tensor_v2.__module__ = "torch._utils"
        _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
        utils._rebuild_tensor_v2 = _rebuild_tensor_v2
        torch._utils = utils
        sys.modules.update({"torch": torch, "torch._utils": utils})
        return torch

    def __exit__(self, *exc):
        for name, module in self.saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def write_state_dict(path, arrays: dict[str, np.ndarray], legacy: bool = False, transpose_last: bool = False) -> None:
    """Save float32 `arrays` as a torch state dict. `transpose_last` stores 2-d arrays as transposed views of a
    storage with an offset, as torch does for non-contiguous tensors, to exercise strides and offsets."""
    storages, tensors = {}, collections.OrderedDict()
    with _FakeModules() as torch:
        for index, (name, array) in enumerate(arrays.items()):
            key = str(index)
            array = np.asarray(array, np.float32)
            if transpose_last and array.ndim == 2:
                flat = np.concatenate([np.zeros(3, np.float32), np.ascontiguousarray(array.T).ravel()])
                offset, stride = 3, (1, array.shape[0])
            else:
                flat, offset = array.ravel(), 0
                stride = tuple(s // 4 for s in np.ascontiguousarray(array).strides)
            storages[key] = flat
            tensors[name] = (key, flat.size, offset, tuple(array.shape), stride)
        storage_refs = {key: _Storage(key, storages[key].size) for key in storages}
        objects = collections.OrderedDict(
            (name, _Rebuild(storage_refs[key], offset, size, stride, torch._utils._rebuild_tensor_v2))
            for name, (key, _, offset, size, stride) in tensors.items()
        )
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=2)
        pickler.persistent_id = lambda obj: (
            ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel) + ((None,) if legacy else ())
            if isinstance(obj, _Storage)
            else None
        )
        pickler.dump(objects)
    if legacy:
        with open(path, "wb") as file:
            for header in (LEGACY_MAGIC, 1001, {"little_endian": True}):
                pickle.dump(header, file, protocol=2)
            file.write(buffer.getvalue())
            pickle.dump(sorted(storages), file, protocol=2)
            for key in sorted(storages):
                file.write(struct.pack("<q", storages[key].size))
                file.write(storages[key].tobytes())
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", buffer.getvalue())
            archive.writestr("archive/version", "3\n")
            for key, flat in storages.items():
                archive.writestr(f"archive/data/{key}", flat.tobytes())


class _Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class _Rebuild:
    def __init__(self, storage, offset, size, stride, function):
        self.args, self.function = (storage, offset, size, stride, False, collections.OrderedDict()), function

    def __reduce__(self):
        return self.function, self.args
