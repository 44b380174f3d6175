"""TF Serving warm-up records: ``PredictionLog`` messages in a TFRecord file.

TF Serving replays ``<version>/assets.extra/tf_serving_warmup_requests`` when it loads a model
version, so that the first real request does not pay for graph optimisation and memory
allocation. The file is a TFRecord file; each record is a serialized
``tensorflow.serving.PredictionLog`` holding a ``predict_log.request`` (a ``PredictRequest``);
TF Serving reads at most 1000 records. The messages are the generated classes of
``tensorflow-serving-api``, the tensors ``tf.make_tensor_proto``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

WARMUP_FILENAME = "tf_serving_warmup_requests"
ASSETS_EXTRA = "assets.extra"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many records.


def _tensor_proto(value):
    """``tensorflow.TensorProto`` for a numpy array, a list of ``bytes`` or a TensorProto."""
    import tensorflow as tf

    if hasattr(value, "SerializeToString"):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, bytes) for v in value):
        return tf.make_tensor_proto(list(value), dtype=tf.string)
    return tf.make_tensor_proto(np.asarray(value))


def predict_log(model_name, signature_name, inputs, *, version=None):
    """A ``PredictionLog{predict_log{request{...}}}`` message for one warm-up request.

    Args:
        model_name: ``model_spec.name`` (TF Serving ignores it during warm-up but logs it).
        signature_name: ``model_spec.signature_name``, e.g. "serving_default".
        inputs: dict input alias -> numpy array, list of ``bytes`` (a DT_STRING tensor), or a
            ``TensorProto``.
        version: optional ``model_spec.version`` (int).

    Returns:
        ``tensorflow_serving.apis.prediction_log_pb2.PredictionLog``.
    """
    from keras_cnn.export.serving_protos import PredictionLog

    if not isinstance(inputs, dict) or not inputs:
        raise ValueError(f"`inputs` must be a non-empty dict name -> tensor. Received: inputs={inputs!r}")
    log = PredictionLog()
    request = log.predict_log.request
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(_tensor_proto(value))
    return log


def write_warmup_requests(path, records) -> Path:
    """Write ``PredictionLog`` records as a TFRecord file (atomically).

    Args:
        path: destination file, normally ``<version>/assets.extra/tf_serving_warmup_requests``.
        records: 1 to 1000 ``PredictionLog`` messages (from `predict_log`).

    Returns:
        The path written.
    """
    import tensorflow as tf

    from keras_cnn.export.serving_protos import PredictionLog

    records = list(records)
    if not 1 <= len(records) <= MAX_WARMUP_RECORDS:
        raise ValueError(
            f"`records` must hold 1 to {MAX_WARMUP_RECORDS} warm-up records (TF Serving's limit). "
            f"Received: {len(records)} records"
        )
    bad = [type(r).__name__ for r in records if not isinstance(r, PredictionLog)]
    if bad:
        raise ValueError(f"`records` must be PredictionLog messages. Received: a {bad[0]}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for record in records:
                writer.write(record.SerializeToString(deterministic=True))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_warmup_requests(path) -> list:
    """The ``PredictionLog`` records of a warm-up file, or of a SavedModel directory's one.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a record is not a ``PredictionLog`` holding a ``predict_log``.
    """
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    from keras_cnn.export.serving_protos import PredictionLog

    path = Path(path)
    if path.is_dir():
        path = path / ASSETS_EXTRA / WARMUP_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"`path` must be an existing warm-up file. Received: path={str(path)!r}")
    logs = []
    for i, raw in enumerate(tf.data.TFRecordDataset(str(path))):
        try:
            log = PredictionLog.FromString(raw.numpy())
        except DecodeError as err:
            raise ValueError(f"warm-up record {i} of {path} is not a PredictionLog ({err})") from None
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"warm-up record {i} of {path} holds no predict_log "
                             f"(log_type {log.WhichOneof('log_type')!r})")
        logs.append(log)
    return logs


def request_inputs(log) -> dict:
    """Input alias -> numpy array of a ``PredictionLog``'s request (bytes arrays: dtype object)."""
    import tensorflow as tf

    return {name: tf.make_ndarray(tensor) for name, tensor in log.predict_log.request.inputs.items()}


def warmup_batch_sizes(warmup) -> tuple[int, ...]:
    """Normalise ``export_for_serving(warmup=...)``: True -> (1,), False -> (), ints kept."""
    from keras_cnn._validation import check_positive_int

    if warmup is True:
        return (1,)
    if warmup is False or warmup is None:
        return ()
    sizes = (warmup,) if isinstance(warmup, int) else tuple(warmup)
    for size in sizes:
        check_positive_int("warmup", size)
    if not sizes:
        raise ValueError(f"`warmup` must be a bool or batch sizes like (1, 8). Received: warmup={warmup!r}")
    return sizes
