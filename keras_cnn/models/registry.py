"""The model registry: one entry per network, with what callers need to feed it.

Each family module registers its builders at import time. ``build_model(name, **kwargs)``
forwards to the builder, whose keyword arguments follow keras.applications (``include_top``,
``weights``, ``input_shape``, ``classes``, ...).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

PREPROCESSING_MODES = ("tf", "caffe", "torch", "unit")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """What the registry knows of a network.

    Attributes:
        name: registry key, e.g. "resnet50".
        builder: callable returning a `keras.Model`; keras.applications-style keywords.
        family: "lenet", "alexnet", "vgg", "plain", "resnet", "googlenet", "inception_v2", ...
        default_size: default input height = width.
        min_size: smallest input height = width accepted with ``include_top=False``.
        channels: default input channels.
        preprocessing: pixel preprocessing expected by the network, one of
            "tf" (x / 127.5 - 1), "caffe" (BGR, mean-subtracted), "torch" (ImageNet mean/std),
            "unit" (x / 255).
        stages: feature taps, stage name -> layer name, in depth order.
        twin: the keras.applications class this network mirrors layer for layer, or None.
        aux_heads: number of auxiliary classifiers the network can grow (``aux_logits=True``).
        description: one line for ``list_models`` and the CLI.
    """

    name: str
    builder: Callable
    family: str
    default_size: int
    min_size: int
    channels: int = 3
    preprocessing: str = "tf"
    stages: Mapping[str, str] = dataclasses.field(default_factory=dict)
    twin: str | None = None
    aux_heads: int = 0
    description: str = ""


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name, builder, **fields):
    """Register ``builder`` under ``name``; raises ValueError on a duplicate name."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
    if name in _REGISTRY:
        raise ValueError(f"A model named {name!r} is already registered; names must be unique.")
    entry = ModelEntry(name=name, builder=builder, **fields)
    if entry.preprocessing not in PREPROCESSING_MODES:
        raise ValueError(
            f"`preprocessing` must be one of {list(PREPROCESSING_MODES)}. "
            f"Received: preprocessing={entry.preprocessing!r}"
        )
    _REGISTRY[name] = entry
    return entry


def _ensure_loaded():
    # Importing the families registers them.
    from keras_cnn import models  # noqa: F401


def list_models(family=None):
    """Names of the registered networks (optionally of one family), in registration order."""
    _ensure_loaded()
    return [n for n, e in _REGISTRY.items() if family is None or e.family == family]


def get_model_entry(name) -> ModelEntry:
    """The `ModelEntry` for ``name``; ValueError listing the known names otherwise."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model `name`. Received: name={name!r}. Known models: {list(_REGISTRY)}")
    return _REGISTRY[name]


def build_model(name, **kwargs):
    """Build the registered network ``name`` with keras.applications-style keyword arguments.

    Example:
        >>> model = build_model("resnet18", include_top=False, input_shape=(64, 64, 3))
    """
    return get_model_entry(name).builder(**kwargs)
