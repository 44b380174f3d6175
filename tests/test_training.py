"""train / evaluate / strip_aux on tiny data with the real models, data and export modules."""

import json
import struct

import keras
import numpy as np
import pytest

from keras_cnn.data import load_data
from keras_cnn.models import build_model
from keras_cnn.training import evaluate, strip_aux, train
from keras_cnn.training.callbacks import read_history, trim_history

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width > 100 and height > 100


def tiny_googlenet(aux):
    return build_model(
        "googlenet",
        input_shape=(32, 32, 3),
        classes=4,
        stem="small",
        width_multiplier=0.125,
        modules_per_stage=(1, 3, 1),
        aux_logits=aux,
    )


# ------------------------------------------------------------------------------- strip_aux


def test_strip_aux_single_output_sharing_weights():
    net = tiny_googlenet(aux=True)
    assert sorted(net.output) == ["aux1", "aux2", "predictions"]
    infer = strip_aux(net)
    assert not isinstance(infer.output, dict)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(infer(x), net(x)["predictions"], atol=1e-6)
    # Shared weights: a change in the training model shows in the inference model.
    kernel = net.get_layer("predictions").kernel
    assert any(w is kernel for w in infer.weights)
    kernel.assign(kernel * 0.0)
    np.testing.assert_allclose(infer(x), np.full((2, 4), 0.25), atol=1e-6)
    assert len(infer.weights) < len(net.weights)  # the aux heads are gone


def test_strip_aux_leaves_single_output_models_and_rejects_bad_dicts():
    net = tiny_googlenet(aux=False)
    assert strip_aux(net) is net
    inputs = keras.Input((4,))
    odd = keras.Model(inputs, {"main": keras.layers.Dense(2)(inputs), "aux1": keras.layers.Dense(2)(inputs)})
    with pytest.raises(ValueError, match="predictions"):
        strip_aux(odd)
    with pytest.raises(ValueError, match="model"):
        strip_aux("not a model")


# ------------------------------------------------------------------------- end to end (lenet)


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lenet_run")
    result = train(
        "lenet5",
        "digits",
        epochs=2,
        max_examples=300,
        augment="rotate=10,translate=0.1",
        out_dir=root / "run",
        export_dir=root / "exports",
        export_name="tiny_lenet",
        verbose=0,
        keep_checkpoints=True,
    )
    return result, root


@pytest.mark.slow
def test_train_writes_every_artefact(lenet_run):
    result, root = lenet_run
    run = result.run_dir
    for name in ("model.keras", "class_names.json", "metrics.json", "history.csv", "config.json"):
        assert (run / name).is_file(), name
    assert_png(run / "learning_curves.png")
    assert_png(run / "confusion_matrix.png")
    assert any((run / "logs").rglob("events.out.tfevents*"))  # TensorBoard
    assert (run / "checkpoints" / "training_metadata.json").is_file()
    assert json.loads((run / "class_names.json").read_text()) == [str(i) for i in range(10)]
    # The export: export_dir/<name>/<version>/ with a SavedModel.
    assert result.export_path == root / "exports" / "tiny_lenet" / "1"
    assert (result.export_path / "saved_model.pb").is_file()
    assert result.metrics["export_path"] == str(result.export_path)
    # History: two epochs, train and validation.
    history = read_history(run / "history.csv")
    assert history["epoch"] == [0, 1]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(history)
    assert result.history["epoch"] == [0, 1]


@pytest.mark.slow
def test_metrics_match_the_saved_models_own_evaluation(lenet_run):
    result, _ = lenet_run
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["model"] == "lenet5"
    model = keras.models.load_model(result.run_dir / "model.keras")
    # The inference model takes raw 32x32x1 pixels, has one output and no augmenter.
    assert model.input_shape == (None, 32, 32, 1)
    assert model.output_shape == (None, 10)
    assert not any("augment" in layer.name for layer in model.layers)
    assert any(type(layer).__name__ == "Preprocess" for layer in model.layers)
    bundle = load_data("digits", image_size=32, channels=1, max_examples=300, seed=0)
    x, y = bundle.arrays("test")
    assert metrics["num_examples"] == len(y)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert metrics["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert metrics["loss"] == pytest.approx(loss, rel=1e-3)
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.sum() == len(y)
    pred = model.predict(x, verbose=0).argmax(-1)
    np.testing.assert_array_equal(np.diag(matrix), [np.sum((pred == y) & (y == k)) for k in range(10)])
    for k, name in enumerate(metrics["class_names"]):
        assert metrics["per_class_accuracy"][name] == pytest.approx(matrix[k, k] / matrix[k].sum())
    assert metrics["seconds"] > 0


@pytest.mark.slow
def test_evaluate_a_run_dir_reuses_its_test_split(lenet_run):
    result, _ = lenet_run
    metrics = evaluate(result.run_dir)
    assert metrics["split"] == "test"
    assert metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert metrics["confusion_matrix"] == result.metrics["confusion_matrix"]
    # A model object needs data.
    with pytest.raises(ValueError, match="data"):
        evaluate(result.model)
    val = evaluate(result.model, "digits", split="val", max_examples=300)
    assert val["split"] == "val" and val["num_examples"] == result.metrics["num_val"]


def test_evaluate_missing_run_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="run_dir_or_model"):
        evaluate(tmp_path / "nothing")


# ------------------------------------------------------------------ aux heads (GoogLeNet)


@pytest.mark.slow
def test_aux_heads_train_with_loss_weights_and_are_dropped(tmp_path):
    result = train(
        "googlenet",
        "digits",
        epochs=1,
        batch_size=256,  # one batch per split: one trace of each step, exact loss sums
        image_size=32,
        max_examples=200,
        augment_on="cpu",  # the recipe's flip,crop,color_shift on the tf.data path
        model_kwargs={"stem": "small", "width_multiplier": 0.125, "modules_per_stage": [1, 3, 1]},
        out_dir=tmp_path / "run",
        export=False,
        verbose=0,
    )
    h = result.history
    assert {"aux1_loss", "aux2_loss", "predictions_loss", "predictions_accuracy"} <= set(h)
    # Total loss = main + 0.3 * (aux1 + aux2)   (Szegedy et al., 2015).
    total = h["predictions_loss"][0] + 0.3 * (h["aux1_loss"][0] + h["aux2_loss"][0])
    assert h["loss"][0] == pytest.approx(total, rel=1e-3)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["aux_heads"] == 2 and config["augment"] == "flip,crop,color_shift=20"
    saved = keras.models.load_model(result.run_dir / "model.keras")
    assert not isinstance(saved.output, dict)
    assert saved.output_shape == (None, 10)
    assert not any(layer.name.startswith("aux") for layer in saved.layers)
    assert result.metrics["num_examples"] == 40


# ------------------------------------------------------------ mixed precision / XLA / checks


@pytest.mark.slow
def test_mixed_precision_is_scoped_and_saves_float32(tmp_path):
    before = keras.config.dtype_policy().name
    result = train(
        "lenet5",
        "digits",
        epochs=1,
        max_examples=150,
        augment="none",
        mixed_precision=True,
        out_dir=tmp_path / "run",
        export=False,
        verbose=0,
    )
    assert keras.config.dtype_policy().name == before == "float32"
    assert result.metrics["mixed_precision"] is True
    assert result.metrics["optimizer_steps"] >= 1
    saved = keras.models.load_model(result.run_dir / "model.keras")
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    x = np.zeros((1, 32, 32, 1), "float32")
    assert saved(x).dtype == "float32"
    assert np.isfinite(result.metrics["loss"])


@pytest.mark.slow
def test_xla_compiles_the_train_step(tmp_path):
    result = train(
        "lenet5",
        "digits",
        epochs=1,
        max_examples=150,
        augment="none",
        batch_size=128,  # one batch per split: one XLA compilation of each step
        jit_compile=True,
        out_dir=tmp_path / "run",
        export=False,
        verbose=0,
    )
    assert result.metrics["jit_compile"] is True
    assert result.history["epoch"] == [0]
    assert 0.0 <= result.metrics["accuracy"] <= 1.0


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"model": "no_such_net"}, "model"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": "3"}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"augment": "flip,bogus=3"}, "augment"),
        ({"augment_on": "gpu"}, "augment_on"),
        ({"strategy": "tpu_pod"}, "strategy"),
        ({"strategy": "multi_worker", "jit_compile": True}, "jit_compile"),  # dispatched to the loop
        ({"image_size": "32"}, "image_size"),
        ({"recipe": {"no_field": 1}}, "no_field"),
        ({"recipe": 3}, "recipe"),
        ({"early_stopping": 0}, "early_stopping"),
        ({"max_examples": 0}, "max_examples"),
        ({"mixed_precision": "yes"}, "mixed_precision"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(tmp_path, kwargs, arg):
    kwargs = {"model": "lenet5", **kwargs}
    with pytest.raises(ValueError, match=arg):
        train(data="digits", out_dir=tmp_path / "run", export=False, verbose=0, **kwargs)
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained


def test_trim_history_keeps_finished_epochs(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,1.0\n1,0.5\n2,0.4\n")
    trim_history(path, 2)
    assert read_history(path) == {"epoch": [0, 1], "loss": [1.0, 0.5]}
    trim_history(path, 0)
    assert not path.exists()


@pytest.mark.slow
def test_early_stopping_stops_when_validation_loss_rises(tmp_path):
    # A learning rate far too high for Adam makes the validation loss rise after the first epoch.
    result = train(
        "lenet5",
        "digits",
        epochs=6,
        max_examples=150,
        early_stopping=1,
        recipe={"learning_rate": 0.5},
        augment="none",
        out_dir=tmp_path / "run",
        export=False,
        verbose=0,
    )
    val = result.history["val_loss"]
    assert len(val) < 6 and result.metrics["epochs"] == len(val)
    assert val[-1] >= min(val[:-1])  # stopped because the last epoch did not improve
