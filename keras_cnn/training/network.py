"""The trained network: raw pixels -> Preprocess -> registry model, and its inference form.

GoogLeNet (Szegedy et al., 2015, section 5) and Inception-v3 (Szegedy et al., 2016, section 4)
attach auxiliary classifiers to intermediate layers during training; their losses are added
with a small weight and the heads are discarded at inference. `strip_aux` does the discarding.
"""

from __future__ import annotations

import inspect

import keras

from keras_cnn.layers.preprocess import Preprocess
from keras_cnn.models.registry import build_model, get_model_spec

MAIN_OUTPUT = "predictions"


def strip_aux(model):
    """The single-output inference model of a model whose output is a dict with aux heads.

    The returned model shares every layer (and so every weight) with ``model``; it outputs
    ``model.output["predictions"]`` only. A model with a single (non-dict) output is returned
    unchanged.

    Reference: Szegedy et al., 2015, "Going Deeper with Convolutions", section 5 (the
    auxiliary classifiers are "discarded at inference time").

    Args:
        model: a `keras.Model` returning ``{"predictions": ..., "aux1": ..., ...}``.

    Returns:
        A `keras.Model` with one output, named like ``model``.

    Raises:
        ValueError: the dict output has no "predictions" key.

    Example:
        >>> net = build_model("googlenet", aux_logits=True, input_shape=(64, 64, 3), ...)
        >>> infer = strip_aux(net)   # infer(x) is net(x)["predictions"]
    """
    from keras_cnn.export.saved_model import single_output_model  # the one implementation

    return single_output_model(model)


def output_names(model):
    """The output keys of a dict-output model, or None for a single output."""
    try:
        output = model.output
    except (AttributeError, ValueError):
        return None
    return sorted(output) if isinstance(output, dict) else None


def _accepts(builder, name):
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


_RESERVED = ("input_tensor", "input_shape", "classes", "include_top", "aux_logits")


def check_model_kwargs(name, model_kwargs):
    """Check the extra builder keywords of model ``name`` against its builder's signature.

    Raises:
        ValueError: ``model_kwargs`` is not a dict, sets a keyword that training sets itself, or
            names a keyword the builder does not take (the accepted ones are listed).
    """
    if model_kwargs is None:
        return {}
    if not isinstance(model_kwargs, dict):
        raise ValueError(f"`model_kwargs` must be a dict. Received: model_kwargs={model_kwargs!r}")
    for reserved in _RESERVED:
        if reserved in model_kwargs:
            raise ValueError(
                f"`model_kwargs` may not set {reserved!r}; train() sets it. Received: model_kwargs={model_kwargs!r}"
            )
    builder = get_model_spec(name).builder
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return dict(model_kwargs)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(model_kwargs)
    accepted = sorted(k for k in params if k not in (*_RESERVED, "weights", "name", "pooling"))
    unknown = sorted(k for k in model_kwargs if k not in params)
    if unknown:
        raise ValueError(
            f"`model_kwargs` has {', '.join(map(repr, unknown))}, which model {name!r} does not take; "
            f"it accepts {accepted}. Received: model_kwargs={model_kwargs!r}"
        )
    return dict(model_kwargs)


def build_network(name, *, image_shape, classes, aux_logits=False, dropout=None, model_kwargs=None):
    """Registry model ``name`` behind its ``Preprocess`` layer, so that it takes raw pixels.

    The model is built with ``input_tensor=`` the output of ``Preprocess(entry.preprocessing)``
    (keras.applications style), so its layers are at the top level (freezing by name and
    feature taps keep working) and its input is the raw 0..255 image.

    Args:
        name: registered model name.
        image_shape: ``(H, W, C)`` of the raw input.
        classes: number of classes.
        aux_logits: build the auxiliary heads (dict output).
        dropout: the builder's ``dropout`` (None: its default; ignored if it has none).
        model_kwargs: further builder keywords (``width_multiplier``, ``stem``, ...).

    Returns:
        A `keras.Model` from raw pixels to class probabilities (or the dict with aux heads).
    """
    entry = get_model_spec(name)
    kwargs = check_model_kwargs(name, model_kwargs)
    if dropout is not None and "dropout" not in kwargs and _accepts(entry.builder, "dropout"):
        kwargs["dropout"] = dropout
    if aux_logits:
        kwargs["aux_logits"] = True
    kwargs.setdefault("weights", None)
    inputs = keras.Input(shape=tuple(image_shape), name="pixels")
    x = Preprocess(entry.preprocessing, name="preprocess")(inputs)
    try:
        base = build_model(name, include_top=True, input_tensor=x, classes=classes, **kwargs)
    except (TypeError, ValueError) as err:
        if not model_kwargs:
            raise
        # A value of the wrong type or range reaches the builder: name the argument it came from.
        raise ValueError(
            f"`model_kwargs` could not build model {name!r}: {type(err).__name__}: {err}. "
            f"Received: model_kwargs={model_kwargs!r}"
        ) from err
    if len(base.inputs) == 1 and base.inputs[0] is inputs:
        # Same graph and layers; the input structure becomes one tensor (get_source_inputs
        # gives a list, which makes Keras warn when the model is called on a plain tensor).
        return keras.Model(inputs, base.output, name=base.name)
    # The builder did not take the tensor as its input: nest it instead.
    base = build_model(name, include_top=True, input_shape=tuple(image_shape), classes=classes, **kwargs)
    return keras.Model(inputs, base(x), name=base.name)


def wrap_for_training(network, *, augmenter=None, float32_outputs=False):
    """The training model: optional augmenter first, optional float32 casts last.

    The augmenter runs inside the compiled train step (on the accelerator) and is the
    identity at inference; the float32 casts keep the loss numerically safe under mixed
    precision. Returns ``network`` itself when neither is asked for; otherwise a model that
    shares ``network``'s weights.
    """
    if augmenter is None and not float32_outputs:
        return network
    inputs = keras.Input(shape=network.input_shape[1:], name="pixels")
    x = augmenter(inputs) if augmenter is not None else inputs
    outputs = network(x)
    if float32_outputs:
        cast = lambda key, t: keras.layers.Activation("linear", dtype="float32", name=f"{key}_float32")(t)  # noqa: E731
        if isinstance(outputs, dict):
            outputs = {key: cast(key, t) for key, t in outputs.items()}
        else:
            outputs = cast(MAIN_OUTPUT, outputs)
    return keras.Model(inputs, outputs, name=f"{network.name}_train")
