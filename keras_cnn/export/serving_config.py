"""TF Serving configuration files: ``models.config`` and the batching parameters file.

Both are protocol buffers in text format, read by ``tensorflow_model_server`` through
``--model_config_file`` (``tensorflow.serving.ModelServerConfig``) and
``--batching_parameters_file`` (``tensorflow.serving.BatchingParameters``, used with
``--enable_batching``). They are built as the real messages (`keras_cnn.export.serving_protos`)
and written with ``google.protobuf.text_format``. Example ``models.config``::

    model_config_list {
      config {
        name: "lenet5"
        base_path: "/models/lenet5"
        model_platform: "tensorflow"
        model_version_policy { specific { versions: 1 versions: 2 } }
        version_labels { key: "stable" value: 1 }
      }
    }
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Sequence

from keras_cnn._io import atomic_write_text
from keras_cnn._validation import check_non_negative_int, check_positive_int

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")


def check_model_name(arg, name):
    """A TF Serving model name usable in a URL path and as a directory name."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"`{arg}` must be a non-empty name of letters, digits, '_', '.' or '-' "
            f"(it becomes a directory and a URL path segment). Received: {arg}={name!r}"
        )
    return name


@dataclasses.dataclass
class ServedModel:
    """One ``config { ... }`` entry of ``models.config``.

    Attributes:
        name: model name clients use (``/v1/models/<name>``).
        base_path: directory holding the numbered versions, as the *server* sees it
            (e.g. "/models/lenet5" inside the container).
        versions: "latest" (the highest version only; TF Serving's default), "all", or a list
            of version numbers to serve side by side.
        labels: optional version labels, e.g. {"stable": 1, "canary": 2} (the labelled
            versions must be served, so use a list of versions).
    """

    name: str
    base_path: str
    versions: str | Sequence[int] = "latest"
    labels: dict | None = None

    def __post_init__(self):
        check_model_name("name", self.name)
        if not isinstance(self.base_path, str) or not self.base_path:
            raise ValueError(f"`base_path` must be a non-empty string. Received: base_path={self.base_path!r}")
        if isinstance(self.versions, str):
            if self.versions not in ("latest", "all"):
                raise ValueError(
                    "`versions` must be 'latest', 'all' or a list of version numbers. "
                    f"Received: versions={self.versions!r}"
                )
        else:
            versions = list(self.versions)
            if not versions:
                raise ValueError(f"`versions` must not be empty. Received: versions={self.versions!r}")
            for v in versions:
                check_non_negative_int("versions", v)
            self.versions = sorted(set(versions))
        for label, version in (self.labels or {}).items():
            if not isinstance(label, str) or not _LABEL_RE.match(label):
                raise ValueError(f"`labels` keys must be identifiers like 'stable'. Received: labels={self.labels!r}")
            check_non_negative_int("labels", version)
            if isinstance(self.versions, list) and version not in self.versions:
                raise ValueError(
                    f"`labels` must point at served versions {self.versions}. Received: labels={self.labels!r}"
                )


def models_config(models):
    """The ``tensorflow.serving.ModelServerConfig`` message for several models.

    Args:
        models: a list of `ServedModel` (or dicts of its fields).

    Returns:
        ``tensorflow_serving.config.model_server_config_pb2.ModelServerConfig``.
    """
    from keras_cnn.export.serving_protos import ModelServerConfig

    models = [m if isinstance(m, ServedModel) else ServedModel(**m) for m in models]
    if not models:
        raise ValueError("`models` must list at least one model. Received: models=[]")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"`models` names must be unique. Received: names={names}")
    config = ModelServerConfig()
    for m in models:
        entry = config.model_config_list.config.add(name=m.name, base_path=m.base_path, model_platform="tensorflow")
        policy = entry.model_version_policy
        if m.versions == "all":
            policy.all.SetInParent()
        elif m.versions == "latest":
            policy.latest.num_versions = 1
        else:
            policy.specific.versions.extend(m.versions)
        for label, version in sorted((m.labels or {}).items()):
            entry.version_labels[label] = version
    return config


def models_config_text(models) -> str:
    """`models_config` in protobuf text format (what ``--model_config_file`` reads)."""
    from google.protobuf import text_format

    return text_format.MessageToString(models_config(models))


def write_models_config(path, models) -> Path:
    """Write `models_config_text` to ``path`` atomically and return the path."""
    text = models_config_text(models)
    atomic_write_text(path, text)
    return Path(path)


def scan_exports(base_dir="saved_models") -> dict[str, list[int]]:
    """Model name -> sorted version numbers found under ``base_dir`` (TF Serving layout).

    A version counts only if it is a directory named by digits holding ``saved_model.pb``.
    """
    base = Path(base_dir)
    found = {}
    if not base.is_dir():
        return found
    for model_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        versions = sorted(
            int(v.name) for v in model_dir.iterdir() if v.name.isdigit() and (v / "saved_model.pb").is_file()
        )
        if versions:
            found[model_dir.name] = versions
    return found


def models_config_from_exports(base_dir="saved_models", *, server_base="/models", versions="all") -> str:
    """``models.config`` text serving every export under ``base_dir``.

    Args:
        base_dir: local export root (``<name>/<version>/``).
        server_base: where the server sees ``base_dir`` (the container mount point).
        versions: "all" (every version found, listed explicitly), "latest", or "found" (alias
            of "all").
    """
    exports = scan_exports(base_dir)
    if not exports:
        raise FileNotFoundError(f"`base_dir` holds no SavedModel versions. Received: base_dir={str(base_dir)!r}")
    models = []
    for name, found in exports.items():
        policy = "latest" if versions == "latest" else found
        models.append(ServedModel(name, f"{server_base.rstrip('/')}/{name}", policy))
    return models_config_text(models)


def batching_parameters(
    *,
    max_batch_size=32,
    batch_timeout_micros=2000,
    max_enqueued_batches=100,
    num_batch_threads=4,
    allowed_batch_sizes=None,
    pad_variable_length_inputs=False,
):
    """The ``tensorflow.serving.BatchingParameters`` message for ``--batching_parameters_file``.

    Args:
        max_batch_size: largest batch formed. Default 32.
        batch_timeout_micros: how long a request may wait for peers. Default 2000 (2 ms).
        max_enqueued_batches: queue length (batches) before requests are rejected. Default 100.
        num_batch_threads: threads running batches; about the number of cores. Default 4.
        allowed_batch_sizes: optional increasing sizes to pad batches to; the last must equal
            ``max_batch_size`` (TF Serving's rule).
        pad_variable_length_inputs: pad inputs of different shapes. Default False.

    Returns:
        The message (see `keras_cnn.export.serving_protos.batching_parameters_class`).
    """
    from keras_cnn.export.serving_protos import batching_parameters_class

    check_positive_int("max_batch_size", max_batch_size)
    check_non_negative_int("batch_timeout_micros", batch_timeout_micros)
    check_positive_int("max_enqueued_batches", max_enqueued_batches)
    check_positive_int("num_batch_threads", num_batch_threads)
    message = batching_parameters_class()()
    message.max_batch_size.value = max_batch_size
    message.batch_timeout_micros.value = batch_timeout_micros
    message.max_enqueued_batches.value = max_enqueued_batches
    message.num_batch_threads.value = num_batch_threads
    if allowed_batch_sizes:
        sizes = list(allowed_batch_sizes)
        for s in sizes:
            check_positive_int("allowed_batch_sizes", s)
        if sizes != sorted(set(sizes)) or sizes[-1] != max_batch_size:
            raise ValueError(
                "`allowed_batch_sizes` must be strictly increasing and end with max_batch_size="
                f"{max_batch_size}. Received: allowed_batch_sizes={sizes}"
            )
        message.allowed_batch_sizes.extend(sizes)
    if pad_variable_length_inputs:
        message.pad_variable_length_inputs = True
    return message


def batching_parameters_text(**kwargs) -> str:
    """`batching_parameters` (same keywords) in protobuf text format."""
    from google.protobuf import text_format

    return text_format.MessageToString(batching_parameters(**kwargs))


def write_batching_parameters(path, **kwargs) -> Path:
    """Write `batching_parameters_text` (same keywords) to ``path`` atomically."""
    atomic_write_text(path, batching_parameters_text(**kwargs))
    return Path(path)
