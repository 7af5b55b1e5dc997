"""Input pipelines: image sources -> shuffled per-host batches -> globally sharded arrays.

source = make_source("digits", split="train", resolution=32, channels=1)
stream = make_train_stream(source, global_batch_size=64, seed=0)
batch = make_global_batch(next(stream), sharding)   # uint8 images; to_unit_range inside the step
"""

from genimg_jax.data.errors import DataError
from genimg_jax.data.images import from_unit_range, to_unit_range
from genimg_jax.data.pipeline import TrainStream, iterate_once, make_train_stream
from genimg_jax.data.sharding import make_global_batch
from genimg_jax.data.sources import SPEC_FORMS, ImageSource, make_source, source_from_config

__all__ = [
    "SPEC_FORMS",
    "DataError",
    "ImageSource",
    "TrainStream",
    "from_unit_range",
    "iterate_once",
    "make_global_batch",
    "make_source",
    "make_train_stream",
    "source_from_config",
    "to_unit_range",
]
