"""Exports: SavedModel for TF Serving (signatures, versions, warm-up, config, client), LiteRT and ONNX files;
each verified; one predict for every format.

Example:
    >>> from keras_cnn.export import export_for_serving, verify_export
    >>> path = export_for_serving("runs/lenet5/model.keras", "saved_models", "lenet5")
    >>> report = verify_export(path, model="runs/lenet5/model.keras")
    >>> report.ok
    True
    >>> from keras_cnn.export import export_model
    >>> result = export_model("runs/demo", "exports/demo-litert-int8", format="litert", quantize="int8")
"""

from keras_cnn.export.client import (
    Prediction,
    ServingError,
    predict_grpc,
    predict_keras,
    predict_rest,
    predict_saved_model,
)
from keras_cnn.export.formats import (
    ExportOptions,
    ExportRefused,
    ExportResult,
    export_model,
    predict_model,
    verify_any,
    verify_model_file,
)
from keras_cnn.export.saved_model import (
    BYTES_INPUT,
    BYTES_SIGNATURE,
    DEFAULT_SIGNATURE,
    IMAGES_INPUT,
    OUTPUT_NAMES,
    export_for_serving,
    load_class_names,
    next_version,
    read_class_names,
    read_metadata,
    remove_stale_temporaries,
)
from keras_cnn.export.serving_config import (
    ServedModel,
    batching_parameters,
    batching_parameters_text,
    models_config,
    models_config_from_exports,
    models_config_text,
    scan_exports,
    write_batching_parameters,
    write_models_config,
)
from keras_cnn.export.verify import Check, VerifyReport, read_signatures, verify_export
from keras_cnn.export.warmup import predict_log, read_warmup_requests, request_inputs, write_warmup_requests

__all__ = [
    "BYTES_INPUT",
    "BYTES_SIGNATURE",
    "Check",
    "DEFAULT_SIGNATURE",
    "ExportOptions",
    "ExportRefused",
    "ExportResult",
    "IMAGES_INPUT",
    "OUTPUT_NAMES",
    "Prediction",
    "ServedModel",
    "ServingError",
    "VerifyReport",
    "batching_parameters",
    "batching_parameters_text",
    "export_for_serving",
    "export_model",
    "load_class_names",
    "models_config",
    "models_config_from_exports",
    "models_config_text",
    "next_version",
    "predict_grpc",
    "predict_keras",
    "predict_log",
    "predict_model",
    "predict_rest",
    "predict_saved_model",
    "read_class_names",
    "read_metadata",
    "read_signatures",
    "read_warmup_requests",
    "remove_stale_temporaries",
    "request_inputs",
    "scan_exports",
    "verify_any",
    "verify_export",
    "verify_model_file",
    "write_batching_parameters",
    "write_models_config",
    "write_warmup_requests",
]
