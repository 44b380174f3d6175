"""Private names of keras used by keras_cnn, each explained (see keras_cnn/_compat/__init__.py)."""

from __future__ import annotations


def producing_layer(tensor):
    """The layer whose call produced symbolic ``tensor`` (a KerasTensor of a Functional model).

    Used by `keras_cnn.export` to tell whether a model ends in logits (a linear last layer), so
    that the served signature adds a softmax. Keras 3 has no public accessor for the layer
    behind a KerasTensor; ``_keras_history`` (layer, node index, tensor index) is what Keras'
    own Functional graph walking uses (keras/src/ops/node.py). Raises AttributeError,
    IndexError or ValueError when there is none.
    """
    return tensor._keras_history[0]


def all_sublayers(model):
    """Every layer inside ``model``, recursively (nested models and layers within layers).

    Used by `keras_cnn.export` to find the ``Preprocess`` layer wherever the builder put it.
    ``model.layers`` lists only the top level; ``_flatten_layers`` is the recursive walk Keras
    itself uses for ``model.weights`` (keras/src/layers/layer.py). Falls back to the top level.
    """
    try:
        return list(model._flatten_layers(include_self=False, recursive=True))
    except (AttributeError, TypeError):
        return list(getattr(model, "layers", []))
