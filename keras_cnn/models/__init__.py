"""The model zoo. Importing this package registers every family."""

from keras_cnn.models.registry import ModelEntry, build_model, get_model_entry, list_models, register_model

__all__ = ["ModelEntry", "build_model", "get_model_entry", "list_models", "register_model"]
