"""Frozen sub-layers of our composite layers survive ``.keras`` saving and ``clone_model``.

Keras rebuilds a layer from its config (``cls.from_config``), and our composite layers (`ConvBN`,
`FactorizedConv`, the Inception layers, `ResidualBlock`) create their sub-layers in
``__init__``, so without this two freezes were lost on the way back:

* a frozen composite layer (``trainable=False`` in its config) got trainable sub-layers, so a
  model holding it counted their variables as trainable again;
* a frozen BatchNormalization inside a trainable block (transfer learning's ``freeze_bn``) was
  trainable again, so it ran in training mode and updated its statistics.

A reloaded transfer model trained every layer, and Keras warned that the saved optimizer did not
match. `KeepsFrozenSublayers` records the names of the frozen sub-layers in ``get_config`` and
freezes them again in ``from_config``, before any variable is created.
"""

from __future__ import annotations

from keras_cnn._compat import keras_ as keras_compat

FROZEN_KEY = "frozen_sublayers"


class KeepsFrozenSublayers:
    """Mixin (before `keras.layers.Layer` in the bases) for layers that create sub-layers."""

    def get_config(self):
        config = super().get_config()
        if self.trainable:  # a frozen layer freezes all its sub-layers: its own flag says it all
            frozen = [layer.name for layer in keras_compat.flatten_layers(self) if not layer.trainable]
            if frozen:
                config[FROZEN_KEY] = frozen
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        frozen = set(config.pop(FROZEN_KEY, ()) or ())
        layer = super().from_config(config)
        if not layer.trainable:  # Layer.__init__ stores the flag without passing it down
            keras_compat.set_trainable(layer, False)
        for sub in keras_compat.flatten_layers(layer):
            if sub.name in frozen:
                keras_compat.set_trainable(sub, False)
        return layer
