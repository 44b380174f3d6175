"""TF Serving's protocol buffer messages, from ``tensorflow-serving-api`` (a core dependency).

Everything keras_cnn writes for TF Serving is one of these messages, serialized by protobuf
itself: warm-up records (``PredictionLog``), ``models.config`` (``ModelServerConfig``, text
format) and the batching parameters file (``BatchingParameters``, text format).

``tensorflow-serving-api`` ships the generated classes of ``tensorflow_serving/apis`` and
``tensorflow_serving/config``, but not ``servables/tensorflow/session_bundle_config.proto``, where
``BatchingParameters`` (the message ``--batching_parameters_file`` holds) is declared. That one
message is built here with protobuf's own descriptor machinery from the upstream declaration
(same package, names, field numbers and types; fields 1-7, all that keras_cnn writes)::

    message BatchingParameters {
      google.protobuf.Int64Value max_batch_size = 1;
      google.protobuf.Int64Value batch_timeout_micros = 2;
      google.protobuf.Int64Value max_enqueued_batches = 3;
      google.protobuf.Int64Value num_batch_threads = 4;
      google.protobuf.StringValue thread_pool_name = 5;
      repeated int64 allowed_batch_sizes = 6;
      bool pad_variable_length_inputs = 7;
    }

It lives in a private descriptor pool, so it can never clash with a generated class should a
later ``tensorflow-serving-api`` ship one (`batching_parameters_class` then prefers that).
"""

from __future__ import annotations

import functools

from tensorflow_serving.apis import (  # noqa: F401 - re-exported for the rest of keras_cnn
    get_model_metadata_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import file_system_storage_path_source_pb2, model_server_config_pb2  # noqa: F401

ModelServerConfig = model_server_config_pb2.ModelServerConfig
ModelConfig = model_server_config_pb2.ModelConfig
ServableVersionPolicy = file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy
PredictionLog = prediction_log_pb2.PredictionLog
PredictRequest = predict_pb2.PredictRequest

_BATCHING_PROTO = "tensorflow_serving/servables/tensorflow/session_bundle_config.proto"


@functools.lru_cache(maxsize=None)
def batching_parameters_class():
    """The ``tensorflow.serving.BatchingParameters`` message class (see the module docstring)."""
    try:  # a future tensorflow-serving-api may ship the generated module
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2

        return session_bundle_config_pb2.BatchingParameters
    except ImportError:
        pass
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    field = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name=_BATCHING_PROTO, package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = proto.message_type.add(name="BatchingParameters")
    for name, number, kind, type_name, label in (
        ("max_batch_size", 1, field.TYPE_MESSAGE, ".google.protobuf.Int64Value", field.LABEL_OPTIONAL),
        ("batch_timeout_micros", 2, field.TYPE_MESSAGE, ".google.protobuf.Int64Value", field.LABEL_OPTIONAL),
        ("max_enqueued_batches", 3, field.TYPE_MESSAGE, ".google.protobuf.Int64Value", field.LABEL_OPTIONAL),
        ("num_batch_threads", 4, field.TYPE_MESSAGE, ".google.protobuf.Int64Value", field.LABEL_OPTIONAL),
        ("thread_pool_name", 5, field.TYPE_MESSAGE, ".google.protobuf.StringValue", field.LABEL_OPTIONAL),
        ("allowed_batch_sizes", 6, field.TYPE_INT64, None, field.LABEL_REPEATED),
        ("pad_variable_length_inputs", 7, field.TYPE_BOOL, None, field.LABEL_OPTIONAL),
    ):
        entry = message.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            entry.type_name = type_name
    pool.Add(proto)
    descriptor = pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    return message_factory.GetMessageClass(descriptor)
