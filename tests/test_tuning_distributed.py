"""Distributed tuning on keras-tuner's chief/worker protocol: one chief, two workers, one search."""

import csv
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

SPACE = [
    "blocks=1", "convs_per_block=1", "base_widths=4,8", "fc_units=8", "dropout=0.0",
    "batch_norm=false", "optimizers=adam", "label_smoothing=0.0",
]
# The workers log (Python logging, INFO) when they start asking the chief for trials.
LAUNCH = (
    "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr); "
    "from keras_cnn.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Proc:
    """A subprocess whose stdout/stderr are drained by threads (no pipe ever fills up)."""

    def __init__(self, args):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        for var in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
            env.pop(var, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.out, self.err = [], []
        self._threads = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _drain(stream, sink):
        for line in stream:
            sink.append(line)

    def text(self):
        return "".join(self.out) + "\n--- stderr ---\n" + "".join(self.err)[-4000:]

    def wait_for(self, needle, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in self.err):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"never saw {needle!r}:\n{self.text()}")

    def finish(self, timeout):
        self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=10)
        return self.proc.returncode


@pytest.mark.slow
def test_chief_and_two_workers_share_one_search(tmp_path):
    port = _free_port()
    common = [
        "tune", "vgg", "--tuner", "random", "--max-trials", "4", "--epochs", "1", "--dir", str(tmp_path),
        "--image-size", "8", "--channels", "1", "--max-examples", "200", "--no-export",
        "--oracle-ip", "127.0.0.1", "--oracle-port", str(port),
    ]
    for item in SPACE:
        common += ["--space", item]
    procs = []
    try:
        workers = [_Proc([*common, "--distributed", "worker", "--tuner-id", f"worker{i}"]) for i in range(2)]
        procs += workers
        # Both workers are up and waiting for the oracle before the chief starts serving it, so
        # both get trials (otherwise a fast worker could take all of them).
        for w in workers:
            w.wait_for("asking the chief oracle", timeout=300)
        chief = _Proc([*common, "--distributed", "chief", "--tuner-id", "chief"])
        procs.append(chief)
        assert chief.finish(timeout=400) == 0, chief.text()
        for w in workers:
            assert w.finish(timeout=60) == 0, w.text()
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()

    project = tmp_path / "vgg_random"
    with open(project / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4  # one search of max_trials trials, not one per worker
    assert all(r["status"] == "COMPLETED" for r in rows)
    assert {r["tuner"] for r in rows} == {"worker0", "worker1"}  # both workers ran trials
    combos = [(r["base_width"], r["adam_beta_1"], r["learning_rate"]) for r in rows]
    assert len(set(combos)) == 4  # no hyper-parameter set twice
    oracle = json.loads((project / "oracle.json").read_text())
    assert sorted(oracle["keras_cnn_trial_tuner_ids"].values()) == sorted(r["tuner"] for r in rows)
    for r in rows:
        saved = json.loads((project / f"trial_{r['trial']}" / "trial.json").read_text())
        assert saved["tuner_id"] == r["tuner"] and saved["status"] == "COMPLETED"
    ran = [int(w.out[-1].split("ran ")[1].split(" ")[0]) for w in workers]
    assert sum(ran) == 4 and min(ran) >= 1
    assert "4 trials trained (4 completed, 0 failed), 0 candidates rejected" in "".join(chief.out)
    assert "ended: max_trials=4 trials ran" in "".join(chief.out)
    # stdout holds our lines only: keras-tuner's stray print of conditional values ("2", "sgd") is gone.
    for proc in (chief, *workers):
        stray = [ln for ln in "".join(proc.out).splitlines()
                 if ln.strip() and " " not in ln.strip() and not ln.startswith(("-", "trial"))]
        assert stray == [], stray
