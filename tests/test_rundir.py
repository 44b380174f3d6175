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


def _write_weights(path):
    import h5py
    import numpy as np

    with h5py.File(path, "w") as f:
        f["w"] = np.zeros(4096, "float32")


def test_run_directory_states(tmp_path):
    fp = {"model": "lenet5", "seed": 0}
    run = tmp_path / "run"
    assert rundir.inspect_run_dir(run, fp, resume=True).status == "new"
    rundir.start_run_dir(run, {"fingerprint": fp}, state=rundir.RunState("new"))
    assert rundir.inspect_run_dir(run, fp, resume=True) == rundir.RunState("resume", 0)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "training_metadata.json").write_text('{"epoch": 3}')
    _write_weights(run / "checkpoints" / "latest.weights.h5")  # what BackupAndRestore restores
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
    with pytest.raises(ValueError, match=r"holds files \(checkpoints/\) but no config.json"):
        rundir.inspect_run_dir(tmp_path / "run", {"model": "x"}, resume=True)


def test_a_finished_runs_files_without_its_config_are_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.keras", "metrics.json", "history.csv"):
        (run / name).write_text("x")
    with pytest.raises(ValueError) as info:
        rundir.inspect_run_dir(run, {"model": "lenet5"}, resume=True)
    message = str(info.value)
    assert "history.csv, metrics.json, model.keras" in message and "no config.json" in message
    assert "nothing was changed" in message and "resume=False" in message and "Delete" not in message
    # Empty or absent: a new run; resume=False: start over, as asked.
    assert rundir.inspect_run_dir(tmp_path / "empty", {"model": "x"}, resume=True).status == "new"
    assert rundir.inspect_run_dir(run, {"model": "lenet5"}, resume=False).status == "new"


HOLD = """
import sys, time
from keras_cnn.training import rundir
with rundir.lock_run_dir(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.mark.slow  # two processes importing keras_cnn.training
def test_a_busy_run_directory_is_refused_naming_the_holder_and_a_killed_holder_does_not_block(tmp_path, capsys):
    import signal
    import subprocess
    import sys

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match=rf"in use by another keras_cnn process \(pid {holder.pid}\)"):
            with rundir.lock_run_dir(run):
                pass
        # Another process is refused the same way.
        other = subprocess.run([sys.executable, "-c", HOLD, str(run)], capture_output=True, text=True, timeout=60)
        assert other.returncode == 1 and f"pid {holder.pid}" in other.stderr and "locked" not in other.stdout
        # The commands that write a run directory take the same lock, before anything is loaded or written.
        from keras_cnn.cli import main

        for argv, flag in ((["train", "lenet5", "--out", str(run)], "--out"),
                           (["tune", "vgg", "--dir", str(tmp_path), "--project-name", "run"], "--project-name")):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert f"`{flag}` is in use by another keras_cnn process (pid {holder.pid})" in err, err
        assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK_FILE]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / rundir.LOCK_FILE).read_text().strip() == str(holder.pid)  # its stale pid stays...
    with rundir.lock_run_dir(run):  # ...and does not block: the kernel released the lock with the process
        assert (run / rundir.LOCK_FILE).read_text().strip() == str(os.getpid())


def test_the_lock_leaves_no_directory_behind_when_nothing_was_written(tmp_path):
    with rundir.lock_run_dir(tmp_path / "a" / "b"):
        assert (tmp_path / "a" / "b" / rundir.LOCK_FILE).is_file()
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="must be a directory"):
        with rundir.lock_run_dir(tmp_path / "file"):
            pass


def test_legacy_config_without_a_fingerprint_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text('{"model": "lenet5"}')
    with pytest.raises(ValueError, match="without a run fingerprint"):
        rundir.inspect_run_dir(tmp_path / "run", {"model": "lenet5"}, resume=True)


def test_a_truncated_checkpoint_is_named_with_the_way_out(tmp_path):
    # BackupAndRestore restores checkpoints/latest.weights.h5; h5py's own error on a truncated file
    # ("Unable to synchronously open file") names neither the file nor what to do.
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "training_metadata.json").write_text(json.dumps({"epoch": 2}))
    _write_weights(ckpt / "latest.weights.h5")
    assert rundir.backup_epoch(tmp_path) == 2
    data = (ckpt / "latest.weights.h5").read_bytes()
    (ckpt / "latest.weights.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=r"latest\.weights\.h5.*truncated or corrupt.*resume=False") as info:
        rundir.backup_epoch(tmp_path)
    assert str(tmp_path) in str(info.value)
    (ckpt / "latest.weights.h5").unlink()
    with pytest.raises(ValueError, match="is missing"):
        rundir.backup_epoch(tmp_path)


def test_readme_txt_says_how_to_load_the_model(tmp_path):
    # keras.models.load_model alone fails on our layers ("Could not locate class 'ConvBN'").
    (tmp_path / "model.keras").write_bytes(b"")
    rundir.write_readme(tmp_path, title="t")
    line = next(ln for ln in (tmp_path / "README.txt").read_text().splitlines() if "model.keras" in ln)
    assert "keras_cnn.load_model(RUN_DIR)" in line and "keras.models.load_model after `import keras_cnn`" in line
