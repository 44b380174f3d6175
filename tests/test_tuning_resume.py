"""An interrupted `keras-cnn tune` resumes where it stopped: a real kill, a real rerun."""

import csv
import os
import re
import signal
import subprocess
import sys

import pytest

SPACE = [
    "blocks=1", "convs_per_block=1", "base_widths=4,8", "fc_units=8", "dropout=0.0",
    "batch_norm=false", "optimizers=adam", "label_smoothing=0.0",
]


def _command(directory):
    cmd = [
        sys.executable, "-m", "keras_cnn", "tune", "vgg", "--tuner", "random", "--max-trials", "3",
        "--epochs", "1", "--dir", str(directory), "--image-size", "8", "--channels", "1",
        "--max-examples", "200", "--no-export",
    ]
    for item in SPACE:
        cmd += ["--space", item]
    return cmd


def _env():
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.mark.slow
def test_killed_search_resumes_without_rerunning_finished_trials(tmp_path):
    cmd = _command(tmp_path)
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env())
    lines = []
    try:
        for line in first.stdout:
            lines.append(line)
            if line.startswith("[trial 0 | tuner0] COMPLETED"):
                first.send_signal(signal.SIGKILL)  # killed right after trial 0 finished
                break
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == -signal.SIGKILL, "".join(lines)
    done = [ln for ln in lines if "COMPLETED" in ln]
    assert len(done) == 1
    first_score = re.search(r"val_accuracy=([0-9.]+)", done[0]).group(1)

    second = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=400)
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    out = second.stdout
    assert "[trial 0 |" not in out  # trial 0 is not run again
    started = re.findall(r"^\[trial (\d+) \| tuner0\] start", out, flags=re.M)
    assert sorted(started) == ["1", "2"]  # trial 1 (retried if it had begun) and trial 2 only

    with open(tmp_path / "vgg_random" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["trial"] for r in rows) == ["0", "1", "2"]  # total = max_trials
    assert all(r["status"] == "COMPLETED" for r in rows)
    trial0 = next(r for r in rows if r["trial"] == "0")
    assert f"{float(trial0['val_accuracy']):.4f}" == first_score  # the first run's result, kept
    combos = {(r["base_width"], r["adam_beta_1"], r["learning_rate"]) for r in rows}
    assert len(combos) == 3
