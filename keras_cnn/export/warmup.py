"""TF Serving warm-up records, written without ``tensorflow-serving-api``.

TF Serving replays ``<version>/assets.extra/tf_serving_warmup_requests`` when it loads a model
version, so that the first real request does not pay for graph optimisation and memory
allocation. The file is a TFRecord file; each record is a serialized
``tensorflow.serving.PredictionLog`` protocol buffer (at most 1000 records are read).

The messages needed are small, so they are encoded here by hand in the protobuf wire format
(https://protobuf.dev/programming-guides/encoding/), with ``tf.make_tensor_proto`` producing the
``TensorProto`` payloads. Field numbers, from ``tensorflow_serving/apis/*.proto``::

    message PredictionLog  { LogMetadata log_metadata = 1; PredictLog predict_log = 6; ... }
    message PredictLog     { PredictRequest request = 1; PredictResponse response = 2; }
    message PredictRequest { ModelSpec model_spec = 1; map<string, TensorProto> inputs = 2; ... }
    message ModelSpec      { string name = 1; google.protobuf.Int64Value version = 2;
                             string signature_name = 3; string version_label = 4; }
    message Int64Value     { int64 value = 1; }
    // map<K, V> entries are encoded as repeated  message { K key = 1; V value = 2; }

Fields are written in field-number order and map entries sorted by key, which is exactly what
``SerializeToString(deterministic=True)`` of the real generated classes produces; the test suite
checks the bytes against ``tensorflow_serving.apis.prediction_log_pb2`` when that is importable.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

# Standalone on purpose (numpy + tensorflow only): the verification worker loads this file
# without importing keras_cnn, to prove that serving an export needs no keras_cnn code.

WARMUP_FILENAME = "tf_serving_warmup_requests"
ASSETS_EXTRA = "assets.extra"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many records.

_LEN = 2  # wire type: length-delimited
_VARINT = 0  # wire type: varint


# --------------------------------------------------------------------------- wire format


def _varint(value: int) -> bytes:
    if value < 0:  # int64 negative numbers are sent as 10-byte two's complement.
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def _len_field(field: int, payload: bytes) -> bytes:
    return _key(field, _LEN) + _varint(len(payload)) + payload


def _string_field(field: int, text: str) -> bytes:
    # proto3: a field equal to its default ("" here) is not written.
    return _len_field(field, text.encode("utf-8")) if text else b""


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint in protobuf message")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes in protobuf message")


def _iter_fields(data: bytes):
    """Yield ``(field_number, wire_type, value)``; value is int (varint) or bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos)
        elif wire_type == _LEN:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated length-delimited field in protobuf message")
            value, pos = data[pos : pos + size], pos + size
        elif wire_type == 1:  # 64-bit
            value, pos = data[pos : pos + 8], pos + 8
        elif wire_type == 5:  # 32-bit
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        yield field, wire_type, value


# --------------------------------------------------------------------------- messages


def _tensor_proto_bytes(value) -> bytes:
    """Serialized ``tensorflow.TensorProto`` for a numpy array, list of bytes or TensorProto."""
    import tensorflow as tf

    if hasattr(value, "SerializeToString"):
        return value.SerializeToString()
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, bytes) for v in value):
        return tf.make_tensor_proto(list(value), dtype=tf.string).SerializeToString()
    return tf.make_tensor_proto(np.asarray(value)).SerializeToString()


def encode_predict_log(model_name, signature_name, inputs, *, version=None) -> bytes:
    """Serialize one ``PredictionLog{predict_log{request{...}}}`` message.

    Args:
        model_name: ``model_spec.name`` (TF Serving ignores it during warm-up but logs it).
        signature_name: ``model_spec.signature_name``, e.g. "serving_default".
        inputs: dict input alias -> numpy array, list of ``bytes`` (a DT_STRING tensor), or a
            ``TensorProto``.
        version: optional ``model_spec.version`` (int).

    Returns:
        The wire-format bytes, identical to the real proto's deterministic serialization.
    """
    if not isinstance(inputs, dict) or not inputs:
        raise ValueError(f"`inputs` must be a non-empty dict name -> tensor. Received: inputs={inputs!r}")
    spec = _string_field(1, model_name)
    if version is not None:
        spec += _len_field(2, _key(1, _VARINT) + _varint(int(version)))
    spec += _string_field(3, signature_name)
    request = _len_field(1, spec)
    for name in sorted(inputs):
        entry = _string_field(1, name) + _len_field(2, _tensor_proto_bytes(inputs[name]))
        request += _len_field(2, entry)
    predict_log = _len_field(1, request)
    return _len_field(6, predict_log)


@dataclasses.dataclass
class WarmupRequest:
    """A decoded warm-up record: what TF Serving will run when it loads the model."""

    model_name: str
    signature_name: str
    version: int | None
    inputs: dict  # alias -> numpy array (bytes arrays have dtype object)


def decode_predict_log(data: bytes) -> WarmupRequest:
    """Decode a ``PredictionLog`` holding a ``predict_log`` (the inverse of `encode_predict_log`).

    Raises:
        ValueError: if ``data`` is not such a message.
    """
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    predict_log = None
    for field, wire_type, value in _iter_fields(data):
        if field == 6 and wire_type == _LEN:
            predict_log = value
    if predict_log is None:
        raise ValueError("record is not a PredictionLog with a predict_log")
    request = next((v for f, w, v in _iter_fields(predict_log) if f == 1 and w == _LEN), b"")
    name = signature = ""
    version = None
    inputs = {}
    for field, wire_type, value in _iter_fields(request):
        if field == 1 and wire_type == _LEN:
            for f, w, v in _iter_fields(value):
                if f == 1 and w == _LEN:
                    name = v.decode("utf-8")
                elif f == 3 and w == _LEN:
                    signature = v.decode("utf-8")
                elif f == 2 and w == _LEN:
                    version = next((x for ff, ww, x in _iter_fields(v) if ff == 1 and ww == _VARINT), 0)
        elif field == 2 and wire_type == _LEN:
            key, tensor = "", b""
            for f, w, v in _iter_fields(value):
                if f == 1 and w == _LEN:
                    key = v.decode("utf-8")
                elif f == 2 and w == _LEN:
                    tensor = v
            inputs[key] = tf.make_ndarray(tensor_pb2.TensorProto.FromString(tensor))
    return WarmupRequest(name, signature, version, inputs)


# --------------------------------------------------------------------------- files


def write_warmup_requests(path, records) -> Path:
    """Write serialized ``PredictionLog`` records as a TFRecord file (atomically).

    Args:
        path: destination file, normally ``<version>/assets.extra/tf_serving_warmup_requests``.
        records: iterable of bytes from `encode_predict_log`; 1 to 1000 of them.

    Returns:
        The path written.
    """
    import tensorflow as tf

    records = list(records)
    if not 1 <= len(records) <= MAX_WARMUP_RECORDS:
        raise ValueError(
            f"`records` must hold 1 to {MAX_WARMUP_RECORDS} warm-up records (TF Serving's limit). "
            f"Received: {len(records)} records"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for record in records:
                writer.write(record)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_warmup_requests(path) -> list[WarmupRequest]:
    """Read and decode a ``tf_serving_warmup_requests`` file, or a SavedModel directory's one."""
    import tensorflow as tf

    path = Path(path)
    if path.is_dir():
        path = path / ASSETS_EXTRA / WARMUP_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"`path` must be an existing warm-up file. Received: path={str(path)!r}")
    return [decode_predict_log(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]


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
