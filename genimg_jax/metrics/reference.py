"""Features of a dataset split, computed once and cached on disk.

The cache key holds everything the features depend on: data source (and tfds data_dir), split, resolution,
channels, feature net and the hash of its weights. A changed weights file or resolution therefore never
reuses stale statistics.
"""

import hashlib
import json
import re

import jax
import numpy as np
from etils import epath
from jax.sharding import NamedSharding

from genimg_jax import data
from genimg_jax.metrics.features import FeatureNet


def cache_key(source_spec: str, data_dir: str, split: str, resolution: int, channels: int, net: FeatureNet) -> dict:
    return {
        "dataset": source_spec,
        "data_dir": data_dir,
        "split": split,
        "resolution": resolution,
        "channels": channels,
        "feature_net": net.name,
        "feature_net_weights_sha256": net.weights_hash,
    }


def cache_path(cache_dir: epath.Path, key: dict) -> epath.Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    readable = re.sub(
        r"[^A-Za-z0-9]+", "-", f"{key['dataset']}-{key['split']}-{key['resolution']}-{key['feature_net']}"
    )
    return cache_dir / f"{readable.strip('-')[:60]}-{digest}.npz"


def source_features(
    net: FeatureNet, source: data.ImageSource, batch_size: int, sharding: NamedSharding
) -> dict[str, np.ndarray]:
    """{"features", "logits"} of every example of `source`, in order, from batches sharded as `sharding` says."""
    replicated = NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    apply = jax.jit(
        lambda variables, images: net.apply(variables, data.to_unit_range(images)), out_shardings=replicated
    )
    outputs: dict[str, list[np.ndarray]] = {"features": [], "logits": []}
    batches = data.iterate_once(source, batch_size=batch_size, rows=data.host_rows(sharding, batch_size))
    for index, local_batch in enumerate(batches):
        batch = data.make_global_batch(local_batch, sharding)
        valid = min(batch_size, len(source) - index * batch_size)  # only the last batch is padded, at its end
        for name, value in jax.device_get(apply(net.variables, batch["image"])).items():
            outputs[name].append(np.asarray(value)[:valid])
    return {name: np.concatenate(values) for name, values in outputs.items()}


def cached_source_features(
    net: FeatureNet, source: data.ImageSource, key: dict, cache_dir: epath.Path, batch_size: int, sharding
) -> dict[str, np.ndarray]:
    """`source_features`, read from `cache_dir` (local or gs://, through epath) when an entry for `key` exists, else
    computed and stored."""
    path = cache_path(epath.Path(cache_dir), key)
    if path.is_file():
        with path.open("rb") as file, np.load(file) as cached:
            if json.loads(str(cached["key"])) == key:
                return {"features": cached["features"], "logits": cached["logits"]}
    outputs = source_features(net, source, batch_size, sharding)
    if jax.process_index() == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp.npz")
        with temporary.open("wb") as file:
            np.savez(file, key=json.dumps(key, sort_keys=True), **outputs)
        temporary.replace(path)  # atomic: a crash never leaves a truncated cache entry
    return outputs
