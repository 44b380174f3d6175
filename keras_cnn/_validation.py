"""Argument checks shared by the whole package.

Every public entry point validates once, at the boundary, and raises a `ValueError` (or
`FileNotFoundError`) that names the argument, the value received and what would be accepted.
"""

from __future__ import annotations

import os


def check_choice(arg, value, choices):
    """Return ``value`` if it is one of ``choices``, else raise a ValueError naming ``arg``."""
    if value not in choices:
        raise ValueError(f"`{arg}` must be one of {list(choices)}. Received: {arg}={value!r}")
    return value


def check_positive_int(arg, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{arg}` must be a positive int. Received: {arg}={value!r}")
    return value


def check_non_negative_int(arg, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{arg}` must be an int >= 0. Received: {arg}={value!r}")
    return value


def check_fraction(arg, value, *, low=0.0, high=1.0, inclusive_high=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and low <= value and (value <= high if inclusive_high else value < high)
    if not ok:
        bound = "]" if inclusive_high else ")"
        raise ValueError(f"`{arg}` must be a number in [{low}, {high}{bound}. Received: {arg}={value!r}")
    return float(value)


def check_existing_path(arg, value, *, kind="file"):
    """Raise FileNotFoundError naming ``arg`` unless ``value`` exists (as a file or directory)."""
    path = os.fspath(value)
    if kind == "file" and not os.path.isfile(path):
        raise FileNotFoundError(f"`{arg}` must be an existing file. Received: {arg}={path!r}")
    if kind == "dir" and not os.path.isdir(path):
        raise FileNotFoundError(f"`{arg}` must be an existing directory. Received: {arg}={path!r}")
    return path


def parse_shape(arg, text, *, ndim=3):
    """Parse "H,W,C" (or a sequence) into a tuple of positive ints."""
    if isinstance(text, str):
        parts = [p.strip() for p in text.replace("x", ",").split(",") if p.strip()]
    else:
        parts = list(text)
    try:
        shape = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != ndim or any(s <= 0 for s in shape):
        example = ",".join(("224", "224", "3", "1")[:ndim])
        raise ValueError(f"`{arg}` must be {ndim} positive ints like {example}. Received: {arg}={text!r}")
    return shape
