"""export_for_serving: layout, signatures, served outputs, versions, atomicity, bad inputs, CLI."""

import datetime
import io
import json
import logging
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn import cli
from keras_cnn.export import (
    BYTES_SIGNATURE,
    DEFAULT_SIGNATURE,
    OUTPUT_NAMES,
    export_for_serving,
    next_version,
    read_class_names,
    read_metadata,
    read_signatures,
)
from keras_cnn.layers.preprocess import Preprocess

NAMES = ["cat", "dog", "eel", "fox", "gnu", "hen", "ibis"]


def tiny_model(classes=7, size=12, channels=3, *, activation="softmax", name="tiny"):
    inputs = keras.Input((size, size, channels))
    x = Preprocess("unit")(inputs)
    x = keras.layers.Conv2D(6, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    init = keras.initializers.RandomNormal(stddev=3.0, seed=1)
    outputs = keras.layers.Dense(classes, activation=activation, kernel_initializer=init, name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def raw_images(n, size=12, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels)).astype("float32")


def png(image):
    return tf.io.encode_png(image.astype("uint8")).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = tiny_model()
    base = tmp_path_factory.mktemp("saved_models")
    path = export_for_serving(model, base, "tiny", class_names=NAMES,
                              metadata={"val_accuracy": np.float32(0.75), "dataset": "digits", "loss": float("nan"),
                                        "history": np.array([1, 2])})
    return model, base, path


def test_layout_assets_and_metadata(exported):
    model, base, path = exported
    assert path == base / "tiny" / "1"
    for rel in ("saved_model.pb", "variables/variables.index", "assets/class_names.txt",
                "assets.extra/keras_cnn.json", "assets.extra/tf_serving_warmup_requests"):
        assert (path / rel).is_file(), rel
    assert (path / "assets" / "class_names.txt").read_text() == "\n".join(NAMES) + "\n"
    assert read_class_names(path) == NAMES
    meta = read_metadata(path)
    assert meta["name"] == "tiny" and meta["version"] == 1 and meta["model_name"] == "tiny"
    assert meta["input_shape"] == [12, 12, 3] and meta["channels"] == 3
    assert meta["preprocessing"] == "unit" and meta["softmax_added"] is False
    assert meta["class_names"] == NAMES and meta["num_classes"] == 7 and meta["top_k"] == 5
    assert meta["metadata"] == {"val_accuracy": 0.75, "dataset": "digits", "loss": None, "history": [1, 2]}
    assert meta["packages"]["tensorflow"] == tf.__version__ and meta["packages"]["keras"] == keras.__version__
    assert "keras_cnn" in meta["packages"]
    assert datetime.datetime.fromisoformat(meta["created"]).tzinfo is not None
    assert set(meta["signatures"]) == {DEFAULT_SIGNATURE, BYTES_SIGNATURE}
    # No temporary directories are left beside the version.
    assert [p.name for p in (base / "tiny").iterdir()] == ["1"]


def test_signatures_as_the_server_reads_them(exported):
    _, _, path = exported
    sigs = read_signatures(path)
    assert set(sigs) == {DEFAULT_SIGNATURE, BYTES_SIGNATURE}
    assert sigs[DEFAULT_SIGNATURE]["inputs"] == {"images": {"dtype": "float", "shape": [-1, 12, 12, 3]}}
    assert sigs[BYTES_SIGNATURE]["inputs"] == {"image_bytes": {"dtype": "string", "shape": [-1]}}
    for sig in sigs.values():
        assert sig["method"] == "tensorflow/serving/predict"
        assert set(sig["outputs"]) == set(OUTPUT_NAMES)
        out = sig["outputs"]
        assert out["probabilities"] == {"dtype": "float", "shape": [-1, 7]}
        assert out["classes"] == {"dtype": "int64", "shape": [-1]}
        assert out["class_names"] == {"dtype": "string", "shape": [-1]}
        assert out["top_k_scores"]["shape"] == [-1, 5] and out["top_k_class_names"]["dtype"] == "string"


def test_served_outputs_match_the_keras_model(exported):
    model, _, path = exported
    loaded = tf.saved_model.load(str(path), tags=["serve"])
    x = raw_images(5)
    expected = model(x, training=False).numpy()
    out = {k: v.numpy() for k, v in loaded.signatures[DEFAULT_SIGNATURE](images=tf.constant(x)).items()}
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    np.testing.assert_array_equal(out["classes"], expected.argmax(-1))
    assert [n.decode() for n in out["class_names"]] == [NAMES[i] for i in expected.argmax(-1)]
    order = np.argsort(-expected, axis=-1, kind="stable")[:, :5]
    np.testing.assert_array_equal(out["top_k_classes"], order)
    np.testing.assert_allclose(out["top_k_scores"], np.take_along_axis(expected, order, -1), atol=1e-5)
    assert [[n.decode() for n in row] for row in out["top_k_class_names"]] == [[NAMES[i] for i in r] for r in order]
    # The same images PNG-encoded through the bytes signature give the same answer.
    via_bytes = loaded.signatures[BYTES_SIGNATURE](image_bytes=tf.constant([png(i) for i in x]))
    np.testing.assert_allclose(via_bytes["probabilities"].numpy(), expected, atol=1e-5)
    # Dynamic batch: 1 image, and an image of another size is resized inside.
    one = loaded.signatures[DEFAULT_SIGNATURE](images=tf.constant(x[:1]))["probabilities"].numpy()
    np.testing.assert_allclose(one, expected[:1], atol=1e-5)
    big = raw_images(1, size=24)
    resized = tf.image.resize(big, (12, 12)).numpy()
    served = loaded.signatures[BYTES_SIGNATURE](image_bytes=tf.constant([png(big[0])]))["probabilities"].numpy()
    np.testing.assert_allclose(served, model(resized, training=False).numpy(), atol=1e-5)


@pytest.mark.slow
def test_versions_increment_and_are_never_overwritten(tmp_path):
    model = tiny_model(classes=3)
    first = export_for_serving(model, tmp_path, "m", warmup=False, metadata={"run": 1})
    second = export_for_serving(model, tmp_path, "m", warmup=False, metadata={"run": 2})
    assert (first.name, second.name) == ("1", "2")
    assert next_version(tmp_path / "m") == 3
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_for_serving(model, tmp_path, "m", 1, warmup=False, metadata={"run": 3})
    assert read_metadata(first)["metadata"] == {"run": 1}
    again = export_for_serving(model, tmp_path, "m", 1, warmup=False, overwrite=True, metadata={"run": 4})
    assert again == first and read_metadata(first)["metadata"] == {"run": 4}
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2"]


def test_a_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export_for_serving(tiny_model(classes=3), tmp_path, "m", warmup=False)
    assert list((tmp_path / "m").iterdir()) == []


def bn_model(name="bnnet"):
    """Conv -> BN -> ReLU, a depthwise conv -> BN (scale=False), a residual 1x1 conv -> BN, a BN
    after the residual add (not foldable), with non-trivial BN statistics."""
    inputs = keras.Input((12, 12, 3))
    x = Preprocess("unit")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=False)(x)
    x = keras.layers.BatchNormalization(scale=False)(x)
    y = keras.layers.Conv2D(16, 1, use_bias=False)(x)
    y = keras.layers.BatchNormalization()(y)
    x = keras.layers.BatchNormalization()(keras.layers.Add()([x, y]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x), name=name)
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for weight in layer.weights:
                weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    return model


def test_optimized_graph_folds_batchnorm_and_matches(tmp_path):
    model = bn_model()
    fast = export_for_serving(model, tmp_path, "fast", warmup=False)
    plain = export_for_serving(model, tmp_path, "plain", warmup=False, optimize=False)
    assert read_metadata(fast)["optimized"] == {"frozen": True, "batchnorms_folded": 3, "activation_scalings_left": 1}
    assert read_metadata(plain)["optimized"] is None and read_metadata(plain)["optimize_error"] is None
    x = raw_images(3)
    expected = model(x, training=False).numpy()
    for path in (fast, plain):
        got = tf.saved_model.load(str(path)).signatures[DEFAULT_SIGNATURE](images=tf.constant(x))["probabilities"]
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    # the folded graph: convolutions end in BiasAdd, no per-channel Mul right after them
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((fast / "saved_model.pb").read_bytes())
    ops = [n.op for f in saved.meta_graphs[0].graph_def.library.function for n in f.node_def]
    assert ops.count("Conv2D") == 2 and ops.count("DepthwiseConv2dNative") == 1
    assert not tf.train.list_variables(str(fast / "variables" / "variables"))[1:]  # weights are constants
    plain_vars = [name for name, _ in tf.train.list_variables(str(plain / "variables" / "variables"))]
    assert not any(name.startswith("_all_variables/") for name in plain_vars)  # each variable stored once
    assert len([n for n in plain_vars if n != "_CHECKPOINTABLE_OBJECT_GRAPH"]) == len(model.weights)


def test_optimizer_failure_falls_back_to_the_plain_graph_loudly(tmp_path, monkeypatch, caplog):
    from keras_cnn.export import _optimize

    def fail(*args, **kwargs):
        raise ValueError("Cannot freeze op StatefulFoo")

    monkeypatch.setattr(_optimize, "optimized_inference_graph", fail)
    model = bn_model()
    with caplog.at_level(logging.WARNING, logger="keras_cnn"):
        path = export_for_serving(model, tmp_path, "fallback", warmup=False)
    assert re.search(r"optimized serving graph could not be built \(ValueError: Cannot freeze", caplog.text)
    meta = read_metadata(path)
    assert meta["optimized"] is None and meta["optimize_error"] == "ValueError: Cannot freeze op StatefulFoo"
    x = raw_images(2)
    got = tf.saved_model.load(str(path)).signatures[DEFAULT_SIGNATURE](images=tf.constant(x))["probabilities"]
    np.testing.assert_allclose(got.numpy(), model(x, training=False).numpy(), atol=1e-5)


def test_export_is_readable_by_others_and_respects_umask(exported, tmp_path):
    import os
    import stat

    _, _, path = exported
    modes = {p.relative_to(path): stat.S_IMODE(p.stat().st_mode) for p in [path, *path.rglob("*")]}
    assert modes[path.relative_to(path)] == 0o755
    assert all(mode == (0o755 if (path / rel).is_dir() else 0o644) for rel, mode in modes.items()), modes
    assert not list(path.rglob(".keras_cnn_export_owner"))
    old = os.umask(0o077)
    try:
        private = export_for_serving(tiny_model(classes=3), tmp_path, "p", warmup=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert stat.S_IMODE((private / "saved_model.pb").stat().st_mode) == 0o600


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path, caplog):
    import os
    import subprocess
    import sys
    import time

    from keras_cnn.export.saved_model import _OWNER_FILE, _process_start_time

    model_dir = tmp_path / "m"
    stale = model_dir / ".3.tmp-abc123"
    (stale / "variables").mkdir(parents=True)
    (stale / "variables" / "variables.data-00000-of-00001").write_bytes(b"x" * 1000)
    old_backup = model_dir / ".1.old-xyz"
    old_backup.mkdir()
    fresh = model_dir / ".4.tmp-new"  # created after this process started: may be another export's
    fresh.mkdir()
    live = model_dir / ".5.tmp-live"  # old, but its owner (a running process) is still writing it
    live.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        (live / _OWNER_FILE).write_text(json.dumps({"pid": sleeper.pid, "started": _process_start_time(sleeper.pid)}))
        long_ago = _process_start_time() - 3600
        for entry in (stale, old_backup, live):
            os.utime(entry, (long_ago, long_ago))
        unrelated = model_dir / ".hidden-notes"
        unrelated.mkdir()
        os.utime(unrelated, (long_ago, long_ago))
        with caplog.at_level(logging.WARNING, logger="keras_cnn"):
            path = export_for_serving(tiny_model(classes=3), tmp_path, "m", warmup=False)
        assert "removed 2 stale temporary export(s)" in caplog.text
        assert path == model_dir / "1"  # temporaries are not versions
        assert not stale.exists() and not old_backup.exists()
        assert fresh.exists() and live.exists() and unrelated.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.slow
def test_aux_heads_dropped_and_augmentation_inactive(tmp_path):
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.RandomFlip(seed=1)(inputs)
    x = keras.layers.RandomTranslation(0.3, 0.3, seed=1)(x)
    x = Preprocess("tf")(x)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    main = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    aux = keras.layers.Dense(3, activation="softmax", name="aux1")(x)
    model = keras.Model(inputs, {"predictions": main, "aux1": aux}, name="auxnet")
    path = export_for_serving(model, tmp_path, warmup=False)
    assert path == tmp_path / "auxnet" / "1"
    assert set(read_signatures(path)[DEFAULT_SIGNATURE]["outputs"]) == set(OUTPUT_NAMES)
    loaded = tf.saved_model.load(str(path))
    x = raw_images(4)
    served = loaded.signatures[DEFAULT_SIGNATURE](images=tf.constant(x))["probabilities"].numpy()
    np.testing.assert_allclose(served, model(x, training=False)["predictions"].numpy(), atol=1e-5)
    again = loaded.signatures[DEFAULT_SIGNATURE](images=tf.constant(x))["probabilities"].numpy()
    np.testing.assert_array_equal(served, again)
    assert read_metadata(path)["preprocessing"] == "tf"


def test_logits_model_gets_a_softmax(tmp_path):
    model = tiny_model(classes=4, activation=None)
    path = export_for_serving(model, tmp_path, "logits", warmup=False)
    assert read_metadata(path)["softmax_added"] is True
    x = raw_images(3)
    served = tf.saved_model.load(str(path)).signatures[DEFAULT_SIGNATURE](images=tf.constant(x))
    np.testing.assert_allclose(served["probabilities"].numpy(),
                               tf.nn.softmax(model(x, training=False)).numpy(), atol=1e-5)


@pytest.mark.slow
def test_model_file_and_run_directory(tmp_path):
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    model = tiny_model(classes=3, size=10, channels=1, name="small_gray")
    model.save(run / "model.keras")
    (run / "class_names.json").write_text(json.dumps(["zero", "one", "two"]))
    path = export_for_serving(run, tmp_path / "sm", warmup=False)  # the run directory
    assert path == tmp_path / "sm" / "small_gray" / "1"
    assert read_class_names(path) == ["zero", "one", "two"]
    meta = read_metadata(path)
    assert meta["input_shape"] == [10, 10, 1] and meta["source"].endswith("model.keras")
    # GIF and BMP, whose decoders cannot emit 1 channel, still feed a grayscale model.
    from PIL import Image
    gray = raw_images(1, size=10, channels=1)[0, :, :, 0].astype("uint8")
    blobs = []
    for mode, fmt in (("L", "GIF"), ("RGB", "BMP")):
        buffer = io.BytesIO()
        Image.fromarray(gray).convert(mode).save(buffer, fmt)
        blobs.append(buffer.getvalue())
    served = tf.saved_model.load(str(path)).signatures
    via_bytes = served[BYTES_SIGNATURE](image_bytes=tf.constant(blobs))["probabilities"].numpy()
    pixels = np.repeat(gray[None, :, :, None].astype("float32"), 2, axis=0)
    np.testing.assert_allclose(via_bytes, served[DEFAULT_SIGNATURE](images=tf.constant(pixels))["probabilities"].numpy(),
                               atol=1e-6)
    txt = tmp_path / "names.txt"
    txt.write_text("a\nb\nc\n")
    path2 = export_for_serving(run / "model.keras", tmp_path / "sm", "gray", 7, class_names=txt, warmup=False, top_k=2)
    assert path2.name == "7" and read_class_names(path2) == ["a", "b", "c"]
    assert read_signatures(path2)[BYTES_SIGNATURE]["outputs"]["top_k_scores"]["shape"] == [-1, 2]


def _two_inputs():
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    return keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Add()([a, b]))))


def _any_size():
    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inputs)))


def _no_predictions_key():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, {"main": keras.layers.Dense(2)(x), "aux": keras.layers.Dense(2)(x)})


def _feature_map():
    inputs = keras.Input((8, 8, 3))
    return keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))


@pytest.mark.parametrize(
    "make, kwargs, error, match",
    [
        (lambda: tiny_model(classes=3), {"class_names": ["a", "b"]}, ValueError, "one name per class"),
        (lambda: tiny_model(classes=3), {"class_names": ["a", "a", "b"]}, ValueError, "unique"),
        (lambda: tiny_model(classes=3), {"class_names": ["a", "b\nc", "d"]}, ValueError, "single-line"),
        (lambda: tiny_model(classes=3), {"name": "../escape"}, ValueError, "`name`"),
        (lambda: tiny_model(classes=3), {"version": 0}, ValueError, "`version`"),
        (lambda: tiny_model(classes=3), {"top_k": 0}, ValueError, "`top_k`"),
        (lambda: tiny_model(classes=3), {"warmup": [0]}, ValueError, "`warmup`"),
        (lambda: tiny_model(classes=3), {"metadata": {"f": object()}}, ValueError, "`metadata`"),
        (lambda: tiny_model(classes=3), {"image_size": (5, 5)}, ValueError, "`image_size`"),
        (_two_inputs, {}, ValueError, "one image batch"),
        (_any_size, {}, ValueError, "image_size"),
        (_no_predictions_key, {}, ValueError, "'predictions'"),
        (_feature_map, {}, ValueError, "class scores"),
        (lambda: "missing.keras", {}, FileNotFoundError, "`model`"),
        (lambda: 42, {}, ValueError, "`model` must be a keras.Model"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path, make, kwargs, error, match):
    model = make()
    if model == "missing.keras":
        model = tmp_path / "missing.keras"
    with pytest.raises(error, match=match):
        export_for_serving(model, tmp_path, **{"name": "m", **kwargs})
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_not_a_keras_file(tmp_path):
    bad = tmp_path / "model.h5"
    bad.write_bytes(b"nope")
    with pytest.raises(ValueError, match=r"must be a \.keras file"):
        export_for_serving(bad, tmp_path)
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="could not be loaded"):
        export_for_serving(corrupt, tmp_path)


@pytest.mark.slow
def test_cli_export(tmp_path, capsys):
    model_file = tmp_path / "model.keras"
    tiny_model(classes=3, name="clinet").save(model_file)
    names = tmp_path / "names.txt"
    names.write_text("x\ny\nz\n")
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"test_accuracy": 0.5}))
    base = tmp_path / "saved_models"
    argv = ["export", str(model_file), "--name", "clinet", "--base-dir", str(base),
            "--class-names", str(names), "--no-warmup", "--metadata", str(metrics)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"Exported clinet version 1 to {base / 'clinet' / '1'}" in out
    assert not (base / "clinet" / "1" / "assets.extra" / "tf_serving_warmup_requests").exists()
    assert read_metadata(base / "clinet" / "1")["metadata"] == {"test_accuracy": 0.5}
    assert cli.main(argv + ["--version", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-cnn export: error: ") and "already exists" in err
    assert cli.main(argv + ["--version", "1", "--overwrite"]) == 0
    assert "graph: optimized (weights frozen, 0 BatchNormalization(s) folded" in capsys.readouterr().out
    assert cli.main(argv + ["--version", "2", "--no-optimize"]) == 0
    assert "graph: plain (--no-optimize)" in capsys.readouterr().out
    assert read_metadata(base / "clinet" / "2")["optimized"] is None
    assert cli.main(["export", str(tmp_path / "nope.keras")]) == 2
    assert "keras-cnn export: error: `MODEL_FILE` must be an existing file" in capsys.readouterr().err


def test_metadata_records_the_network_identity(tmp_path):
    from keras_cnn.models import build_model

    model = build_model("lenet5", classes=3, width_multiplier=0.5)
    meta = read_metadata(export_for_serving(model, tmp_path, warmup=False))
    assert meta["network"]["arch"] == "lenet5" and meta["network"]["preprocessing"] == "unit"
    assert meta["network"]["build_args"]["width_multiplier"] == 0.5 and meta["network"]["weights"] is None
    foreign = read_metadata(export_for_serving(bn_model(), tmp_path, "foreign", warmup=False))
    assert foreign["network"] is None


def test_a_new_version_must_keep_the_serving_contract(tmp_path):
    # TF Serving serves every version under a name as one model: another input size or other classes
    # under an existing name would silently replace the model clients expect.
    import shutil

    from keras_cnn.export.saved_model import check_export_name

    first = export_for_serving(tiny_model(classes=3, size=8, channels=1), tmp_path, "m", class_names=["a", "b", "c"],
                               warmup=False)
    for model, names, top_k, changed in (
        (tiny_model(classes=3, size=8, channels=3), ["a", "b", "c"], 5, "input shape"),
        (tiny_model(classes=3, size=8, channels=1), ["x", "y", "z"], 5, "class names"),
        (tiny_model(classes=4, size=8, channels=1), ["a", "b", "c", "d"], 5,
         "number of classes, class names, top-k size"),
        (tiny_model(classes=3, size=8, channels=1), ["a", "b", "c"], 2, "top-k size"),
    ):
        with pytest.raises(ValueError) as info:
            export_for_serving(model, tmp_path, "m", class_names=names, warmup=False, top_k=top_k)
        message = str(info.value)
        assert f"(differs in: {changed})" in message, message
        assert "version 1 takes float32 [-1, 8, 8, 1] pixels [0, 255], 3 classes ('a', 'b', 'c'), top_k 3" in message
        assert "Export under another name (`name`)" in message and message.endswith("Received: name='m'")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1"]  # nothing written
    # The same check before a long run (train, tune): the run's image shape and classes.
    check_export_name(tmp_path, "m", (8, 8, 1), ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"differs in: input shape\).*Received: name='m'"):
        check_export_name(tmp_path, "m", (16, 16, 3), ["a", "b", "c"])
    check_export_name(tmp_path, "other", (16, 16, 3), ["a", "b", "c"])  # a new name takes anything
    # A version whose contract cannot be read is not silently built upon.
    shutil.copytree(first, tmp_path / "m" / "2")
    (tmp_path / "m" / "2" / "assets.extra" / "keras_cnn.json").unlink()
    with pytest.raises(ValueError, match=r"m/2 has no readable keras_cnn metadata .*absent"):
        check_export_name(tmp_path, "m", (8, 8, 1), ["a", "b", "c"])
