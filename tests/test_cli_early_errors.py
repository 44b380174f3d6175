"""Argument mistakes that need no model are said before TensorFlow loads (issue: 8 s quiet, 40 s busy).

Timing-free: each case runs the CLI in a fresh interpreter and reports whether ``tensorflow`` was
imported by the time the error came back.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from keras_cnn._tf_config import cluster_info

RUN = """
import json, sys
from keras_cnn import cli
try:
    rc = cli.main(sys.argv[1:])
except SystemExit as exit_:
    rc = exit_.code
print(json.dumps({"rc": rc, "tensorflow": "tensorflow" in sys.modules}))
"""


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(*argv, env=None):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CONFIG"}, "PYTHONPATH": root, **(env or {})}
    proc = subprocess.run([sys.executable, "-c", RUN, *argv], capture_output=True, text=True, timeout=120, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.parametrize("argv, needle", [
    (["train", "lenet5", "--epochs", "-1"], "argument --epochs: must be a whole number > 0. Received: '-1'"),
    (["train", "nosuchnet"], "argument MODEL: must be a registered model name"),
])
def test_argument_errors_come_before_tensorflow(argv, needle):
    result, err = _cli(*argv)
    assert result == {"rc": 2, "tensorflow": False}, err
    assert needle in err


def test_a_dead_server_is_said_before_tensorflow(tmp_path):
    port = _closed_port()
    result, err = _cli("predict", "--server", f"http://127.0.0.1:{port}", "--model", "m", str(tmp_path / "x.png"))
    assert result == {"rc": 2, "tensorflow": False}, err
    assert f"nothing answers at --server='http://127.0.0.1:{port}'" in err and "Traceback" not in err


@pytest.mark.parametrize("sub", ["", "/run"])
def test_out_on_an_existing_file_names_the_flag_before_tensorflow(tmp_path, sub):
    existing = tmp_path / "afile"
    existing.write_text("mine")
    result, err = _cli("train", "lenet5", "--out", f"{existing}{sub}")
    assert result == {"rc": 2, "tensorflow": False}, err
    assert "`--out` must be a directory to create or reuse" in err and "Errno" not in err
    assert existing.read_text() == "mine"


def test_a_cluster_without_workers_is_refused_before_tensorflow():
    result, err = _cli("train", "lenet5", "--strategy", "multi_worker", env={"TF_CONFIG": '{"cluster": {}}'})
    assert result == {"rc": 2, "tensorflow": False}, err
    assert "TF_CONFIG is set but names no cluster" in err


def test_an_invalid_own_address_is_named_as_this_workers():
    config = {"cluster": {"worker": ["127.0.0.1:notaport", "127.0.0.1:2223"]}, "task": {"type": "worker", "index": 0}}
    result, err = _cli("train", "lenet5", "--strategy", "multi_worker", env={"TF_CONFIG": json.dumps(config)})
    assert result == {"rc": 2, "tensorflow": False}, err
    assert """TF_CONFIG["cluster"]["worker"][0] is this worker's own address""" in err and "'127.0.0.1:notaport'" in err


@pytest.mark.parametrize("config, needle", [
    ({"cluster": {}}, "names no cluster"),
    ({"cluster": {}, "task": {"type": "worker", "index": 0}}, "names no cluster"),
    ({"cluster": {"worker": ["a:1", "b:x"]}, "task": {"type": "worker", "index": 0}},
     r'\["worker"\]\[1\] is an address and must be "host:port"'),
    ({"cluster": {"worker": ["a:1", "b:70000"]}, "task": {"type": "worker", "index": 1}},
     r"\[1\] is this worker's own address"),
    ({"cluster": {"chief": ["c"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}},
     r'\["chief"\]\[0\] is an address'),
])
def test_cluster_info_refuses_malformed_clusters(config, needle):
    with pytest.raises(ValueError, match=needle):
        cluster_info(json.dumps(config))
