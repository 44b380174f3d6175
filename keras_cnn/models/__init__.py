"""The model zoo: specs (data), the registry, identity, and one module per family.

Importing this package is cheap: the specs are plain data and each family module (which
imports Keras) is imported when one of its networks is first built.
"""

import importlib

from keras_cnn.models.registry import (
    ModelSpec,
    build_model,
    get_model_spec,
    get_weights_spec,
    list_models,
    list_weights,
    register_model,
)
from keras_cnn.models.specs import WeightsSpec

# Family modules, in the order of the zoo listing.
FAMILY_MODULES = ("course", "lenet", "alexnet", "vgg", "resnet", "googlenet", "inception_v2", "inception_v3")

_LAZY = {
    "NetworkIdentity": "keras_cnn.models.identity",
    "model_identity": "keras_cnn.models.identity",
    "registered_builder": "keras_cnn.models.identity",
    "require_identity": "keras_cnn.models.identity",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in FAMILY_MODULES:
        return importlib.import_module(f"keras_cnn.models.{name}")
    raise AttributeError(f"module 'keras_cnn.models' has no attribute {name!r}")


__all__ = [
    "ModelSpec",
    "NetworkIdentity",
    "WeightsSpec",
    "build_model",
    "get_model_spec",
    "get_weights_spec",
    "list_models",
    "list_weights",
    "model_identity",
    "register_model",
    "registered_builder",
    "require_identity",
]
