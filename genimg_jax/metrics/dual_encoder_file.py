"""A trained dual encoder on disk: one msgpack file with its weights, its `DualEncoderSpec` and the vocabulary its
token ids mean, so that whoever reloads it (R-precision, a text-to-image run) encodes captions as it was trained.
Written by `python -m genimg_jax.tools.train_dual_encoder`.
"""

import dataclasses
import json
import pathlib
from typing import NamedTuple

import flax
import jax
import jax.numpy as jnp

from genimg_jax.data.text.vocabulary import Vocabulary
from genimg_jax.models.dual_encoder import DualEncoderSpec

FORMAT = "genimg_jax dual encoder v1"


class TrainedDualEncoder(NamedTuple):
    spec: DualEncoderSpec
    vocabulary: Vocabulary
    params: dict
    data: dict  # what it was trained on: the `config.data` entries the tool used, and its steps


def save(path: pathlib.Path, encoder: TrainedDualEncoder) -> None:
    header = {"format": FORMAT, "spec": dataclasses.asdict(encoder.spec), "data": encoder.data}
    content = {"header": json.dumps(header), "vocabulary": encoder.vocabulary.to_json()}
    content["params"] = flax.serialization.to_state_dict(jax.device_get(encoder.params))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(flax.serialization.msgpack_serialize(content))
    temporary.replace(path)


def load(path: str | pathlib.Path, what: str = "dual encoder") -> TrainedDualEncoder:
    """The encoder in `path`; FileNotFoundError / ValueError of one line naming `what` (a config key) otherwise."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{what}: dual-encoder weights '{path}' are missing; train them with "
            "`python -m genimg_jax.tools.train_dual_encoder --data=SOURCE --out=PATH`"
        )
    try:
        content = flax.serialization.msgpack_restore(path.read_bytes())
        header = json.loads(content["header"])
        if header.get("format") != FORMAT:
            raise ValueError(f"format {header.get('format')!r}, not {FORMAT!r}")
        spec = header["spec"]
        spec = DualEncoderSpec(**{**spec, "widths": tuple(spec["widths"])})
        vocabulary = Vocabulary.from_json(content["vocabulary"])
    except Exception as error:  # any corruption: one line naming the file
        raise ValueError(f"{what}: '{path}' is not a dual-encoder file: {type(error).__name__}: {error}") from None
    params = jax.tree.map(jnp.asarray, content["params"])
    return TrainedDualEncoder(spec, vocabulary, params, header["data"])
