"""`ct:sparse:ANGLES` and `ct:lowdose:PHOTONS` — procedural CT phantoms paired with degraded reconstructions,
a medical-style translation task (reconstruction -> phantom is CT denoising) that runs offline.

Phantoms, in the manner of Shepp and Logan (1974): an outer skull ellipse of value 1, a brain ellipse inside it
of value 0.1..0.3, and 5 to 10 random inner ellipses (centres inside the brain, semi-axes 0.04..0.25 of the half
side, any angle) that add -0.15..0.35 inside the brain; the sum is clipped to [0, 1], and each pixel holds its
mean over 4 x 4 sub-pixels, so edges are not aliased (a band-limited scan can resolve them). The whole phantom lies
inside the inscribed circle that the Radon transform sees. Phantom k of a split is drawn from a generator seeded
by (split, k), so it is the same on every machine and for both task kinds; nothing is cached, every example is
generated on access. Splits: `SPLIT_SIZES` (2000 train, 200 test).

Scanning (skimage.transform.radon with circle=True, views evenly over [0, 180) degrees): the line integrals are
`ATTENUATION * radon(phantom) / N` for an N x N image, i.e. a value of 1 across the whole side of the image
attenuates by exp(-ATTENUATION). Sparse-view: ANGLES views, no noise. Low-dose: `full_views(N)` views
(ceil(pi N / 2), enough for an aliasing-free reconstruction) whose transmitted counts are
Poisson(PHOTONS * exp(-line integral)), turned back into line integrals by -log(max(counts, 1) / PHOTONS), the
noise seeded by (spec, split, k). The `source` is the filtered back-projection (skimage.transform.iradon, ramp
filter) in phantom units, clipped to [0, 1]; both fields are 1-channel uint8 (value * 255, rounded).
"""

import math

import numpy as np

from genimg_jax.data.errors import DataError
from genimg_jax.data.images import fit_image
from genimg_jax.data.sources import Field, paired_image_fields, stable_seed

SPLIT_SIZES = {"train": 2000, "test": 200}
ATTENUATION = 10.0
SUPERSAMPLING = 4  # sub-pixels per pixel side: each pixel holds the mean over its area (no aliased edges)
CT_FORMS = ("ct:sparse:ANGLES", "ct:lowdose:PHOTONS")


def full_views(resolution: int) -> int:
    return math.ceil(math.pi * resolution / 2)


def ct_fields(resolution: int, channels: int) -> dict[str, Field]:
    """The fields of a CT task (1-channel `image` and `source`); DataError for other channel counts."""
    if channels != 1:
        raise DataError(f"CT phantoms have 1 channel, not {channels}: set channels to 1")
    return paired_image_fields(resolution, 1)


def parse_ct(argument: str) -> tuple[int | None, float | None]:
    """(views, photons) of the text after `ct:`: `sparse:ANGLES` gives (ANGLES, None), `lowdose:PHOTONS`
    (None, PHOTONS); DataError naming the valid forms otherwise."""
    kind, _, value = argument.partition(":")
    try:
        if kind == "sparse" and int(value) >= 1:
            return int(value), None
        if kind == "lowdose" and math.isfinite(float(value)) and float(value) > 0:
            return None, float(value)
    except ValueError:
        pass
    raise DataError(
        f"'ct:{argument}' is not a CT task; valid forms: {', '.join(CT_FORMS)} (ANGLES an integer >= 1, PHOTONS > 0)"
    )


def _rotation(angle: float) -> np.ndarray:
    return np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])


def _ellipse(x: np.ndarray, y: np.ndarray, centre: np.ndarray, axes: np.ndarray, angle: float) -> np.ndarray:
    """Whether each pixel centre (x, y) lies inside the ellipse of `axes` rotated by `angle` about `centre`."""
    u, v = _rotation(-angle) @ np.stack([x - centre[0], y - centre[1]]).reshape(2, -1)
    return ((u / axes[0]) ** 2 + (v / axes[1]) ** 2 <= 1.0).reshape(x.shape)


def phantom(resolution: int, rng: np.random.Generator) -> np.ndarray:
    """One random phantom, float64 (N, N) in [0, 1]; see the module docstring."""
    fine = resolution * SUPERSAMPLING
    coordinates = (np.arange(fine) + 0.5) / fine * 2.0 - 1.0  # sub-pixel centres in [-1, 1]
    y, x = np.meshgrid(coordinates, coordinates, indexing="ij")
    skull_axes = rng.uniform([0.62, 0.82], [0.72, 0.92])
    tilt = rng.uniform(-0.2, 0.2)
    brain_axes = skull_axes * rng.uniform(0.82, 0.88)
    brain = _ellipse(x, y, np.zeros(2), brain_axes, tilt)
    image = np.where(_ellipse(x, y, np.zeros(2), skull_axes, tilt), 1.0, 0.0)
    image[brain] = rng.uniform(0.1, 0.3)
    for _ in range(rng.integers(5, 11)):
        radius, direction = math.sqrt(rng.uniform()) * 0.7, rng.uniform(0, 2 * math.pi)
        centre = _rotation(tilt) @ (brain_axes * radius * np.array([math.cos(direction), math.sin(direction)]))
        inside = _ellipse(x, y, centre, rng.uniform(0.04, 0.25, 2), rng.uniform(0, math.pi)) & brain
        image[inside] += rng.uniform(-0.15, 0.35)
    image = np.clip(image, 0.0, 1.0)
    return image.reshape(resolution, SUPERSAMPLING, resolution, SUPERSAMPLING).mean(axis=(1, 3))


def reconstruct(
    image: np.ndarray, views: int, photons: float | None = None, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Filtered back-projection of `image` (N, N) scanned with `views` views, with Poisson noise on the counts
    when `photons` is given (drawn from `rng`); in the image's units, not clipped."""
    from skimage.transform import iradon, radon

    resolution = image.shape[0]
    angles = np.linspace(0.0, 180.0, views, endpoint=False)
    scale = ATTENUATION / resolution
    line_integrals = radon(image, theta=angles, circle=True) * scale
    if photons is not None:
        counts = rng.poisson(photons * np.exp(-line_integrals))
        line_integrals = -np.log(np.maximum(counts, 1) / photons)
    return iradon(line_integrals / scale, theta=angles, filter_name="ramp", circle=True, output_size=resolution)


class CtPhantoms:
    """Phantom `image` and its degraded reconstruction `source` (1 channel), `label` 0; see the module docstring."""

    def __init__(self, argument: str, split: str, resolution: int, channels: int):
        self.fields = ct_fields(resolution, channels)
        self._views, self._photons = parse_ct(argument)
        if split not in SPLIT_SIZES:
            raise DataError(f"source 'ct:{argument}' has splits {sorted(SPLIT_SIZES)}, not '{split}'")
        self._spec, self._split, self._resolution = f"ct:{argument}", split, resolution
        self.num_classes, self.class_names = 0, ()

    def __len__(self) -> int:
        return SPLIT_SIZES[self._split]

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        image = phantom(self._resolution, np.random.default_rng(stable_seed("ct", self._split, index)))
        noise = np.random.default_rng(stable_seed(self._spec, self._split, index))
        views = self._views or full_views(self._resolution)
        reconstruction = reconstruct(image, views, self._photons, noise)
        image, source = (fit_image(np.clip(a, 0.0, 1.0) * 255.0, self._resolution, 1) for a in (image, reconstruction))
        return {"image": image, "label": np.int32(0), "source": source}
