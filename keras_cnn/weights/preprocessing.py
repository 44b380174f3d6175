"""Preprocessing that travels with the model: the pixel preprocessing its weights expect, prepended."""

from __future__ import annotations

import keras

from keras_cnn._validation import check_choice
from keras_cnn.layers.preprocess import MODES, Preprocess
from keras_cnn.models.identity import model_identity
from keras_cnn.models.specs import get_model_spec

__all__ = ["expected_preprocessing", "with_preprocessing"]


def with_preprocessing(model, mode=None, arch=None, *, name=None):
    """Prepend the network's pixel preprocessing, so the model takes raw 0..255 pixels.

    ImageNet weights expect keras.applications' ``preprocess_input`` ("tf" scaling to [-1, 1]
    for Inception, "caffe" BGR mean subtraction for ResNet/VGG). This wraps ``model`` as
    ``Input -> Preprocess(mode) -> model``, so the preprocessing is saved, exported and served
    with it.

    Args:
        model: a `keras.Model` taking preprocessed pixels.
        mode: "tf", "caffe", "torch" or "unit"; default: what the model expects, read from its
            keras_cnn identity (the preprocessing of the weights it was built with, else its
            network's).
        arch: registry name, for a model keras_cnn did not build (its spec's preprocessing).
        name: name of the new model; default ``"<model.name>_raw"``.

    Returns:
        A Functional `keras.Model` sharing ``model``'s layers and weights.

    Example:
        >>> m = with_preprocessing(ResNet50Custom(weights="imagenet"))  # "caffe", from the model
        >>> probs = m(raw_uint8_images.astype("float32"))
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    if mode is None:
        mode = expected_preprocessing(model, arch)
    check_choice("mode", mode, MODES)
    inputs = keras.Input(shape=tuple(model.input_shape[1:]), name="pixels")
    x = Preprocess(mode, name="preprocess")(inputs)
    outputs = model(x)
    return keras.Model(inputs, outputs, name=name or f"{model.name}_raw")


def expected_preprocessing(model, arch=None):
    """The pixel preprocessing ``model`` expects: from its identity, else ``arch``'s spec.

    Args:
        model: a `keras.Model`.
        arch: registry name; overrides nothing when the model has an identity that agrees, and
            is required for a model keras_cnn did not build.

    Raises:
        ValueError: the model has no keras_cnn identity and no ``arch`` was given.
    """
    identity = model_identity(model)
    if identity is not None and (arch is None or arch == identity.arch):
        return identity.preprocessing
    if arch is None:
        raise ValueError(
            f"`model` ({model.name!r}) was not built by keras_cnn, so which preprocessing it needs "
            f"cannot be told; pass mode= (one of {list(MODES)}) or arch=<registry name>."
        )
    return get_model_spec(arch).preprocessing
