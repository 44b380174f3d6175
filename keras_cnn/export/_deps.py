"""The optional ``deploy`` extra (ai-edge-litert, onnxruntime, onnx, tf2onnx): import or say what to install."""

from __future__ import annotations

import importlib

EXTRA = "deploy"
_PACKAGES = {  # top-level module -> the PyPI distribution that provides it
    "ai_edge_litert": "ai-edge-litert",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "tf2onnx": "tf2onnx",
}


class MissingExtraError(ImportError, ValueError):
    """A module of the ``deploy`` extra is not installed (a `ValueError` too: a usage error, one line)."""


def require(module, purpose):
    """Import ``module`` or raise `MissingExtraError` naming the extra to install.

    Args:
        module: dotted module name, e.g. "ai_edge_litert.interpreter".
        purpose: what it is needed for, e.g. "LiteRT (.tflite) models".
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        top = module.split(".")[0]
        if err.name is None or err.name.split(".")[0] != top:
            raise
        package = _PACKAGES.get(top, top)
        raise MissingExtraError(
            f"{purpose} need the {package!r} package of the {EXTRA!r} extra: pip install 'keras-cnn[{EXTRA}]'",
            name=module,
        ) from None


def version(distribution) -> str | None:
    """The installed version of a PyPI distribution, or None."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
