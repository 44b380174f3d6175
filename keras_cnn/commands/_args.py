"""Argument types shared by the sub-commands; parse-time checks, no TensorFlow import."""

from __future__ import annotations

import argparse

def positive_int(text):
    """argparse ``type=`` for counts (``--epochs``, ...): an int > 0, refused at parse time."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number > 0. Received: {text!r}")
    return value


def registered_model(text):
    """argparse ``type=`` for a registered network name (from the specs: no Keras, no TensorFlow)."""
    from keras_cnn.models.specs import list_models

    if text not in list_models():
        raise argparse.ArgumentTypeError(
            f"must be a registered model name (see `keras-cnn list`): {', '.join(list_models())}. Received: {text!r}"
        )
    return text


def reachable_server(url, timeout=5.0):
    """Raise ConnectionError naming ``url`` when nothing accepts a TCP connection at its host:port.

    A quick check before TensorFlow loads (seconds): a mistyped or dead ``--server`` is said at once.
    """
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(url if "//" in url else f"//{url}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname
    except ValueError:
        host = None
    if not host:
        raise ValueError(f"`--server` must be a URL like http://localhost:8501. Received: --server={url!r}")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as err:
        raise ConnectionError(
            f"nothing answers at --server={url!r} ({host}:{port}: {err.strerror or err}); is TF Serving running "
            "there with --rest_api_port?"
        ) from None


#: The flags that name a directory a command creates or reuses (argparse dest -> flag).
DIRECTORY_FLAGS = {"out": "--out", "dir": "--dir", "export_dir": "--export-dir", "base_dir": "--base-dir"}


def check_directory_flags(args):
    """Refuse a directory flag that names an existing file (or lies under one), naming the flag."""
    from pathlib import Path

    for dest, flag in DIRECTORY_FLAGS.items():
        value = getattr(args, dest, None)
        if not isinstance(value, str) or not value:
            continue
        path = Path(value)
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            where = "is an existing file" if existing == path else f"lies under the existing file {existing}"
            raise NotADirectoryError(
                f"`{flag}` must be a directory to create or reuse, but it {where}. Received: {flag}={value!r}"
            )


IMAGE_SIZE_FORMS = "N (square), H,W or H,W,C, e.g. 224, 224,224 or 224,224,3"


def image_size(text):
    """argparse ``type=`` for ``--image-size``: "N", "H,W" or "H,W,C" -> a tuple of 2 or 3 ints.

    "N" means N x N. Channels, when given, are checked by the command against its model
    (`check_image_channels`). Raises `argparse.ArgumentTypeError` (argparse reports it as
    ``argument --image-size: ...``, exit 2) for anything else.
    """
    parts = [p.strip() for p in str(text).lower().replace("x", ",").split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) not in (1, 2, 3) or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"must be {IMAGE_SIZE_FORMS} (positive ints). Received: {text!r}")
    if len(values) == 1:
        values = (values[0], values[0])
    return values


def check_image_channels(size, channels, what, flag="--image-size"):
    """``size`` from `image_size` (or None) -> ``(H, W)`` or None; a C must equal ``channels``.

    Args:
        size: None, (H, W) or (H, W, C).
        channels: the channels ``what`` takes.
        what: the model (or source) named in the error, e.g. "resnet18".
        flag: the flag named in the error.

    Raises:
        ValueError: C differs from ``channels``.
    """
    if size is None:
        return None
    if len(size) == 3 and size[2] != channels:
        raise ValueError(
            f"`{flag}` has {size[2]} channels but {what} takes {channels}; give H,W or H,W,{channels}. "
            f"Received: {flag}={','.join(map(str, size))}"
        )
    return tuple(size[:2])
