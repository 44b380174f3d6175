"""`keras-cnn` command line. Thin: parses, calls the library, prints.

Each sub-command lives in ``keras_cnn/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.

Start-up: neither ``import keras_cnn`` nor the command modules import TensorFlow at the top, so
``--help``, ``CMD --help``, ``list`` and argument errors answer at once. A command that needs
TensorFlow gets it from `import_tensorflow`, which keeps the C++ start-up lines ("Could not find
cuda drivers...", oneDNN and CPU-feature notes, the cuInit probe) off the terminal: the full
``tensorflow`` wheel prints them from C++ before ``TF_CPP_MIN_LOG_LEVEL`` applies, so the C-level
stderr (fd 2) is pointed at a temporary file while TensorFlow is imported and probes its devices,
and replayed if the import fails. ``--verbose 2`` or a ``TF_CPP_MIN_LOG_LEVEL`` set by the user
shows them as TensorFlow prints them.

Messages: the library tells the user what it does through the ``keras_cnn`` logger; for the length
of a command, `main` attaches a handler writing ``keras-cnn: ...`` lines to stderr (stdout keeps the
command's results and Keras' progress display). ``--quiet`` (before or after the command) shows
only warnings and errors and turns training progress off unless ``--verbose`` is given;
a command's ``--verbose 2`` adds debug lines. A program calling the library configures
``logging.getLogger("keras_cnn")`` as it likes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys

# (module, summary) in the order `keras-cnn --help` lists them.
COMMANDS = (
    "demo",
    "train",
    "evaluate",
    "predict",
    "export",
    "verify_export",
    "summary",
    "cost",
    "list",
    "transfer",
    "tune",
    "explain",  # explain: Grad-CAM overlays (keras_cnn/commands/explain.py)
    "report",  # explain: the run's report.html (keras_cnn/commands/report.py)
)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, with its errors as one line (``keras-cnn train: error: argument --epochs:
    ...``) and a pointer to ``--help`` instead of the whole usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    from keras_cnn import __version__

    parser = _Parser(
        prog="keras-cnn",
        description="Build, train, fine-tune, tune and export the classic CNNs (keras_cnn).",
    )
    parser.add_argument("--version", action="version", version=f"keras-cnn {__version__}")
    _add_quiet(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"keras_cnn.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"keras_cnn.commands.{name}":
                continue  # command not part of this build
            raise
        module.register(sub)
    from keras_cnn.commands._errors import FLAG_NAMES, set_flag_names

    for command in sub.choices.values():
        _add_quiet(command, argparse.SUPPRESS)  # SUPPRESS: not given here keeps the top level's value
        if command.get_default(FLAG_NAMES) is None:
            set_flag_names(command)  # errors name this command's flags, not the library's arguments
    return parser


def _add_quiet(parser, default):
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="show only warnings and errors (and no training progress unless --verbose)")


def log_level(args):
    """The ``keras_cnn`` logger's level for a command: WARNING with ``--quiet``, DEBUG with
    ``--verbose 2``, else INFO."""
    if getattr(args, "quiet", False):
        return logging.WARNING
    return logging.DEBUG if (getattr(args, "verbose", None) or 0) >= 2 else logging.INFO


@contextlib.contextmanager
def command_logging(args):
    """The ``keras_cnn`` logger shown on stderr (`keras_cnn._log.stderr_handler`) while a command runs."""
    from keras_cnn._log import stderr_handler

    logger = logging.getLogger("keras_cnn")
    handler, old_level, old_propagate = stderr_handler(log_level(args)), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(handler.level)
    # The command's handler is the one place its lines are shown: a handler that another library put
    # on the root logger (logging.basicConfig runs on the first root-level logging.info) would
    # repeat each line as "INFO:keras_cnn...:".
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def check_before_tensorflow(args):
    """The checks that need no model, run before TensorFlow loads, so that a mistake is said at once:
    directory flags that name a file (`check_directory_flags`), a command's own ``precheck(args)`` (set with ``parser.set_defaults(precheck=...)``) and, with
    ``--strategy multi_worker``, ``TF_CONFIG`` (`keras_cnn._tf_config.cluster_info`)."""
    from keras_cnn.commands._args import check_directory_flags

    check_directory_flags(args)
    precheck = getattr(args, "precheck", None)
    if precheck is not None:
        precheck(args)
    if getattr(args, "strategy", None) == "multi_worker":
        from keras_cnn._tf_config import cluster_info  # the standard library only

        cluster_info()


def needs_tensorflow(args):
    """False for the commands that answer without TensorFlow (`list` without ``--params``)."""
    return not (args.command == "list" and not getattr(args, "params", False))


def import_tensorflow(verbose=1):
    """Import TensorFlow (and probe its devices) with its C++ start-up lines kept off stderr.

    The lines are shown when ``verbose >= 2``, when the user set ``TF_CPP_MIN_LOG_LEVEL``, or when
    the import fails (then replayed before the error propagates).

    Args:
        verbose: the command's ``--verbose`` (2 shows TensorFlow's start-up lines).

    Returns:
        The ``tensorflow`` module.
    """
    from keras_cnn import USER_TF_CPP_MIN_LOG_LEVEL

    if "tensorflow" in sys.modules or verbose >= 2 or USER_TF_CPP_MIN_LOG_LEVEL is not None:
        import tensorflow as tf

        return tf
    from keras_cnn._io import quiet_native_output

    with quiet_native_output(fds=(2,)):  # replayed before the error if the import fails
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # the CUDA probe prints here, not at import
    return tf


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "quiet", False) and getattr(args, "verbose", None):
            parser.error(f"--quiet and --verbose {args.verbose} contradict each other; give one")
    except SystemExit as done:  # --help, --version, or an argument error (one line, exit 2)
        return done.code
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "quiet", False) and hasattr(args, "verbose"):
        args.verbose = 0
    with command_logging(args):
        try:
            check_before_tensorflow(args)
        except Exception as err:  # noqa: BLE001 - reported as any command error (commands/_errors.py)
            from keras_cnn.commands._errors import report

            return report(args, err)
    if needs_tensorflow(args):
        import_tensorflow(getattr(args, "verbose", 1) or 0)
    with command_logging(args):
        try:
            return int(args.func(args) or 0)
        except BaseException as err:  # noqa: BLE001 - one line per error, naming the flag (commands/_errors.py)
            from keras_cnn.commands._errors import report

            return report(args, err)


if __name__ == "__main__":
    sys.exit(main())
