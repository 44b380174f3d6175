"""Prediction clients and `keras-cnn predict` run locally: SavedModel, Keras model, per-image errors.

The REST and gRPC clients are tested end to end in tests/test_serving_e2e.py."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn import cli
from keras_cnn.export import (
    export_for_serving,
    predict_keras,
    predict_saved_model,
)
from keras_cnn.layers.preprocess import Preprocess

NAMES = ["zero", "one", "two", "three", "four", "five"]


def tiny_model():
    inputs = keras.Input((12, 12, 3))
    x = Preprocess("unit")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    init = keras.initializers.RandomNormal(stddev=4.0, seed=3)
    outputs = keras.layers.Dense(6, activation="softmax", kernel_initializer=init, name="predictions")(x)
    return keras.Model(inputs, outputs, name="pnet")


def make_setup(root):
    """A tiny trained-like run (model.keras + class_names.json), its export, and test images under root."""
    model = tiny_model()
    run = root / "runs" / "pnet"
    run.mkdir(parents=True)
    model.save(run / "model.keras")
    (run / "class_names.json").write_text(json.dumps(NAMES))
    path = export_for_serving(run, root / "saved_models", warmup=False)
    rng = np.random.default_rng(0)
    images = []
    for i, (size, fmt) in enumerate(((12, "png"), (20, "png"), (16, "jpeg"))):
        pixels = rng.integers(0, 256, (size, size + 2, 3)).astype("uint8")
        data = tf.io.encode_png(pixels) if fmt == "png" else tf.io.encode_jpeg(pixels, quality=95)
        file = root / f"img{i}.{'jpg' if fmt == 'jpeg' else 'png'}"
        file.write_bytes(data.numpy())
        images.append(file)
    not_image = root / "notes.txt"
    not_image.write_text("definitely not an image")
    return {"root": root, "run": run, "path": path, "images": images, "not_image": not_image, "model": model}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_setup(tmp_path_factory.mktemp("predict"))


def reference(setup):
    """Top classes computed from the Keras model on images decoded + resized like the server."""
    batch = []
    for file in setup["images"]:
        image = tf.io.decode_image(file.read_bytes(), channels=3, expand_animations=False)
        batch.append(tf.image.resize(tf.cast(image, tf.float32), (12, 12)))
    return setup["model"](tf.stack(batch), training=False).numpy()


def assert_matches_reference(predictions, setup, k=5, atol=1e-5):
    probs = reference(setup)
    assert [p.source for p in predictions] == [str(f) for f in setup["images"]]
    for prediction, row in zip(predictions, probs):
        order = np.argsort(-row, kind="stable")[:k]
        assert prediction.classes == order.tolist()
        assert prediction.class_names == [NAMES[i] for i in order]
        np.testing.assert_allclose(prediction.scores, row[order], atol=atol)


def test_saved_model_and_keras_model_agree(setup):
    local = predict_saved_model(setup["path"], setup["images"])  # serving_bytes: decoded inside
    assert_matches_reference(local, setup)
    latest = predict_saved_model(setup["path"].parent, setup["images"][:1])  # model dir -> highest version
    assert latest[0].classes == local[0].classes and latest[0].scores == pytest.approx(local[0].scores, abs=1e-6)
    floats = predict_saved_model(setup["path"], setup["images"], top_k=2, signature="serving_default")
    assert_matches_reference(floats, setup, k=2)
    keras_run = predict_keras(setup["run"], setup["images"], top_k=3)  # class_names.json beside it
    assert_matches_reference(keras_run, setup, k=3)
    assert keras_run[0].to_dict()["top_k"][0] == {"class": keras_run[0].classes[0],
                                                   "name": keras_run[0].class_names[0],
                                                   "score": pytest.approx(keras_run[0].scores[0])}


@pytest.mark.parametrize("call", ["saved_model", "saved_model_floats", "keras"])
def test_a_bad_image_gets_its_own_error_and_the_others_are_predicted(setup, call, tmp_path):
    def run(images):
        if call == "saved_model":
            return predict_saved_model(setup["path"], images)
        if call == "saved_model_floats":
            return predict_saved_model(setup["path"], images, signature="serving_default")
        return predict_keras(setup["run"] / "model.keras", images)

    cut = tmp_path / "cut.png"
    cut.write_bytes(setup["images"][1].read_bytes()[:60])  # PNG signature, then a broken stream
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    good = setup["images"]
    inputs = [good[0], setup["not_image"], good[1], setup["root"] / "missing.png", cut, setup["root"], empty, good[2]]
    results = run(inputs)
    assert [r.source for r in results] == [str(f) for f in inputs]
    assert [r.ok for r in results] == [True, False, True, False, False, False, False, True]
    assert_matches_reference([results[0], results[2], results[7]], setup)
    errors = {r.source: r.error for r in results if not r.ok}
    assert errors[str(setup["not_image"])].startswith("not an image (expected JPEG, PNG, GIF, BMP)")
    assert errors[str(setup["root"] / "missing.png")] == "no such file"
    assert errors[str(cut)].startswith("could not be decoded as an image")
    assert errors[str(setup["root"])] == "is a directory, not an image file"
    assert errors[str(empty)].startswith("empty file")
    assert results[1].to_dict() == {"image": str(setup["not_image"]), "error": results[1].error}
    only_bad = run([setup["not_image"]])
    assert len(only_bad) == 1 and not only_bad[0].ok
    with pytest.raises(ValueError, match="`images` must name at least one image"):
        run([])


def test_cli_reports_each_bad_image_and_exits_1(setup, capsys, tmp_path):
    cut = tmp_path / "cut.png"
    cut.write_bytes(setup["images"][1].read_bytes()[:60])
    good = [str(f) for f in setup["images"][:2]]
    argv = ["predict", str(cut), good[0], str(setup["not_image"]), good[1], "--saved-model", str(setup["path"])]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert captured.out.startswith(f"{good[0]}\n  1. ") and f"\n{good[1]}\n  1. " in captured.out
    lines = captured.err.splitlines()
    assert lines[0].startswith(f"keras-cnn predict: error: {cut}: could not be decoded as an image")
    assert lines[1].startswith(f"keras-cnn predict: error: {setup['not_image']}: not an image")
    assert lines[-1] == "keras-cnn predict: 2 of 4 images could not be predicted"
    assert cli.main([*argv, "--json"]) == 1
    entries = json.loads(capsys.readouterr().out)
    assert [sorted(e) for e in entries] == [["error", "image"], ["image", "top_k"], ["error", "image"],
                                            ["image", "top_k"]]
    assert cli.main(["predict", *good, "--model", str(setup["run"])]) == 0  # all fine: exit 0


# --------------------------------------------------------------------------- CLI


def test_cli_local(setup, capsys):
    images = [str(f) for f in setup["images"]]
    assert cli.main(["predict", *images, "--saved-model", str(setup["path"]), "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    probs = reference(setup)
    best = NAMES[int(probs[0].argmax())]
    assert out.startswith(f"{images[0]}\n  1. {best}")
    assert out.count("  1. ") == 3 and out.count("  2. ") == 3 and "  3. " not in out
    assert cli.main(["predict", images[0], "--model", str(setup["run"]), "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["image"] == images[0] and entry["top_k"][0]["name"] == best and len(entry["top_k"]) == 5


@pytest.mark.parametrize(
    "argv, message",
    [
        (["IMG", "--saved-model", "SM", "--model", "RUN"], "exactly one of"),
        (["IMG"], "exactly one of"),
        (["IMG", "--saved-model", "SM", "--version", "2"], "`--version`"),
        (["IMG", "--server", "http://x:1"], "`--model` must name the served model"),
        (["IMG", "--server", "http://x:1", "--grpc", "x:1", "--model", "m"], "one of `--server`"),
        (["IMG", "--saved-model", "SM", "--top-k", "0"], "`--top-k`"),
        (["IMG", "--saved-model", "NOWHERE"], "`--saved-model` must be an existing directory"),
        (["IMG", "--model", "NOWHERE.keras"], "`--model` must be an existing file"),
    ],
)
def test_cli_bad_usage_exits_2(setup, capsys, argv, message):
    subst = {"IMG": str(setup["images"][0]), "NOTIMG": str(setup["not_image"]), "SM": str(setup["path"]),
             "RUN": str(setup["run"]), "NOWHERE": str(setup["root"] / "nowhere"),
             "NOWHERE.keras": str(setup["root"] / "nowhere.keras")}
    assert cli.main(["predict", *[subst.get(a, a) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-cnn predict: error: ") and message in err


def test_cli_no_images_is_a_usage_error(capsys):
    assert cli.main(["predict", "--saved-model", "x"]) == 2
    assert "keras-cnn predict: error: the following arguments are required: IMAGE" in capsys.readouterr().err
