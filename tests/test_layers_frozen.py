"""Frozen layers stay frozen through ``.keras`` saving and ``clone_model`` (`KeepsFrozenSublayers`).

Our composite layers create their sub-layers in ``__init__``; Keras rebuilds them from their
config, so without the mixin a frozen block came back with trainable sub-layers and a frozen BN
inside a trainable block came back trainable (running in training mode, updating its statistics).
"""

import keras
import numpy as np
import pytest

from keras_cnn._compat.keras_ import flatten_layers
from keras_cnn.layers import ConvBN, InceptionBlock, ResidualBlock
from keras_cnn.layers.inception import pool_step


def _model(block, shape):
    inputs = keras.Input(shape)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(keras.layers.Flatten()(block(inputs))))


def _state(model):
    """(trainable variable paths, {layer name: trainable}) of every layer, nested ones included."""
    return (sorted(v.path for v in model.trainable_variables),
            {layer.name: layer.trainable for layer in flatten_layers(model)
             if not isinstance(layer, keras.layers.InputLayer)})


BLOCKS = [
    pytest.param(lambda: ConvBN(4, 3, name="unit"), (6, 6, 3), "unit_bn", id="ConvBN"),
    pytest.param(lambda: ResidualBlock(4, kind="bottleneck", name="res"), (6, 6, 8), "res_2_bn", id="ResidualBlock"),
    pytest.param(lambda: InceptionBlock([[(4, 1)], [pool_step("avg", count_include_pad=True), (2, 1)]],
                                        bn_scale=True, name="mix"), (6, 6, 3), "mix_branch1_1_bn",
                 id="InceptionBlock"),
]


@pytest.mark.parametrize("make, shape, inner_bn", BLOCKS)
def test_frozen_block_and_frozen_inner_bn_survive_saving_and_cloning(tmp_path, make, shape, inner_bn):
    x = np.random.default_rng(0).uniform(-1, 1, (2, *shape)).astype("float32")
    for freeze in ("block", "inner_bn"):
        block = make()
        model = _model(block, shape)
        if freeze == "block":
            block.trainable = False
        else:
            next(layer for layer in flatten_layers(block) if layer.name == inner_bn).trainable = False
        before = _state(model)
        assert len(before[0]) < len(_model(make(), shape).trainable_variables)  # something is frozen
        model.save(tmp_path / f"{freeze}.keras")
        loaded = keras.saving.load_model(tmp_path / f"{freeze}.keras")
        cloned = keras.models.clone_model(model)
        for other in (loaded, cloned):
            assert _state(other) == before, freeze
        np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
        # The frozen BN runs in inference mode in training too: its statistics do not move.
        bn = next(layer for layer in flatten_layers(loaded) if layer.name == inner_bn)
        mean = bn.moving_mean.numpy().copy()
        loaded(x, training=True)
        np.testing.assert_array_equal(bn.moving_mean.numpy(), mean)
