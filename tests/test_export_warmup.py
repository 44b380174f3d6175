"""Warm-up records: hand-encoded PredictionLog protobufs in a TFRecord file."""

import importlib.util

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.export import export_for_serving, read_metadata
from keras_cnn.export.warmup import (
    decode_predict_log,
    encode_predict_log,
    read_warmup_requests,
    warmup_batch_sizes,
    write_warmup_requests,
)
from keras_cnn.layers.preprocess import Preprocess

HAVE_TF_SERVING = importlib.util.find_spec("tensorflow_serving") is not None


def _len(payload):
    assert len(payload) < 128  # one-byte varint lengths in the hand-written expectation below
    return bytes([len(payload)]) + payload


def test_wire_format_spelled_out():
    tensor = tf.make_tensor_proto(np.array([1.5], dtype="float32")).SerializeToString()
    model_spec = b"\x0a" + _len(b"m") + b"\x1a" + _len(b"sig")  # name = 1, signature_name = 3
    entry = b"\x0a" + _len(b"x") + b"\x12" + _len(tensor)  # map entry: key = 1, value = 2
    request = b"\x0a" + _len(model_spec) + b"\x12" + _len(entry)  # model_spec = 1, inputs = 2
    predict_log = b"\x0a" + _len(request)  # PredictLog.request = 1
    expected = b"\x32" + _len(predict_log)  # PredictionLog.predict_log = 6 (6 << 3 | 2 = 0x32)
    assert encode_predict_log("m", "sig", {"x": np.array([1.5], dtype="float32")}) == expected


def test_version_and_multibyte_lengths_round_trip():
    images = np.random.default_rng(0).random((2, 9, 9, 3)).astype("float32")  # > 127 bytes
    blobs = [b"\x89PNG fake", b"\xff\xd8\xff fake"]
    data = encode_predict_log("lenet5", "serving_bytes", {"images": images, "image_bytes": blobs}, version=300)
    decoded = decode_predict_log(data)
    assert (decoded.model_name, decoded.signature_name, decoded.version) == ("lenet5", "serving_bytes", 300)
    assert sorted(decoded.inputs) == ["image_bytes", "images"]
    np.testing.assert_array_equal(decoded.inputs["images"], images)
    assert list(decoded.inputs["image_bytes"]) == blobs
    with pytest.raises(ValueError, match="predict_log"):
        decode_predict_log(b"\x0a\x00")  # only log_metadata
    with pytest.raises(ValueError, match="`inputs`"):
        encode_predict_log("m", "s", {})


def test_file_limits_and_batch_size_option(tmp_path):
    record = encode_predict_log("m", "s", {"x": np.zeros((1, 2), "float32")})
    path = write_warmup_requests(tmp_path / "assets.extra" / "tf_serving_warmup_requests", [record] * 3)
    assert [r.signature_name for r in read_warmup_requests(path)] == ["s"] * 3
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    with pytest.raises(ValueError, match="1 to 1000"):
        write_warmup_requests(tmp_path / "w", [])
    with pytest.raises(ValueError, match="1 to 1000"):
        write_warmup_requests(tmp_path / "w", [record] * 1001)
    assert warmup_batch_sizes(True) == (1,) and warmup_batch_sizes(False) == ()
    assert warmup_batch_sizes([1, 8]) == (1, 8) and warmup_batch_sizes(4) == (4,)
    with pytest.raises(ValueError, match="`warmup`"):
        warmup_batch_sizes([2, -1])


@pytest.fixture(scope="module")
def export_with_warmup(tmp_path_factory):
    inputs = keras.Input((10, 10, 1))
    x = Preprocess("unit")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name="wu")
    return export_for_serving(model, tmp_path_factory.mktemp("sm"), warmup=[1, 3])


def test_export_writes_replayable_records(export_with_warmup):
    path = export_with_warmup
    records = read_warmup_requests(path)
    assert [(r.model_name, r.signature_name, len(next(iter(r.inputs.values())))) for r in records] == [
        ("wu", "serving_default", 1), ("wu", "serving_bytes", 1),
        ("wu", "serving_default", 3), ("wu", "serving_bytes", 3),
    ]
    assert read_metadata(path)["warmup_batch_sizes"] == [1, 3]
    loaded = tf.saved_model.load(str(path), tags=["serve"])
    for float_record, bytes_record in (records[0:2], records[2:4]):
        images = float_record.inputs["images"]
        assert images.shape[1:] == (10, 10, 1) and images.dtype == np.float32
        decoded = np.stack([tf.io.decode_png(b).numpy() for b in bytes_record.inputs["image_bytes"]])
        np.testing.assert_array_equal(decoded.astype("float32"), images)  # same pixels, PNG-encoded
        a = loaded.signatures["serving_default"](images=tf.constant(images))["probabilities"]
        b = loaded.signatures["serving_bytes"](image_bytes=tf.constant(list(bytes_record.inputs["image_bytes"])))
        np.testing.assert_allclose(a.numpy(), b["probabilities"].numpy(), atol=1e-6)


@pytest.mark.skipif(not HAVE_TF_SERVING, reason="tensorflow-serving-api (the 'serving' extra) not installed")
def test_bytes_parse_identically_with_the_real_proto(export_with_warmup):
    from tensorflow_serving.apis import prediction_log_pb2

    for raw in tf.data.TFRecordDataset(str(export_with_warmup / "assets.extra" / "tf_serving_warmup_requests")):
        data = raw.numpy()
        log = prediction_log_pb2.PredictionLog.FromString(data)
        assert log.WhichOneof("log_type") == "predict_log"
        assert log.SerializeToString(deterministic=True) == data
        ours = decode_predict_log(data)
        request = log.predict_log.request
        assert request.model_spec.name == ours.model_name == "wu"
        assert request.model_spec.signature_name == ours.signature_name
        for key, tensor in request.inputs.items():
            np.testing.assert_array_equal(tf.make_ndarray(tensor), ours.inputs[key])
    versioned = encode_predict_log("m", "s", {"b": [b"x"], "a": np.ones((1, 2), "float32")}, version=12)
    log = prediction_log_pb2.PredictionLog.FromString(versioned)
    assert log.predict_log.request.model_spec.version.value == 12
    assert log.SerializeToString(deterministic=True) == versioned
