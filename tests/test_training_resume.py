"""A run killed mid-epoch resumes from its last checkpoint and loses no finished epoch.

Real processes: the first run is killed with ``os._exit`` in the middle of epoch 3 (after the
epoch-2 checkpoint), the second run of the same command resumes.
"""

import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import pytest

from keras_cnn.training.callbacks import read_history

EPOCHS = 4
KILL_EPOCH = 2  # 0-based: two epochs finished, killed during the third
KILLED_RC = 17

SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    from keras_cnn.training import train

    class KillMidEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == {kill_epoch} and batch == 1:
                os._exit({rc})   # as abrupt as SIGKILL: no cleanup, no callbacks

    kill = sys.argv[2] == "kill"
    train("lenet5", "digits", epochs={epochs}, max_examples=250, augment="none", out_dir=sys.argv[1],
          export=False, verbose=0, callbacks=[KillMidEpoch()] if kill else None)
    """
).format(kill_epoch=KILL_EPOCH, rc=KILLED_RC, epochs=EPOCHS)


def run_script(path, run_dir, mode):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, str(path), str(run_dir), mode], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.mark.slow
def test_killed_run_resumes_at_the_next_epoch(tmp_path):
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    run_dir = tmp_path / "run"

    first = run_script(script, run_dir, "kill")
    assert first.returncode == KILLED_RC, first.stderr[-3000:]
    meta = json.loads((run_dir / "checkpoints" / "training_metadata.json").read_text())
    assert meta["epoch"] == KILL_EPOCH
    before = read_history(run_dir / "history.csv")
    assert before["epoch"] == [0, 1]
    assert not (run_dir / "metrics.json").exists()  # the killed run never finished

    second = run_script(script, run_dir, "resume")
    assert second.returncode == 0, second.stderr[-3000:]
    after = read_history(run_dir / "history.csv")
    # Epochs continue (2, 3), not restart (0, 1, ...); the finished epochs are kept as they were.
    assert after["epoch"] == list(range(EPOCHS))
    assert after["loss"][:2] == before["loss"][:2]
    assert after["loss"][2] < after["loss"][0]  # resumed from trained weights, not from scratch

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == EPOCHS
    # The optimizer state came back too: its step counter covers all four epochs.
    batch_size = json.loads((run_dir / "config.json").read_text())["recipe"]["batch_size"]
    steps_per_epoch = math.ceil(metrics["num_train"] / batch_size)
    assert steps_per_epoch > 1
    assert metrics["optimizer_steps"] == EPOCHS * steps_per_epoch
    # The final model is the one that was evaluated.
    model = keras.models.load_model(run_dir / "model.keras")
    from keras_cnn.training import evaluate

    assert evaluate(model, "digits", max_examples=250)["accuracy"] == pytest.approx(metrics["accuracy"])
