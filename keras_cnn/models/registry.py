"""The model registry: names -> specs -> builders.

The data lives in `keras_cnn.models.specs` (one :class:`ModelSpec` per network, one
:class:`WeightsSpec` per pretrained source); this module adds building. ``build_model(name,
**kwargs)`` forwards to the builder, whose keyword arguments follow keras.applications
(``include_top``, ``weights``, ``input_shape``, ``classes``, ...).
"""

from __future__ import annotations

from keras_cnn.models.specs import (
    PREPROCESSING_MODES,
    ModelSpec,
    add_model_spec,
    get_model_spec,
    get_weights_spec,
    list_models,
    list_weights,
)

__all__ = [
    "PREPROCESSING_MODES",
    "ModelSpec",
    "build_model",
    "get_model_spec",
    "get_weights_spec",
    "list_models",
    "list_weights",
    "register_model",
]

def register_model(name, builder, **fields):
    """Register a network built by ``builder`` (a function) under ``name``.

    For networks outside this package; ours are declared in `keras_cnn.models.specs`.
    ``fields`` are :class:`ModelSpec` fields (``family``, ``default_size``, ``min_size``, ...).
    Decorate the builder with `keras_cnn.models.identity.registered_builder` so that the
    models it builds know their name.

    Raises:
        ValueError: duplicate or empty name, or an invalid field.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
    if not callable(builder):
        raise ValueError(f"`builder` must be a function. Received: builder={builder!r}")
    path = f"{builder.__module__}:{builder.__qualname__}"
    return add_model_spec(ModelSpec(name=name, builder_path=path, **fields))


def build_model(name, **kwargs):
    """Build the registered network ``name`` with keras.applications-style keyword arguments.

    Example:
        >>> model = build_model("resnet18", include_top=False, input_shape=(64, 64, 3))
    """
    return get_model_spec(name).builder(**kwargs)
