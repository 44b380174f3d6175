"""ONNX export through Keras' own exporter (``model.export(format="onnx")``: tf2onnx), run by ONNX Runtime.

The exported graph is the Keras model's inference call with its ``Preprocess`` layer inside, so
the file takes raw 0..255 pixels (input ``images``, float32 ``[batch, H, W, C]``, batch dynamic);
a model that outputs logits gets a ``Softmax`` layer appended first, so the single output is
probabilities. The conversion needs ``tf2onnx`` and ``onnx``; running needs ``onnxruntime``
(CPU execution provider).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from keras_cnn.export._deps import require

MODEL_FILE = "model.onnx"
SUFFIX = ".onnx"
INPUT_NAME = "images"


def convert(model, input_shape, *, outputs_logits=False, opset=None) -> bytes:
    """Convert a single-output classifier to an ONNX model with Keras' exporter.

    Args:
        model: the inference ``keras.Model`` (raw pixels in, scores out).
        input_shape: ``(H, W, C)``.
        outputs_logits: append a softmax. Default False.
        opset: ONNX opset. Default None (tf2onnx's default).

    Returns:
        The ``.onnx`` file's bytes.
    """
    import keras
    import tensorflow as tf

    require("tf2onnx", "ONNX exports")
    require("onnx", "ONNX exports")
    if outputs_logits:
        inputs = keras.Input(shape=tuple(input_shape), name=INPUT_NAME)
        model = keras.Model(inputs, keras.layers.Softmax(name="probabilities")(model(inputs)), name=model.name)
    signature = [tf.TensorSpec((None, *input_shape), tf.float32, name=INPUT_NAME)]
    with tempfile.TemporaryDirectory(prefix="keras_cnn_onnx_") as scratch, warnings.catch_warnings():
        # Keras' tf2onnx patch probes the removed `np.object` alias (a FutureWarning, not ours to act on).
        warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
        path = Path(scratch) / MODEL_FILE
        model.export(str(path), format="onnx", verbose=False, input_signature=signature, opset_version=opset)
        return path.read_bytes()


class OnnxModel:
    """A ``.onnx`` classifier run by ONNX Runtime on the CPU: float pixels in, probabilities out.

    Args:
        source: path of a ``.onnx`` file, or its bytes.
        num_threads: intra-op threads. Default None (ONNX Runtime's choice).

    Attributes:
        input_shape: ``(H, W, C)``.
        num_classes: outputs per image.
        input_dtype: "float32".

    Raises:
        ValueError: the file is not an ONNX model (truncated, another format), or is not a
            classifier of one image input.
    """

    def __init__(self, source, *, num_threads=None):
        ort = require("onnxruntime", "ONNX models")
        self.name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if num_threads:
            options.intra_op_num_threads = num_threads
        try:
            self._session = ort.InferenceSession(
                bytes(source) if isinstance(source, (bytes, bytearray)) else str(source),
                sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own pybind classes (InvalidProtobuf, Fail, ...)
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"`model` could not be loaded as an ONNX model (truncated, or not a .onnx file: "
                             f"{reason}). Received: model={self.name!r}") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 4 or len(outputs[0].shape) != 2 or \
                not all(isinstance(d, int) for d in inputs[0].shape[1:]) or not isinstance(outputs[0].shape[1], int):
            raise ValueError("`model` must be a classifier of one image batch [N, H, W, C] -> [N, classes] with a "
                             f"fixed image size. Received: model={self.name!r}")
        self._input = inputs[0].name
        self.input_shape = tuple(int(d) for d in inputs[0].shape[1:])
        self.num_classes = int(outputs[0].shape[1])
        self.input_dtype = "float32"

    def __call__(self, images) -> np.ndarray:
        """float32 probabilities ``[N, classes]`` of raw-pixel images ``[N, H, W, C]``."""
        (out,) = self._session.run(None, {self._input: np.asarray(images, dtype="float32")})
        return np.asarray(out, dtype="float32")


def is_model_file(path) -> bool:
    """True for a path ending in ``.onnx``."""
    return Path(path).suffix.lower() == SUFFIX

