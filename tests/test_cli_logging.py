"""One voice: the library logs to the ``keras_cnn`` logger; the CLI shows it, ``--quiet`` hides it."""

import logging
import os
import subprocess
import sys

import pytest

import keras_cnn
from keras_cnn import cli
from keras_cnn.commands import list as list_command

logger = logging.getLogger("keras_cnn.tests")


def _talking_list(monkeypatch):
    def run(args):
        logger.debug("a debug line")
        logger.info("an info line")
        logger.warning("a warning line")
        print("the result")
        return 0

    monkeypatch.setattr(list_command, "run", run)


def test_the_library_adds_only_a_null_handler():
    handlers = logging.getLogger("keras_cnn").handlers
    assert [type(h) for h in handlers] == [logging.NullHandler]


@pytest.mark.parametrize("argv, shown, hidden", [
    (["list"], ["keras-cnn: an info line", "keras-cnn: warning: a warning line"], ["a debug line"]),
    (["list", "--quiet"], ["keras-cnn: warning: a warning line"], ["an info line", "a debug line"]),
    (["-q", "list"], ["keras-cnn: warning: a warning line"], ["an info line", "a debug line"]),
])
def test_cli_shows_the_library_logger_on_stderr(monkeypatch, capsys, argv, shown, hidden):
    _talking_list(monkeypatch)
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert out == "the result\n"  # stdout keeps the command's result only
    for line in shown:
        assert line in err
    for line in hidden:
        assert line not in err
    # The handler lives for the length of the command: a library user's configuration is left alone.
    assert [type(h) for h in logging.getLogger("keras_cnn").handlers] == [logging.NullHandler]
    assert logging.getLogger("keras_cnn").level == logging.NOTSET


def test_verbose_2_shows_debug_lines_and_quiet_contradicts_verbose(capsys):
    assert cli.log_level(cli.build_parser().parse_args(["train", "lenet5", "--verbose", "2"])) == logging.DEBUG
    assert cli.main(["train", "lenet5", "--quiet", "--verbose", "1"]) == 2
    err = capsys.readouterr().err
    assert "--quiet and --verbose 1 contradict" in err and err.count("\n") == 1


def test_quiet_turns_training_progress_off(monkeypatch):
    from keras_cnn.commands import train

    seen = {}
    monkeypatch.setattr(train, "run", lambda args: seen.update(verbose=args.verbose) or 0)
    monkeypatch.setattr(cli, "import_tensorflow", lambda verbose: None)
    assert cli.main(["train", "lenet5", "-q"]) == 0
    assert seen == {"verbose": 0}


def test_a_library_user_configures_the_logger_as_usual(caplog):
    from keras_cnn.training.cluster import wait_for_peers

    with caplog.at_level(logging.INFO, logger="keras_cnn"):
        tf_config = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}
        with pytest.raises(TimeoutError):
            wait_for_peers(0.3, tf_config=tf_config, report_every=0.0, poll=0.05)
    assert any(r.name == "keras_cnn.training.cluster" and "waiting for 1 worker(s)" in r.getMessage()
               for r in caplog.records)


def test_last_words_are_said_without_any_logging_configuration():
    code = ("import logging, keras_cnn; from keras_cnn._log import last_words; "
            "last_words(logging.getLogger('keras_cnn.x'), logging.INFO, 'stopped by %s', 'SIGTERM')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(keras_cnn.__file__))})
    assert proc.returncode == 0 and proc.stderr == "keras-cnn: stopped by SIGTERM\n"


def test_a_root_handler_does_not_repeat_the_commands_lines(monkeypatch, capsys):
    # Another library's logging.info on the root logger installs a root handler (basicConfig); the
    # command's lines must still be shown once, as `keras-cnn: ...`, not again as "INFO:keras_cnn...".
    import io

    stream = io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    try:
        with cli.command_logging(cli.build_parser().parse_args(["list"])):
            logging.getLogger("keras_cnn.test").info("once")
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    assert capsys.readouterr().err == "keras-cnn: once\n"
    assert stream.getvalue() == ""
    assert logging.getLogger("keras_cnn").propagate  # restored after the command
