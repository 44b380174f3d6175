"""LiteRT (TensorFlow Lite) export: conversion with quantization, and the interpreter that runs it.

Conversion is TensorFlow's ``tf.lite.TFLiteConverter`` on the traced inference function
``images -> probabilities`` of the Keras model (its ``Preprocess`` layer inside, so the file takes
raw 0..255 pixels; a softmax is appended to a model that outputs logits). The batch dimension
stays dynamic. Quantization (https://ai.google.dev/edge/litert/models/post_training_quantization):

* ``none``: float32 weights and activations;
* ``float16``: weights stored as float16, dequantized when the interpreter loads them;
* ``dynamic``: int8 weights, activations quantized on the fly (no calibration data);
* ``int8``: full integer (every op int8; scales calibrated on representative images). Inputs and
  outputs stay float32 unless ``int8_io=True`` (then the file takes int8 pixels quantized with
  the input's scale and zero point, which `LiteRTModel` applies).

Running uses ``ai-edge-litert`` (``ai_edge_litert.interpreter.Interpreter``, XNNPACK on CPU); this
module never imports ``tf.lite.Interpreter``, which is deprecated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_cnn._io import quiet_native_output
from keras_cnn.export import _optimize
from keras_cnn.export._deps import require

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
INTEGER_QUANTIZATIONS = ("dynamic", "int8")
MODEL_FILE = "model.tflite"
SUFFIX = ".tflite"


def probabilities_function(model, input_shape, outputs_logits):
    """The frozen ``images -> probabilities`` concrete function of ``model``.

    Weights are constants (the converter keeps Keras 3's resource variables as ``READ_VARIABLE``
    ops it cannot initialise otherwise) and BatchNormalization is folded into the convolutions
    (`keras_cnn.export._optimize`).
    """
    import tensorflow as tf

    optimized = _optimize.optimized_inference_graph(model, input_shape)
    network = _optimize.graph_function(optimized, input_shape)

    @tf.function(input_signature=[tf.TensorSpec((None, *input_shape), tf.float32, name="images")])
    def probabilities(images):
        scores = tf.cast(network(images), tf.float32)
        return tf.nn.softmax(scores, axis=-1) if outputs_logits else scores

    return probabilities.get_concrete_function()


def convert(model, input_shape, *, outputs_logits=False, quantize="none", calibration=None, int8_io=False) -> bytes:
    """Convert a single-output classifier to a LiteRT flatbuffer.

    Args:
        model: the inference ``keras.Model`` (raw pixels in, scores out).
        input_shape: ``(H, W, C)``.
        outputs_logits: append a softmax. Default False.
        quantize: one of `QUANTIZATIONS`. Default "none".
        calibration: float32 ``[N, H, W, C]`` raw pixels; required for "int8" (the converter
            runs them one by one to calibrate the activation ranges).
        int8_io: int8 input and output tensors (only with "int8"). Default False.

    Returns:
        The ``.tflite`` file's bytes.
    """
    import tensorflow as tf

    function = probabilities_function(model, input_shape, outputs_logits)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], tf.Module())
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        images = np.asarray(calibration, dtype="float32")

        def representative():
            for image in images:
                yield [image[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    with quiet_native_output():
        return bytes(converter.convert())


class LiteRTModel:
    """A ``.tflite`` classifier run by ai-edge-litert's interpreter: float pixels in, probabilities out.

    Args:
        source: path of a ``.tflite`` file, or its bytes.
        num_threads: interpreter threads. Default None (the interpreter's choice).

    Attributes:
        input_shape: ``(H, W, C)``.
        num_classes: outputs per image.
        input_dtype: "float32" or "int8".

    Raises:
        ValueError: the file is not a LiteRT model (truncated, another format), or is not a
            classifier of one image input.
    """

    def __init__(self, source, *, num_threads=None):
        interpreter_module = require("ai_edge_litert.interpreter", "LiteRT (.tflite) models")
        self.name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
        try:
            with quiet_native_output(replay=False):
                if isinstance(source, (bytes, bytearray)):
                    self._interpreter = interpreter_module.Interpreter(model_content=bytes(source),
                                                                       num_threads=num_threads)
                else:
                    self._interpreter = interpreter_module.Interpreter(model_path=str(source), num_threads=num_threads)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"`model` could not be loaded as a LiteRT model (truncated, or not a .tflite file: "
                             f"{reason}). Received: model={self.name!r}") from None
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0]["shape"]) != 4 or len(outputs[0]["shape"]) != 2:
            raise ValueError("`model` must be a classifier of one image batch [N, H, W, C] -> [N, classes]. "
                             f"Received: model={self.name!r}")
        self._input, self._output = inputs[0], outputs[0]
        self.input_shape = tuple(int(d) for d in self._input["shape"][1:])
        self.num_classes = int(self._output["shape"][-1])
        self.input_dtype = np.dtype(self._input["dtype"]).name
        self._batch = int(self._input["shape"][0])

    def __call__(self, images) -> np.ndarray:
        """float32 probabilities ``[N, classes]`` of raw-pixel images ``[N, H, W, C]``."""
        images = np.asarray(images, dtype="float32")
        if images.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], list(images.shape), strict=False)
            self._interpreter.allocate_tensors()
            self._batch = images.shape[0]
        dtype = np.dtype(self._input["dtype"])
        if dtype != np.float32:
            scale, zero = self._input["quantization"]
            info = np.iinfo(dtype)
            images = np.clip(np.rint(images / scale + zero), info.min, info.max).astype(dtype)
        self._interpreter.set_tensor(self._input["index"], images)
        self._interpreter.invoke()
        out = self._interpreter.get_tensor(self._output["index"])
        if out.dtype != np.float32:
            scale, zero = self._output["quantization"]
            out = (out.astype("float32") - zero) * scale
        return np.array(out, dtype="float32")


def is_model_file(path) -> bool:
    """True for a path ending in ``.tflite``."""
    return Path(path).suffix.lower() == SUFFIX

