"""keras_cnn: the classic convolutional networks for Keras 3.

Submodules: ``layers``, ``models``, ``applications``, ``analysis``, ``data``, ``training``,
``transfer``, ``tuning``, ``export``, ``weights`` (imported on first use).
"""

import importlib
import os

# TensorFlow's C++ start-up chatter (CPU feature notes) hides our output; keep a user's setting.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from keras_cnn import layers, models  # noqa: E402  (registers the custom layers and the zoo)
from keras_cnn.models import build_model, list_models  # noqa: E402

_LAZY = ("analysis", "applications", "data", "export", "training", "transfer", "tuning", "weights")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"keras_cnn.{name}")
    raise AttributeError(f"module 'keras_cnn' has no attribute {name!r}")


__all__ = ["__version__", "build_model", "layers", "list_models", "models", *_LAZY]
