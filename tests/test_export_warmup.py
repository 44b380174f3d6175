"""Warm-up records: TF Serving's PredictionLog messages (tensorflow-serving-api) in a TFRecord file."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from keras_cnn.export import export_for_serving, read_metadata
from keras_cnn.export.warmup import (
    predict_log,
    read_warmup_requests,
    request_inputs,
    warmup_batch_sizes,
    write_warmup_requests,
)
from keras_cnn.layers.preprocess import Preprocess


def test_predict_log_is_the_real_message():
    images = np.random.default_rng(0).random((2, 9, 9, 3)).astype("float32")
    blobs = [b"\x89PNG fake", b"\xff\xd8\xff fake"]
    log = predict_log("lenet5", "serving_bytes", {"images": images, "image_bytes": blobs}, version=300)
    assert isinstance(log, prediction_log_pb2.PredictionLog)
    parsed = prediction_log_pb2.PredictionLog.FromString(log.SerializeToString())
    assert parsed.WhichOneof("log_type") == "predict_log"
    spec = parsed.predict_log.request.model_spec
    assert (spec.name, spec.signature_name, spec.version.value) == ("lenet5", "serving_bytes", 300)
    inputs = request_inputs(parsed)
    assert sorted(inputs) == ["image_bytes", "images"]
    np.testing.assert_array_equal(inputs["images"], images)
    assert list(inputs["image_bytes"]) == blobs
    assert not predict_log("m", "s", {"x": np.ones(1, "float32")}).predict_log.request.model_spec.HasField("version")
    with pytest.raises(ValueError, match="`inputs`"):
        predict_log("m", "s", {})


def test_no_hand_written_protobuf_encoding_remains():
    import keras_cnn.export.warmup as module

    source = Path(module.__file__).read_text(encoding="utf-8")
    for needle in ("varint", "wire type", "<< 3", "_iter_fields"):
        assert needle not in source, needle


def test_file_limits_and_batch_size_option(tmp_path):
    record = predict_log("m", "s", {"x": np.zeros((1, 2), "float32")})
    path = write_warmup_requests(tmp_path / "assets.extra" / "tf_serving_warmup_requests", [record] * 3)
    assert [r.predict_log.request.model_spec.signature_name for r in read_warmup_requests(path)] == ["s"] * 3
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    with pytest.raises(ValueError, match="1 to 1000"):
        write_warmup_requests(tmp_path / "w", [])
    with pytest.raises(ValueError, match="1 to 1000"):
        write_warmup_requests(tmp_path / "w", [record] * 1001)
    with pytest.raises(ValueError, match="PredictionLog messages"):
        write_warmup_requests(tmp_path / "w", [b"raw bytes"])
    other = prediction_log_pb2.PredictionLog()
    other.classify_log.request.model_spec.name = "m"
    with tf.io.TFRecordWriter(str(tmp_path / "classify")) as writer:
        writer.write(other.SerializeToString())
    with pytest.raises(ValueError, match="holds no predict_log"):
        read_warmup_requests(tmp_path / "classify")
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
    summary = [(r.predict_log.request.model_spec.name, r.predict_log.request.model_spec.signature_name,
                len(next(iter(request_inputs(r).values())))) for r in records]
    assert summary == [
        ("wu", "serving_default", 1), ("wu", "serving_bytes", 1),
        ("wu", "serving_default", 3), ("wu", "serving_bytes", 3),
    ]
    assert read_metadata(path)["warmup_batch_sizes"] == [1, 3]
    loaded = tf.saved_model.load(str(path), tags=["serve"])
    for float_record, bytes_record in (records[0:2], records[2:4]):
        images = request_inputs(float_record)["images"]
        blobs = request_inputs(bytes_record)["image_bytes"]
        assert images.shape[1:] == (10, 10, 1) and images.dtype == np.float32
        decoded = np.stack([tf.io.decode_png(b).numpy() for b in blobs])
        np.testing.assert_array_equal(decoded.astype("float32"), images)  # same pixels, PNG-encoded
        a = loaded.signatures["serving_default"](images=tf.constant(images))["probabilities"]
        b = loaded.signatures["serving_bytes"](image_bytes=tf.constant(list(blobs)))
        np.testing.assert_allclose(a.numpy(), b["probabilities"].numpy(), atol=1e-6)
