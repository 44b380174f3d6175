"""Pieces every builder shares: keras.applications' argument rules, inputs, heads, weights.

The rules and messages are those of keras.applications (``obtain_input_shape``,
``validate_activation``, the ``weights``/``classes`` checks), so a model that works there works
here; we add checks keras lacks (``pooling``, ``dropout``).
"""

from __future__ import annotations

import os

import keras
from keras.src.applications import imagenet_utils
from keras.src.ops import operation_utils

from keras_cnn._validation import check_choice, check_fraction

POOLINGS = (None, "avg", "max")


def validate_common(*, include_top, weights, classes, pooling, classifier_activation, dropout=0.0, twin=None,
                    arch=None):
    """keras.applications' validation of the shared arguments, plus ``pooling`` and ``dropout``.

    Also accepted: ``weights="timm:<tag>"`` and ``weights="imagenet"`` for a network ``arch``
    whose ImageNet weights come from timm (`keras_cnn.timm_weights`).
    """
    from keras_cnn import timm_weights

    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False. Received: include_top={include_top!r}")
    if timm_weights.is_timm_source(weights):
        timm_weights.timm_record(weights)  # ValueError listing the known tags
    elif not (weights in {"imagenet", None} or (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights))):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), `imagenet` "
            "(pre-training on ImageNet), 'timm:<tag>' (timm's weights, e.g. 'timm:resnet18.tv_in1k'), "
            f"or the path to the weights file to be loaded. Received: weights={weights}"
        )
    if weights == "imagenet" and twin is None and arch in timm_weights.DEFAULT_TIMM_TAGS:
        twin = f"timm:{timm_weights.DEFAULT_TIMM_TAGS[arch]}"
    if weights == "imagenet" and twin is None:
        raise ValueError(
            "ImageNet weights exist only for the keras.applications twins (VGG16Custom, VGG19Custom, "
            "ResNet50Custom, ResNet101Custom, ResNet152Custom, InceptionV3Custom) and, from timm, for "
            "ResNet18, ResNet34 and ResNet50Custom(keras_layout=False). "
            "Received: weights='imagenet' for a network without one; use weights=None, 'timm:<tag>' or a path."
        )
    if (weights == "imagenet" or timm_weights.is_timm_source(weights)) and include_top and classes != 1000:
        shown = '"imagenet"' if weights == "imagenet" else repr(weights)
        raise ValueError(
            f'If using `weights={shown}` with `include_top=True`, `classes` should be 1000. '
            f"Received: classes={classes}"
        )
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be a positive int. Received: classes={classes!r}")
    check_choice("pooling", pooling, POOLINGS)
    check_fraction("dropout", dropout)
    if include_top:
        imagenet_utils.validate_activation(classifier_activation, weights)


def make_inputs(input_shape, input_tensor, *, default_size, min_size, include_top, weights, channels=3):
    """Return ``(img_input, model_inputs)`` following keras.applications.

    ``input_shape`` defaults to ``(default_size, default_size, channels)``; it is checked
    against ``min_size`` and, with a top, must be fully specified.
    """
    if input_shape is None and input_tensor is not None and keras.backend.is_keras_tensor(input_tensor):
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None and channels != 3:
        input_shape = (default_size, default_size, channels)
    if input_shape is not None:
        input_shape = tuple(input_shape)
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape,
        default_size=default_size,
        min_size=min_size,
        data_format="channels_last",
        require_flatten=include_top,
        weights=weights,
    )
    if input_tensor is None:
        img_input = keras.layers.Input(shape=input_shape, name="input_layer")
        return img_input, img_input
    if not keras.backend.is_keras_tensor(input_tensor):
        img_input = keras.layers.Input(tensor=input_tensor, shape=input_shape)
    else:
        img_input = input_tensor
    sources = operation_utils.get_source_inputs(input_tensor)
    return img_input, sources[0] if len(sources) == 1 else sources


def pooled_features(x, pooling):
    """Apply ``pooling`` ("avg", "max" or None) to a feature map, as keras.applications does."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def gap_classifier(x, *, classes, classifier_activation, dropout=0.0, pool_name="avg_pool"):
    """Global average pool, optional dropout, dense classifier named "predictions"."""
    x = keras.layers.GlobalAveragePooling2D(name=pool_name)(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


def finish_model(inputs, outputs, *, name, weights, arch, include_top, aux_outputs=None):
    """Create the Functional model, with auxiliary outputs if any, and load ``weights``.

    With auxiliary heads the model returns a dict ``{"predictions": ..., "aux1": ..., ...}``;
    `keras_cnn.training.strip_aux` turns it back into the single-output inference model.
    """
    if aux_outputs:
        outputs = {"predictions": outputs, **aux_outputs}
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        from keras_cnn.weights import load_weights

        load_weights(model, weights, arch=arch, include_top=include_top)
    return model


def check_aux(aux_logits, include_top, arch):
    if not isinstance(aux_logits, bool):
        raise ValueError(f"`aux_logits` must be True or False. Received: aux_logits={aux_logits!r}")
    if aux_logits and not include_top:
        raise ValueError(
            f"{arch}: auxiliary classifiers need the classification top. "
            "Received: aux_logits=True with include_top=False"
        )


def check_width_multiplier(width_multiplier):
    """Validate the ``width_multiplier`` knob (a number > 0) and return it as a float."""
    ok = isinstance(width_multiplier, (int, float)) and not isinstance(width_multiplier, bool)
    if not ok or not width_multiplier > 0:
        raise ValueError(
            f"`width_multiplier` must be a number > 0. Received: width_multiplier={width_multiplier!r}"
        )
    return float(width_multiplier)


def scale_width(channels, width_multiplier):
    """``channels * width_multiplier``, rounded to the nearest int, at least 1."""
    return max(1, int(round(channels * width_multiplier)))
