"""Models that know what they are: which registry network, built how, from which weights.

Every builder of the zoo is decorated with :func:`registered_builder`; the model it returns
carries a :class:`keras_cnn.layers.ModelIdentity` layer (right after its input) whose config
records the registry name, the build arguments, the pretrained weights and the pixel
preprocessing. :func:`model_identity` reads it back -- also from a model loaded from ``.keras``,
cloned, cut from the graph, or nesting one keras_cnn network (a transfer model, a training
wrapper, a model with preprocessing prepended).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json

import keras

from keras_cnn.layers.identity import IDENTITY_LAYER_NAME, ModelIdentity
from keras_cnn.models.specs import get_model_spec

__all__ = ["NetworkIdentity", "model_identity", "registered_builder", "require_identity"]

# Arguments that describe the call, not the network.
_NOT_RECORDED = ("input_tensor", "weights")


@dataclasses.dataclass(frozen=True)
class NetworkIdentity:
    """What a keras_cnn model is.

    Attributes:
        arch: registry name.
        build_args: builder keyword arguments (``input_shape`` is the built one).
        weights: pretrained weights name, ``"file:<name>"`` or None.
        preprocessing: pixel preprocessing the model expects.
    """

    arch: str
    build_args: dict
    weights: str | None
    preprocessing: str

    @property
    def spec(self):
        """The network's `keras_cnn.models.ModelSpec`."""
        return get_model_spec(self.arch)


def _identity_layers(model, depth=0):
    """ModelIdentity layers of ``model``: its own first, then those of nested models."""
    own = [layer for layer in model.layers if isinstance(layer, ModelIdentity)]
    if own or depth > 8:
        return own
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(_identity_layers(layer, depth + 1))
    return found


def model_identity(model):
    """The :class:`NetworkIdentity` of a model built by keras_cnn, or None.

    Looks at ``model``'s own layers first, then into nested models; a model holding two
    different keras_cnn networks side by side has no single identity (None).
    """
    if not isinstance(model, keras.Model):
        return None
    layers = [layer for layer in _identity_layers(model) if layer.arch]
    kinds = {(layer.arch, layer.preprocessing) for layer in layers}
    if len(kinds) != 1:
        return None
    layer = layers[0]
    return NetworkIdentity(
        arch=layer.arch, build_args=dict(layer.build_args), weights=layer.weights_source,
        preprocessing=layer.preprocessing or get_model_spec(layer.arch).preprocessing,
    )


def require_identity(model, arch=None, *, argument="model"):
    """``arch``'s registry name if given, else ``model``'s identity's; ValueError if neither.

    Returns:
        ``(arch, identity_or_None)``.
    """
    identity = model_identity(model)
    if arch is not None:
        get_model_spec(arch)
        return arch, identity
    if identity is None:
        name = getattr(model, "name", type(model).__name__)
        raise ValueError(
            f"`{argument}` ({name!r}) was not built by keras_cnn (it has no keras_cnn identity), so "
            "which network it is cannot be told; pass arch=<registry name> "
            "(see keras_cnn.models.list_models())."
        )
    return identity.arch, identity


def _jsonable(value):
    if isinstance(value, tuple):
        value = list(value)
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        try:
            return keras.saving.serialize_keras_object(value)
        except Exception:  # noqa: BLE001 - a build argument Keras cannot serialise either
            return repr(value)


def stamp(model, arch, build_args):
    """Record ``arch`` and ``build_args`` in ``model``'s ModelIdentity layer.

    (The builder's ``finish_model`` has already recorded the weights and their preprocessing.)
    """
    try:
        layer = model.get_layer(IDENTITY_LAYER_NAME)
    except ValueError:
        return model  # a model built around a user's input_tensor graph without our input
    args = {k: _jsonable(v) for k, v in build_args.items() if k not in _NOT_RECORDED}
    args["input_shape"] = list(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    layer.arch = arch
    layer.build_args = args
    if layer.preprocessing is None:
        layer.preprocessing = get_model_spec(arch).preprocessing
    return model


def registered_builder(name):
    """Decorator: the models built by the decorated builder record ``name`` and their arguments."""
    get_model_spec(name)

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def build(*args, **kwargs):
            model = fn(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = {}
            for key, value in bound.arguments.items():
                if signature.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                    arguments.update(value)
                else:
                    arguments[key] = value
            return stamp(model, name, arguments)

        build.registry_name = name
        return build

    return decorate
