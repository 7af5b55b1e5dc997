"""genimg_jax: one JAX codebase for training and evaluating image-generation models."""

import os

# TensorFlow is loaded only to write TensorBoard events and by tensorflow-datasets; it computes nothing here,
# so keep its start-up banners (and its oneDNN notice) out of the run's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
