"""FID reference statistics as a file: pytorch-fid's format, so published statistics can be used here and ours
there.

An `.npz` with `mu` (the feature mean) and `sigma` (the feature covariance, unbiased), float64, which is all
pytorch-fid reads (`python -m pytorch_fid DIR stats.npz`). Files written here add what made them:
`feature_net`, `feature_net_weights_sha256`, `num_images` and `protocol` (JSON: the net's protocol and the
source). A file that records another feature net than the evaluation's is refused: its FID would mix two
feature spaces. A file without those keys (pytorch-fid's own) is taken on trust, if its dimension fits.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import zipfile
from typing import Any

import numpy as np

from genimg_jax.metrics.features import FeatureNet


@dataclasses.dataclass(frozen=True)
class FidStats:
    mean: np.ndarray  # (D,) float64
    covariance: np.ndarray  # (D, D) float64
    feature_net: str | None  # None for files that do not say (pytorch-fid's)
    feature_net_weights_sha256: str | None
    num_images: int | None
    protocol: dict[str, Any] | None


def save_fid_stats(
    path: str | pathlib.Path,
    mean: np.ndarray,
    covariance: np.ndarray,
    net: FeatureNet,
    num_images: int,
    protocol: dict[str, Any],
) -> None:
    """Write the statistics of `num_images` images under `net` to `path` (atomically: a crash leaves no half file)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp.npz")
    np.savez(
        temporary,
        mu=np.asarray(mean, np.float64),
        sigma=np.asarray(covariance, np.float64),
        feature_net=net.name,
        feature_net_weights_sha256=net.weights_hash,
        num_images=np.int64(num_images),
        protocol=json.dumps({**net.protocol(), **protocol}, sort_keys=True),
    )
    temporary.replace(path)


def load_fid_stats(path: str | pathlib.Path) -> FidStats:
    """The statistics in `path`; ValueError saying what is wrong with the file (missing, not an npz, no mu/sigma,
    shapes that are not a mean and its covariance)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError("no such file")
    try:
        loaded = np.load(path)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise TypeError("it holds one array (.npy), not named arrays")
        with loaded as stats:
            arrays = {name: stats[name] for name in stats.files}
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"cannot be read as an .npz ({type(error).__name__}: {error})") from None
    missing = sorted({"mu", "sigma"} - set(arrays))
    if missing:
        raise ValueError(f"has no {' or '.join(missing)} (keys: {sorted(arrays)})")
    mean, covariance = np.asarray(arrays.pop("mu"), np.float64), np.asarray(arrays.pop("sigma"), np.float64)
    recorded = {name: value.item() for name, value in arrays.items() if value.ndim == 0}
    if mean.ndim != 1 or covariance.shape != (len(mean), len(mean)):
        raise ValueError(f"mu {mean.shape} and sigma {covariance.shape} are not a mean and its covariance")
    return FidStats(
        mean=mean,
        covariance=covariance,
        feature_net=recorded.get("feature_net"),
        feature_net_weights_sha256=recorded.get("feature_net_weights_sha256"),
        num_images=int(recorded["num_images"]) if "num_images" in recorded else None,
        protocol=json.loads(recorded["protocol"]) if "protocol" in recorded else None,
    )


def check_feature_net(stats: FidStats, net: FeatureNet, feature_dim: int) -> None:
    """ValueError unless `stats` can be compared with features of `net` (`feature_dim` wide)."""
    made_by = (stats.feature_net, stats.feature_net_weights_sha256)
    if stats.feature_net is not None and made_by != (net.name, net.weights_hash):
        raise ValueError(
            f"was made with feature net {stats.feature_net!r} (weights {stats.feature_net_weights_sha256}), "
            f"not the evaluation's {net.name!r} (weights {net.weights_hash})"
        )
    if len(stats.mean) != feature_dim:
        raise ValueError(f"holds {len(stats.mean)}-d features, but feature net {net.name!r} gives {feature_dim}-d ones")
