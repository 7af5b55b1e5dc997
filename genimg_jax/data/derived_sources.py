"""Sources made from other sources: a degraded copy (`config.data.degradation`) and unpaired domains
(`config.data.unpaired_source`), each adding the field `source` to the examples of `config.data.source`.

- `DegradedSource`: every example of the base source plus the `source` (and `mask`) of a degradation of its
  `image` (see `degradations`). The degradation's randomness is seeded by (degradation spec, split, index) only,
  so example i of a split holds the same pair in every run, after every resume and on every host layout.
  `data.direction = "BtoA"` swaps the pair: the clean image becomes `source` and its degradation `image`, so that
  a model learns to make the degradation (photo -> sketch); it needs a degradation of the image's own shape and
  without a mask.
- `UnpairedSource` (CycleGAN's two domains): example i holds the fields of example i mod n of the base source
  (length n) and, as `source`, the `image` of example P[i mod m] of the second source (length m), where P is
  the fixed pseudo-random permutation of range(m) that sorts its indices by `stable_seed("unpaired", j)`. The
  length is max(n, m), so every epoch visits every image of both domains (those of the smaller one repeatedly),
  and the partners are the same in every run and on every host layout. CycleGAN's losses treat the domains
  separately, so the fixed partners only decide which images share a batch. Both sources share the resolution,
  channels and split.
"""

import numpy as np

from genimg_jax.data.degradations import Degradation, parse_degradation
from genimg_jax.data.errors import DataError
from genimg_jax.data.sources import Field, ImageSource, stable_seed


def _check_no_source(base_fields: dict[str, Field], what: str) -> None:
    taken = sorted({"source", "mask"} & base_fields.keys())
    if taken:
        raise DataError(f"{what} adds the field 'source', but the data source already has {taken}")


def degradation_for(base_fields: dict[str, Field], spec: str) -> Degradation:
    """The degradation `spec` of the images of a source with `base_fields`; DataError if it does not apply."""
    _check_no_source(base_fields, f"degradation '{spec}'")
    return parse_degradation(spec, base_fields["image"].shape)


def degraded_fields(base_fields: dict[str, Field], degradation: Degradation, direction: str) -> dict[str, Field]:
    """The base fields plus `source` (and `mask`, (H, W, 1)) of `degradation`; with `direction` "BtoA" the image
    is the `source` and the degradation the `image` (DataError where the swap does not fit the fields)."""
    uint8 = np.dtype(np.uint8)
    image = base_fields["image"]
    if direction == "BtoA":
        if degradation.has_mask or degradation.source_shape != image.shape:
            raise DataError(
                f"direction BtoA makes the degradation '{degradation.spec}' the target, so it must keep the image's "
                f"shape {image.shape} and have no mask, not shape {degradation.source_shape}"
                + (" and a mask" if degradation.has_mask else "")
            )
        return {**base_fields, "source": image}
    fields = {**base_fields, "source": Field(degradation.source_shape, uint8)}
    if degradation.has_mask:
        fields["mask"] = Field((*base_fields["image"].shape[:2], 1), uint8)
    return fields


def unpaired_fields(base_fields: dict[str, Field], other_fields: dict[str, Field]) -> dict[str, Field]:
    """The base fields plus `source`, the second source's `image`."""
    _check_no_source(base_fields, "unpaired_source")
    return {**base_fields, "source": other_fields["image"]}


class DegradedSource:
    """`base` with each image's degradation `spec` added; see the module docstring."""

    def __init__(self, base: ImageSource, spec: str, split: str, direction: str = "AtoB"):
        self._degradation = degradation_for(base.fields, spec)
        self.fields = degraded_fields(base.fields, self._degradation, direction)
        self._base, self._spec, self._split, self._swap = base, spec, split, direction == "BtoA"
        self.num_classes, self.class_names = base.num_classes, base.class_names

    def __len__(self) -> int:
        return len(self._base)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        example = self._base[index]
        rng = np.random.default_rng(stable_seed("degradation", self._spec, self._split, index))
        degraded = self._degradation.apply(example["image"], rng)
        if self._swap:
            return {**example, "source": example["image"], "image": degraded["source"]}
        return {**example, **degraded}


class UnpairedSource:
    """`base` with the images of `other` as `source`, partnered pseudo-randomly; see the module docstring."""

    def __init__(self, base: ImageSource, other: ImageSource):
        self.fields = unpaired_fields(base.fields, other.fields)
        if not len(base) or not len(other):
            raise DataError(f"unpaired domains need examples in both sources, not {len(base)} and {len(other)}")
        self._base, self._other = base, other
        self._partners = np.argsort([stable_seed("unpaired", j) for j in range(len(other))], kind="stable")
        self.num_classes, self.class_names = base.num_classes, base.class_names

    def __len__(self) -> int:
        return max(len(self._base), len(self._other))

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        partner = int(self._partners[index % len(self._other)])
        return {**self._base[index % len(self._base)], "source": self._other[partner]["image"]}
