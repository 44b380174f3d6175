"""Private names of tensorflow used by keras_cnn, each explained (see keras_cnn/_compat/__init__.py)."""

from __future__ import annotations
