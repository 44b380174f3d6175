"""Datasets and data augmentation.

* `load_data` - the embedded digits, any tensorflow-datasets image-classification set, or a
  folder of images, as batched ``tf.data`` pipelines of raw float32 pixels in [0, 255]
  (`DataBundle`).
* `keras_cnn.data.augment` - the augmentation of the lectures (Ng, CNN course, week 2) as one spec
  string -> one Keras model that runs inside the compiled training step on the accelerator.
"""

from keras_cnn.data import augment
from keras_cnn.data.augment import (
    build_augmenter,
    compute_pca_stats,
    cpu_augment,
    describe_placement,
    parse_augment_spec,
)
from keras_cnn.data.loaders import DataBundle, DataOptions, load_data

__all__ = [
    "DataBundle",
    "DataOptions",
    "augment",
    "build_augmenter",
    "compute_pca_stats",
    "cpu_augment",
    "describe_placement",
    "load_data",
    "parse_augment_spec",
]
