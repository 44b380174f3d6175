"""strategy="multi_worker": two worker processes on 127.0.0.1 (TF_CONFIG each), against one process.

The module starts, at once:
  * k0, k1: a two-worker cluster, 3 epochs, separate out_dirs (k1's must stay empty: the chief alone
    writes; there is no shared file system, so on resume k1 gets the chief's state by broadcast),
    k1 with its own TMPDIR (its checkpoint copies must be removed). Both die (os._exit) right after
    the checkpoint of epoch 1, and are then started again: they must resume at epoch 2.
  * ref: the same run in one process, uninterrupted (global batch 31 on one replica, where the
    cluster splits it 16 + 15).
Deterministic ops, no shuffling (a resumed run draws a fresh shuffle order, as fit's
BackupAndRestore does), no augmentation (each replica draws its own random transforms, so two
replicas cannot match one process); SGD + momentum with an active clipnorm, so that clipping each
replica's partial gradient instead of the global one would show.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

EPOCHS = 3
KILL_AFTER = 1  # epoch index: 2 epochs done and checkpointed, then the workers die
BATCH = 31  # 168 training examples: 5 batches of 31 (16 + 15 per worker) and one of 13 (7 + 6)
RECIPE = {"optimizer": "sgd", "optimizer_kwargs": {"momentum": 0.9}, "learning_rate": 0.05, "clipnorm": 0.1}

WORKER = """
    import json, os, sys

    opts = json.loads(sys.argv[1])
    from keras_cnn.training import train
    from keras_cnn.training.distributed import multi_worker_strategy

    strategy = multi_worker_strategy()  # first: before TensorFlow runs anything
    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    report = opts["report"]

    import tempfile

    _mkdtemp = tempfile.mkdtemp

    def logged_mkdtemp(*args, **kwargs):  # where the worker's scratch checkpoints go
        path = _mkdtemp(*args, **kwargs)
        with open(report + "_tmpdirs.txt", "a") as handle:
            handle.write(path + "\\n")
        return path

    tempfile.mkdtemp = logged_mkdtemp

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            with open(report + "_epochs.txt", "a") as handle:
                handle.write(f"{epoch}\\n")
            if opts.get("exit_after_epoch") == epoch:
                os._exit(17)  # dies after this epoch's checkpoint

    from keras_cnn.data import load_data

    data = load_data("digits", image_size=(32, 32), channels=1, batch_size=opts["batch_size"],
                     max_examples=opts["max_examples"], shuffle=False)
    result = train(  # a MultiWorkerMirroredStrategy: train() hands over to the multi-worker loop
        "lenet5", data, epochs=opts["epochs"], batch_size=opts["batch_size"], max_examples=opts["max_examples"],
        recipe=opts["recipe"], augment="none", out_dir=opts["out_dir"], export=False, verbose=0, strategy=strategy,
        callbacks=[Record()],
    )
    np.savez(report + "_weights.npz", *result.model.get_weights())
    json.dump({"history": result.history, "replicas": strategy.num_replicas_in_sync,
               "metrics": {k: result.metrics[k] for k in ("accuracy", "optimizer_steps", "is_chief", "num_workers")}},
              open(report + "_result.json", "w"))
"""


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Runs:
    """Worker processes with their logs in files (no pipes to fill); all killed on exit."""

    def __init__(self, root):
        self.root = root
        self.script = root / "worker.py"
        self.script.write_text(textwrap.dedent(WORKER))
        self.procs = {}

    def start(self, tag, *, out_dir, tf_config=None, tmpdir=None, exit_after_epoch=None):
        opts = dict(
            epochs=EPOCHS, batch_size=BATCH, max_examples=240, recipe=RECIPE,
            out_dir=str(out_dir), report=str(self.root / tag), exit_after_epoch=exit_after_epoch,
        )
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        env.pop("TF_CONFIG", None)
        if tf_config is not None:
            env["TF_CONFIG"] = json.dumps(tf_config)
        if tmpdir is not None:
            tmpdir.mkdir(parents=True, exist_ok=True)
            env["TMPDIR"] = str(tmpdir)
        log = open(self.root / f"{tag}.log", "w")
        self.procs[tag] = subprocess.Popen(
            [sys.executable, str(self.script), json.dumps(opts)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()

    def cluster(self, tags, **kwargs):
        workers = [f"127.0.0.1:{_free_port()}" for _ in tags]
        for index, tag in enumerate(tags):
            config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            own = {k: (v[index] if isinstance(v, list) else v) for k, v in kwargs.items()}
            self.start(tag, tf_config=config, **own)

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        codes = {}
        for tag, proc in self.procs.items():
            try:
                codes[tag] = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[tag] = None
        return codes

    def log(self, tag):
        return (self.root / f"{tag}.log").read_text()[-5000:]

    def kill_all(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)

    def result(self, tag):
        return json.loads((self.root / f"{tag}_result.json").read_text())

    def weights(self, tag):
        with np.load(self.root / f"{tag}_weights.npz") as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))]

    def scratch_dirs(self, tag):
        """The worker's temporary checkpoint directories: (all it made, those still there)."""
        path = self.root / f"{tag}_tmpdirs.txt"
        made = [Path(line) for line in path.read_text().split()] if path.is_file() else []
        made = [p for p in made if p.name.startswith("keras_cnn_worker_ckpt-")]
        return made, [p for p in made if p.exists()]

    def epochs_run(self, tag):
        path = self.root / f"{tag}_epochs.txt"
        return [int(line) for line in path.read_text().split()] if path.is_file() else []


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """Phase 1: the cluster dies after epoch KILL_AFTER; the reference run goes to the end."""
    root = tmp_path_factory.mktemp("multi_worker")
    runs = _Runs(root)
    try:
        runs.cluster(["k0", "k1"], out_dir=[root / "run_k0", root / "run_k1"], tmpdir=[None, root / "tmp_k1"],
                     exit_after_epoch=KILL_AFTER)
        runs.start("ref", out_dir=root / "run_ref")
        codes = runs.wait(timeout=900)
    finally:
        runs.kill_all()
    for tag, code in {"k0": 17, "k1": 17, "ref": 0}.items():
        assert codes[tag] == code, f"{tag}: exit {codes[tag]}, expected {code}\n{runs.log(tag)}"
    runs.procs.clear()
    chief = root / "run_k0"
    runs.phase1 = {
        "epochs": {tag: runs.epochs_run(tag) for tag in ("k0", "k1")},
        "history_rows": (chief / "history.csv").read_text().splitlines(),
        "checkpoints": sorted(p.name for p in (chief / "checkpoints").iterdir() if p.name.endswith(".index")),
        "k1_dir": (root / "run_k1").exists(),
        "k1_scratch": runs.scratch_dirs("k1"),
        "k0_scratch": runs.scratch_dirs("k0"),
    }
    return runs


@pytest.fixture(scope="module")
def restarted(killed):
    """Phase 2: the same two commands again."""
    runs, root = killed, killed.root
    try:
        runs.cluster(["k0", "k1"], out_dir=[root / "run_k0", root / "run_k1"], tmpdir=[None, root / "tmp_k1"])
        codes = runs.wait(timeout=900)
    finally:
        runs.kill_all()
    for tag in ("k0", "k1"):
        assert codes[tag] == 0, f"{tag}: exit {codes[tag]}\n{runs.log(tag)}"
    return runs


def test_killed_workers_had_checkpointed_the_finished_epochs(killed):
    done = list(range(KILL_AFTER + 1))
    assert killed.phase1["epochs"] == {"k0": done, "k1": done}
    assert len(killed.phase1["history_rows"]) == 1 + len(done)
    assert killed.phase1["checkpoints"] == [f"ckpt-{e + 1}.index" for e in done][-2:]
    # The other worker saved too (into TMPDIR, once per epoch) and removed its copies; the chief did not.
    assert killed.phase1["k1_dir"] is False
    made, left = killed.phase1["k1_scratch"]
    assert len(made) == len(done) and all(p.parent == killed.root / "tmp_k1" for p in made) and left == []
    assert killed.phase1["k0_scratch"] == ([], [])


def test_restarted_workers_resume_at_the_next_epoch(restarted):
    # Each ran epochs 0..KILL_AFTER before the kill and only the rest after it: none repeated.
    assert restarted.epochs_run("k0") == restarted.epochs_run("k1") == list(range(EPOCHS))
    assert restarted.result("k1")["history"]["epoch"] == list(range(KILL_AFTER + 1, EPOCHS))
    history = restarted.result("k0")["history"]  # the chief's history.csv: every epoch once
    assert history["epoch"] == list(range(EPOCHS))
    rows = (restarted.root / "run_k0" / "history.csv").read_text().splitlines()
    before = restarted.phase1["history_rows"]
    assert rows[: len(before)] == before and len(rows) == 1 + EPOCHS
    # Model, optimizer state (momentum) and step counter (learning-rate schedule) were restored:
    # the run ends exactly where the uninterrupted one-process run ends (up to float sums).
    ref = restarted.result("ref")
    assert restarted.result("k0")["metrics"]["optimizer_steps"] == ref["metrics"]["optimizer_steps"] == EPOCHS * 6
    np.testing.assert_allclose(history["learning_rate"], ref["history"]["learning_rate"], rtol=1e-6)
    np.testing.assert_allclose(history["loss"][KILL_AFTER + 1 :], ref["history"]["loss"][KILL_AFTER + 1 :], rtol=1e-5)


def test_workers_end_with_identical_weights(restarted):
    w0, w1 = restarted.weights("k0"), restarted.weights("k1")
    assert len(w0) == len(w1) > 0
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    r0, r1 = restarted.result("k0"), restarted.result("k1")
    assert r0["replicas"] == r1["replicas"] == 2
    assert r0["history"]["loss"][-1] == r1["history"]["loss"][-1]  # reduced across workers: the global loss
    assert (r0["metrics"]["is_chief"], r1["metrics"]["is_chief"]) == (True, False)
    assert r0["metrics"]["accuracy"] == r1["metrics"]["accuracy"]


def test_two_workers_train_like_one_process_with_the_global_batch(restarted):
    two, one = restarted.result("k0"), restarted.result("ref")
    assert one["replicas"] == 1 and one["metrics"]["num_workers"] == 1
    assert two["history"]["epoch"] == one["history"]["epoch"] == list(range(EPOCHS))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(two["history"][key], one["history"][key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert two["history"]["loss"][-1] < two["history"]["loss"][0]  # it learns
    for a, b in zip(restarted.weights("k0"), restarted.weights("ref")):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_only_the_chief_writes(restarted):
    chief = restarted.root / "run_k0"
    for name in ("model.keras", "metrics.json", "history.csv", "learning_curves.png", "config.json",
                 "class_names.json", "confusion_matrix.png"):
        assert (chief / name).is_file(), name
    assert (chief / "logs" / "train").is_dir()
    assert not (chief / "checkpoints").exists()  # a finished run drops its checkpoints (keep_checkpoints=False)
    assert "model.keras" in (chief / "README.txt").read_text()
    config = json.loads((chief / "config.json").read_text())
    assert (config["strategy"], config["num_workers"], config["num_replicas"]) == ("multi_worker", 2, 2)
    metrics = json.loads((chief / "metrics.json").read_text())
    assert metrics["epochs"] == EPOCHS and metrics["is_chief"] is True
    # The other worker wrote nothing to its out_dir and removed its own checkpoint copies.
    assert not (restarted.root / "run_k1").exists()
    made, left = restarted.scratch_dirs("k1")
    assert len(made) == EPOCHS and left == []
