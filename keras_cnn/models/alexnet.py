"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012, "ImageNet Classification with Deep
Convolutional Neural Networks").

227x227x3 -> conv 11x11/4 x96 -> 55x55x96 -> max-pool 3/2 -> 27x27x96 -> conv 5x5 same x256
-> max-pool 3/2 -> 13x13x256 -> conv 3x3 x384 -> conv 3x3 x384 -> conv 3x3 x256 -> max-pool 3/2
-> 6x6x256 = 9216 -> FC 4096 -> FC 4096 -> softmax 1000: 62,378,344 parameters.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_cnn._validation import check_positive_int
from keras_cnn.layers.conv import ConvBN
from keras_cnn.models._common import check_width_multiplier, scale_width, start
from keras_cnn.models.identity import registered_builder

# (name, filters, kernel, stride, padding, LRN after it, max-pool after it)
ALEXNET_CONVS = (
    ("conv1", 96, 11, 4, "valid", True, "pool1"),
    ("conv2", 256, 5, 1, "same", True, "pool2"),
    ("conv3", 384, 3, 1, "same", False, None),
    ("conv4", 384, 3, 1, "same", False, None),
    ("conv5", 256, 3, 1, "same", False, "pool5"),
)
ALEXNET_FC = (("fc6", 4096), ("fc7", 4096))


@keras.saving.register_keras_serializable(package="keras_cnn")
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalisation across channels (Krizhevsky et al., 2012, section 3.3).

    ``b[c] = a[c] / (k + alpha * sum_{c' in [c - n/2, c + n/2]} a[c']^2) ** beta``; the
    paper's values ``k=2, n=5, alpha=1e-4, beta=0.75``. (Caffe divides ``alpha`` by ``n``; the
    paper, ``tf.nn.local_response_normalization`` and this layer do not.) No parameters.

    Args:
        depth: n, the number of adjacent channels summed (odd). Default 5.
        bias: k. Default 2.0.
        alpha: Default 1e-4.
        beta: Default 0.75.
    """

    def __init__(self, depth=5, bias=2.0, alpha=1e-4, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        self.depth = check_positive_int("depth", depth)
        if self.depth % 2 == 0:
            raise ValueError(f"`depth` must be odd. Received: depth={depth!r}")
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, inputs):
        half = self.depth // 2
        channels = inputs.shape[-1]
        sq = ops.pad(ops.square(inputs), [[0, 0], [0, 0], [0, 0], [half, half]])
        window = sq[..., 0:channels]
        for j in range(1, self.depth):
            window = window + sq[..., j : j + channels]
        return inputs / ops.power(self.bias + self.alpha * window, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "depth": self.depth, "bias": self.bias, "alpha": self.alpha, "beta": self.beta}


@registered_builder("alexnet")
def AlexNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="alexnet",
    dropout=0.5,
    width_multiplier=1.0,
    lrn=False,
):
    """AlexNet (Krizhevsky et al., 2012), single-stream, as in the lecture notes.

    Five conv layers (ReLU) with max-pools 3x3/2 after conv1, conv2 and conv5, then FC 4096 ->
    FC 4096 -> classifier, with dropout 0.5 after each of the two hidden FC layers.
    With the defaults: exactly 62,378,344 parameters; feature maps 55 -> 27 -> 13 -> 6.

    Deviations from the paper: the paper split the net over two GPUs (conv2, conv4 and conv5
    saw only the half of the previous layer's maps on their own GPU; that grouping gives
    60,965,224 parameters), and used local response normalisation after conv1 and conv2 (off
    here by default, as in most re-implementations; ``lrn=True`` adds it, no parameters).
    The input is 227x227 (the paper's "224" does not give 55x55 with an 11x11/4 conv).

    Args:
        include_top: flatten + FC 4096 + FC 4096 + classifier. Default True.
        weights: None or the path of a weights file (no keras.applications twin). Default None.
        input_tensor: optional Keras tensor to use as the input. Default None.
        input_shape: optional (H, W, C); default (227, 227, 3); at least 67x67.
        pooling: None, "avg" or "max" global pooling when ``include_top=False``. Default None.
        classes: number of classes. Default 1000.
        classifier_activation: activation of the output layer. Default "softmax".
        name: model name. Default "alexnet".
        dropout: dropout rate after fc6 and fc7 (the paper's 0.5). Default 0.5.
        width_multiplier: scales every conv and hidden FC width. Default 1.0.
        lrn: local response normalisation after conv1 and conv2 (the paper). Default False.

    Returns:
        A `keras.Model`.

    Example:
        >>> AlexNet().count_params()
        62378344
    """
    build, x = start("alexnet", locals())
    wm = check_width_multiplier(width_multiplier)
    if not isinstance(lrn, bool):
        raise ValueError(f"`lrn` must be True or False. Received: lrn={lrn!r}")
    # 227x227x3
    for conv_name, filters, kernel, stride, padding, has_lrn, pool_name in ALEXNET_CONVS:
        x = ConvBN(
            scale_width(filters, wm), kernel, strides=stride, padding=padding, use_bn=False, name=conv_name
        )(x)
        if lrn and has_lrn:
            x = LocalResponseNormalization(name=f"{conv_name}_lrn")(x)
        if pool_name:
            x = keras.layers.MaxPooling2D(3, strides=2, name=pool_name)(x)
    # conv1 55x55x96 -> pool1 27x27x96 -> conv2 27x27x256 -> pool2 13x13x256
    # -> conv3..5 13x13x(384, 384, 256) -> pool5 6x6x256
    x = build.classifier(x, fc=[(fc_name, scale_width(units, wm)) for fc_name, units in ALEXNET_FC])  # 9216 in
    return build.finish(x)
