"""LiteRT and ONNX exports: conversion, verification before writing, refusal, predict and verify-export."""

import json
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.cli import main
from keras_cnn.export import formats
from keras_cnn.export._deps import MissingExtraError
from keras_cnn.export.formats import ExportOptions, ExportRefused, export_model, predict_model, verify_any

pytestmark = pytest.mark.slow  # a trained run and TFLite/ONNX conversions


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A LeNet-5 trained on the embedded digits for 3 epochs, with held-out sample PNGs."""
    from keras_cnn.training.demo import write_samples

    root = tmp_path_factory.mktemp("formats")
    run_dir = root / "run"
    assert main(["train", "lenet5", "--data", "digits", "--epochs", "3", "--out", str(run_dir),
                 "--no-export", "--verbose", "0"]) == 0
    samples = write_samples(run_dir)
    return {"root": root, "run": run_dir, "samples": samples,
            "labels": [int(p.name.split("_")[0][len("digit"):]) for p in samples]}


@pytest.fixture(scope="module")
def exports(run):
    """The CLI's int8 LiteRT and ONNX exports of the run (what the README's commands do)."""
    out = {}
    for key, argv in (("litert-int8", ["--format", "litert", "--quantize", "int8"]), ("onnx", ["--format", "onnx"])):
        target = run["root"] / key
        assert main(["export", str(run["run"]), *argv, "--out", str(target)]) == 0
        out[key] = target
    return out


def _top1(capsys, model, samples):
    assert main(["predict", "--model", str(model), "--json", *map(str, samples)]) == 0
    answers = json.loads(capsys.readouterr().out)
    return [a["top_k"][0]["name"] for a in answers]


def test_cli_exports_hold_the_model_labels_and_metadata(exports, run):
    litert_dir, onnx_dir = exports["litert-int8"], exports["onnx"]
    assert sorted(p.name for p in litert_dir.iterdir()) == ["keras_cnn.json", "labels.txt", "model.tflite"]
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["keras_cnn.json", "labels.txt", "model.onnx"]
    info = json.loads((litert_dir / "keras_cnn.json").read_text())
    assert info["export_format"] == "litert" and info["quantization"]["mode"] == "int8"
    assert info["quantization"]["int8_io"] is False and info["input_dtype"] == "float32"
    assert info["quantization"]["calibration"] == "digits: 100 images of the train split"
    assert info["network"]["arch"] == "lenet5" and info["preprocessing"] == "unit"
    assert info["input_shape"] == [32, 32, 1] and info["pixel_range"] == [0, 255]
    check = info["verification"]
    assert check["passed"] and not check["forced"] and check["check"] == "accuracy_drop"
    assert check["data"] == "digits: 359 images of the test split" and check["images"] == 359
    assert check["accuracy_drop_points"] <= 1.0 and check["top1_agreement"] >= 0.97
    assert (litert_dir / "labels.txt").read_text().split() == [str(i) for i in range(10)]
    onnx_info = json.loads((onnx_dir / "keras_cnn.json").read_text())
    assert onnx_info["quantization"]["mode"] == "none" and onnx_info["runtime"] == "onnxruntime"
    assert onnx_info["verification"]["max_abs_diff"] <= 1e-4 and onnx_info["verification"]["tolerance"] == 1e-4
    # int8 weights: about a quarter of the float32 ONNX file (same weights)
    assert (litert_dir / "model.tflite").stat().st_size < 0.35 * (onnx_dir / "model.onnx").stat().st_size


def test_predict_gives_the_same_digits_for_every_format(exports, run, capsys):
    keras_classes = _top1(capsys, run["run"], run["samples"])
    assert sum(c == str(label) for c, label in zip(keras_classes, run["labels"])) >= 4
    for model in (exports["litert-int8"] / "model.tflite", exports["onnx"] / "model.onnx", exports["onnx"]):
        assert _top1(capsys, model, run["samples"]) == keras_classes, model


def test_verify_export_passes_on_each_and_compares_with_the_run(exports, run, capsys):
    for path in (exports["litert-int8"] / "model.tflite", exports["onnx"]):
        assert main(["verify-export", str(path), "--model", str(run["run"]), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        names = [c["name"] for c in report["checks"]]
        assert report["ok"] and "matches the Keras model" in names and "verified at export" in names


def test_float_litert_matches_keras_within_tolerance(run):
    for quantize, tolerance in (("none", 1e-4), ("float16", 1e-2)):
        result = export_model(run["run"], run["root"] / f"f-{quantize}", format="litert", quantize=quantize)
        check = result.verification
        assert check["check"] == "max_abs_diff" and check["tolerance"] == tolerance
        assert check["max_abs_diff"] <= tolerance and check["top1_agreement"] == 1.0
        assert check["images"] == 256  # a batch of the held-out split


def test_int8_io_takes_int8_pixels_and_answers_alike(run, exports, capsys):
    target = run["root"] / "int8-io"
    assert main(["export", str(run["run"]), "--format", "litert", "--quantize", "int8", "--int8-io",
                 "--out", str(target)]) == 0
    capsys.readouterr()
    info = json.loads((target / "keras_cnn.json").read_text())
    assert info["input_dtype"] == "int8" and info["quantization"]["int8_io"] is True
    runner, _, _, _ = formats.open_model_file(target / "model.tflite")
    assert runner.input_dtype == "int8"
    assert _top1(capsys, target / "model.tflite", run["samples"]) == _top1(
        capsys, exports["litert-int8"] / "model.tflite", run["samples"])


def test_ruinous_calibration_is_refused_with_its_figures_and_nothing_written(run, capsys):
    black = run["root"] / "black"
    for label in ("a", "b"):
        (black / label).mkdir(parents=True)
        (black / label / "0.png").write_bytes(tf.io.encode_png(np.zeros((32, 32, 1), "uint8")).numpy())
    target = run["root"] / "ruined"
    argv = ["export", str(run["run"]), "--format", "litert", "--quantize", "int8", "--calibration-data", str(black),
            "--calibration-steps", "1", "--out", str(target)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("keras-cnn export: error: the litert int8 export failed its verification")
    assert "drop" in err[0] and "(at most 1)" in err[0] and "nothing written" in err[0] and "--force" in err[0]
    assert not target.exists() and not list(run["root"].glob(".ruined*"))
    # --force writes it, says so, and verify-export refuses it afterwards
    assert main([*argv, "--force"]) == 0
    captured = capsys.readouterr()
    assert "written because of --force" in captured.err
    info = json.loads((target / "keras_cnn.json").read_text())
    assert info["verification"]["forced"] and info["verification"]["accuracy_drop_points"] > 50
    assert main(["verify-export", str(target)]) == 1
    assert "verified at export" in capsys.readouterr().err


def test_library_refusal_carries_the_figures(run):
    with pytest.raises(ExportRefused) as info:
        export_model(run["run"], run["root"] / "zeros", format="litert", quantize="int8",
                     options=ExportOptions(calibration_data=np.zeros((1, 32, 32, 1), "float32")))
    figures = info.value.verification
    assert not figures["passed"] and figures["accuracy_drop_points"] > 1.0
    assert figures["accuracy_keras"] - figures["accuracy_export"] > 0.01
    assert not (run["root"] / "zeros").exists()


def test_truncated_files_are_one_line_naming_the_file(exports, run, capsys):
    for source in (exports["litert-int8"] / "model.tflite", exports["onnx"] / "model.onnx"):
        cut = run["root"] / f"cut{source.suffix}"
        cut.write_bytes(source.read_bytes()[:2000])
        assert main(["predict", "--model", str(cut), str(run["samples"][0])]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(cut) in err[0] and "could not be loaded" in err[0], err
        assert main(["verify-export", str(cut)]) == 1
        assert "load with" in capsys.readouterr().err


def test_flags_of_another_format_and_existing_exports_are_refused(exports, run, capsys):
    cases = [
        (["--format", "onnx", "--quantize", "int8"], "`--quantize` applies to --format='litert'"),
        (["--format", "litert", "--quantize", "dynamic", "--int8-io"], "`--int8-io` applies to"),
        (["--format", "litert", "--version", "3"], "`--version` applies to --format saved_model"),
        (["--out", "x"], "`--out` applies to --format litert|onnx"),
        (["--format", "litert", "--calibration-data", "digits"], "`--calibration-data` applies to"),
        (["--format", "onnx", "--out", str(exports["onnx"])], "already exists"),
    ]
    for argv, message in cases:
        assert main(["export", str(run["run"]), *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)


def test_a_model_without_its_run_needs_held_out_data_for_int8(run, tmp_path, caplog):
    import keras

    model = keras.models.load_model(run["run"] / "model.keras")
    with pytest.raises(ValueError, match="`calibration_data` is required"):
        export_model(model, tmp_path / "a", format="litert", quantize="int8")
    calibration = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 1)).astype("float32")
    with pytest.raises(ValueError, match="`eval_data` is required"):
        export_model(model, tmp_path / "b", format="litert", quantize="int8",
                     options=ExportOptions(calibration_data=calibration))
    result = export_model(model, tmp_path / "c", format="onnx")  # float: compared on random pixels, loudly
    assert result.verification["data"].startswith("16 images of random pixels")
    assert "random pixels" in caplog.text
    result = export_model(model, tmp_path / "d", format="litert", quantize="dynamic",
                          options=ExportOptions(eval_data="digits"))
    assert result.verification["data"] == "digits: 359 images of the test split"


def test_without_the_deploy_extra_one_line_names_it(run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'keras-cnn\[deploy\]'"):
        formats.check_export_request("litert", "none", ExportOptions())
    assert main(["export", str(run["run"]), "--format", "litert", "--out", str(run["root"] / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'ai-edge-litert' package of the 'deploy' extra" in err[0]
    assert not (run["root"] / "nope").exists()


def test_predict_model_dispatches_on_what_it_is_given(exports, run):
    a = predict_model(exports["litert-int8"], run["samples"], top_k=3)  # the export directory
    b = predict_model(exports["litert-int8"] / "model.tflite", run["samples"], top_k=3)
    assert [p.classes for p in a] == [p.classes for p in b] and all(len(p.classes) == 3 for p in a)
    with pytest.raises(ValueError, match="`signature` applies to SavedModels"):
        predict_model(exports["onnx"], run["samples"], signature="serving_default")
    report = verify_any(exports["onnx"])
    assert report.ok and report.kind == "ONNX"
