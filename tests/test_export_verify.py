"""verify_export / keras-cnn verify-export: separate-process load, saved_model_cli, comparisons."""

import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn import cli
from keras_cnn.export import export_for_serving, verify_export
from keras_cnn.layers.preprocess import Preprocess


def tiny_model(name="vnet", seed=1):
    inputs = keras.Input((10, 10, 1))
    x = Preprocess("unit")(inputs)
    x = keras.layers.Conv2D(3, 3)(x)
    bn = keras.layers.BatchNormalization()
    x = keras.layers.ReLU()(bn(x))
    x = keras.layers.Flatten()(x)
    init = keras.initializers.RandomNormal(stddev=1.0, seed=seed)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", kernel_initializer=init)(x), name=name)
    rng = np.random.default_rng(seed)
    for weight in bn.weights:  # non-trivial statistics, so that folding them is visible
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    model = tiny_model()
    model.save(root / "model.keras")
    path = export_for_serving(model, root / "saved_models", "vnet", class_names=["a", "b", "c"])
    return root, path


@pytest.mark.slow
def test_full_verification_passes(export):
    root, path = export
    report = verify_export(path, model=root / "model.keras")
    assert report.ok, report.format()
    names = [c.name for c in report.checks]
    graph = next(c for c in report.checks if c.name == "serving graph")
    assert graph.detail == "optimized: weights frozen, 1 BatchNormalization(s) folded into convolutions"
    match = next(c for c in report.checks if c.name == "matches the Keras model")
    assert float(match.detail.split("max |diff| ")[1].split()[0]) <= 1e-4
    for expected in ("load in a separate process", "serving needs no keras_cnn code", "run serving_bytes on 3 PNGs",
                     "warm-up records replay", "outputs consistent", "serving_bytes matches serving_default",
                     "matches the Keras model", "saved_model_cli show", "saved_model_cli run"):
        assert expected in names
    assert next(c for c in report.checks if c.name == "warm-up records replay").detail == "2 records ran"
    table = report.signature_table()
    assert "serving_default  input   images             float   (-1, 10, 10, 1)" in table
    assert "serving_bytes    input   image_bytes        string  (-1,)" in table
    assert "top_k_class_names  string  (-1, 3)" in table
    assert report.format().endswith("verification OK")


@pytest.mark.slow
def test_cli_reports_a_model_mismatch(export, tmp_path, capsys):
    _, path = export
    other = tmp_path / "other.keras"
    tiny_model(seed=7).save(other)  # same architecture, other weights
    code = cli.main(["verify-export", str(path), "--model", str(other), "--no-saved-model-cli"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "[FAIL] matches the Keras model" in out and "[ok] load in a separate process" in out
    assert "signature        kind    name" in out  # the table is printed
    assert err.startswith("keras-cnn verify-export: error: 1 check(s) failed: matches the Keras model")


@pytest.mark.slow
def test_broken_export_fails_in_the_separate_process(export, tmp_path):
    _, path = export
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    shutil.rmtree(broken / "variables")
    report = verify_export(broken, saved_model_cli=False)
    assert not report.ok
    failed = {c.name: c.detail for c in report.failures}
    assert "load in a separate process" in failed and failed["load in a separate process"]


def test_missing_signatures_fail_without_running(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x * 2}, input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "other"), signatures={"predict_rows": module.f})
    report = verify_export(tmp_path / "other")
    assert not report.ok
    assert report.failures[0].name == "signatures present" and "serving_default" in report.failures[0].detail
    assert set(report.signatures) == {"predict_rows"}


def test_bad_arguments(export, tmp_path, capsys):
    _, path = export
    with pytest.raises(FileNotFoundError, match="`path`"):
        verify_export(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="saved_model.pb"):
        verify_export(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"`samples` must have shape \[N, 10, 10, 1\]"):
        verify_export(path, samples=np.zeros((2, 32, 32, 1)))
    with pytest.raises(ValueError, match="at least one image"):
        verify_export(path, samples=np.zeros((0, 10, 10, 1)))
    assert cli.main(["verify-export", str(tmp_path / "nothing")]) == 2
    assert "keras-cnn verify-export: error: `PATH` must be an existing" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="`model`"):
        verify_export(path, model=tmp_path / "missing.keras")
    with pytest.raises(FileNotFoundError, match="looks like a model directory"):
        verify_export(path.parent)
    assert cli.main(["verify-export", str(path), "--atol", "0"]) == 2
    assert "`--atol`" in capsys.readouterr().err
