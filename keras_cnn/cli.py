"""`keras-cnn` command line. Thin: parses, calls the library, prints.

Each sub-command lives in ``keras_cnn/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-cnn",
        description="Build, train, fine-tune, tune and export the classic CNNs (keras_cnn).",
    )
    from keras_cnn import __version__

    parser.add_argument("--version", action="version", version=f"keras-cnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"keras_cnn.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"keras_cnn.commands.{name}":
                continue  # command not part of this build
            raise
        module.register(sub)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BaseException as err:  # noqa: BLE001 - one line per error, naming the flag (commands/_errors.py)
        from keras_cnn.commands._errors import report

        return report(args, err)


if __name__ == "__main__":
    sys.exit(main())
