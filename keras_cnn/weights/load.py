"""`load_weights`: what a ``weights`` argument means, and putting it into a freshly built model.

A name is a name: "imagenet", a record name ("resnet50.keras_in1k", "timm:resnet18.tv_in1k"), a tag
("tv_in1k") or a `keras_cnn.models.WeightsSpec` always mean the record, whatever files the working
directory holds (`keras_cnn.models.specs.weights_name`); the record's source says which loader
fetches and converts it. Any other ``weights`` is a file, whose kind is read from its content:
timm's safetensors, keras.applications' ``.h5`` (with or without top), or a ``.weights.h5`` /
``.keras`` / legacy ``.h5`` file saved from this package's models or from a keras.applications
twin.
"""

from __future__ import annotations

import os

from keras_cnn.models.specs import (
    WEIGHTS_SPECS,
    WeightsFileNotFoundError,
    WeightsSpec,
    get_weights_spec,
    list_weights,
    weights_name,
)
from keras_cnn.weights.files import (
    check_readable,
    is_safetensors_file,
    legacy_layer_names,
    load_keras_file,
    mismatch_error,
    with_suffix,
)
from keras_cnn.weights.keras_applications import (
    load_keras_file_into_twin,
    load_keras_record,
    load_legacy_into_twin,
    registry_name,
    resolve_twin,
)
from keras_cnn.weights.timm import load_timm_record, load_timm_weights

__all__ = ["load_weights", "load_into"]

#: The loader of each weights source: ``fn(model, record, *, include_top)``.
RECORD_LOADERS = {"keras.applications": load_keras_record, "timm": load_timm_record}


def load_weights(model, weights, *, arch, include_top):
    """Load ``weights`` into ``model`` built by the builder ``arch``.

    Every builder calls it (through :func:`load_into`) for its ``weights`` argument.

    Args:
        model: the freshly built `keras.Model`.
        weights: None (nothing to do); a `keras_cnn.models.WeightsSpec` (the typed form) or a
            weights name: "imagenet", a record name or tag (see `keras_cnn.models.list_weights`),
            "timm:<name>"; or a path (a ``pathlib.Path``, or a string that is not a weights name)
            to: a keras.applications ``.h5`` file (legacy layout, with or without top; loaded into
            the keras twin and ported), a Keras 3 ``.weights.h5`` / ``.keras`` file saved from the
            keras.applications twin (e.g. ``keras.applications.VGG16(...).save_weights(
            "x.weights.h5")``; loaded into the twin and ported), a ``.weights.h5`` / ``.keras`` /
            legacy ``.h5`` file saved from a model of this package, or a timm safetensors file.
        arch: registry name or builder name ("resnet50" / "ResNet50Custom").
        include_top: whether ``model`` has its classifier.

    Returns:
        ``model``.

    Raises:
        FileNotFoundError: ``weights`` is neither a known name nor an existing file.
        ValueError: unknown weights name; the file cannot be read, or holds another network (one
            sentence naming the file, what it holds and what was expected).
    """
    load_into(model, weights, arch=arch, include_top=include_top)
    return model


def load_into(model, weights, *, arch, include_top):
    """:func:`load_weights`, returning the `WeightsSpec` whose preprocessing ``model`` now expects.

    Returns:
        The record loaded (for a name), timm's default record of the network (for a safetensors
        file), or None (a Keras file: the network's own preprocessing).
    """
    if weights is None:
        return None
    registry = registry_name(arch)
    name = weights_name(weights)
    if name is not None:
        record = get_weights_spec(weights if isinstance(weights, WeightsSpec) else name, arch=registry)
        loader = RECORD_LOADERS.get(record.source)
        if loader is None:
            raise ValueError(
                f"No loader for weights source {record.source!r} ({record.name}). Known: {list(RECORD_LOADERS)}"
            )
        loader(model, record, include_top=include_top)
        return record
    text = os.fspath(weights)
    if not os.path.isfile(text):
        raise WeightsFileNotFoundError(f"`weights` file does not exist: {text!r}. Received: weights={text!r}")
    if is_safetensors_file(text):  # timm's files: ResNet-18..152, Inception-v3 (torchvision layout), VGG-16/19
        load_timm_weights(model, text, arch=registry or arch, include_top=include_top)
        timm = [WEIGHTS_SPECS[n] for n in list_weights(registry) if WEIGHTS_SPECS[n].source == "timm"]
        return timm[0] if timm else None
    _load_keras_file(model, text, arch, include_top)
    return None


def _load_keras_file(model, path, arch, include_top):
    """A file Keras wrote: saved from ``model``'s own layout, or from its keras.applications twin."""
    kind = check_readable(path)
    twin = None
    try:
        twin = resolve_twin(arch)
    except ValueError:
        pass
    if kind in ("keras", "keras_weights_h5"):
        try:
            load_keras_file(model, path, kind)
            return
        except (ValueError, KeyError) as own_err:
            if twin is None:
                raise mismatch_error(path, model, arch, include_top, kind) from own_err
        try:
            load_keras_file_into_twin(model, path, kind, twin, include_top)
        except (ValueError, KeyError) as err:
            raise mismatch_error(path, model, arch, include_top, kind) from err
        return
    # Legacy layout: either saved from a model with our top-level layer names, or a
    # keras.applications file (by order, into the twin, then ported).
    file_layers = legacy_layer_names(path)
    own_layers = [layer.name for layer in model.layers if layer.weights]
    if twin is None or file_layers == own_layers:
        with with_suffix(path, ".h5") as p:
            try:
                model.load_weights(p)
            except (ValueError, KeyError) as err:
                raise mismatch_error(path, model, arch, include_top, kind) from err
        return
    load_legacy_into_twin(model, path, twin, include_top)
