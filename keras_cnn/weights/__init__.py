"""Pretrained weights: fetching, converting, porting and loading them into keras_cnn's networks.

What the weights *are* is data, beside the networks they fit: one `WeightsSpec` record type for
every source (`keras_cnn.models.specs`: files, input size, preprocessing, crop, interpolation,
license, accuracy, builder arguments), read by the builders (``weights="imagenet"``), by
``keras-cnn list`` and by the README's table without importing Keras. This package is what acts
on them:

* `keras_cnn.weights.keras_applications`: keras.applications' ``.h5`` files, fetched as keras
  fetches them, loaded into the keras twin and ported;
* `keras_cnn.weights.timm`: timm's safetensors files from the Hugging Face Hub, converted tensor by
  tensor with key maps generated from the architecture tables;
* `keras_cnn.weights.port`: :func:`port_weights`, leaf layer by leaf layer, checked before writing;
* `keras_cnn.weights.files`: which kind a file is, what it holds, Keras files loaded all or nothing;
* `keras_cnn.weights.load`: :func:`load_weights`, the one entry every builder goes through;
* `keras_cnn.weights.preprocessing`: :func:`with_preprocessing`, the pixel preprocessing prepended.

The networks (`keras_cnn.models`) sit below this package and never import it: importing it
installs :func:`keras_cnn.weights.load.load_into` as the loader the builders call
(`keras_cnn.models._common.install_weights_loader`), and `keras_cnn._registration` imports it as
soon as Keras is loaded, so it is in place before any builder can run.

Example:
    >>> from keras_cnn.applications import ResNet50Custom
    >>> from keras_cnn.weights import get_weights_spec, with_preprocessing
    >>> spec = get_weights_spec("resnet50.keras_in1k")  # the typed form of weights="imagenet"
    >>> model = with_preprocessing(ResNet50Custom(weights=spec))  # takes raw 0..255 pixels
"""

from keras_cnn.models import _common
from keras_cnn.models.specs import (
    WEIGHTS_SPECS,
    WeightsFileNotFoundError,
    WeightsFileSpec,
    WeightsSpec,
    get_weights_spec,
    list_weights,
    weights_name,
)
from keras_cnn.weights.files import WEIGHTS_FORMATS, is_safetensors_file, weights_file_format
from keras_cnn.weights.keras_applications import (
    DOWNLOAD_TIMEOUT,
    IMAGENET_TWINS,
    ImageNetWeightsUnavailableError,
    WeightsFile,
    build_twin,
    get_imagenet_weights_file,
    imagenet_cache_path,
    imagenet_weights_file,
    load_imagenet_weights,
)
from keras_cnn.weights.load import RECORD_LOADERS, load_into, load_weights
from keras_cnn.weights.port import MATCH_MODES, port_weights, weighted_leaves
from keras_cnn.weights.preprocessing import expected_preprocessing, with_preprocessing
from keras_cnn.weights.timm import (
    TIMM_NETWORKS,
    TimmWeightsUnavailableError,
    describe_timm_file,
    expected_timm_shapes,
    get_timm_file,
    load_timm_weights,
    timm_key_map,
    timm_record,
    timm_records,
)

__all__ = [
    "DOWNLOAD_TIMEOUT",
    "IMAGENET_TWINS",
    "MATCH_MODES",
    "TIMM_NETWORKS",
    "WEIGHTS_FORMATS",
    "WEIGHTS_SPECS",
    "ImageNetWeightsUnavailableError",
    "TimmWeightsUnavailableError",
    "WeightsFile",
    "WeightsFileNotFoundError",
    "WeightsFileSpec",
    "WeightsSpec",
    "build_twin",
    "describe_timm_file",
    "expected_preprocessing",
    "expected_timm_shapes",
    "get_imagenet_weights_file",
    "get_timm_file",
    "get_weights_spec",
    "imagenet_cache_path",
    "imagenet_weights_file",
    "is_safetensors_file",
    "list_weights",
    "load_imagenet_weights",
    "load_timm_weights",
    "load_weights",
    "port_weights",
    "register_weights_loader",
    "timm_key_map",
    "timm_record",
    "timm_records",
    "weighted_leaves",
    "weights_file_format",
    "weights_name",
    "with_preprocessing",
]


def register_weights_loader(source, loader):
    """Register ``loader(model, record, *, include_top)`` for `WeightsSpec` records of ``source``."""
    if not callable(loader):
        raise ValueError(f"`loader` must be a function. Received: loader={loader!r}")
    RECORD_LOADERS[source] = loader


_common.install_weights_loader(load_into)
