"""keras_cnn: the classic convolutional networks for Keras 3."""

__version__ = "0.1.0"

from keras_cnn import layers, models  # noqa: E402
from keras_cnn.models import build_model, list_models  # noqa: E402

__all__ = ["__version__", "build_model", "layers", "list_models", "models"]
