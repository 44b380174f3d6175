"""Runs a user can trust, at the CLI: resume by fingerprint, finished reruns, refusals, data checks.

Tiny runs (LeNet-5 at 16x16 on a few dozen images, one or two epochs) through
``keras_cnn.cli.main``, as a user would type them.
"""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from keras_cnn.cli import main
from keras_cnn.training.callbacks import read_history

pytestmark = pytest.mark.slow  # each test trains LeNet-5 at least once (a few seconds)

TINY = ["--image-size", "16,16", "--batch-size", "16", "--augment", "none", "--verbose", "0"]


def _folder(root, colours, per_class=12, seed=0):
    """An image folder: one solid-colour (plus noise) class per entry of ``colours``."""
    rng = np.random.default_rng(seed)
    for name, colour in colours.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.integers(-20, 20, size=(12, 12, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(root / name / f"{name}_{i}.png")
    return root


TWO = {"red": (220, 30, 30), "green": (30, 220, 30)}


def _train(tmp_path, *extra, data=None, out="run", exports="exports", epochs=1):
    argv = ["train", "lenet5", "--epochs", str(epochs), *TINY, "--out", str(tmp_path / out),
            "--export-dir", str(tmp_path / exports)]
    if data is not None:
        argv += ["--data", str(data)]
    else:
        argv += ["--max-examples", "120"]
    return main([*argv, *extra])


def test_rerun_of_a_finished_run_trains_and_exports_nothing(tmp_path, capsys):
    assert _train(tmp_path) == 0
    first = capsys.readouterr().err  # the library's messages: stderr (`keras-cnn: ...`)
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert "checkpoints were removed" in first and not (run / "checkpoints").exists()
    assert "README.txt" in {p.name for p in run.iterdir()}
    assert "model.keras" in (run / "README.txt").read_text()
    versions = sorted(p.name for p in (tmp_path / "exports" / "lenet5").iterdir())
    assert versions == ["1"]

    assert _train(tmp_path) == 0
    out, err = capsys.readouterr()
    assert "finished before" in err and "nothing was trained or exported" in err
    assert out.startswith("stored result of the finished run (--no-resume trains again):")
    assert f"test accuracy: {metrics['accuracy']:.4f}" in out  # the stored result
    assert sorted(p.name for p in (tmp_path / "exports" / "lenet5").iterdir()) == ["1"]  # no new version
    assert json.loads((run / "metrics.json").read_text()) == metrics  # untouched


def test_a_run_stopped_between_its_export_and_metrics_is_not_exported_twice(tmp_path, capsys, monkeypatch):
    import keras_cnn._io as io

    write = io.atomic_write_json

    def stop_at_metrics(path, obj):
        if str(path).endswith("metrics.json"):
            raise KeyboardInterrupt  # Ctrl-C after the export, before the run is marked finished
        return write(path, obj)

    monkeypatch.setattr(io, "atomic_write_json", stop_at_metrics)
    assert _train(tmp_path) == 130
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert sorted(p.name for p in (tmp_path / "exports" / "lenet5").iterdir()) == ["1"]
    monkeypatch.setattr(io, "atomic_write_json", write)
    capsys.readouterr()
    assert _train(tmp_path) == 0
    err = capsys.readouterr().err
    assert "exported by this run before it was stopped; not exported again" in err
    assert sorted(p.name for p in (tmp_path / "exports" / "lenet5").iterdir()) == ["1"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["export_path"] == str(tmp_path / "exports" / "lenet5" / "1")
    # Starting over is another attempt: a new version.
    assert _train(tmp_path, "--no-resume") == 0
    assert sorted(p.name for p in (tmp_path / "exports" / "lenet5").iterdir()) == ["1", "2"]


def test_other_data_in_the_same_run_directory_is_refused(tmp_path, capsys):
    a = _folder(tmp_path / "A", TWO, seed=0)
    b = _folder(tmp_path / "B", {"cat": (200, 200, 30), "dog": (30, 30, 200)}, seed=1)
    assert _train(tmp_path, data=a, exports="e") == 0
    config_before = (tmp_path / "run" / "config.json").read_text()
    capsys.readouterr()
    assert _train(tmp_path, data=b, exports="e") == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-cnn train: error: `--out` holds a different run:")
    assert "data.digest" in err and "data.source" in err
    assert "--no-resume" in err and "another --out" in err and "resume=False" not in err
    assert (tmp_path / "run" / "config.json").read_text() == config_before  # nothing changed
    # --no-resume starts over on B: B's class names, one epoch.
    # B's classes under A's export name: another serving contract, refused before training.
    assert _train(tmp_path, "--no-resume", data=b, exports="e") == 2
    assert "--export-name" in capsys.readouterr().err
    assert _train(tmp_path, "--no-resume", "--export-name", "lenet5_b", data=b, exports="e") == 0
    assert json.loads((tmp_path / "run" / "class_names.json").read_text()) == ["cat", "dog"]
    assert sorted(p.name for p in (tmp_path / "e" / "lenet5").iterdir()) == ["1"]
    assert sorted(p.name for p in (tmp_path / "e" / "lenet5_b").iterdir()) == ["1"]


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt  # as Ctrl-C after the first epoch's checkpoint


def test_unfinished_run_resumes_and_says_from_which_epoch(tmp_path, capsys):
    from keras_cnn.training import train

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train("lenet5", "digits", epochs=2, image_size=16, batch_size=16, augment="none", verbose=0,
              max_examples=120, out_dir=run, export=False, callbacks=[_StopAfterFirstEpoch()])
    assert not (run / "metrics.json").exists()
    assert read_history(run / "history.csv")["epoch"] == [0]
    capsys.readouterr()
    assert _train(tmp_path, "--no-export", epochs=2) == 0
    assert "resuming from epoch 1 of 2" in capsys.readouterr().err
    assert read_history(run / "history.csv")["epoch"] == [0, 1]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2


@pytest.mark.parametrize("damage", ["config.json", "metrics.json"])
def test_a_corrupt_run_file_is_an_error_naming_it(tmp_path, capsys, damage):
    assert _train(tmp_path, "--no-export") == 0
    (tmp_path / "run" / damage).write_text('{"model": "lenet5", truncated')
    capsys.readouterr()
    assert _train(tmp_path, "--no-export") == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-cnn train: error: The run file")
    assert str(tmp_path / "run" / damage) in err and "--no-resume" in err


def test_a_finished_run_without_its_config_is_refused_not_retrained(tmp_path, capsys):
    assert _train(tmp_path, "--no-export") == 0
    run = tmp_path / "run"
    metrics = (run / "metrics.json").read_text()
    model = (run / "model.keras").read_bytes()
    (run / "config.json").unlink()  # as the corrupt-config message once advised
    capsys.readouterr()
    assert _train(tmp_path, "--no-export") == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-cnn train: error: `--out` holds files (") and "model.keras" in err
    assert "metrics.json" in err and "but no config.json" in err and "--no-resume" in err
    assert (run / "metrics.json").read_text() == metrics and (run / "model.keras").read_bytes() == model
    assert _train(tmp_path, "--no-export", "--no-resume") == 0  # asked for: replaced
    assert (run / "config.json").is_file()


# ------------------------------------------------------------------------------------ data checks
def test_one_class_folder_is_refused(tmp_path, capsys):
    data = _folder(tmp_path / "one", {"red": (220, 30, 30)})
    assert _train(tmp_path, data=data) == 2
    err = capsys.readouterr().err
    assert "at least two classes" in err and "--data" in err
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_empty_class_folder_is_named(tmp_path, capsys):
    data = _folder(tmp_path / "d", TWO)
    (data / "blue").mkdir()
    assert _train(tmp_path, data=data) == 2
    err = capsys.readouterr().err
    assert str(data / "blue") in err and "no image files" in err
    assert not (tmp_path / "run").exists()


def test_skipped_corrupt_files_are_counted_on_the_cli(tmp_path, capsys):
    data = _folder(tmp_path / "d", TWO)
    (data / "red" / "broken.png").write_bytes(b"not a png")
    (data / "green" / "zero.png").write_bytes(b"")
    assert _train(tmp_path, "--no-export", data=data) == 0
    err = capsys.readouterr().err
    assert "skipped 2 unreadable image file(s)" in err
    assert "broken.png" in err and "zero.png" in err


def test_split_emptied_by_max_examples_is_an_error(tmp_path, capsys):
    assert main(["train", "lenet5", "--max-examples", "8", "--validation-split", "0.05", *TINY,
                 "--out", str(tmp_path / "run"), "--no-export"]) == 2
    err = capsys.readouterr().err
    assert "`--validation-split`=0.05" in err and "validation split empty" in err and "--max-examples" in err
    assert not (tmp_path / "run").exists()


def test_output_that_is_not_a_terminal_gets_one_line_per_epoch(tmp_path, capsys):
    argv = ["train", "lenet5", "--epochs", "2", "--image-size", "16,16", "--batch-size", "16", "--augment", "none",
            "--max-examples", "120", "--no-export", "--out", str(tmp_path / "run")]
    assert main(argv) == 0  # no --verbose: captured stdout is not a terminal
    out = capsys.readouterr().out
    epoch_lines = [line for line in out.splitlines() if " - loss: " in line or "- accuracy:" in line]
    assert len(epoch_lines) == 2, out
    assert "\r" not in out and "━" not in out  # no progress bars redrawn in a log file


def test_an_export_name_serving_another_model_is_refused_before_training(tmp_path, capsys):
    # After the demo, saved_models/lenet5 serves digits (32x32x1, 10 classes); a colour run of lenet5 must
    # not become its next version.
    from keras_cnn.export import export_for_serving
    from keras_cnn.models import build_model

    digits = build_model("lenet5", input_shape=(32, 32, 1), classes=10)
    export_for_serving(digits, tmp_path / "exports", "lenet5", warmup=False)
    assert _train(tmp_path, data=_folder(tmp_path / "colours", TWO)) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-cnn train: error: ")
    assert "(differs in: input shape, number of classes, class names" in err
    assert "Export under another name (`--export-name`)" in err and err.rstrip().endswith("--export-name='lenet5'")
    assert not (tmp_path / "run" / "history.csv").exists()  # refused before training
    assert _train(tmp_path, "--export-name", "colours", data=tmp_path / "colours") == 0
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["colours", "lenet5"]
