"""ModelIdentity: the pass-through layer that tells which registry network a model is.

Every builder of keras_cnn puts one right after the input. It computes nothing (its output is
its input: no op in the traced graph, no weights, no cast), but its config carries the network's
registry name, the arguments it was built with, the weights it started from and the pixel
preprocessing those expect. Being a layer of the graph, it survives everything a Keras model
goes through: a ``.keras`` round trip, `keras.models.clone_model`, a new Functional model cut
from the graph (``keras.Model(model.inputs, model.get_layer(...).output)``) and nesting.

`keras_cnn.models.model_identity` reads it; nothing in keras_cnn guesses a network from its
layer names.
"""

from __future__ import annotations

import keras

#: The layer's name in every model keras_cnn builds.
IDENTITY_LAYER_NAME = "keras_cnn_identity"


@keras.saving.register_keras_serializable(package="keras_cnn")
class ModelIdentity(keras.layers.Layer):
    """Pass-through layer recording what network a model is and how it was built.

    Args:
        arch: registry name ("resnet50"), or None for a network built by a generic builder.
        build_args: the builder's keyword arguments (JSON-compatible), ``weights`` excluded.
        weights: the pretrained weights it was built with: a weights name
            ("resnet50.keras_in1k"), ``"file:<name>"`` for a local file, or None.
        preprocessing: the pixel preprocessing the model expects ("tf", "caffe", "torch",
            "unit"), or None if unknown.
        **kwargs: layer arguments (``name`` defaults to ``"keras_cnn_identity"``).
    """

    def __init__(self, arch=None, build_args=None, weights=None, preprocessing=None, **kwargs):
        kwargs.setdefault("name", IDENTITY_LAYER_NAME)
        kwargs.setdefault("trainable", False)
        # autocast=False: under a mixed precision policy the input is passed on untouched.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        self.arch = arch
        self.build_args = dict(build_args or {})
        self.weights_source = weights
        self.preprocessing = preprocessing

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.pop("autocast", None)
        config.update(
            arch=self.arch,
            build_args=dict(self.build_args),
            weights=self.weights_source,
            preprocessing=self.preprocessing,
        )
        return config
