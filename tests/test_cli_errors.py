"""A user's mistake is one line, exit 2; anything else is a bug: its traceback, exit 1."""

import errno
import os
import subprocess
import sys

import pytest

from keras_cnn import cli
from keras_cnn.commands import list as list_command


def _failing_list(monkeypatch, err):
    def run(args):
        raise err

    monkeypatch.setattr(list_command, "run", run)


@pytest.mark.parametrize("err", [
    KeyError("num_classes"),  # a dict lookup gone wrong inside the package
    LookupError("no such row"),
    TypeError("unsupported operand"),
    OSError("Unable to synchronously open file (truncated file)"),  # a library's OSError, no errno
])
def test_an_internal_error_shows_its_traceback_and_exits_1(monkeypatch, capsys, err):
    _failing_list(monkeypatch, err)
    assert cli.main(["list"]) == 1
    err_text = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err_text
    assert f"in run\n    raise err\n{type(err).__name__}" in err_text
    last = err_text.strip().splitlines()[-1]
    assert last.startswith(f"keras-cnn list: error: {type(err).__name__}: ") and "a bug in keras-cnn" in last


@pytest.mark.parametrize("err, line", [
    (ValueError("`--family` must be one of ['a']. Received: --family='x'"),
     "keras-cnn list: error: `--family` must be one of ['a']. Received: --family='x'"),
    (FileNotFoundError("`model` must be an existing file. Received: model='m.keras'"),
     "keras-cnn list: error: `model` must be an existing file. Received: model='m.keras'"),
    (OSError(errno.ENOSPC, "No space left on device"),
     "keras-cnn list: error: OSError: [Errno 28] No space left on device"),
    (TimeoutError("1 worker(s) of the cluster were not reachable"),
     "keras-cnn list: error: 1 worker(s) of the cluster were not reachable"),
])
def test_a_user_mistake_is_one_line_and_exits_2(monkeypatch, capsys, err, line):
    _failing_list(monkeypatch, err)
    assert cli.main(["list"]) == 2
    assert capsys.readouterr().err == line + "\n"


def test_a_bug_in_a_real_subprocess_exits_1_with_the_traceback(tmp_path):
    # The whole entry point, as a user runs it: a KeyError planted in the command.
    code = ("import sys; from keras_cnn import cli; from keras_cnn.commands import list as L\n"
            "def run(args):\n    return {}['planted']\n"
            "L.run = run\nsys.exit(cli.main(['list']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "KeyError: 'planted'" in proc.stderr
