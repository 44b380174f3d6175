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
