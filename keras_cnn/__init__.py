"""keras_cnn: the classic convolutional networks for Keras 3.

Submodules: ``layers``, ``models``, ``applications``, ``analysis``, ``data``, ``training``,
``transfer``, ``tuning``, ``export``, ``weights`` (imported on first use).

``import keras_cnn`` is cheap: it does not import Keras or TensorFlow, so the ``keras-cnn`` command
line answers ``--help`` at once. The package's serializable classes (layers, models, the learning
rate schedule) are still registered with Keras whenever Keras is in use: now if Keras is already
imported, else as soon as it is (see `keras_cnn._registration`). So after ``import keras_cnn``,
``keras.saving.load_model("runs/demo/model.keras")`` works; `load_model` does the same in one call.

The package tells the user what it does through the ``keras_cnn`` logger (`logging`); it adds only
a ``NullHandler``, so an application's own logging configuration decides what is shown. The
``keras-cnn`` command line attaches a handler (``--quiet`` hides all but warnings and errors).
"""

import importlib
import logging
import os

# TensorFlow's C++ start-up chatter (CPU feature notes) hides our output; keep a user's setting.
# `keras_cnn.cli` reads USER_TF_CPP_MIN_LOG_LEVEL to tell a user's setting from ours.
USER_TF_CPP_MIN_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from keras_cnn import _registration  # noqa: E402  (registers our classes whenever Keras is loaded)

_registration.install()
logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = (
    "analysis", "applications", "data", "export", "layers", "models", "training", "transfer", "tuning",
    "weights",
)
_FROM_MODELS = (
    "build_model", "get_model_spec", "get_weights_spec", "list_models", "list_weights", "model_identity",
)


def load_model(filepath, *, compile=True, safe_mode=True, custom_objects=None):
    """Load a ``.keras`` model written by keras_cnn (or any Keras model using its layers).

    The same as ``keras.saving.load_model`` with every keras_cnn class registered first.

    Args:
        filepath: a ``.keras`` file, or a training run directory holding ``model.keras``.
        compile: restore the optimizer and loss too (default True).
        safe_mode: Keras' ``safe_mode`` (refuse lambda deserialization). Default True.
        custom_objects: extra custom objects, as for Keras.

    Returns:
        The `keras.Model`.

    Raises:
        FileNotFoundError: ``filepath`` (or ``filepath/model.keras``) does not exist.
        ValueError: the file is not a complete ``.keras`` archive, or Keras cannot load it.

    Example:
        >>> import keras_cnn
        >>> model = keras_cnn.load_model("runs/demo")  # doctest: +SKIP
    """
    path = os.fspath(filepath)
    if os.path.isdir(path):
        path = os.path.join(path, "model.keras")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"`filepath` must be a .keras file or a run directory holding model.keras. "
            f"Received: filepath={os.fspath(filepath)!r} ({path} does not exist)"
        )
    _registration.register_now()
    from keras_cnn._io import load_keras_model

    return load_keras_model(path, arg="filepath", compile=compile, safe_mode=safe_mode, custom_objects=custom_objects)


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"keras_cnn.{name}")
    if name in _FROM_MODELS:
        return getattr(importlib.import_module("keras_cnn.models"), name)
    raise AttributeError(f"module 'keras_cnn' has no attribute {name!r}")


__all__ = ["__version__", "load_model", *_FROM_MODELS, *_LAZY]
