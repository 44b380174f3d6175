"""Every _compat accessor used by training, tuning and the multi-worker loop, touched for real:
an upgrade of Keras, TensorFlow or keras-tuner that moves a private name fails here, loudly."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnn
from keras_cnn._compat import keras_ as keras_compat
from keras_cnn._compat import keras_tuner_ as kt_compat
from keras_cnn._compat import tensorflow_ as tf_compat

OWNED = ["training", "tuning", "commands/train.py", "commands/tune.py", "commands/demo.py", "commands/evaluate.py",
         "commands/_errors.py", "data/directory.py"]


def test_eager_context_initialized():
    _ = tf.constant(1.0) + 1.0
    assert tf_compat.eager_context_initialized() is True


def test_disable_optimizer_gradient_all_reduce_applies_the_given_gradients():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        var = tf.Variable([1.0, 1.0])
        optimizer = keras.optimizers.SGD(0.5, clipnorm=1.0)
        optimizer.build([var])
    assert keras_compat.disable_optimizer_gradient_all_reduce(optimizer) is optimizer

    @tf.function
    def step():
        strategy.run(lambda: optimizer.apply_gradients([(tf.constant([3.0, 4.0]), var)]))

    step()
    # Clipped to norm 1 ([0.6, 0.8]) and applied once with lr 0.5.
    np.testing.assert_allclose(var.numpy(), [0.7, 0.6], atol=1e-6)
    with pytest.raises(RuntimeError, match="_all_reduce_sum_gradients"):
        keras_compat.disable_optimizer_gradient_all_reduce(object())


def test_keras_tuner_save_json(tmp_path):
    kt_compat.save_json(str(tmp_path / "state.json"), {"a": 1})
    assert json.loads((tmp_path / "state.json").read_text()) == {"a": 1}


def test_keras_tuner_roles_and_debug(monkeypatch):
    monkeypatch.delenv("KERASTUNER_TUNER_ID", raising=False)
    assert kt_compat.is_chief_oracle() is False
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    assert kt_compat.is_chief_oracle() is True
    assert isinstance(kt_compat.debug_enabled(), bool)


def test_keras_tuner_tuner_callback_and_grid_list():
    callback = kt_compat.tuner_callback(object(), object())
    assert isinstance(callback, keras.callbacks.Callback)
    order = kt_compat.grid_linked_list()
    order.insert("a")
    order.insert("c", "a")
    order.insert("b", "a")
    assert order.next("a") == "b" and order.next("b") == "c"


def test_keras_tuner_oracle_grpc():
    servicer_class, add_servicer, exit_chief = kt_compat.oracle_grpc()
    assert callable(servicer_class) and callable(add_servicer) and callable(exit_chief)


def test_owned_modules_import_no_private_package_directly():
    root = pathlib.Path(keras_cnn.__file__).parent
    files = []
    for item in OWNED:
        path = root / item
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    offenders = [
        f"{p.relative_to(root)}:{i}"
        for p in files
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if any(name in line for name in ("keras.src", "keras_tuner.src", "tensorflow.python"))
        and not line.lstrip().startswith("#")
    ]
    assert offenders == []
