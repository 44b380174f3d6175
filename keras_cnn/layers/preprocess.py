"""Pixel preprocessing as a layer, so that a model (and its export) takes raw 0..255 pixels."""

from __future__ import annotations

import keras
from keras import ops

from keras_cnn._validation import check_choice

# keras.applications' preprocess_input modes, plus "unit" (x / 255) for small nets.
MODES = ("tf", "caffe", "torch", "unit")
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="keras_cnn")
class Preprocess(keras.layers.Layer):
    """keras.applications' ``preprocess_input`` as a layer (raw 0..255 pixels in).

    Modes (as in ``keras.applications.imagenet_utils.preprocess_input``):
    * "tf": scale to [-1, 1] (Inception);
    * "caffe": RGB -> BGR, subtract the ImageNet mean, no scaling (VGG, ResNet);
    * "torch": scale to [0, 1], subtract the ImageNet mean, divide by its std;
    * "unit": scale to [0, 1] (LeNet and the small nets).

    Args:
        mode: one of the above. Default "tf".

    Example:
        >>> Preprocess("caffe")(np.full((1, 2, 2, 3), 255.0))  # BGR minus mean
    """

    def __init__(self, mode="tf", **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, MODES)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "unit":
            return x / 255.0
        if self.mode == "torch":
            x = x / 255.0
            return (x - ops.convert_to_tensor(_TORCH_MEAN, x.dtype)) / ops.convert_to_tensor(_TORCH_STD, x.dtype)
        x = ops.flip(x, axis=-1)
        return x - ops.convert_to_tensor(_CAFFE_MEAN_BGR, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
