"""Weights: files saved by this package, and ImageNet weights of the keras.applications twins."""

from __future__ import annotations

import os

from keras_cnn._validation import check_existing_path


def load_weights(model, weights, *, arch, include_top):
    """Load ``weights`` ("imagenet" or a path) into ``model`` built by the builder ``arch``."""
    if weights is None:
        return model
    if weights == "imagenet":
        return load_imagenet_weights(model, arch=arch, include_top=include_top)
    path = check_existing_path("weights", weights)
    model.load_weights(path)
    return model


def load_imagenet_weights(model, *, arch, include_top):
    raise ValueError(
        f"ImageNet weights for {arch!r} are not available in this build. "
        "Received: weights='imagenet'"
    )
