"""The model zoo. Importing this package registers every family."""

import importlib

from keras_cnn.models.registry import ModelEntry, build_model, get_model_entry, list_models, register_model

# Family modules, in the order `list_models()` shows them. Each registers its builders on import.
FAMILY_MODULES = ("course", "lenet", "alexnet", "vgg", "resnet", "googlenet", "inception_v2", "inception_v3")

for _module in FAMILY_MODULES:
    try:
        importlib.import_module(f"keras_cnn.models.{_module}")
    except ModuleNotFoundError as _err:  # pragma: no cover - only while a family is being written
        if _err.name != f"keras_cnn.models.{_module}":
            raise

__all__ = ["ModelEntry", "build_model", "get_model_entry", "list_models", "register_model"]
