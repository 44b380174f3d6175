"""Every private Keras/TensorFlow name keras_cnn uses is reached through keras_cnn._compat.

These tests call each accessor of ``keras_`` and ``tensorflow_`` (``keras_tuner_``'s are in
tests/test_compat_training.py), so a Keras or TensorFlow upgrade that moves a name fails here,
with the accessor's name, rather than deep inside a build, an export or a training run.
"""

import importlib
import os
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnn
from keras_cnn._compat import keras_ as K
from keras_cnn._compat import tensorflow_ as T

ROOT = pathlib.Path(keras_cnn.__file__).parent
PRIVATE = ("keras.src", "keras_tuner.src", "tensorflow.python", "._tracker")


def test_no_module_outside_compat_names_a_private_package():
    offenders = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in sorted(ROOT.rglob("*.py"))
        if "_compat" not in p.parts
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if any(name in line for name in PRIVATE) and not line.lstrip().startswith("#")
    ]
    assert offenders == []


def test_keras_input_shape_rules():
    assert K.obtain_input_shape(None, default_size=224, min_size=32, data_format="channels_last",
                                require_flatten=True, weights=None) == (224, 224, 3)
    with pytest.raises(ValueError, match="Input size must be at least 32x32"):
        K.obtain_input_shape((16, 16, 3), default_size=224, min_size=32, data_format="channels_last",
                             require_flatten=False, weights=None)
    K.validate_activation("softmax", None)
    with pytest.raises(ValueError):
        K.validate_activation("relu", "imagenet")


def test_keras_cache_hash_and_naming(tmp_path):
    assert os.path.isabs(os.path.expanduser(K.keras_home()))
    path = tmp_path / "f.bin"
    path.write_bytes(b"keras_cnn")
    import hashlib

    assert K.validate_file(str(path), hashlib.md5(b"keras_cnn").hexdigest())
    assert not K.validate_file(str(path), "0" * 32)
    assert K.to_snake_case("Conv2D") == "conv2d" and K.to_snake_case("BatchNormalization") == "batch_normalization"


def test_keras_layer_walking_and_symbolic_trace():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")], name="inner")
    outer = keras.Sequential([keras.Input((4,)), inner], name="outer")
    names = [layer.name for layer in K.flatten_layers(outer)]
    assert "inner" in names and "d" in names and "outer" not in names
    direct = [layer.name for layer in K.flatten_layers(outer, recursive=False)]
    assert "inner" in direct and "d" not in direct
    spec = K.compute_output_spec(lambda x: outer(x), keras.KerasTensor((None, 4)))
    assert tuple(spec.shape) == (None, 3)
    x = keras.Input((4,))
    y = keras.layers.Dense(2, name="producer")(x)
    assert K.producing_layer(y).name == "producer"


def test_untrack_drops_a_sublayer_from_the_weights():
    class Holder(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.kept = keras.layers.Dense(2)
            self.dropped = keras.layers.Dense(3)

        def build(self, input_shape):
            self.dropped.build(input_shape)  # its weights exist: tracked, they would be the layer's
            K.untrack(self, self.dropped)
            self.dropped = None
            self.kept.build(input_shape)

        def call(self, x):
            return self.kept(x)

    layer = Holder()
    layer.build((None, 4))
    assert [tuple(w.shape) for w in layer.weights] == [(4, 2), (2,)]


def test_print_progress_writes_where_fit_writes(capsys):
    K.print_progress("Epoch 1/3")
    assert capsys.readouterr().out == "Epoch 1/3\n"


def test_set_trainable_passes_an_unchanged_flag_down():
    inner = keras.layers.Dense(2, name="inner")
    outer = keras.Sequential([keras.Input((3,)), inner], name="outer", trainable=False)  # flag stored, not passed
    outer.trainable = False  # the TF backend's "self.x = self.x" short circuit: the setter never runs
    assert inner.trainable  # why set_trainable exists (if Keras fixes this, the accessor is still right)
    K.set_trainable(outer, False)
    assert not inner.trainable and outer.trainable_variables == [] and not inner.kernel.trainable
    K.set_trainable(outer, True)
    assert inner.trainable and len(outer.trainable_variables) == 2


def test_tensorflow_freezing_and_run_metadata():
    v = tf.Variable(2.0)
    fn = tf.function(lambda x: x * v).get_concrete_function(tf.TensorSpec([], tf.float32))
    frozen = T.convert_variables_to_constants_v2(fn)
    out = frozen(tf.constant(3.0))
    assert float(out[0] if isinstance(out, (list, tuple)) else out) == 6.0
    assert not [n for n in frozen.graph.as_graph_def().node if n.op in ("VarHandleOp", "ReadVariableOp")]
    step = tf.function(lambda x: x + 1.0)
    metadata = T.run_metadata_of(step, tf.constant(np.ones(3, np.float32)))
    ops = {node.op for fg in metadata.function_graphs for g in fg.partition_graphs for node in g.node}
    assert "AddV2" in ops
    assert T.eager_context_initialized() is True
    importlib.import_module(T.SAVED_MODEL_CLI_MODULE)


def test_keras_tuner_hooks_still_exist_upstream():
    """The private methods our hook mixins override must exist in keras-tuner, or they are dead."""
    import keras_tuner

    from keras_cnn._compat import keras_tuner_ as KT
    from keras_cnn.tuning.oracles import RandomSearchOracle
    from keras_cnn.tuning.tuner import CNNTuner

    for name in ("_save_trial", "_check_consecutive_failures"):
        assert callable(getattr(keras_tuner.Oracle, name)), name
        assert getattr(RandomSearchOracle, name) is getattr(KT.OracleHooks, name)
    assert callable(keras_tuner.Tuner._populate_initial_space)
    assert CNNTuner._populate_initial_space is KT.TunerHooks._populate_initial_space
