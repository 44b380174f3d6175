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


def test_keras_tuner_tuner_and_oracle_internals(tmp_path):
    import keras_tuner

    def build(hp):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(hp.Choice("units", [1, 2]))])
        model.compile(optimizer="sgd", loss="mse")
        return model

    tuner = keras_tuner.RandomSearch(build, objective="val_loss", max_trials=1, directory=str(tmp_path),
                                     project_name="p", seed=1)
    assert kt_compat.is_worker(tuner) is False
    assert str(kt_compat.tuner_state_path(tuner)).endswith(".json")
    assert str(kt_compat.oracle_state_path(tuner.oracle)).endswith("oracle.json")
    trial = tuner.oracle.create_trial("tuner0")
    assert trial.trial_id in str(kt_compat.trial_dir(tuner.oracle, trial.trial_id))
    assert trial.trial_id in str(kt_compat.checkpoint_path(tuner, trial.trial_id))
    x = np.zeros((8, 2), "float32")
    kt_compat.run_and_update_trial(tuner, trial, x, x[:, :1], validation_data=(x, x[:, :1]), epochs=1, verbose=0)
    assert trial.metrics.exists("val_loss")  # reported to the oracle

    hp = keras_tuner.HyperParameters()
    hp.Choice("a", [1, 2, 3])
    grid = keras_tuner.oracles.GridSearchOracle(objective="val_loss", max_trials=3, hyperparameters=hp)
    assert kt_compat.grid_compare(grid, {"a": 1}, {"a": 2}) < 0 < kt_compat.grid_compare(grid, {"a": 3}, {"a": 2})
    order = kt_compat.grid_linked_list()
    order.insert("t0")
    kt_compat.set_grid_order(grid, order, ["t0"])
    assert grid._ordered_ids is order and grid._populate_next == ["t0"]
