"""The run fingerprint and run-directory states (fast: no training)."""

import json
import os

import pytest

from keras_cnn.training import rundir


def test_folder_fingerprint_follows_the_files(tmp_path):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(b"1234")
    first = rundir.data_fingerprint(root)
    assert first["files"] == 1 and first["source"] == str(root.resolve())
    assert rundir.data_fingerprint(str(root)) == first  # same folder, same fingerprint
    (root / "a" / "x.png").write_bytes(b"12345")  # another size
    assert rundir.data_fingerprint(root)["digest"] != first["digest"]
    os.utime(root / "a" / "x.png", ns=(1, 1))  # another mtime
    second = rundir.data_fingerprint(root)
    (root / "a" / ".hidden").write_bytes(b"ignored")
    assert rundir.data_fingerprint(root) == second
    (root / "b").mkdir()
    (root / "b" / "y.png").write_bytes(b"1")
    assert rundir.data_fingerprint(root)["files"] == 2


def test_tfds_and_digits_fingerprints():
    assert rundir.data_fingerprint("digits") == {"source": "digits"}
    fp = rundir.data_fingerprint("tfds:mnist")
    assert fp["source"] == "tfds:mnist" and fp["version"]  # tfds' version of the dataset code


def test_differences_name_nested_fields():
    old = {"model": "lenet5", "recipe": {"epochs": 1, "lr": 0.1}, "data": {"digest": "a"}}
    new = {"model": "lenet5", "recipe": {"epochs": 2, "lr": 0.1}, "data": {"digest": "b"}, "seed": 0}
    assert rundir.differences(old, new) == [
        "data.digest (stored 'a', now 'b')", "recipe.epochs (stored 1, now 2)", "seed (stored '<absent>', now 0)"
    ]


def test_run_directory_states(tmp_path):
    fp = {"model": "lenet5", "seed": 0}
    run = tmp_path / "run"
    assert rundir.inspect_run_dir(run, fp, resume=True).status == "new"
    rundir.start_run_dir(run, {"fingerprint": fp}, state=rundir.RunState("new"))
    assert rundir.inspect_run_dir(run, fp, resume=True) == rundir.RunState("resume", 0)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "training_metadata.json").write_text('{"epoch": 3}')
    assert rundir.inspect_run_dir(run, fp, resume=True).done_epochs == 3
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.5, "fingerprint_digest": rundir.digest(fp)}))
    state = rundir.inspect_run_dir(run, fp, resume=True)
    assert state.status == "finished" and state.metrics["accuracy"] == 0.5
    with pytest.raises(ValueError, match=r"different run: seed \(stored 0, now 1\)"):
        rundir.inspect_run_dir(run, {**fp, "seed": 1}, resume=True)
    assert rundir.inspect_run_dir(run, {**fp, "seed": 1}, resume=False).status == "new"
    (run / "checkpoints" / "training_metadata.json").write_text("{")
    (run / "metrics.json").unlink()
    with pytest.raises(ValueError, match="training_metadata.json"):
        rundir.inspect_run_dir(run, fp, resume=True)
    # Starting over clears the old run's checkpoints, history and metrics.
    (run / "history.csv").write_text("epoch,loss\n0,1\n")
    rundir.start_run_dir(run, {"fingerprint": fp}, state=rundir.RunState("new"))
    assert not (run / "checkpoints").exists() and not (run / "history.csv").exists()


def test_checkpoints_without_a_config_are_refused(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(ValueError, match="checkpoints but no config.json"):
        rundir.inspect_run_dir(tmp_path / "run", {"model": "x"}, resume=True)


def test_legacy_config_without_a_fingerprint_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text('{"model": "lenet5"}')
    with pytest.raises(ValueError, match="without a run fingerprint"):
        rundir.inspect_run_dir(tmp_path / "run", {"model": "lenet5"}, resume=True)


def test_readme_txt_says_how_to_load_the_model(tmp_path):
    # keras.models.load_model alone fails on our layers ("Could not locate class 'ConvBN'").
    (tmp_path / "model.keras").write_bytes(b"")
    rundir.write_readme(tmp_path, title="t")
    line = next(ln for ln in (tmp_path / "README.txt").read_text().splitlines() if "model.keras" in ln)
    assert "keras_cnn.load_model(RUN_DIR)" in line and "keras.models.load_model after `import keras_cnn`" in line
