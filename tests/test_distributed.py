"""Distributed training: TF_CONFIG parsing, history rows, argument checks (fast, in-process), and,
in subprocesses, MirroredStrategy + fit on two logical CPUs and the multi-worker loop against fit."""

import json
import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from keras_cnn.training.callbacks import read_history
from keras_cnn.training.distributed import (
    WorkerInfo,
    append_history,
    cluster_info,
    multi_worker_strategy,
    train_multi_worker,
    worker_info,
)

WORKERS = ["127.0.0.1:20001", "127.0.0.1:20002"]


def _config(task_type, index, **cluster):
    return json.dumps({"cluster": cluster or {"worker": WORKERS}, "task": {"type": task_type, "index": index}})


# ------------------------------------------------------------------------------------- TF_CONFIG


def test_cluster_info_without_tf_config_is_a_single_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cluster_info() == WorkerInfo(None, 0, 1, True)
    assert cluster_info("") == WorkerInfo(None, 0, 1, True)


def test_cluster_info_worker_zero_is_chief_unless_there_is_a_chief(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", _config("worker", 0))
    assert cluster_info() == WorkerInfo("worker", 0, 2, True)
    assert cluster_info(_config("worker", 1)) == WorkerInfo("worker", 1, 2, False)
    with_chief = dict(chief=["127.0.0.1:20000"], worker=WORKERS)
    assert cluster_info(_config("chief", 0, **with_chief)) == WorkerInfo("chief", 0, 3, True)
    assert cluster_info(_config("worker", 0, **with_chief)) == WorkerInfo("worker", 0, 3, False)


@pytest.mark.parametrize(
    "tf_config, match",
    [
        ("{not json", "TF_CONFIG must be JSON"),
        (_config("worker", 2), r'index"\] must index'),
        (_config("evaluator", 0), r'type"\] must be "worker" or "chief"'),
        (_config("worker", 0, worker=WORKERS, ps=["127.0.0.1:20003"]), "parameter servers"),
        (json.dumps({"cluster": {"worker": "127.0.0.1:1"}, "task": {"type": "worker", "index": 0}}), "lists"),
    ],
)
def test_cluster_info_rejects_bad_tf_config(tf_config, match):
    with pytest.raises(ValueError, match=match):
        cluster_info(tf_config)


def test_worker_info_reads_the_strategy_cluster_resolver():
    import tensorflow as tf

    spec = tf.train.ClusterSpec({"worker": WORKERS})
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(spec, task_type="worker", task_id=1)
    assert worker_info(types.SimpleNamespace(cluster_resolver=resolver)) == WorkerInfo("worker", 1, 2, False)
    resolver0 = tf.distribute.cluster_resolver.SimpleClusterResolver(spec, task_type="worker", task_id=0)
    assert worker_info(types.SimpleNamespace(cluster_resolver=resolver0)).is_chief


# ---------------------------------------------------------------------------------- run directory


def test_append_history_replaces_a_repeated_epoch_and_reads_like_csvlogger(tmp_path):
    path = tmp_path / "history.csv"
    append_history(path, 0, {"loss": 2.0, "accuracy": 0.1})
    append_history(path, 1, {"loss": 1.5, "accuracy": 0.4})
    append_history(path, 1, {"loss": 1.25, "accuracy": 0.5})  # the epoch redone after a crash
    append_history(path, 2, {"loss": 1.0, "accuracy": 0.6, "val_loss": 1.1})  # a new column
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,accuracy,loss,val_loss"
    history = read_history(path)
    assert history["epoch"] == [0, 1, 2]
    assert history["loss"] == [2.0, 1.25, 1.0]
    assert np.isnan(history["val_loss"][0]) and history["val_loss"][2] == 1.1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv"]  # no temporary file left


# ------------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    "kwargs, name", [({"jit_compile": True}, "jit_compile"), ({"mixed_precision": True}, "mixed_precision")]
)
def test_multi_worker_rejects_options_the_loop_does_not_support(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}` is not supported with strategy='multi_worker'"):
        train_multi_worker("lenet5", "digits", **kwargs)


def test_train_hands_strategy_multi_worker_to_the_loop():
    from keras_cnn.training import train

    # The loop's own check answers (fit would have accepted jit_compile=True).
    with pytest.raises(ValueError, match="`jit_compile` is not supported with strategy='multi_worker'"):
        train("lenet5", "digits", strategy="multi_worker", jit_compile=True)


def test_multi_worker_rejects_another_strategy():
    with pytest.raises(ValueError, match="Received: strategy='mirrored'"):
        train_multi_worker("lenet5", "digits", strategy="mirrored")
    with pytest.raises(ValueError, match="communication"):
        multi_worker_strategy("carrier_pigeon")


def test_multi_worker_strategy_after_tensorflow_started_says_what_to_do(monkeypatch):
    import tensorflow as tf

    _ = tf.constant(1.0) + 1.0  # TensorFlow is running in this process
    monkeypatch.setenv("TF_CONFIG", _config("worker", 1))  # (fails before contacting the cluster)
    with pytest.raises(RuntimeError, match="at the start of the program"):
        multi_worker_strategy()


# ----------------------------------------------------------------------------------- subprocesses


def _run_script(tmp_path, source, *args, timeout=900):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    env.pop("TF_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, str(script), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


MIRRORED = """
    import json, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]  # two logical CPUs, before TensorFlow starts
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_cnn.data import load_data
    from keras_cnn.training import train

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            strategy = self.model.distribute_strategy
            self.seen = {"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
                         "variable": type(self.model.trainable_variables[0].value).__name__}

    out = sys.argv[1]
    report = {"devices": len(tf.config.list_logical_devices("CPU"))}
    for strategy in ("default", "mirrored"):
        bundle = load_data("digits", image_size=(32, 32), channels=1, batch_size=32, max_examples=240, shuffle=False)
        probe = Probe()
        result = train("lenet5", bundle, epochs=2, batch_size=32, augment="none", out_dir=f"{out}/{strategy}",
                       export=False, verbose=0, strategy=strategy, callbacks=[probe])
        report[strategy] = {"probe": probe.seen, "history": result.history, "accuracy": result.metrics["accuracy"]}
    json.dump(report, open(f"{out}/report.json", "w"))
"""


@pytest.mark.slow
def test_mirrored_strategy_trains_on_two_logical_cpus_like_one_device(tmp_path):
    _run_script(tmp_path, MIRRORED, tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["devices"] == 2
    mirrored, default = report["mirrored"], report["default"]
    assert mirrored["probe"] == {"strategy": "MirroredStrategy", "replicas": 2, "variable": "MirroredVariable"}
    assert default["probe"]["replicas"] == 1
    # It trains: two epochs recorded, the loss falls, better than chance.
    assert mirrored["history"]["epoch"] == [0, 1]
    assert mirrored["history"]["loss"][1] < mirrored["history"]["loss"][0]
    assert mirrored["accuracy"] > 0.3
    # Each 32-example batch is split 16 + 16 (the last 8: 4 + 4) and averaged over the global batch,
    # so two replicas follow one device's trajectory.
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(mirrored["history"][key], default["history"][key], rtol=1e-5)
    assert (tmp_path / "mirrored" / "model.keras").is_file()


PARITY = """
    import json, os, sys
    import keras
    import numpy as np
    from keras_cnn.models.registry import register_model

    def TinyAux(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=10,
                classifier_activation="softmax", name="tiny_aux", dropout=0.0, aux_logits=False):
        inputs = input_tensor if input_tensor is not None else keras.Input(input_shape or (16, 16, 1))
        reg = keras.regularizers.L2(1e-3)
        x = keras.layers.Conv2D(4, 3, activation="relu", kernel_regularizer=reg, name="conv1")(inputs)
        aux = keras.layers.GlobalAveragePooling2D(name="aux1_pool")(x)
        aux = keras.layers.Dense(classes, activation=classifier_activation, name="aux1")(aux)
        x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", kernel_regularizer=reg, name="conv2")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        main = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
        return keras.Model(inputs, {"predictions": main, "aux1": aux} if aux_logits else main, name=name)

    register_model("tiny_aux", TinyAux, family="googlenet", default_size=16, min_size=8, channels=1,
                   preprocessing="unit", aux_heads=1)
    out = sys.argv[1]
    # GoogLeNet's recipe (SGD + momentum, aux weight 0.3) plus smoothing, clipping and dropout; the
    # augmenter runs inside the step.
    common = dict(epochs=1, batch_size=32, max_examples=240, image_size=16, export=False, verbose=0,
                  augment="flip,crop", recipe={"label_smoothing": 0.1, "clipnorm": 0.5, "dropout": 0.25})
    from keras_cnn.training import train
    # First (TensorFlow has not run yet): the strategy is created from TF_CONFIG (none: one worker).
    loop = train("tiny_aux", "digits", out_dir=f"{out}/loop", strategy="multi_worker", **common)
    fit = train("tiny_aux", "digits", out_dir=f"{out}/fit", **common)
    for name, result in (("loop", loop), ("fit", fit)):
        np.savez(f"{out}/{name}.npz", **{w.path.replace("/", "__"): w.numpy() for w in result.model.weights})
    json.dump({"loop": loop.history, "fit": fit.history, "outputs": len(loop.model.outputs),
               "layers": [l.name for l in loop.model.layers]}, open(f"{out}/report.json", "w"))
"""


@pytest.mark.slow
def test_multi_worker_loop_trains_what_fit_trains(tmp_path):
    _run_script(tmp_path, PARITY, tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    loop, fit = report["loop"], report["fit"]
    # Same step as fit: aux head weighted 0.3, L2 terms, label smoothing, clipnorm, lr schedule,
    # dropout and the augmenter (same seeds) -> the same loss and the same weights.
    for key in ("loss", "predictions_accuracy", "val_loss", "val_predictions_loss", "val_aux1_loss",
                "val_predictions_accuracy", "learning_rate"):
        np.testing.assert_allclose(loop[key], fit[key], rtol=1e-5, err_msg=key)
    a, b = np.load(tmp_path / "loop.npz"), np.load(tmp_path / "fit.npz")
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        np.testing.assert_allclose(a[name], b[name], atol=1e-6, err_msg=name)
    # The validation loss is main + 0.3 * aux + the L2 terms at the final weights.
    l2 = 1e-3 * sum(float(np.sum(a[f"{n}__kernel"] ** 2)) for n in ("conv1", "conv2"))
    assert l2 > 0
    np.testing.assert_allclose(
        loop["val_loss"][0] - loop["val_predictions_loss"][0] - 0.3 * loop["val_aux1_loss"][0], l2, rtol=1e-3
    )
    assert loop["loss"][0] - loop["predictions_loss"][0] - 0.3 * loop["aux1_loss"][0] > 0.5 * l2
    # The saved model is the inference model: one output, no augmentation layers.
    assert report["outputs"] == 1
    assert not any("flip" in n or "crop" in n or "augment" in n for n in report["layers"])
    config = json.loads((tmp_path / "loop" / "config.json").read_text())
    assert config["augment"] == "flip,crop" and config["strategy"] == "multi_worker" and config["aux_heads"] == 1


@pytest.mark.slow
def test_multi_worker_resume_refuses_a_checkpoint_of_another_run(tmp_path, caplog, monkeypatch):
    # One worker, in this process (TensorFlow is already running: fine without a cluster).
    import logging

    from keras_cnn.training import train

    caplog.set_level(logging.INFO, logger="keras_cnn")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    common = dict(epochs=1, batch_size=64, max_examples=120, image_size=16, export=False, verbose=0)
    run = tmp_path / "run"
    first = train("lenet5", "digits", out_dir=run, augment="none", strategy="multi_worker", keep_checkpoints=True,
                  **common)
    assert "TF_CONFIG is not set: strategy 'multi_worker' trains in this process as a single worker" in caplog.text
    assert first.history["epoch"] == [0] and first.metrics["num_workers"] == 1
    assert (run / "checkpoints" / "ckpt-1.index").is_file()
    # Run again: the run finished (same fingerprint), so nothing is trained twice.
    again = train("lenet5", "digits", out_dir=run, augment="none", strategy="multi_worker", callbacks=[], **common)
    assert again.status == "finished"
    assert again.history["epoch"] == [0] and again.metrics["optimizer_steps"] == first.metrics["optimizer_steps"]
    # Another augmentation is another run: refused, naming the field.
    with pytest.raises(ValueError, match="different run: augment"):
        train("lenet5", "digits", out_dir=run, augment="flip", strategy="multi_worker", **common)
    # A fit() run directory is not resumed by the loop (its checkpoints are another format).
    fit_run = tmp_path / "fit"
    train("lenet5", "digits", out_dir=fit_run, augment="none", **common)
    with pytest.raises(ValueError, match="engine \\(stored 'fit', now 'multi_worker'\\)"):
        train("lenet5", "digits", out_dir=fit_run, augment="none", strategy="multi_worker", **common)
