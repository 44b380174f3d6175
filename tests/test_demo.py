"""`keras-cnn demo`: LeNet-5 on the embedded digits reaches >= 98% test accuracy and exports."""

import json
import time

import pytest

from keras_cnn.cli import main
from keras_cnn.data import load_data


@pytest.mark.slow
def test_demo_reaches_98_percent_and_exports(tmp_path, capsys):
    start = time.perf_counter()
    rc = main(["demo", "--out", str(tmp_path / "demo"), "--export-dir", str(tmp_path / "exports"), "--verbose", "0"])
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert rc == 0, out
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.98
    # The fixed stratified 20% test split of the 1,797 digits.
    assert metrics["num_examples"] == load_data("digits").num_test == 359
    assert metrics["model"] == "lenet5" and metrics["image_shape"] == [32, 32, 1]
    export = tmp_path / "exports" / "lenet5" / "1"
    assert (export / "saved_model.pb").is_file()
    assert f"export: {export}" in out
    assert f"{metrics['accuracy']:.2%}" in out
    # Two minutes on 2 idle cores; allow for a shared, busy machine.
    assert elapsed < 300


@pytest.mark.slow
def test_demo_writes_held_out_samples_that_predict_reads_and_a_rerun_trains_nothing(tmp_path, capsys):
    run, exports = tmp_path / "demo", tmp_path / "exports"
    argv = ["demo", "--out", str(run), "--export-dir", str(exports), "--epochs", "3"]
    assert main(argv) in (0, 1)  # 3 epochs may stay under 98%: the samples are what is tested here
    out = capsys.readouterr().out
    samples = sorted((run / "samples").glob("*.png"))
    assert len(samples) == 5 and f"keras-cnn predict --model {run} " in out
    labels = [int(p.name.split("_")[0][len("digit"):]) for p in samples]
    assert len(set(labels)) == 5  # distinct digits, labelled in the file name
    # Real held-out digits: the test split of the demo's data, at the model's input size.
    x_test, y_test = load_data("digits", image_size=32, channels=1, shuffle=False).arrays("test")
    from PIL import Image
    import numpy as np

    for path, label in zip(samples, labels):
        index = int(path.stem.split("_test")[1])
        assert y_test[index] == label
        pixels = np.asarray(Image.open(path), dtype="float32")
        np.testing.assert_allclose(pixels, np.clip(np.rint(x_test[index][..., 0]), 0, 255))
    assert "samples/" in (run / "README.txt").read_text()
    # `keras-cnn predict --model RUN SAMPLE` reads them.
    assert main(["predict", "--model", str(run), "--json", *map(str, samples)]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert len(predictions) == 5
    correct = sum(p["top_k"][0]["name"] == str(label) for p, label in zip(predictions, labels))
    assert correct >= 4, predictions  # the trained demo model recognises its held-out digits
    # A rerun of the finished demo trains and exports nothing.
    versions = sorted(p.name for p in (exports / "lenet5").iterdir())
    main(argv)
    out = capsys.readouterr().out
    assert "in an earlier run" in out and "nothing retrained" in out
    assert sorted(p.name for p in (exports / "lenet5").iterdir()) == versions
