"""keras.applications-style facade.

Drop-in where you used keras.applications::

    from keras_cnn import applications
    model = applications.InceptionV3Custom(include_top=False, weights=None, input_shape=(299, 299, 3))

"Custom" marks a layer-for-layer twin of a keras.applications model (same parameters, BN
settings and stride placement, so its ImageNet weights port). Every function takes
``include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
classes=1000, classifier_activation="softmax", name=...`` with keras' validation rules, plus
``dropout`` and, where the paper has side heads, ``aux_logits``.

Feature taps: :func:`feature_extractor` returns a model whose output is a dict
``{stage: feature map}`` for any input size.
"""

from __future__ import annotations

import keras

from keras_cnn.models._common import with_weights_build_args
from keras_cnn.models.alexnet import AlexNet
from keras_cnn.models.course import CourseConvNet
from keras_cnn.models.googlenet import GoogLeNet
from keras_cnn.models.inception_v2 import InceptionV2
from keras_cnn.models.inception_v3 import InceptionV3Custom
from keras_cnn.models.lenet import LeNet5
from keras_cnn.models.identity import require_identity
from keras_cnn.models.registry import get_model_spec, list_models
from keras_cnn.models.resnet import (
    Plain34,
    ResNet18,
    ResNet34,
    ResNet50Custom,
    ResNet101Custom,
    ResNet152Custom,
)
from keras_cnn.models.vgg import VGG16Custom, VGG19Custom

__all__ = [
    "AlexNet",
    "CourseConvNet",
    "GoogLeNet",
    "InceptionV2",
    "InceptionV3Custom",
    "LeNet5",
    "Plain34",
    "ResNet18",
    "ResNet34",
    "ResNet50Custom",
    "ResNet101Custom",
    "ResNet152Custom",
    "VGG16Custom",
    "VGG19Custom",
    "feature_extractor",
    "stage_names",
]


def stage_names(name):
    """The feature-tap stages of registry model ``name``, shallow to deep."""
    return list(get_model_spec(name).stages)


def feature_extractor(model, stages=None, **build_kwargs):
    """A model returning every stage's feature map as a dict ``{stage: tensor}``.

    Args:
        model: a registry name (e.g. "resnet50"; built with ``include_top=False`` and, unless
            ``input_shape`` is given, a variable input size) or a `keras.Model` built by this
            package (its registry name is read from the model's identity; for a model keras_cnn
            did not build, pass ``arch=<registry name>`` or ``stages={...}``).
        stages: stage names to return (default: all), or a dict ``{key: layer_name}`` for
            arbitrary layers.
        **build_kwargs: passed to the builder (``weights``, ``input_shape``, ``width_multiplier``...),
            with the builder arguments named weights need added, and a `UserWarning` saying so
            (`keras_cnn.models.specs.merge_weights_build_args`).

    Returns:
        A Functional `keras.Model` sharing weights with the base model.

    Example:
        >>> fx = feature_extractor("resnet18", input_shape=(None, None, 3))
        >>> feats = fx(np.zeros((1, 64, 64, 3)))  # {"stem": ..., "conv2": ..., ..., "conv5": ...}
    """
    arch = build_kwargs.pop("arch", None)
    if isinstance(model, str):
        arch = model
        entry = get_model_spec(model)
        build_kwargs.setdefault("input_shape", (None, None, entry.channels))
        weights = build_kwargs.pop("weights", None)
        build_kwargs = with_weights_build_args(arch, weights, build_kwargs)  # e.g. keras_layout=False
        model = entry.builder(include_top=False, weights=weights, **build_kwargs)
    elif not isinstance(model, keras.Model):
        raise ValueError(
            "`model` must be a registry name or a keras.Model. "
            f"Received: model={model!r}; known names: {list_models()}"
        )
    elif build_kwargs:
        raise ValueError(f"Build arguments apply only to a registry name. Received: {sorted(build_kwargs)}")
    layer_names = {layer.name for layer in model.layers}
    if isinstance(stages, dict):
        taps = dict(stages)
    else:
        arch, _ = require_identity(model, arch)
        all_taps = dict(get_model_spec(arch).stages)
        if stages is None:
            taps = all_taps
        else:
            unknown = [s for s in stages if s not in all_taps]
            if unknown:
                raise ValueError(
                    f"Unknown `stages` for {arch}: {unknown}. Accepted: {list(all_taps)}. Received: stages={stages!r}"
                )
            taps = {s: all_taps[s] for s in stages}
    missing = {k: v for k, v in taps.items() if v not in layer_names}
    if missing:
        raise ValueError(f"`stages` name layers that are not in the model: {missing}")
    outputs = {key: model.get_layer(layer).output for key, layer in taps.items()}
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=f"{model.name}_features")
