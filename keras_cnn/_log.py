"""The package's voice: every module logs to ``logging.getLogger(__name__)``, under ``keras_cnn``.

``keras_cnn/__init__.py`` gives the ``keras_cnn`` logger a ``NullHandler`` only, so what is shown
is decided by the application's logging configuration, or by the ``keras-cnn`` command line, which
attaches `stderr_handler` for the length of a command (`keras_cnn.cli`).
"""

from __future__ import annotations

import logging
import sys


class CliFormatter(logging.Formatter):
    """``keras-cnn: <message>``, with ``warning: `` / ``error: `` before warnings and errors."""

    def format(self, record):
        message = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"keras-cnn: error: {message}"
        if record.levelno >= logging.WARNING:
            return f"keras-cnn: warning: {message}"
        return f"keras-cnn: {message}"


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever ``sys.stderr`` is at each record (pytest's capture swaps it)."""

    def __init__(self, level=logging.NOTSET):
        logging.Handler.__init__(self, level)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.setStream; the stream is always the current stderr
        pass


def stderr_handler(level=logging.INFO):
    """A handler writing ``keras-cnn: ...`` lines to stderr, from ``level`` up."""
    handler = _StderrHandler(level)
    handler.setFormatter(CliFormatter())
    return handler


def _handlers(logger):
    """The handlers a record of ``logger`` reaches, NullHandlers left out."""
    found = []
    while logger is not None:
        found += [h for h in logger.handlers if not isinstance(h, logging.NullHandler)]
        logger = logger.parent if logger.propagate else None
    return found


def last_words(logger, level, message, *args):
    """Log the line that says why the process ends (``os._exit``) right after.

    Through the configured handlers when there are any (their levels apply); otherwise on stderr
    as `stderr_handler` writes it, whatever the level, as Python prints an uncaught exception: a
    process never ends without saying why.
    """
    handlers = _handlers(logger)
    if handlers:
        logger.log(level, message, *args)
    else:
        handlers = [stderr_handler(logging.NOTSET)]
        handlers[0].handle(logger.makeRecord(logger.name, level, __file__, 0, message, args, None))
    for handler in handlers:
        handler.flush()
