"""Input pipelines: image sources -> shuffled per-host batches of named fields -> globally sharded arrays.

source = make_source("digits", split="train", resolution=32, channels=1)
stream = make_train_stream(source, global_batch_size=64, seed=0)
batch = make_global_batch(next(stream), sharding)   # uint8 images; to_unit_range inside the step
"""

from genimg_jax.data.degradations import DEGRADATION_FORMS
from genimg_jax.data.errors import DataError
from genimg_jax.data.images import from_unit_range, quantized, to_unit_range
from genimg_jax.data.pipeline import IS_EXAMPLE, TrainStream, cycled_batches, iterate_once, load_all, make_train_stream
from genimg_jax.data.sharding import abstract_global_batch, host_rows, make_global_batch, shard_whole_batch
from genimg_jax.data.sources import (
    SOURCE_KINDS,
    SPEC_FORMS,
    Field,
    ImageSource,
    SourceKind,
    SourceOptions,
    caption_fields,
    example_batch,
    fields_from_config,
    make_source,
    source_from_config,
    vocabulary_for,
)
from genimg_jax.data.text.vocabulary import Vocabulary

__all__ = [
    "DEGRADATION_FORMS",
    "IS_EXAMPLE",
    "SOURCE_KINDS",
    "SPEC_FORMS",
    "DataError",
    "Field",
    "ImageSource",
    "SourceKind",
    "SourceOptions",
    "TrainStream",
    "Vocabulary",
    "abstract_global_batch",
    "caption_fields",
    "cycled_batches",
    "example_batch",
    "fields_from_config",
    "from_unit_range",
    "host_rows",
    "iterate_once",
    "load_all",
    "make_global_batch",
    "make_source",
    "make_train_stream",
    "quantized",
    "shard_whole_batch",
    "source_from_config",
    "to_unit_range",
    "vocabulary_for",
]
