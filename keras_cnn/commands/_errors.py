"""CLI errors: a user's mistake ends as one line ``keras-cnn CMD: error: ...`` naming the CLI flag;
a bug ends with its traceback.

User mistakes (exit status 2, no traceback): `ValueError` (the library's validation), a missing
or existing file or folder and a permission (`FileNotFoundError`, `FileExistsError`,
`IsADirectoryError`, `NotADirectoryError`, `PermissionError`), `TimeoutError` / `ConnectionError`
(a cluster that did not start or lost a worker, a server not reachable) and any other `OSError` of
a system call (``errno`` set: a full disk, a read-only file system). Anything else (`KeyError`, `TypeError`, an `OSError` raised by a library
without ``errno``, ...) is a bug: its traceback, then one line saying so, exit status 1.

The library names its Python arguments (``out_dir``, ``resume=False``); the command line shows
the flags a user typed (``--out``, ``--no-resume``). Each command registers the mapping with
`set_flag_names` (built from its parser, plus the arguments whose Python name differs from the
flag); `report` rewrites the message with it. ``KERAS_CNN_TRACEBACK=1`` re-raises any error.
"""

from __future__ import annotations

import os
import re
import sys
import traceback

FLAG_NAMES = "_flag_names"


def is_user_error(err):
    """True when ``err`` says the input or the environment was not what it must be (not a bug)."""
    if isinstance(err, ValueError):
        return True
    if isinstance(err, (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError,
                        TimeoutError, ConnectionError)):
        return True
    return isinstance(err, OSError) and err.errno is not None


def set_flag_names(parser, extra=None):
    """Record ``{python argument: CLI flag}`` for ``parser``'s command: each ``--flag-name`` of its
    help (argparse's own dest rule: ``--batch-size`` -> ``batch_size``), each positional argument
    (its metavar), plus ``extra``. `keras_cnn.cli` calls it for a command that did not."""
    names = {}
    for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", parser.format_help()):
        names.setdefault(flag[2:].replace("-", "_"), flag)
    names.pop("help", None)
    for action in parser._actions:  # positionals: their metavar (argparse keeps no public list of them)
        if not action.option_strings and isinstance(action.dest, str) and action.dest != "==SUPPRESS==":
            names.setdefault(action.dest, action.metavar if isinstance(action.metavar, str) else action.dest.upper())
    names.update(extra or {})
    parser.set_defaults(**{FLAG_NAMES: names})
    return names


def translate(message, names):
    """``message`` with Python argument names replaced by their CLI flags."""
    for name in sorted(names, key=len, reverse=True):
        flag = names[name]
        if flag.startswith("--no-"):
            message = re.sub(rf"\b{re.escape(name)}=False\b", flag, message)
        elif flag.startswith("--"):
            message = re.sub(rf"\b{re.escape(name)}=True\b", flag, message)
        message = message.replace(f"`{name}`", f"`{flag}`")
        message = re.sub(rf"(?<![\w-]){re.escape(name)}=", f"{flag}=", message)
        if "_" in name:  # an identifier, never an English word: replace it bare too (not a quoted key)
            message = re.sub(rf"(?<![\w`.'\"-]){re.escape(name)}(?![\w`'\"])", flag, message)
    return message


def report(args, err):
    """Print ``err`` as one CLI error line and return the exit status (re-raises SystemExit)."""
    if isinstance(err, SystemExit):
        raise err
    command = getattr(args, "command", None) or "keras-cnn"
    if os.environ.get("KERAS_CNN_TRACEBACK"):
        raise err
    if isinstance(err, KeyboardInterrupt):
        print(f"keras-cnn {command}: interrupted", file=sys.stderr)
        return 130
    message = str(err) or type(err).__name__
    if is_user_error(err):
        plain = (FileNotFoundError, FileExistsError, TimeoutError, ConnectionError)
        if isinstance(err, OSError) and not isinstance(err, plain):
            message = f"{type(err).__name__}: {message}"
        print(f"keras-cnn {command}: error: {translate(message, getattr(args, FLAG_NAMES, {}))}", file=sys.stderr)
        return 2
    traceback.print_exception(err, file=sys.stderr)
    print(f"keras-cnn {command}: error: {type(err).__name__}: {message} (a bug in keras-cnn: please report it "
          "with the traceback above)", file=sys.stderr)
    return 1
