"""Argument types shared by the sub-commands; parse-time checks, no TensorFlow import."""

from __future__ import annotations

import argparse

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
